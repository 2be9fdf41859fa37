"""Fixtures of the evaluation tests."""

import pytest


@pytest.fixture(scope='session')
def digits_cache():
  """(the cache folder for reference statistics, the shipped classifier's held-out accuracy).

  The shared cache ($DCGAN_JAX_CACHE or ~/.cache/dcgan_jax) keeps the reference
  statistics of the evaluator tests between runs; the digit classifier itself
  ships with the package.
  """
  from dcgan_jax.evaluation import digits  # pylint: disable=g-import-not-at-top
  from dcgan_jax.evaluation import weights  # pylint: disable=g-import-not-at-top
  _, accuracy = digits.load()
  return weights.cache_dir(), accuracy
