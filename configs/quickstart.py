"""Quickstart: a DCGAN on the 5,000 real MNIST digits bundled offline, minutes on a CPU.

  python -m dcgan_jax.main --config=configs/quickstart.py --workdir=/tmp/quickstart
"""

from configs import default


def get_config():
  """Returns the quickstart configuration."""
  config = default.get_config()
  config.dataset = 'offline_mnist'
  config.image_size = 28
  config.batch_size = 64
  config.num_train_steps = 8_000
  config.log_every_steps = 50
  config.sample_every_steps = 1_000
  config.checkpoint_every_steps = 2_000
  # FID in the feature space of a small digit classifier: seconds on a CPU.
  # The Inception FID of the same run: --mode=evaluate --config.eval_feature_extractor=inception
  config.eval_feature_extractor = 'digits'
  config.eval_every_steps = 2_000
  config.eval_num_samples = 2_000
  config.model.arch = 'dcgan'
  config.model.latent_dim = 64
  config.model.g_features = 32
  config.model.d_features = 32
  return config
