"""A tiny config for tests: a small DCGAN on the offline digits, a few steps.

  python -m dcgan_jax.main --config=configs/test.py --workdir=/tmp/dcgan_test
"""

from configs import default


def get_config():
  """Returns the test configuration."""
  config = default.get_config()
  config.batch_size = 8
  config.num_train_steps = 6
  config.log_every_steps = 2
  config.sample_every_steps = 3
  config.checkpoint_every_steps = 3
  config.num_sample_images = 16
  config.shuffle_buffer_size = 256
  config.prefetch_to_device = 1
  config.eval_num_samples = 0  # Evaluation has tests of its own.
  config.model.latent_dim = 16
  config.model.g_features = 8
  config.model.d_features = 8
  return config
