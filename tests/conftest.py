"""Test set-up: four fake CPU devices for pmap, quiet TensorFlow, shared fixtures."""

import os

# Must happen before jax is imported anywhere.
os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=4').strip()
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# Importing dcgan_jax applies the project's XLA:CPU defaults, as for any user.
import dcgan_jax  # noqa: E402,F401  pylint: disable=g-import-not-at-top,unused-import

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.experimental.set_visible_devices([], 'GPU')

from configs import test as test_config  # noqa: E402

NUM_DEVICES = 4


@pytest.fixture(scope='session')
def tfds_data_dir(tmp_path_factory):
  """A TFDS data dir of this test session with the offline digits prepared in it."""
  from dcgan_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  input_pipeline.get_builder('offline_mnist', data_dir)
  return data_dir


@pytest.fixture
def config(tfds_data_dir):
  """The tiny test config, reading the session's offline digits."""
  config = test_config.get_config()
  config.data_dir = tfds_data_dir
  return config
