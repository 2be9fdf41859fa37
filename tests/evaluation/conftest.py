"""Fixtures of the evaluation tests."""

import pytest


@pytest.fixture(scope='session')
def stats_cache():
  """The shared cache folder ($DCGAN_JAX_CACHE or ~/.cache/dcgan_jax).

  It keeps the evaluator tests' reference statistics between runs (the digit
  classifier itself ships with the package).
  """
  from dcgan_jax.evaluation import weights  # pylint: disable=g-import-not-at-top
  return weights.cache_dir()
