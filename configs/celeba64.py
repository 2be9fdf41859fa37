"""The classic DCGAN at 64 px on CelebA (nz 100, ngf = ndf = 64), as the PyTorch DCGAN example.

  python -m dcgan_jax.main --config=configs/celeba64.py --workdir=/tmp/celeba64
"""

from configs import default


def get_config():
  """Returns the CelebA 64 px configuration."""
  config = default.get_config()
  config.dataset = 'celeb_a'
  config.image_size = 64
  config.batch_size = 128
  config.num_train_steps = 25_000  # About 20 epochs of the 162,770 training faces.
  config.log_every_steps = 200
  config.sample_every_steps = 1_000
  config.checkpoint_every_steps = 2_500
  config.eval_every_steps = 5_000
  config.eval_num_samples = 10_000

  config.model.arch = 'dcgan'
  config.model.latent_dim = 100
  config.model.g_features = 64
  config.model.d_features = 64
  config.loss.type = 'non_saturating'
  return config
