"""Batch norm + ReLU, fwd + bwd: XLA reductions (jnp.mean) vs GEMV sums (ones @ x).

  XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type= python experiments/speed/probe_batchnorm.py

XLA:CPU rewrites big reductions into reduce-windows (tree reduction), which
take ~30% of the sub-pixel DCGAN step; this measures what expressing the
batch-norm sums as matrix-vector products would buy. ms, medians of 7.
"""

import time

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np


def bn_reduce(x, scale, bias):
  mean = jnp.mean(x, (0, 1, 2))
  var = jnp.mean(jnp.square(x), (0, 1, 2)) - mean * mean
  return jax.nn.relu((x - mean) * lax.rsqrt(var + 1e-5) * scale + bias)


def bn_dot(x, scale, bias):
  x2 = x.reshape(-1, x.shape[-1])
  ones = jnp.full((x2.shape[0],), 1.0 / x2.shape[0], x.dtype)
  mean = ones @ x2
  var = ones @ jnp.square(x2) - mean * mean
  return jax.nn.relu((x - mean) * lax.rsqrt(var + 1e-5) * scale + bias)


def main():
  for shape in [(64, 32, 32, 64), (64, 16, 16, 128), (64, 8, 8, 256)]:
    x = jnp.asarray(np.random.randn(*shape), jnp.float32)
    g = jnp.asarray(np.random.randn(*shape), jnp.float32)
    scale, bias = jnp.ones(shape[-1]), jnp.zeros(shape[-1])
    fns = {name: jax.jit(lambda x, s, b, g, f=f: jax.vjp(f, x, s, b)[1](g))
           for name, f in [('reduce', bn_reduce), ('dot', bn_dot)]}
    times = {name: [] for name in fns}
    for fn in fns.values():
      jax.block_until_ready(fn(x, scale, bias, g))
    for _ in range(7):
      for name, fn in fns.items():
        t = time.perf_counter()
        jax.block_until_ready(fn(x, scale, bias, g))
        times[name].append((time.perf_counter() - t) * 1e3)
    print(shape, {name: round(float(np.median(v)), 2) for name, v in times.items()})


if __name__ == '__main__':
  main()
