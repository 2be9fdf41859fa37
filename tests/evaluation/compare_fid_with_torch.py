"""Compares our FID (and speed) with the torch reference network on two image sets.

The reference: the TorchScript FID Inception `default_1.pt` run by PyTorch on
the same images with pytorch-fid's preprocessing (see
make_reference_features.torch_features), float64 mean/covariance with numpy,
and the same scipy Frechet distance. Ours: the Flax network through
`Evaluator`. Prints both FIDs, their relative difference, and the feature
extraction throughput of each (after a warm-up batch, back to back).

  python tests/evaluation/compare_fid_with_torch.py A.npz B.npz [--batch_size 50]

A and B are .npz files with uint8 `images` [N, H, W, C].
"""

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_reference_features  # pylint: disable=g-import-not-at-top,wrong-import-position
from dcgan_jax.evaluation import evaluator as evaluator_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from dcgan_jax.evaluation import metrics  # pylint: disable=g-import-not-at-top,wrong-import-position
from dcgan_jax.evaluation import weights  # pylint: disable=g-import-not-at-top,wrong-import-position


def torch_stats(net, images, batch_size):
  feats = [make_reference_features.torch_features(net, images[i:i + batch_size])
           for i in range(0, len(images), batch_size)]
  f = np.concatenate(feats).astype(np.float64)
  return f.mean(0), np.cov(f, rowvar=False)


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('a')
  parser.add_argument('b')
  parser.add_argument('--batch_size', type=int, default=50)
  args = parser.parse_args()
  sets = []
  for path in (args.a, args.b):
    with np.load(path) as f:
      sets.append(f['images'])
  n = sum(len(s) for s in sets)

  net = torch.jit.load(weights.find_default_1(), map_location='cpu').eval()
  make_reference_features.torch_features(net, sets[0][:args.batch_size])  # Warm-up.
  start = time.perf_counter()
  (mu1, s1), (mu2, s2) = (torch_stats(net, s, args.batch_size) for s in sets)
  torch_seconds = time.perf_counter() - start
  fid_torch = metrics.frechet_distance(mu1, s1, mu2, s2)

  ev = evaluator_lib.Evaluator('inception', batch_size=args.batch_size, progress=False)
  ev.features([sets[0][:args.batch_size]])  # Warm-up (jit compilation).
  start = time.perf_counter()
  a, b = (ev.features([s]) for s in sets)
  jax_seconds = time.perf_counter() - start
  fid_ours = metrics.frechet_distance(a.mu, a.sigma, b.mu, b.sigma)

  print(f'torch threads: {torch.get_num_threads()}, load average: {os.getloadavg()}')
  print(f'FID torch reference: {fid_torch:.6f}')
  print(f'FID ours (Flax):     {fid_ours:.6f}')
  print(f'relative difference: {abs(fid_ours - fid_torch) / abs(fid_torch):.3e}')
  print(f'max |mu diff| / max |mu|: {np.abs(a.mu - mu1).max() / np.abs(mu1).max():.3e}')
  print(f'throughput torch: {n / torch_seconds:.2f} img/s ({torch_seconds:.1f} s for {n})')
  print(f'throughput ours:  {n / jax_seconds:.2f} img/s ({jax_seconds:.1f} s for {n})')


if __name__ == '__main__':
  main()
