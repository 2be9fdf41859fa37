"""Generators and discriminators: DCGAN (28/32/64 px), the standard CNN of Miyato et al., an MLP GAN.

Every model is a Flax Linen module and a pure function of its variables:

  images = generator.apply({'params': p, 'batch_stats': s}, z, train=False)
  logits = discriminator.apply(d_variables, images, train=False)

`train=True` uses batch statistics in batch norm (and dropout where configured);
the running averages are updated only when 'batch_stats' is passed as mutable.
Spectral norm (flax `nn.SpectralNorm`) keeps its power-iteration vector `u` and
`sigma` in the same 'batch_stats' collection; the stored `u` moves only when the
discriminator is called with `update_stats=True`, which the train step does once
per discriminator update and never in the generator update.

Each discriminator block sows its post-activation feature map into the
'intermediates' collection: `discriminator.apply(v, x, mutable=['intermediates'])`
returns them as `state['intermediates']['features']`, a tuple in block order.
"""

import functools
import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dcgan_jax.models import batch_norm
from dcgan_jax.models import layers

dcgan_init = layers.dcgan_init

ACTIVATIONS = {
    'relu': lambda slope: nn.relu,
    'elu': lambda slope: nn.elu,
    'silu': lambda slope: nn.silu,
    'leaky_relu': lambda slope: functools.partial(nn.leaky_relu, negative_slope=slope),
}
NORMS = ('batch', 'layer', 'none')
BATCH_NORM_IMPLS = {'gemv': batch_norm.BatchNorm, 'flax': nn.BatchNorm}
# config.model.batch_norm_impl: 'auto' is 'gemv' on CPU, flax's elsewhere.
BATCH_NORM_CHOICES = ('auto', *BATCH_NORM_IMPLS)
ARCHS = ('dcgan', 'standard_cnn', 'mlp')
DTYPES = ('float32', 'bfloat16')  # config.model.dtype: the compute dtype (params stay float32).
# The base (first) feature-map side of the DCGAN family, per image size: as in
# the DCGAN paper, G starts at 4x4 and doubles the side per transposed conv
# (halving the width), D mirrors it; 28 px (MNIST) starts at 7x7.
DCGAN_BASE_SIZE = {16: 4, 28: 7, 32: 4, 64: 4, 128: 4, 256: 4}
STANDARD_CNN_SIZE = 32  # The standard CNN of Miyato et al. exists at 32 px only.


def resolve_batch_norm_impl(impl, backend=None):
  """The batch norm `impl` names on `backend` (default: jax's default backend)."""
  if impl not in BATCH_NORM_CHOICES:
    raise ValueError(f'Unknown batch norm impl {impl!r}; choose one of {BATCH_NORM_CHOICES}.')
  if impl != 'auto':
    return impl
  return 'gemv' if (backend or jax.default_backend()) == 'cpu' else 'flax'


def get_activation(name: str, slope: float = 0.2) -> Callable[[jnp.ndarray], jnp.ndarray]:
  if name not in ACTIVATIONS:
    raise ValueError(f'Unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}.')
  return ACTIVATIONS[name](slope)


class Norm(nn.Module):
  """Batch norm, layer norm or identity, chosen by name.

  Batch norm follows PyTorch's defaults (momentum 0.1, eps 1e-5), as the
  DCGAN reference does; `impl` 'gemv' is `batch_norm.BatchNorm` (the same
  function, parameters and statistics as flax's, faster on CPU) and 'flax'
  is `nn.BatchNorm`. Layer norm normalises over all of (H, W, C), as a
  drop-in for batch norm that does not mix examples.
  """
  kind: str
  dtype: Any = jnp.float32
  impl: str = 'auto'

  @nn.compact
  def __call__(self, x, train: bool):
    if self.kind == 'batch':
      impl = resolve_batch_norm_impl(self.impl)
      return BATCH_NORM_IMPLS[impl](use_running_average=not train, momentum=0.9,
                                    epsilon=1e-5, dtype=self.dtype)(x)
    if self.kind == 'layer':
      return nn.LayerNorm(reduction_axes=tuple(range(1, x.ndim)), feature_axes=-1,
                          epsilon=1e-5, dtype=self.dtype)(x)
    if self.kind == 'none':
      return x
    raise ValueError(f'Unknown norm {self.kind!r}; choose one of {NORMS}.')


