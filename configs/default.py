"""Default hyperparameters: a DCGAN on the offline MNIST digits.

Every other config starts from this one and overrides what it needs. Run it with

  python -m dcgan_jax.main --config=configs/default.py --workdir=/tmp/dcgan_default

and override any field from the command line, e.g. `--config.optim.d_lr=4e-4`.
"""

import ml_collections


def get_config():
  """Returns the default configuration."""
  config = ml_collections.ConfigDict()

  config.seed = 0  # The one seed a run is a pure function of.

  # Data.
  config.dataset = 'offline_mnist'  # offline_mnist | mnist | emnist | fashion_mnist | cifar10 | celeb_a
  config.data_dir = ml_collections.config_dict.placeholder(str)  # TFDS data dir; None = TFDS default.
  config.image_size = 28  # Side of the square images the models see (28, 32 or 64).
  config.batch_size = 64  # Global batch size, split evenly over all devices.
  config.shuffle_buffer_size = 10_000  # tf.data shuffle buffer (examples).
  config.prefetch_to_device = 2  # Batches kept in flight on the devices.

  # Loop.
  config.num_train_steps = 2_000  # Generator updates in the whole run.
  config.log_every_steps = 100  # Scalars to TensorBoard and the log.
  config.sample_every_steps = 500  # A PNG grid from the fixed z under workdir/samples.
  config.checkpoint_every_steps = 1_000  # An orbax checkpoint under workdir/checkpoints.
  config.eval_every_steps = 0  # FID/KID/IS every so many steps; 0 = only at the end.
  config.eval_num_samples = 1_000  # Generated images per evaluation.
  config.eval_feature_extractor = 'inception'  # inception | digits (classifier on the offline digits).
  config.num_sample_images = 64  # Images in a sample grid (a square number).
  config.max_checkpoints_to_keep = 3  # Latest checkpoints kept (the best one is kept apart).

  # Models.
  config.model = ml_collections.ConfigDict()
  config.model.arch = 'dcgan'  # dcgan | standard_cnn (Miyato et al. 2018) | mlp
  config.model.latent_dim = 100  # Dimension of z.
  config.model.latent_dist = 'normal'  # normal (N(0, 1)) | uniform (U(-1, 1)).
  config.model.g_features = 64  # Width of G's last hidden layer (ngf); doubles per level.
  config.model.d_features = 64  # Width of D's first layer (ndf); doubles per level.
  config.model.g_activation = 'relu'  # relu | elu | silu | leaky_relu
  config.model.d_activation = 'leaky_relu'  # relu | elu | silu | leaky_relu
  config.model.leaky_relu_slope = 0.2  # Negative slope of LeakyReLU (0.2 DCGAN, 0.1 standard CNN).
  config.model.g_norm = 'batch'  # batch | layer | none
  config.model.d_norm = 'batch'  # batch | layer | none (D's first layer never has one).
  config.model.spectral_norm = False  # Spectral norm (power iteration) on every D layer.
  config.model.dtype = 'float32'  # Compute dtype: float32 | bfloat16 (params stay float32).

  # Loss.
  config.loss = ml_collections.ConfigDict()
  config.loss.type = 'non_saturating'  # minimax | non_saturating | hinge

  # Optimisers: Adam for G and for D.
  config.optim = ml_collections.ConfigDict()
  config.optim.g_lr = 2e-4  # Generator learning rate.
  config.optim.d_lr = 2e-4  # Discriminator learning rate.
  config.optim.g_b1 = 0.5  # Generator Adam beta1.
  config.optim.d_b1 = 0.5  # Discriminator Adam beta1.
  config.optim.g_b2 = 0.999  # Generator Adam beta2.
  config.optim.d_b2 = 0.999  # Discriminator Adam beta2.
  config.optim.lr_decay_steps = ()  # Steps at which both learning rates are multiplied by
  config.optim.lr_decay_factor = 0.1  # this factor (e.g. 1e-4 -> 1e-5 -> 1e-6).

  config.ema_decay = 0.0  # EMA of G's params for samples and evaluation; 0 = off (e.g. 0.999).

  return config
