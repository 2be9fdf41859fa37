"""Shapes and pinned parameter counts of every generator and discriminator."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from dcgan_jax.models import networks


def make_config(arch, image_size, latent_dim=100, features=64, **model):
  config = default.get_config()
  config.image_size = image_size
  config.model.arch = arch
  config.model.latent_dim = latent_dim
  config.model.g_features = features
  config.model.d_features = features
  config.model.update(model)
  return config


def count(params):
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))


def init(config, channels):
  """Variables and outputs of G and D, as shapes only (jax.eval_shape): no compute."""
  generator, discriminator = networks.create_models(config, channels)
  z = jnp.zeros((3, config.model.latent_dim))
  g_vars = jax.eval_shape(generator.init, jax.random.PRNGKey(0), z)
  images = jax.eval_shape(generator.apply, g_vars, z)
  d_vars = jax.eval_shape(discriminator.init, jax.random.PRNGKey(1), images)
  logits = jax.eval_shape(discriminator.apply, d_vars, images)
  return g_vars, d_vars, images, logits


def test_classic_dcgan64_matches_pytorch_example_counts():
  # The PyTorch DCGAN example (nz=100, ngf=ndf=64, nc=3) reports 3,576,704 and
  # 2,765,568 trainable parameters for netG and netD.
  g_vars, d_vars, images, logits = init(make_config('dcgan', 64), 3)
  assert count(g_vars['params']) == 3_576_704
  assert count(d_vars['params']) == 2_765_568
  assert images.shape == (3, 64, 64, 3)
  assert logits.shape == (3,)


def conv(k, cin, cout, bias=True):
  return k * k * cin * cout + (cout if bias else 0)


def test_standard_cnn_counts_from_table3():
  g_vars, d_vars, images, logits = init(
      make_config('standard_cnn', 32, latent_dim=128, d_norm='none', spectral_norm=True,
                  leaky_relu_slope=0.1), 3)
  bn = lambda c: 2 * c
  g_expected = (128 * 4 * 4 * 512 + 4 * 4 * 512 + bn(512) + conv(4, 512, 256) + bn(256) +
                conv(4, 256, 128) + bn(128) + conv(4, 128, 64) + bn(64) + conv(3, 64, 3))
  d_expected = (conv(3, 3, 64) + conv(4, 64, 64) + conv(3, 64, 128) + conv(4, 128, 128) +
                conv(3, 128, 256) + conv(4, 256, 256) + conv(3, 256, 512) + 4 * 4 * 512 + 1)
  assert count(g_vars['params']) == g_expected
  assert count(d_vars['params']) == d_expected
  assert images.shape == (3, 32, 32, 3) and logits.shape == (3,)
  # One power-iteration vector and sigma per spectrally normalised layer.
  sn_stats = jax.tree_util.tree_leaves_with_path(d_vars['batch_stats'])
  assert sum(1 for path, _ in sn_stats if str(path[-1]).endswith("/u']")) == 8


@pytest.mark.parametrize('image_size,channels', [(28, 1), (32, 3), (64, 3)])
def test_dcgan_shapes_and_range(image_size, channels):
  config = make_config('dcgan', image_size, latent_dim=16, features=8)
  _, _, images, logits = init(config, channels)
  assert images.shape == (3, image_size, image_size, channels)
  assert logits.shape == (3,)


def test_generator_output_in_tanh_range():
  config = make_config('dcgan', 28, latent_dim=16, features=8)
  generator, discriminator = networks.create_models(config, 1)
  z = 10 * jax.random.normal(jax.random.PRNGKey(0), (5, 16))
  g_vars = generator.init(jax.random.PRNGKey(0), z)
  images = jax.jit(generator.apply)(g_vars, z)
  assert float(jnp.max(jnp.abs(images))) <= 1.0
  d_vars = discriminator.init(jax.random.PRNGKey(1), images)
  assert bool(jnp.all(jnp.isfinite(jax.jit(discriminator.apply)(d_vars, images))))


def test_dcgan28_counts():
  # 7x7 base with 2 * ngf channels, one up-conv to ngf, one to the image.
  g_vars, d_vars, *_ = init(make_config('dcgan', 28, latent_dim=10, features=8), 1)
  assert count(g_vars['params']) == (10 * 49 * 16 + 2 * 16 + conv(4, 16, 8, False) + 2 * 8 +
                                     conv(4, 8, 1, False))
  assert count(d_vars['params']) == (conv(4, 1, 8, False) + conv(4, 8, 16, False) + 2 * 16 +
                                     7 * 7 * 16)


def test_mlp_counts():
  g_vars, d_vars, images, _ = init(
      make_config('mlp', 28, latent_dim=100, g_norm='none', d_norm='none'), 1)
  dense = lambda a, b: a * b + b
  assert count(g_vars['params']) == (dense(100, 256) + dense(256, 512) + dense(512, 1024) +
                                     dense(1024, 784))
  assert count(d_vars['params']) == (dense(784, 1024) + dense(1024, 512) + dense(512, 256) +
                                     dense(256, 1))
  assert images.shape == (3, 28, 28, 1)


@pytest.mark.parametrize('activation', ['relu', 'elu', 'silu', 'leaky_relu'])
@pytest.mark.parametrize('norm', ['batch', 'layer', 'none'])
def test_activation_and_norm_switches(activation, norm):
  config = make_config('dcgan', 32, latent_dim=8, features=4, g_activation=activation,
                       g_norm=norm, d_norm=norm)
  g_vars, d_vars, images, logits = init(config, 3)
  names = str(jax.tree_util.tree_structure((g_vars['params'], d_vars['params'])))
  assert ('BatchNorm' in names) == (norm == 'batch')
  assert ('LayerNorm' in names) == (norm == 'layer')
  assert logits.shape == (3,)


def test_activation_is_applied():
  # ELU and ReLU generators with the same weights differ exactly where ELU is negative.
  outs = {}
  for act in ('relu', 'elu'):
    config = make_config('dcgan', 32, latent_dim=8, features=4, g_activation=act)
    generator, _ = networks.create_models(config, 3)
    z = jax.random.normal(jax.random.PRNGKey(0), (4, 8))
    outs[act] = generator.apply(generator.init(jax.random.PRNGKey(0), z), z)
  assert not np.allclose(outs['relu'], outs['elu'])


def test_discriminator_sows_features():
  config = make_config('dcgan', 32, latent_dim=8, features=4)
  _, discriminator = networks.create_models(config, 3)
  x = jnp.zeros((2, 32, 32, 3))
  d_vars = discriminator.init(jax.random.PRNGKey(0), x)
  _, state = discriminator.apply(d_vars, x, mutable=['intermediates'])
  shapes = [f.shape for f in state['intermediates']['features']]
  assert shapes == [(2, 16, 16, 4), (2, 8, 8, 8), (2, 4, 4, 16)]


def test_unknown_names_are_rejected():
  with pytest.raises(ValueError, match='arch'):
    networks.create_models(make_config('resnet', 32), 3)
  with pytest.raises(ValueError, match='activation'):
    init(make_config('dcgan', 32, g_activation='gelu'), 3)


def _dcgan_counts(image_size, latent_dim, f, channels):
  """DCGAN parameter counts by the paper's rule: 4x4 base, one 4x4 stride-2 layer per doubling.

  G: z -> dense to 4x4 x f*2^(n-1) (+ batch norm), n - 1 transposed convs halving
  the width (+ batch norm), one to the image; D mirrors it (no norm on its
  first layer) and ends in a dense logit. No biases before batch norm.
  """
  n = int(np.log2(image_size // 4))
  widths = [f * 2 ** i for i in range(n)]  # f, 2f, ..., f 2^(n-1)
  g = latent_dim * 16 * widths[-1] + 2 * widths[-1]
  for wide, narrow in zip(widths[:0:-1], widths[-2::-1]):
    g += conv(4, wide, narrow, False) + 2 * narrow
  g += conv(4, f, channels, False)
  d = conv(4, channels, f, False)
  for narrow, wide in zip(widths, widths[1:]):
    d += conv(4, narrow, wide, False) + 2 * wide
  d += 16 * widths[-1]
  return g, d


@pytest.mark.parametrize('image_size, g_count, d_count', [
    (16, 339_328, 136_448),  # Pinned: 2 levels.
    (64, 3_576_704, 2_765_568),  # The PyTorch DCGAN example (nz 100, ngf = ndf = 64).
    (128, 12_786_560, 11_164_416),  # Pinned: 5 levels, 1024 channels at 4x4.
    (256, 47_983_488, 44_739_328),  # Pinned: 6 levels, 2048 channels at 4x4.
])
def test_dcgan_at_any_power_of_two_side(image_size, g_count, d_count):
  g_vars, d_vars, images, logits = init(make_config('dcgan', image_size), 3)
  assert images.shape == (3, image_size, image_size, 3) and logits.shape == (3,)
  assert (count(g_vars['params']), count(d_vars['params'])) == (g_count, d_count)
  assert (g_count, d_count) == _dcgan_counts(image_size, 100, 64, 3)


def test_other_sides_are_rejected_with_the_allowed_list():
  from dcgan_jax import config_validation  # pylint: disable=g-import-not-at-top
  with pytest.raises(config_validation.ConfigError, match='16, 28, 32, 64, 128, 256'):
    config_validation.validate(make_config('dcgan', 48), num_devices=1)
