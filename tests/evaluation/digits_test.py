"""Tests of the digit-classifier feature extractor."""

import jax
import numpy as np
import pytest

from dcgan_jax.evaluation import digits
from dcgan_jax.evaluation import weights


def test_shipped_classifier_is_accurate_on_heldout_digits():
  variables, stored_accuracy = digits.load()
  _, _, test_x, test_y = digits.load_digits()
  # The stored number is recomputed, not trusted.
  assert digits.accuracy(variables, test_x, test_y) == stored_accuracy
  assert stored_accuracy >= 0.95


def test_retraining_gives_an_equally_good_classifier_and_round_trips(tmp_path):
  variables, accuracy = digits.train()
  shipped, shipped_accuracy = digits.load()
  assert accuracy >= 0.95 and abs(accuracy - shipped_accuracy) <= 0.02
  # Same architecture and parameter shapes as the shipped weights.
  assert (jax.tree_util.tree_structure(variables) == jax.tree_util.tree_structure(shipped))
  assert ([x.shape for x in jax.tree_util.tree_leaves(variables)] ==
          [x.shape for x in jax.tree_util.tree_leaves(shipped)])
  path = str(tmp_path / 'retrained.npz')
  digits.save(variables, accuracy, path)
  loaded, loaded_accuracy = digits.load(path)
  assert loaded_accuracy == accuracy and digits.max_difference(loaded, variables) == 0.0


def test_missing_weights_file_says_how_to_get_it(tmp_path):
  path = str(tmp_path / 'gone.npz')
  with pytest.raises(weights.WeightsError) as e:
    digits.load(path)
  assert path in str(e.value) and 'python -m dcgan_jax.evaluation.digits --out=' in str(e.value)


def test_heldout_split_is_disjoint_and_balanced():
  train_x, train_y, test_x, test_y = digits.load_digits()
  assert len(train_x) == 4000 and len(test_x) == 1000
  assert train_x.dtype == np.uint8 and train_x.shape[1:] == (28, 28, 1)
  assert set(np.unique(test_y)) == set(range(10))
  train_rows = {x.tobytes() for x in train_x}
  assert sum(x.tobytes() in train_rows for x in test_x) < 5  # MNIST has a few duplicates.


def test_extractor_outputs_and_input_conventions():
  extractor = digits.digits_extractor(batch_size=8)
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
