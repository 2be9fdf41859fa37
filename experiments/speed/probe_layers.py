"""Per-layer probe: forward + both gradients of each conv layer, JAX impls vs torch.

  python experiments/speed/probe_layers.py [--arch=dcgan64|standard_cnn32] [--batch=64]
      [--repeats=5] [--iters=10]

Prints ms per fwd+bwd for torch and each impl, and the impl/torch time ratio,
measured back to back in this process (medians of repeats).
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from dcgan_jax import conv_forms
from dcgan_jax import layers


# (kind, H_in, C_in, C_out) of each model's G and D layers: T = 4x4/2 transposed
# conv, C = 4x4/2 conv, S = 3x3/1 conv.
_SHAPES = {
    'dcgan64': [('T', 4, 512, 256), ('T', 8, 256, 128), ('T', 16, 128, 64), ('T', 32, 64, 3),
                ('C', 64, 3, 64), ('C', 32, 64, 128), ('C', 16, 128, 256), ('C', 8, 256, 512)],
    'standard_cnn32': [('T', 4, 512, 256), ('T', 8, 256, 128), ('T', 16, 128, 64),
                       ('S', 32, 64, 3), ('S', 32, 3, 64), ('C', 32, 64, 64), ('S', 16, 64, 128),
                       ('C', 16, 128, 128), ('S', 8, 128, 256), ('C', 8, 256, 256),
                       ('S', 4, 256, 512)],
}


def _median_time(fn, iters, repeats):
  fn()
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    for _ in range(iters):
      fn()
    times.append((time.perf_counter() - t0) / iters)
  return float(np.median(times)) * 1e3


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--batch', type=int, default=64)
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--iters', type=int, default=10)
  parser.add_argument('--impls', default=','.join(layers.IMPLS))
  parser.add_argument('--dtype', default='float32')
  parser.add_argument('--arch', default='dcgan64', choices=sorted(_SHAPES))
  args = parser.parse_args()
  import torch
  torch.set_num_threads(2)
  b = args.batch
  dtype = jnp.dtype(args.dtype)
  shapes = _SHAPES[args.arch]
  rng = np.random.default_rng(0)
  for kind, h, ci, co in shapes:
    x = rng.standard_normal((b, h, h, ci)).astype(np.float32)
    size = 3 if kind == 'S' else 4
    k = (0.02 * rng.standard_normal((size, size, ci, co))).astype(np.float32)
    tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_()
    if kind == 'T':
      tw = torch.from_numpy(k.transpose(2, 3, 0, 1).copy()).requires_grad_()
      tf = lambda: torch.nn.functional.conv_transpose2d(tx, tw, stride=2, padding=1)
      fns = conv_forms.CONV_TRANSPOSE
    elif kind == 'S':
      tw = torch.from_numpy(k.transpose(3, 2, 0, 1).copy()).requires_grad_()
      tf = lambda: torch.nn.functional.conv2d(tx, tw, stride=1, padding=1)
      fns = conv_forms.CONV3X3
    else:
      tw = torch.from_numpy(k.transpose(3, 2, 0, 1).copy()).requires_grad_()
      tf = lambda: torch.nn.functional.conv2d(tx, tw, stride=2, padding=1)
      fns = conv_forms.CONV
    ty = tf()
    tg = torch.randn_like(ty)

    def torch_step():
      tx.grad = None
      tw.grad = None
      tf().backward(tg)
    t_ms = _median_time(torch_step, args.iters, args.repeats)
    line = f'{kind} {h:3d} {ci:4d}->{co:4d}  torch {t_ms:7.2f} ms'
    for impl in args.impls.split(','):
      f = fns[impl]
      g = jnp.asarray(tg.numpy().transpose(0, 2, 3, 1), dtype)

      @jax.jit
      def step(x, k, g, f=f):
        y, vjp = jax.vjp(f, x, k)
        return vjp(g)
      xj, kj = jnp.asarray(x, dtype), jnp.asarray(k, dtype)
      run = lambda: jax.block_until_ready(step(xj, kj, g))
      j_ms = _median_time(run, args.iters, args.repeats)
      t_ms2 = _median_time(torch_step, args.iters, args.repeats)
      line += f' | {impl} {j_ms:7.2f} ms ({(t_ms + t_ms2) / 2 / j_ms:4.2f}x)'
    print(line, flush=True)


if __name__ == '__main__':
  main()
