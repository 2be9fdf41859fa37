"""DCGAN 28 px on TFDS `mnist` (60,000 digits; downloads on first use).

  python -m dcgan_jax.main --config=configs/mnist.py --workdir=/tmp/mnist
"""

from configs import default


def get_config():
  """Returns the MNIST configuration."""
  config = default.get_config()
  config.dataset = 'mnist'
  config.image_size = 28
  config.batch_size = 128
  config.num_train_steps = 20_000
  config.sample_every_steps = 1_000
  config.checkpoint_every_steps = 2_000
  config.eval_every_steps = 5_000
  config.eval_num_samples = 10_000
  return config
