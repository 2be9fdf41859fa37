"""Fixtures of the analysis tests: tiny models that follow the models.py contract."""

import jax
import jax.numpy as jnp
import pytest

from tests.support.tiny_models import IMAGE_SIZE
from tests.support.tiny_models import LATENT_DIM
from tests.support.tiny_models import TinyDiscriminator
from tests.support.tiny_models import TinyGenerator


@pytest.fixture(scope='session')
def tiny_generator():
  generator = TinyGenerator()
  variables = generator.init(jax.random.PRNGKey(0), jnp.zeros((1, LATENT_DIM)))
  return generator, variables


@pytest.fixture(scope='session')
def generate_fn(tiny_generator):
  from dcgan_jax.analysis import latent
  return latent.make_generate_fn(*tiny_generator)


@pytest.fixture(scope='session')
def tiny_discriminator():
  discriminator = TinyDiscriminator()
  variables = discriminator.init(jax.random.PRNGKey(1), jnp.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1)))
  return discriminator, variables
