"""Inputs of the FID Inception: the TF 2015 graph's preprocessing and pytorch-fid's.

Published FIDs (Heusel et al.'s TTUR code, Miyato et al., most GAN papers)
come from the TensorFlow Inception graph of 2015-12-05, whose own ops prepare
the images before the first convolution:

* 'tf' (the default): pixels in [0, 255] are resized to 299x299 by TensorFlow
  1's `ResizeBilinear` (align_corners=False and no half-pixel centres: output
  pixel i samples input coordinate i * in_size / out_size; the upper neighbour
  is clamped to the last pixel), then scaled by (x - 128) / 128, a range of
  [-1, 0.9921875]. This is the FID of the papers.
* 'pytorch_fid': pytorch-fid's conventions: x / 127.5 - 1 (range [-1, 1]), then
  `F.interpolate(bilinear, align_corners=False)`, which samples at half-pixel
  centres, (i + 0.5) * in_size / out_size - 0.5. Its FIDs differ from the
  TF ones, mostly for images smaller than 299 (see the README).

Both take NHWC uint8 [0, 255] or float [-1, 1] images with 1 or 3 channels and
repeat gray to RGB (what TTUR and pytorch-fid users do by converting to RGB).
Float images: 'tf' quantises them to the nearest uint8 value first,
round((x + 1) * 127.5) clipped to [0, 255] (what a PNG of them saved with
rounding holds), so generated images go through exactly the pipeline that real
uint8 images and a paper's saved samples go through; 'pytorch_fid' uses them
unquantised, as pytorch-fid does with float tensors.

Statistics of one preprocessing must never be compared with another's; files
that do not say (pytorch-fid's or TTUR's .npz) count as UNKNOWN.
"""

import logging

import jax
import jax.numpy as jnp
import numpy as np

TF = 'tf'
PYTORCH_FID = 'pytorch_fid'
PREPROCESSINGS = (TF, PYTORCH_FID)
DEFAULT = TF
# Statistics whose preprocessing is not recorded (pytorch-fid's and TTUR's own
# files, ours from before it was recorded).
UNKNOWN = 'unknown'

INPUT_SIZE = 299
# The TF graph's `Sub` and `Mul` constants: (x - 128) * (1 / 128).
TF_OFFSET = 128.0
TF_SCALE = 1.0 / 128.0


def validate(name):
  """Returns `name` if it is one of PREPROCESSINGS, else raises ValueError."""
  if name not in PREPROCESSINGS:
    raise ValueError(f'Unknown preprocessing {name!r}; choose one of {PREPROCESSINGS}.')
  return name


def _check_shape(images):
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f'Want [N, H, W, 1 or 3] images, got shape {images.shape}.')


def to_float(images):
  """NHWC uint8 [0, 255] or float [-1, 1] images (C = 1 or 3) -> float32 in [-1, 1]."""
  _check_shape(images)
  if images.dtype == jnp.uint8:
    return images.astype(jnp.float32) / 127.5 - 1.0
  return images.astype(jnp.float32)


def to_pixels(images):
  """NHWC uint8, or float [-1, 1] quantised like a saved PNG -> float32 in [0, 255].

  Floats become round((x + 1) * 127.5) (float32, ties to even) clipped to
  [0, 255]: the nearest uint8 value (not the truncation `astype(uint8)` does).
  A uint8 image mapped by u / 127.5 - 1 comes back as u exactly.
  """
  _check_shape(images)
  if images.dtype == jnp.uint8:
    return images.astype(jnp.float32)
  pixels = jnp.round((images.astype(jnp.float32) + 1.0) * 127.5)
  return jnp.clip(pixels, 0.0, 255.0)


def _tf1_coordinates(in_size, out_size):
  """TF1 ResizeBilinear's (lower, upper, lerp) for one axis, in its float32 arithmetic."""
  scale = np.float32(in_size) / np.float32(out_size)
  source = np.arange(out_size, dtype=np.float32) * scale
  floor = np.floor(source)
  lower = np.clip(floor.astype(np.int32), 0, in_size - 1)
  upper = np.minimum(np.ceil(source).astype(np.int32), in_size - 1)
  return lower, upper, (source - floor).astype(np.float32)


