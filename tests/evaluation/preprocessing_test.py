"""Tests of the FID Inception's input preprocessings against TensorFlow and TTUR."""

import logging

import jax
import numpy as np
import pytest
import tensorflow as tf

from dcgan_jax.evaluation import preprocessing

# JAX and TensorFlow both interpolate in float32; XLA may fuse a + (b - a) * t
# into one FMA, a few ulps at pixel values up to 255 (ulp 1.5e-5).
RESIZE_ATOL = 1e-4


def _tf1_resize(images, size=299):
  return tf.compat.v1.image.resize_bilinear(
      images, (size, size), align_corners=False, half_pixel_centers=False).numpy()


@pytest.mark.parametrize('size', [28, 32, 64, 128, 300, (64, 48)])
def test_tf1_resize_equals_tensorflow(size):
  height, width = (size, size) if isinstance(size, int) else size
  rng = np.random.default_rng(height * 1000 + width)
  images = rng.uniform(0, 255, size=(2, height, width, 3)).astype(np.float32)
  got = np.asarray(jax.jit(preprocessing.tf1_resize_bilinear, static_argnums=(1, 2))(
      images, 299, 299))
  want = _tf1_resize(images)
  assert got.shape == want.shape == (2, 299, 299, 3)
  np.testing.assert_allclose(got, want, rtol=0, atol=RESIZE_ATOL)
  # Not the half-pixel resize of jax.image / torch: that differs by whole
  # pixel values (the image moves by half an input pixel).
  half_pixel = np.asarray(jax.image.resize(images, want.shape, 'bilinear', antialias=False))
  assert np.abs(half_pixel - want).max() > 0.5


def test_tf1_resize_keeps_299_and_repeats_the_last_row():
  rng = np.random.default_rng(0)
  images = rng.uniform(0, 255, size=(1, 299, 299, 1)).astype(np.float32)
  np.testing.assert_array_equal(np.asarray(preprocessing.tf1_resize_bilinear(images, 299, 299)),
                                _tf1_resize(images))
  # 2 -> 4 pixels samples 0, 0.5, 1, 1.5: the last interpolates past the end,
  # which TF1 clamps to the last pixel.
  line = np.array([[[[10.0], [20.0]]]], np.float32)
  out = np.asarray(preprocessing.tf1_resize_bilinear(line, 1, 4))
  np.testing.assert_array_equal(out[0, 0, :, 0], [10, 15, 20, 20])


def test_tf_scaling_is_the_graphs():
  # TTUR feeds [0, 255] pixels to the graph, which computes (x - 128) / 128.
  assert (preprocessing.TF_OFFSET, preprocessing.TF_SCALE) == (128.0, 1 / 128)
  image = np.zeros((1, 299, 299, 1), np.uint8)
  image[0, 0, :5, 0] = [0, 1, 127, 128, 255]
  out = np.asarray(preprocessing.tf_graph(image))
  assert out.shape == (1, 299, 299, 3) and out.dtype == np.float32
  np.testing.assert_array_equal(out[0, 0, :5, 0], [-1.0, -127 / 128, -1 / 128, 0.0, 0.9921875])
  np.testing.assert_array_equal(out[..., 0], out[..., 2])  # Gray repeated.
  rgb = np.random.default_rng(1).integers(0, 256, (2, 299, 299, 3), dtype=np.uint8)
  np.testing.assert_array_equal(np.asarray(preprocessing.tf_graph(rgb)),
                                (rgb.astype(np.float32) - 128) / 128)


def test_tf_quantises_floats_like_uint8():
  rng = np.random.default_rng(2)
  pixels = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
  as_float = pixels.astype(np.float32) / 127.5 - 1
  np.testing.assert_array_equal(np.asarray(preprocessing.tf_graph(as_float)),
                                np.asarray(preprocessing.tf_graph(pixels)))
  # Nearest uint8 (not truncation), clipped; -1 -> 0 and 1 -> 255.
  values = np.array([-1.5, -1.0, -0.999, 0.0, 1.2 / 127.5, 0.999, 1.0, 2.0], np.float32)
  got = np.asarray(preprocessing.to_pixels(values.reshape(1, 1, -1, 1)))
  np.testing.assert_array_equal(got.ravel(), [0, 0, 0, 128, 129, 255, 255, 255])


def test_pytorch_fid_keeps_its_conventions():
  image = np.zeros((1, 299, 299, 1), np.uint8)
  image[0, 0, :3, 0] = [0, 255, 51]
  out = np.asarray(preprocessing.apply(image, preprocessing.PYTORCH_FID))
  np.testing.assert_allclose(out[0, 0, :3, 0], [-1.0, 1.0, -0.6], atol=1e-6)
  floats = np.full((1, 299, 299, 3), 0.25, np.float32)
  np.testing.assert_array_equal(np.asarray(preprocessing.apply(floats, 'pytorch_fid')), floats)


def test_registry_default_and_validation():
  assert preprocessing.PREPROCESSINGS == ('tf', 'pytorch_fid')
  assert preprocessing.DEFAULT == 'tf'
  image = np.random.default_rng(3).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
  np.testing.assert_array_equal(np.asarray(preprocessing.apply(image)),
                                np.asarray(preprocessing.tf_graph(image)))
  with pytest.raises(ValueError, match='clean'):
    preprocessing.apply(image, 'clean')


def test_check_match(caplog):
  preprocessing.check_match('tf', 'tf', 'a', 'b')
  with pytest.raises(ValueError, match=r"a\.npz used 'pytorch_fid', b\.npz used 'tf'"):
    preprocessing.check_match('pytorch_fid', 'tf', 'a.npz', 'b.npz')
  with caplog.at_level(logging.WARNING):
    preprocessing.check_match(preprocessing.UNKNOWN, 'tf', 'theirs.npz', 'ours')
  assert 'theirs.npz' in caplog.text and 'unknown' in caplog.text
