"""Fixtures of the evaluation tests."""

import pytest


@pytest.fixture(scope='session')
def digits_cache():
  """The cache folder with the digit classifier in it (trained on first use).

  The shared cache ($DCGAN_JAX_CACHE or ~/.cache/dcgan_jax) is used so that
  the ~20-60 s of training happen once per machine; the tests recompute the
  accuracy from the cached weights rather than trusting the stored number.
  """
  from dcgan_jax.evaluation import digits  # pylint: disable=g-import-not-at-top
  from dcgan_jax.evaluation import weights  # pylint: disable=g-import-not-at-top
  cache = weights.cache_dir()
  _, accuracy = digits.load_or_train(cache)
  return cache, accuracy
