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
  # Replicas: K independent GANs in one program (stacked states; see replica_loop); replica i
  # is the single run with seed + i (its own init, z, noise and data order). Scalars get
  # /replica_i and /ci95 (README, "Many seeds in one program").
  config.num_seeds = 1
  # Per-replica values of continuous hyperparameters (training/replicas.py), one per
  # replica, e.g. 'optim.g_lr=1e-4,2e-4,4e-4;optim.d_lr=4e-4,4e-4,4e-4'; '' = none.
  config.sweep = ''
  # How the replicas run: auto | vmap (one batched program) | host (one compiled step called
  # per replica). auto: host on CPU (vmapped convs run ~2x slower on XLA:CPU); on GPU/TPU vmap
  # for small replicas, host for large ones (gan_step.replica_loop).
  config.replica_loop = 'auto'
  # Train steps per device call (a lax.scan over that many batches): fewer host round trips,
  # for accelerators; the numbers of 1 to float32 rounding. Must divide every *_every_steps
  # and num_train_steps. Keep 1 on CPU: XLA:CPU runs the scanned step ~14x slower.
  config.steps_per_call = 1

  # Data.
  # offline_mnist | mnist | emnist | fashion_mnist | cifar10 | celeb_a | folder (your own images
  # under data_dir: any size, centre-cropped and resized; see dcgan_jax/data/folder.py).
  config.dataset = 'offline_mnist'
  # TFDS data dir (None = TFDS default); with dataset='folder', the folder of images.
  config.data_dir = ml_collections.config_dict.placeholder(str)
  # Channels of a folder dataset's images: 1 | 3 | None (3 unless every image is grayscale).
  # The TFDS datasets have their own (1 for the digits, 3 for cifar10 and celeb_a).
  config.num_channels = ml_collections.config_dict.placeholder(int)
  config.image_size = 28  # Side of the square images: DCGAN 16, 28, 32, 64, 128, 256; standard CNN 32.
  config.batch_size = 64  # Global batch size, split evenly over all devices.
  config.shuffle_buffer_size = 10_000  # tf.data shuffle buffer (examples).
  config.prefetch_to_device = 2  # Batches kept in flight on the devices.

  # Loop.
  config.num_train_steps = 2_000  # Generator updates in the whole run.
  config.log_every_steps = 100  # Scalars to TensorBoard and the log.
  config.sample_every_steps = 500  # A PNG grid from the fixed z under workdir/samples.
  config.checkpoint_every_steps = 1_000  # An orbax checkpoint under workdir/checkpoints.
  config.eval_every_steps = 0  # FID/KID/IS every so many steps; 0 = only at the end.
  config.eval_num_samples = 1_000  # Generated (and real) images per evaluation; 0 = no evaluation.
  config.eval_feature_extractor = 'inception'  # inception | digits (classifier on the offline digits).
  # Inception inputs: tf (the TF FID of the papers: TF1 resize, (x - 128) / 128) | pytorch_fid.
  config.eval_preprocess = 'tf'
  config.num_sample_images = 64  # Images in a sample grid (a square number).
  config.max_checkpoints_to_keep = 3  # Latest checkpoints kept (the best one is kept apart).
  config.divergence = 'stop'  # On NaN/inf loss or params: stop | rollback (to the last good checkpoint).
  config.max_rollbacks = 3  # Rollbacks a run may take before it stops as with 'stop'.
  config.debug_nan_at_step = -1  # Test hook: at this step the real batch becomes NaN; -1 = off.

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
  # How the 4x4 stride-2 (transposed) and 3x3 convs are computed: auto | hybrid | xla.
  # The same parameters and function (dcgan_jax/models/conv_forms.py); hybrid is the fast
  # CPU form, xla plain lax convs (native on GPU/TPU); auto picks by jax.default_backend().
  config.model.conv_impl = 'auto'
  # Batch norm: auto | gemv (models/batch_norm.py, sums as matrix-vector products, fast on
  # CPU) | flax (nn.BatchNorm). The same parameters, statistics and function; auto is gemv
  # on CPU and flax on GPU/TPU.
  config.model.batch_norm_impl = 'auto'
  config.model.g_attention_res = 0  # Self-attention (SAGAN) in G at this feature-map side; 0 = none.
  config.model.d_attention_res = 0  # Self-attention (SAGAN) in D at this feature-map side; 0 = none.
  config.model.d_dropout = 0.0  # Dropout rate after D's blocks; 0 = none.
  config.model.d_dropout_layers = ()  # Indices of the D blocks followed by dropout; () = all.

  # Loss.
  config.loss = ml_collections.ConfigDict()
  config.loss.type = 'non_saturating'  # minimax | non_saturating | hinge
  config.loss.label_smoothing = 'none'  # none | one_sided (real -> real_label) | random (ranges)
  config.loss.real_label = 0.9  # D's target for real images under one_sided smoothing.
  config.loss.real_label_range = (0.7, 1.2)  # U(a, b) targets for real images under random.
  config.loss.fake_label_range = (0.0, 0.3)  # U(a, b) targets for generated images under random.

  # Discriminator updates.
  config.d_steps = 1  # D updates per G update (k), each on a fresh real batch.
  config.d_separate_real_fake = False  # D steps on the real and the fake batch as two updates.
  config.instance_noise = 0.0  # Std of Gaussian noise added to D's inputs at step 0; 0 = off.
  config.instance_noise_decay_steps = 0  # Noise std decays linearly to 0 over so many steps.

  # Augmentation of D's real images.
  config.augment = ml_collections.ConfigDict()
  config.augment.flip = False  # Random horizontal flips.
  config.augment.rotate_degrees = 0.0  # Random rotations in [-r, r] degrees; 0 = off.

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