def tf1_resize_bilinear(images, height, width):
  """TF1's `ResizeBilinear` (align_corners=False, half_pixel_centers=False) in JAX.

  jax.image.resize does not serve: it always samples at half-pixel centres
  (like half_pixel_centers=True and torch's interpolate), while the TF graph
  samples output pixel i at input coordinate i * in_size / out_size (shifting
  the image by half an input pixel and never interpolating past the last
  row/column, which is repeated). The coordinates are computed in float32 as
  TensorFlow does; the interpolation is TF's: along the width first, then the
  height, each as a + (b - a) * t. Jit-able (shapes are static).

  Args:
    images: [N, H, W, C] float array.
    height, width: output size.

  Returns:
    [N, height, width, C] float32, equal to `tf.compat.v1.image.resize_bilinear(
    images, (height, width))` up to float32 rounding (a few ulps).
  """
  x = jnp.asarray(images, jnp.float32)
  if x.shape[1:3] == (height, width):
    return x  # TF's scale is then 1 and every lerp 0: the identity.
  y0, y1, wy = _tf1_coordinates(x.shape[1], height)
  x0, x1, wx = _tf1_coordinates(x.shape[2], width)
  left, right = jnp.take(x, x0, axis=2), jnp.take(x, x1, axis=2)
  rows = left + (right - left) * wx[None, None, :, None]
  top, bottom = jnp.take(rows, y0, axis=1), jnp.take(rows, y1, axis=1)
  return top + (bottom - top) * wy[None, :, None, None]


def tf_graph(images):
  """The TF 2015 Inception graph's preprocessing -> [N, 299, 299, 3] in [-1, 0.992].

  Args:
    images: [N, H, W, C] with C in {1, 3}; uint8, or float in [-1, 1]
      (quantised to uint8 values first, see `to_pixels`).
  """
  x = tf1_resize_bilinear(to_pixels(images), INPUT_SIZE, INPUT_SIZE)
  x = (x - TF_OFFSET) * TF_SCALE  # Exact: 1/128 is a power of two.
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)  # Per channel, so after the resize is the same.
  return x


def pytorch_fid(images):
  """pytorch-fid's preprocessing -> [N, 299, 299, 3] float32 in [-1, 1].

  uint8 -> x / 127.5 - 1 (pytorch-fid's 2 * (x / 255) - 1), floats taken as
  [-1, 1], gray repeated to RGB, then bilinear resize with half-pixel centres
  and no antialiasing: torch's `F.interpolate(..., align_corners=False)` for
  both up- and downsampling (with JAX's default antialias=True the kernel
  widens when downsampling and the results differ). 299x299 images are left
  untouched.
  """
  x = to_float(images)
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  n, h, w, c = x.shape
  if (h, w) != (INPUT_SIZE, INPUT_SIZE):
    x = jax.image.resize(x, (n, INPUT_SIZE, INPUT_SIZE, c), method='bilinear',
                         antialias=False)
  return x


_FUNCTIONS = {TF: tf_graph, PYTORCH_FID: pytorch_fid}


def apply(images, name=DEFAULT):
  """Images -> the FID Inception's [N, 299, 299, 3] float32 input, by `name`."""
  return _FUNCTIONS[validate(name)](images)


def check_match(first, second, first_label, second_label):
  """Refuses to compare statistics of two preprocessings.

  Args:
    first, second: preprocessing names (UNKNOWN when a file does not say).
    first_label, second_label: what each belongs to, for the messages.

  Raises:
    ValueError: naming both, when both are known and differ. When only one is
      known a warning is logged: the comparison is valid only if the unknown
      side used the same preprocessing.
  """
  if first == second:
    return
  if UNKNOWN in (first, second):
    known = second if first == UNKNOWN else first
    logging.warning(
        'Comparing statistics of unrecorded preprocessing (%s: %s, %s: %s): '
        'meaningful only if that side used %r too (TTUR/TF statistics: %r; '
        'pytorch-fid\'s: %r; see --preprocess).', first_label, first, second_label,
        second, known, TF, PYTORCH_FID)
    return
  raise ValueError(
      f'Cannot compare statistics of two preprocessings: {first_label} used '
      f'{first!r}, {second_label} used {second!r} (see --preprocess).')
