"""Compares our FID (and speed) with the torch reference network on two image sets.

The reference: the TorchScript FID Inception `default_1.pt` run by PyTorch on
the same images with the same preprocessing, written independently (see
dcgan_jax.torch_reference.inception: for 'tf', TensorFlow's own TF1 resize and
the graph's (x - 128) / 128; for 'pytorch_fid', torch's interpolate), float64
mean/covariance with numpy, and the same scipy Frechet distance. Ours: the
Flax network through `Evaluator`. Prints both FIDs, their relative difference,
the relative differences of mu and sigma, and the feature extraction
throughput of each (after a warm-up batch, back to back).

  python -m experiments.tools.compare_fid_with_torch A.npz B.npz [--batch_size 50]
      [--preprocess tf|pytorch_fid]

A and B are .npz files with uint8 `images` [N, H, W, C].
"""

import argparse
import os
import time

import numpy as np
import torch

from dcgan_jax.evaluation import evaluator as evaluator_lib
from dcgan_jax.evaluation import metrics
from dcgan_jax.evaluation import preprocessing
from dcgan_jax.evaluation import weights
from dcgan_jax.torch_reference import inception as torch_inception


def torch_stats(net, images, batch_size, preprocess):
  feats = [torch_inception.features(net, images[i:i + batch_size], preprocess)
           for i in range(0, len(images), batch_size)]
  f = np.concatenate(feats).astype(np.float64)
  return f.mean(0), np.cov(f, rowvar=False)


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('a')
  parser.add_argument('b')
  parser.add_argument('--batch_size', type=int, default=50)
  parser.add_argument('--preprocess', default=preprocessing.DEFAULT,
                      choices=preprocessing.PREPROCESSINGS)
  args = parser.parse_args()
  sets = []
  for path in (args.a, args.b):
    with np.load(path) as f:
      sets.append(f['images'])
  n = sum(len(s) for s in sets)

  net = torch_inception.load(weights.find_default_1())
  torch_inception.features(net, sets[0][:args.batch_size], args.preprocess)  # Warm-up.
  start = time.perf_counter()
  (mu1, s1), (mu2, s2) = (torch_stats(net, s, args.batch_size, args.preprocess)
                          for s in sets)
  torch_seconds = time.perf_counter() - start
  fid_torch = metrics.frechet_distance(mu1, s1, mu2, s2)

  ev = evaluator_lib.Evaluator('inception', batch_size=args.batch_size, progress=False,
                              preprocess=args.preprocess)
  ev.features([sets[0][:args.batch_size]])  # Warm-up (jit compilation).
  start = time.perf_counter()
  a, b = (ev.features([s]) for s in sets)
  jax_seconds = time.perf_counter() - start
  fid_ours = metrics.frechet_distance(a.mu, a.sigma, b.mu, b.sigma)

  print(f'preprocessing: {args.preprocess}')
  print(f'torch threads: {torch.get_num_threads()}, load average: {os.getloadavg()}')
  print(f'FID torch reference: {fid_torch:.6f}')
  print(f'FID ours (Flax):     {fid_ours:.6f}')
  print(f'relative difference: {abs(fid_ours - fid_torch) / abs(fid_torch):.3e}')
  for name, ours, ref in (('A mu', a.mu, mu1), ('A sigma', a.sigma, s1),
                          ('B mu', b.mu, mu2), ('B sigma', b.sigma, s2)):
    print(f'{name}: max |diff| / max |reference| = '
          f'{np.abs(ours - ref).max() / np.abs(ref).max():.3e}')
  print(f'throughput torch: {n / torch_seconds:.2f} img/s ({torch_seconds:.1f} s for {n})')
  print(f'throughput ours:  {n / jax_seconds:.2f} img/s ({jax_seconds:.1f} s for {n})')


if __name__ == '__main__':
  main()
