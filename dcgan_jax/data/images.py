"""Image helpers shared by training, evaluation and analysis: conversion and grids."""

import math
import os

import numpy as np
from PIL import Image


def to_uint8(images):
  """Maps images in [-1, 1] (any float dtype) to uint8 in [0, 255].

  uint8 input is returned unchanged. The mapping is round((x + 1) * 127.5),
  clipped, the inverse of the pipeline's x / 127.5 - 1.
  """
  images = np.asarray(images)
  if images.dtype == np.uint8:
    return images
  images = np.asarray(images, np.float32)
  return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_grid(images, ncols=None, padding=2, pad_value=255):
  """Tiles a batch of NHWC images into one HWC image.

  Args:
    images: [N, H, W, C] array, uint8 or float in [-1, 1].
    ncols: images per row; default ceil(sqrt(N)).
    padding: pixels between tiles and around the border.
    pad_value: uint8 value of the padding.

  Returns:
    A uint8 [rows * (H + padding) + padding, ncols * (W + padding) + padding, C]
    array.
  """
  images = to_uint8(images)
  if images.ndim != 4:
    raise ValueError(f'make_grid wants [N, H, W, C] images, got shape {images.shape}.')
  n, h, w, c = images.shape
  ncols = ncols or int(math.ceil(math.sqrt(n)))
  nrows = int(math.ceil(n / ncols))
  grid = np.full((nrows * (h + padding) + padding, ncols * (w + padding) + padding, c),
                 pad_value, np.uint8)
  for i in range(n):
    row, col = divmod(i, ncols)
    top, left = padding + row * (h + padding), padding + col * (w + padding)
    grid[top:top + h, left:left + w] = images[i]
  return grid


def save_image(image, path):
  """Writes an HWC uint8 image (C = 1 or 3) as PNG, creating parent folders."""
  image = to_uint8(image)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  Image.fromarray(image).save(path)
  return path


def save_grid(images, path, ncols=None, padding=2):
  """Tiles `images` with `make_grid` and writes the grid as PNG."""
  return save_image(make_grid(images, ncols=ncols, padding=padding), path)
