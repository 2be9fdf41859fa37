"""Tests of the digit-classifier feature extractor."""

import numpy as np

from dcgan_jax.evaluation import digits


def test_classifier_is_accurate_on_heldout_digits(digits_cache):
  cache, accuracy = digits_cache
  assert accuracy >= 0.95
  # The cached copy is the trained one, and its accuracy is real.
  variables, cached_accuracy = digits.load_or_train(cache)
  _, _, test_x, test_y = digits.load_digits()
  assert cached_accuracy == accuracy
  assert digits.accuracy(variables, test_x, test_y) == accuracy


def test_heldout_split_is_disjoint_and_balanced():
  train_x, train_y, test_x, test_y = digits.load_digits()
  assert len(train_x) == 4000 and len(test_x) == 1000
  assert train_x.dtype == np.uint8 and train_x.shape[1:] == (28, 28, 1)
  assert set(np.unique(test_y)) == set(range(10))
  train_rows = {x.tobytes() for x in train_x}
  assert sum(x.tobytes() in train_rows for x in test_x) < 5  # MNIST has a few duplicates.


def test_extractor_outputs_and_input_conventions(digits_cache):
  cache, _ = digits_cache
  extractor = digits.digits_extractor(batch_size=8, cache_dir=cache)
  assert extractor.has_logits and extractor.feature_dim == digits.FEATURE_DIM
  _, _, test_x, _ = digits.load_digits()
  images = test_x[:8]
  out = extractor(images)
  assert out['pool'].shape == (8, 128) and out['logits'].shape == (8, 10)
  # uint8, [-1, 1] floats and RGB copies of the same digits give the same features.
  as_float = extractor(images.astype(np.float32) / 127.5 - 1)
  as_rgb = extractor(np.repeat(images, 3, axis=-1))
  np.testing.assert_allclose(as_float['pool'], out['pool'], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(as_rgb['pool'], out['pool'], rtol=1e-5, atol=1e-5)
