"""SN-GAN on CIFAR-10: the "standard CNN" of Miyato et al. 2018 with spectral norm, hinge loss.

  python -m dcgan_jax.main --config=configs/cifar10.py --workdir=/tmp/cifar10

Hyperparameters are those of Miyato et al. Table 1 setting C (Adam lr 2e-4,
beta1 0.5, beta2 0.999, one D step per G step).
"""

from configs import default


def get_config():
  """Returns the CIFAR-10 configuration."""
  config = default.get_config()
  config.dataset = 'cifar10'
  config.image_size = 32
  config.batch_size = 64
  config.num_train_steps = 100_000
  config.log_every_steps = 200
  config.sample_every_steps = 2_000
  config.checkpoint_every_steps = 5_000
  config.eval_every_steps = 10_000
  config.eval_num_samples = 10_000

  config.model.arch = 'standard_cnn'
  config.model.latent_dim = 128
  config.model.g_norm = 'batch'
  config.model.d_norm = 'none'
  config.model.spectral_norm = True
  config.model.leaky_relu_slope = 0.1
  config.loss.type = 'hinge'
  return config
