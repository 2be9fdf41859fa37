"""The classic DCGAN at 64 px on your own images: every image under --config.data_dir.

  python -m dcgan_jax.main --config=configs/folder.py --config.data_dir=/path/to/images \
      --workdir=/tmp/my_images

Images of any size and mode are centre-cropped to a square, resized to 64 px and
decoded once into a cache (dcgan_jax/data/folder.py). Inception FID is computed
against 10,000 images of the same folder (spread evenly over its files; set
--config.eval_num_samples lower for a smaller folder).
"""

from configs import default


def get_config():
  """Returns the folder-of-images 64 px configuration."""
  config = default.get_config()
  config.dataset = 'folder'
  config.num_channels = None  # 3 unless every image is grayscale; or set 1 or 3.
  config.image_size = 64
  config.batch_size = 128
  config.num_train_steps = 25_000  # About 20 epochs of 160,000 images; scale with your folder.
  config.log_every_steps = 200
  config.sample_every_steps = 1_000
  config.checkpoint_every_steps = 2_500
  config.eval_every_steps = 5_000
  config.eval_num_samples = 10_000
  config.eval_feature_extractor = 'inception'

  config.model.arch = 'dcgan'
  config.model.latent_dim = 100
  config.model.g_features = 64
  config.model.d_features = 64
  config.loss.type = 'non_saturating'
  config.ema_decay = 0.999  # Samples, FID and `dcgan_jax.generate` use the EMA generator.
  return config
