"""Times each primitive of a 4x4/2 layer separately: C (strided conv), T (transposed conv), W (weight grad).

  python experiments/speed/probe_primitives.py

For every DCGAN-64 layer shape, C, T and W are the three products a conv /
transposed-conv pair needs (the forward of one is the input gradient of the
other, W is the kernel gradient of both), timed per implementation so that a
custom_vjp can pick the fastest of each. ms, median of repeats, no torch.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np

from dcgan_jax import conv_forms as F
from dcgan_jax import layers as L


def _time(fn, *args, repeats=5, iters=3):
  jax.block_until_ready(fn(*args))
  ts = []
  for _ in range(repeats):
    t = time.perf_counter()
    for _ in range(iters):
      jax.block_until_ready(fn(*args))
    ts.append((time.perf_counter() - t) / iters * 1e3)
  return float(np.median(ts))


def main():
  # Strided conv shapes: (H_in, C_in, C_out) with output H_in / 2.
  shapes = [(64, 3, 64), (32, 64, 128), (16, 128, 256), (8, 256, 512)]
  rng = np.random.default_rng(0)
  for h, ci, co in shapes:
    x = jnp.asarray(rng.standard_normal((64, h, h, ci)), jnp.float32)
    k = jnp.asarray(0.02 * rng.standard_normal((4, 4, ci, co)), jnp.float32)
    dy = jnp.asarray(rng.standard_normal((64, h // 2, h // 2, co)), jnp.float32)
    kt = k.transpose(0, 1, 3, 2)
    line = f'H {h:3d} {ci:4d}->{co:4d} |'
    for impl in L.IMPLS:
      c = jax.jit(F.CONV[impl])
      line += f' C[{impl}] {_time(c, x, k):6.1f}'
    line += ' |'
    for impl in ('subpixel', 'matmul'):
      # T from [h/2, co] to [h, ci]: the input gradient of C.
      t = jax.jit(F.CONV_TRANSPOSE[impl])
      line += f' T[{impl}] {_time(t, dy, kt):6.1f}'
    line += ' |'
    for impl in L.IMPLS:
      w = jax.jit(lambda x, k, dy, f=F.CONV[impl]: jax.vjp(lambda k: f(x, k), k)[1](dy))
      line += f' W[{impl}] {_time(w, x, k, dy):6.1f}'
    print(line, flush=True)


if __name__ == '__main__':
  main()