class SNWrap(nn.Module):
  """Applies `layer`, under spectral norm when `enabled`."""
  layer: nn.Module
  enabled: bool

  @nn.compact
  def __call__(self, x, update_stats: bool):
    if self.enabled:
      return nn.SpectralNorm(self.layer)(x, update_stats=update_stats)
    return self.layer(x)


class SelfAttention(nn.Module):
  """SAGAN self-attention (Zhang et al. 2019): x + gamma * attention(x), gamma starts at 0.

  Query and key use C/8 channels and the value C/2, as in BigGAN's version;
  with `spectral_norm` every 1x1 projection is spectrally normalised.
  """
  spectral_norm: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, update_stats: bool = False):
    b, h, w, c = x.shape
    proj = lambda features, name: SNWrap(
        nn.Dense(features, use_bias=False, kernel_init=nn.initializers.xavier_uniform(),
                 dtype=self.dtype), self.spectral_norm, name=name)
    query = proj(max(c // 8, 1), 'query')(x, update_stats).reshape(b, h * w, -1)
    key = proj(max(c // 8, 1), 'key')(x, update_stats)
    value = proj(max(c // 2, 1), 'value')(x, update_stats)
    # Keys and values at half resolution, as in SAGAN/BigGAN, when the map allows.
    if h % 2 == 0 and w % 2 == 0:
      key = nn.max_pool(key, (2, 2), (2, 2))
      value = nn.max_pool(value, (2, 2), (2, 2))
    key = key.reshape(b, -1, key.shape[-1])
    value = value.reshape(b, -1, value.shape[-1])
    attention = nn.softmax(jnp.einsum('bqc,bkc->bqk', query, key).astype(jnp.float32), axis=-1)
    out = jnp.einsum('bqk,bkc->bqc', attention.astype(self.dtype), value).reshape(b, h, w, -1)
    out = proj(c, 'out')(out, update_stats)
    gamma = self.param('gamma', nn.initializers.zeros, ())
    return x + gamma * out


def maybe_attention(x, resolution, spectral_norm, dtype, update_stats=False, name=None):
  """Self-attention on `x` when its side is `resolution` (0 = never)."""
  if resolution and x.shape[1] == resolution:
    return SelfAttention(spectral_norm=spectral_norm, dtype=dtype, name=name)(x, update_stats)
  return x


def maybe_dropout(x, index, rate, layers, train):
  """Dropout after D's block `index` when configured (rate > 0, index in layers or layers empty)."""
  if rate > 0 and (not layers or index in layers):
    return nn.Dropout(rate, deterministic=not train)(x)
  return x


def up_conv(features, dtype, use_bias, impl=layers.DEFAULT_IMPL, name=None):
  """4x4 stride-2 transposed conv doubling H and W (PyTorch ConvTranspose2d(4, 2, 1))."""
  # The parameters and function of nn.ConvTranspose(features, (4, 4), (2, 2), 'SAME')
  # (= PyTorch's padding=1), computed without a base-dilated convolution, which
  # is XLA:CPU's slow path; impl: hybrid | subpixel | matmul | xla (layers.py).
  return layers.ConvTranspose4x4Stride2(features, use_bias=use_bias, impl=impl,
                                        kernel_init=dcgan_init, dtype=dtype, name=name)


def down_conv(features, dtype, use_bias, impl=layers.DEFAULT_IMPL, name=None):
  """4x4 stride-2 conv halving H and W (PyTorch Conv2d(4, 2, padding=1))."""
  # The parameters and function of nn.Conv(features, (4, 4), (2, 2), ((1, 1), (1, 1))).
  return layers.Conv4x4Stride2(features, use_bias=use_bias, impl=impl,
                               kernel_init=dcgan_init, dtype=dtype, name=name)


class DCGANGenerator(nn.Module):
  """DCGAN generator: z -> project -> reshape -> 4x4 stride-2 transposed convs -> tanh.

  At 64 px with latent_dim=100, features=64 this is the generator of the
  PyTorch DCGAN example (its first 1x1 -> 4x4 transposed conv is the dense
  projection here, with the same weights count).
  """
  image_size: int
  num_channels: int
  features: int = 64
  activation: str = 'relu'
  norm: str = 'batch'
  leaky_relu_slope: float = 0.2
  attention_res: int = 0
  dtype: Any = jnp.float32
  conv_impl: str = layers.DEFAULT_IMPL  # How 4x4 stride-2 convs are computed (layers.py).
  batch_norm_impl: str = 'auto'  # BATCH_NORM_CHOICES; see resolve_batch_norm_impl.

  @nn.compact
  def __call__(self, z, train: bool = False):
    base = DCGAN_BASE_SIZE[self.image_size]
    num_up = int(math.log2(self.image_size // base))
    act = get_activation(self.activation, self.leaky_relu_slope)
    # Biases are redundant in front of batch norm (and absent in the reference).
    use_bias = self.norm != 'batch'
    width = self.features * 2 ** (num_up - 1)
    x = nn.Dense(base * base * width, use_bias=use_bias, kernel_init=dcgan_init,
                 dtype=self.dtype, name='project')(z.astype(self.dtype))
    x = x.reshape(z.shape[0], base, base, width)
    x = act(Norm(self.norm, self.dtype, self.batch_norm_impl, name='project_norm')(x, train))
    x = maybe_attention(x, self.attention_res, False, self.dtype, name='attention')
    for i in range(num_up - 1):
      width //= 2
      x = up_conv(width, self.dtype, use_bias, self.conv_impl, name=f'up{i}')(x)
      x = act(Norm(self.norm, self.dtype, self.batch_norm_impl, name=f'up{i}_norm')(x, train))
      x = maybe_attention(x, self.attention_res, False, self.dtype, name='attention')
    x = up_conv(self.num_channels, self.dtype, False, self.conv_impl, name='to_image')(x)
    return jnp.tanh(x.astype(jnp.float32))


class DCGANDiscriminator(nn.Module):
  """DCGAN discriminator: 4x4 stride-2 convs + norm + LeakyReLU -> one logit.

  At 64 px with features=64 this is the discriminator of the PyTorch DCGAN
  example (its last 4x4 valid conv is the dense layer here).
  """
  image_size: int
  features: int = 64
  activation: str = 'leaky_relu'
  norm: str = 'batch'
  leaky_relu_slope: float = 0.2
  spectral_norm: bool = False
  attention_res: int = 0
  dropout: float = 0.0
  dropout_layers: Sequence[int] = ()
  dtype: Any = jnp.float32
  conv_impl: str = layers.DEFAULT_IMPL  # How 4x4 stride-2 convs are computed (layers.py).
  batch_norm_impl: str = 'auto'  # BATCH_NORM_CHOICES; see resolve_batch_norm_impl.

  @nn.compact
  def __call__(self, x, train: bool = False, update_stats: bool = False):
    base = DCGAN_BASE_SIZE[self.image_size]
    num_down = int(math.log2(self.image_size // base))
    act = get_activation(self.activation, self.leaky_relu_slope)
    use_bias = self.norm != 'batch'
    x = x.astype(self.dtype)
    width = self.features
    for i in range(num_down):
      conv = down_conv(width, self.dtype, use_bias, self.conv_impl)
      x = SNWrap(conv, self.spectral_norm, name=f'down{i}')(x, update_stats)
      if i > 0:  # DCGAN: no normalisation on the first layer.
        x = Norm(self.norm, self.dtype, self.batch_norm_impl, name=f'down{i}_norm')(x, train)
      x = act(x)
      self.sow('intermediates', 'features', x)
      x = maybe_dropout(x, i, self.dropout, self.dropout_layers, train)
      x = maybe_attention(x, self.attention_res, self.spectral_norm, self.dtype, update_stats,
                          name='attention')
      width *= 2
    x = x.reshape(x.shape[0], -1)
    dense = nn.Dense(1, use_bias=use_bias, kernel_init=dcgan_init, dtype=self.dtype)
    x = SNWrap(dense, self.spectral_norm, name='logit')(x, update_stats)
    return x[:, 0].astype(jnp.float32)


class StandardCNNGenerator(nn.Module):
  """Generator of the "standard CNN" (Miyato et al. 2018, Table 3a), 32 px."""
  num_channels: int
  activation: str = 'relu'
  norm: str = 'batch'
  leaky_relu_slope: float = 0.1
  attention_res: int = 0
  dtype: Any = jnp.float32
  conv_impl: str = layers.DEFAULT_IMPL  # How 4x4 stride-2 convs are computed (layers.py).
  batch_norm_impl: str = 'auto'  # BATCH_NORM_CHOICES; see resolve_batch_norm_impl.

  @nn.compact
  def __call__(self, z, train: bool = False):
    act = get_activation(self.activation, self.leaky_relu_slope)
    x = nn.Dense(4 * 4 * 512, kernel_init=dcgan_init, dtype=self.dtype,
                 name='project')(z.astype(self.dtype))
    x = x.reshape(z.shape[0], 4, 4, 512)
    x = act(Norm(self.norm, self.dtype, self.batch_norm_impl, name='project_norm')(x, train))
    for i, width in enumerate((256, 128, 64)):
      x = up_conv(width, self.dtype, True, self.conv_impl, name=f'up{i}')(x)
      x = act(Norm(self.norm, self.dtype, self.batch_norm_impl, name=f'up{i}_norm')(x, train))
      x = maybe_attention(x, self.attention_res, False, self.dtype, name='attention')
    x = layers.Conv3x3(self.num_channels, use_bias=True, impl=self.conv_impl,
                       kernel_init=dcgan_init, dtype=self.dtype, name='to_image')(x)
    return jnp.tanh(x.astype(jnp.float32))


class StandardCNNDiscriminator(nn.Module):
  """Discriminator of the "standard CNN" (Miyato et al. 2018, Table 3b), 32 px."""
  activation: str = 'leaky_relu'
  norm: str = 'none'
  leaky_relu_slope: float = 0.1
  spectral_norm: bool = True
  attention_res: int = 0
  dropout: float = 0.0
  dropout_layers: Sequence[int] = ()
  dtype: Any = jnp.float32
  conv_impl: str = layers.DEFAULT_IMPL  # How 4x4 stride-2 convs are computed (layers.py).
  batch_norm_impl: str = 'auto'  # BATCH_NORM_CHOICES; see resolve_batch_norm_impl.

  # (kernel, stride, features) of the seven conv layers.
  layers: Sequence[tuple[int, int, int]] = (
      (3, 1, 64), (4, 2, 64), (3, 1, 128), (4, 2, 128), (3, 1, 256), (4, 2, 256), (3, 1, 512))

  @nn.compact
  def __call__(self, x, train: bool = False, update_stats: bool = False):
    act = get_activation(self.activation, self.leaky_relu_slope)
    x = x.astype(self.dtype)
    num_3x3 = 0
    for i, (kernel, stride, width) in enumerate(self.layers):
      if (kernel, stride) not in ((3, 1), (4, 2)):
        raise ValueError(f'Standard CNN layers are 3x3 stride 1 or 4x4 stride 2, got '
                         f'kernel {kernel}, stride {stride}.')
      if stride == 2:
        conv = down_conv(width, self.dtype, True, self.conv_impl)
      else:
        # Named as flax numbered the nn.Conv it replaces, so that checkpoints carry over.
        conv = layers.Conv3x3(width, use_bias=True, impl=self.conv_impl,
                              kernel_init=dcgan_init, dtype=self.dtype, name=f'Conv_{num_3x3}')
        num_3x3 += 1
      x = SNWrap(conv, self.spectral_norm, name=f'conv{i}')(x, update_stats)
      if i > 0:
        x = Norm(self.norm, self.dtype, self.batch_norm_impl, name=f'conv{i}_norm')(x, train)
      x = act(x)
      self.sow('intermediates', 'features', x)
      x = maybe_dropout(x, i, self.dropout, self.dropout_layers, train)
      if stride == 2:
        x = maybe_attention(x, self.attention_res, self.spectral_norm, self.dtype, update_stats,
                            name='attention')
    x = x.reshape(x.shape[0], -1)
    dense = nn.Dense(1, kernel_init=dcgan_init, dtype=self.dtype)
    x = SNWrap(dense, self.spectral_norm, name='logit')(x, update_stats)
    return x[:, 0].astype(jnp.float32)


class MLPGenerator(nn.Module):
  """Fully connected generator (the GAN baseline of Goodfellow et al.)."""
  image_size: int
  num_channels: int
  hidden: Sequence[int] = (256, 512, 1024)
  activation: str = 'relu'
  norm: str = 'none'
  leaky_relu_slope: float = 0.2
  dtype: Any = jnp.float32
  batch_norm_impl: str = 'auto'  # BATCH_NORM_CHOICES; see resolve_batch_norm_impl.

  @nn.compact
  def __call__(self, z, train: bool = False):
    act = get_activation(self.activation, self.leaky_relu_slope)
    x = z.astype(self.dtype)
    for i, width in enumerate(self.hidden):
      x = nn.Dense(width, kernel_init=dcgan_init, dtype=self.dtype, name=f'dense{i}')(x)
      x = act(Norm(self.norm, self.dtype, self.batch_norm_impl, name=f'dense{i}_norm')(x, train))
    x = nn.Dense(self.image_size * self.image_size * self.num_channels, kernel_init=dcgan_init,
                 dtype=self.dtype, name='to_image')(x)
    x = x.reshape(z.shape[0], self.image_size, self.image_size, self.num_channels)
    return jnp.tanh(x.astype(jnp.float32))


class MLPDiscriminator(nn.Module):
  """Fully connected discriminator (the GAN baseline of Goodfellow et al.)."""
  hidden: Sequence[int] = (1024, 512, 256)
  activation: str = 'leaky_relu'
  norm: str = 'none'
  leaky_relu_slope: float = 0.2
  spectral_norm: bool = False
  dropout: float = 0.0
  dropout_layers: Sequence[int] = ()
  dtype: Any = jnp.float32
  batch_norm_impl: str = 'auto'  # BATCH_NORM_CHOICES; see resolve_batch_norm_impl.

  @nn.compact
  def __call__(self, x, train: bool = False, update_stats: bool = False):
    act = get_activation(self.activation, self.leaky_relu_slope)
    x = x.reshape(x.shape[0], -1).astype(self.dtype)
    for i, width in enumerate(self.hidden):
      dense = nn.Dense(width, kernel_init=dcgan_init, dtype=self.dtype)
      x = SNWrap(dense, self.spectral_norm, name=f'dense{i}')(x, update_stats)
      if i > 0:
        x = Norm(self.norm, self.dtype, self.batch_norm_impl, name=f'dense{i}_norm')(x, train)
      x = act(x)
      self.sow('intermediates', 'features', x)
      x = maybe_dropout(x, i, self.dropout, self.dropout_layers, train)
    dense = nn.Dense(1, kernel_init=dcgan_init, dtype=self.dtype)
    x = SNWrap(dense, self.spectral_norm, name='logit')(x, update_stats)
    return x[:, 0].astype(jnp.float32)


# config.model.latent_dist: the prior of z.
LATENT_DISTS = {
    'normal': lambda key, shape: jax.random.normal(key, shape, jnp.float32),
    'uniform': lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -1.0, 1.0),
}


def sample_latent(key, num, latent_dim, dist='normal'):
  """z for `num` images from the prior `dist` (LATENT_DISTS): float32 [num, latent_dim]."""
  if dist not in LATENT_DISTS:
    raise ValueError(f'Unknown latent distribution {dist!r}; choose one of {tuple(LATENT_DISTS)}.')
  return LATENT_DISTS[dist](key, (num, latent_dim))


def jit_generate(apply_fn):
  """A jitted generate(variables, z) -> images in [-1, 1], G in inference mode.

  The variables are an argument of the jitted function, not constants baked
  into it: a closure would make XLA embed every weight in the executable.
  """
  return jax.jit(functools.partial(apply_fn, train=False))


def image_sizes(arch):
  """The image sides `arch` can be built at (None: any side)."""
  if arch == 'dcgan':
    return tuple(sorted(DCGAN_BASE_SIZE))
  return (STANDARD_CNN_SIZE,) if arch == 'standard_cnn' else None


def attention_sides(arch, image_size):
  """(generator sides, discriminator sides) of the feature maps with an attention slot."""
  if arch == 'dcgan':
    base = DCGAN_BASE_SIZE[image_size]
    num_levels = int(math.log2(image_size // base))
    g_sides = tuple(base * 2 ** i for i in range(num_levels))
    d_sides = tuple(image_size // 2 ** (i + 1) for i in range(num_levels))
    return g_sides, d_sides
  if arch == 'standard_cnn':
    return (8, 16, 32), (16, 8, 4)
  return (), ()


def num_d_blocks(arch, image_size):
  """Number of discriminator blocks (the indices model.d_dropout_layers may name)."""
  if arch == 'dcgan':
    return int(math.log2(image_size // DCGAN_BASE_SIZE[image_size]))
  if arch == 'standard_cnn':
    return len(StandardCNNDiscriminator.layers)
  return len(MLPDiscriminator.hidden)


def create_models(config, num_channels: int):
  """Builds (generator, discriminator) for `config.model` and `config.image_size`."""
  m = config.model
  common = dict(leaky_relu_slope=m.leaky_relu_slope, dtype=jnp.dtype(m.dtype),
                batch_norm_impl=m.batch_norm_impl)
  g_kwargs = dict(common, activation=m.g_activation, norm=m.g_norm, num_channels=num_channels)
  d_kwargs = dict(common, activation=m.d_activation, norm=m.d_norm,
                  spectral_norm=m.spectral_norm, dropout=m.d_dropout,
                  dropout_layers=tuple(m.d_dropout_layers))
  conv = dict(conv_impl=m.conv_impl)
  if m.arch == 'dcgan':
    return (DCGANGenerator(image_size=config.image_size, features=m.g_features,
                           attention_res=m.g_attention_res, **g_kwargs, **conv),
            DCGANDiscriminator(image_size=config.image_size, features=m.d_features,
                               attention_res=m.d_attention_res, **d_kwargs, **conv))
  if m.arch == 'standard_cnn':
    return (StandardCNNGenerator(attention_res=m.g_attention_res, **g_kwargs, **conv),
            StandardCNNDiscriminator(attention_res=m.d_attention_res, **d_kwargs, **conv))
  if m.arch == 'mlp':
    return (MLPGenerator(image_size=config.image_size, **g_kwargs), MLPDiscriminator(**d_kwargs))
  raise ValueError(f'Unknown model.arch {m.arch!r}; choose one of {ARCHS}.')
