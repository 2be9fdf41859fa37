"""batch_norm.BatchNorm against a float64 numpy batch norm and against flax's nn.BatchNorm."""

import flax.linen as nn
import jax
from jax import test_util as jtu
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from dcgan_jax.models import batch_norm
from dcgan_jax.models import networks

SHAPES = [(4, 5, 3, 8), (64, 6), (3, 4, 4, 1), (2, 17, 1, 5)]


def _close(actual, expected, tol=1e-5):
  expected = np.asarray(expected, np.float64)
  scale = max(1.0, float(np.max(np.abs(expected))))
  np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=tol, atol=tol * scale)


def _numpy_batch_norm(x, scale, bias, g, epsilon=1e-5):
  """Batch norm over all but the last axis in float64, and its VJP for cotangent g, by hand."""
  x, g = x.astype(np.float64), g.astype(np.float64)
  axes = tuple(range(x.ndim - 1))
  m = x.size // x.shape[-1]
  mean, var = x.mean(axes), x.var(axes)
  xhat = (x - mean) / np.sqrt(var + epsilon)
  y = xhat * scale + bias
  dscale, dbias = (g * xhat).sum(axes), g.sum(axes)
  dxhat = g * scale
  dx = (dxhat - dxhat.sum(axes) / m - xhat * (dxhat * xhat).sum(axes) / m) / np.sqrt(var + epsilon)
  return y, mean, var, dx, dscale, dbias


def _inputs(shape, seed=0):
  rng = np.random.default_rng(seed)
  features = shape[-1]
  x = (rng.standard_normal(shape) * 3 + 1.5).astype(np.float32)
  g = rng.standard_normal(shape).astype(np.float32)
  scale = (1 + 0.3 * rng.standard_normal(features)).astype(np.float32)
  bias = (0.2 * rng.standard_normal(features)).astype(np.float32)
  ra_mean = rng.standard_normal(features).astype(np.float32)
  ra_var = (0.5 + rng.random(features)).astype(np.float32)
  variables = {'params': {'scale': scale, 'bias': bias},
               'batch_stats': {'mean': ra_mean, 'var': ra_var}}
  return x, g, jax.tree.map(jnp.asarray, variables)


@pytest.mark.parametrize('shape', SHAPES)
def test_train_mode_matches_numpy(shape):
  x, g, variables = _inputs(shape)
  module = batch_norm.BatchNorm(momentum=0.9, epsilon=1e-5)

  def forward(params, x):
    return module.apply({**variables, 'params': params}, x, mutable=['batch_stats'])

  (y, updates), vjp = jax.vjp(forward, variables['params'], jnp.asarray(x))
  dparams, dx = vjp((jnp.asarray(g), jax.tree.map(jnp.zeros_like, updates)))
  ry, mean, var, rdx, rdscale, rdbias = _numpy_batch_norm(
      x, np.asarray(variables['params']['scale'], np.float64),
      np.asarray(variables['params']['bias'], np.float64), g)
  _close(y, ry)
  _close(dx, rdx)
  _close(dparams['scale'], rdscale)
  _close(dparams['bias'], rdbias)
  stats = variables['batch_stats']
  _close(updates['batch_stats']['mean'], 0.9 * np.asarray(stats['mean']) + 0.1 * mean)
  _close(updates['batch_stats']['var'], 0.9 * np.asarray(stats['var']) + 0.1 * var)


@pytest.mark.parametrize('train', [True, False])
@pytest.mark.parametrize('shape', SHAPES)
def test_drop_in_for_flax_batch_norm(shape, train):
  """Same variables, outputs, statistics and gradients (also through the statistics)."""
  x, g, variables = _inputs(shape, seed=1)
  ours = batch_norm.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)
  theirs = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)
  init = jax.tree.map(np.asarray, ours.init(jax.random.PRNGKey(0), x))
  flax_init = jax.tree.map(np.asarray, theirs.init(jax.random.PRNGKey(0), x))
  assert jax.tree.structure(init) == jax.tree.structure(flax_init)
  jax.tree.map(np.testing.assert_array_equal, init, flax_init)
  weights = np.random.default_rng(2).standard_normal((2, shape[-1])).astype(np.float32)

  def loss(module):
    def fn(variables, x):
      y, updates = module.apply(variables, x, mutable=['batch_stats'])
      stats = updates['batch_stats']
      # The statistics enter the loss too, so their gradient paths are compared.
      return (jnp.sum(jnp.sin(y) * g) + jnp.sum(stats['mean'] * weights[0])
              + jnp.sum(stats['var'] * weights[1])), updates
    return fn

  (value, updates), grads = jax.value_and_grad(loss(ours), argnums=(0, 1), has_aux=True)(
      variables, jnp.asarray(x))
  (rvalue, rupdates), rgrads = jax.value_and_grad(loss(theirs), argnums=(0, 1), has_aux=True)(
      variables, jnp.asarray(x))
  _close(value, rvalue)
  jax.tree.map(_close, updates, rupdates)
  jax.tree.map(_close, grads, rgrads)


def test_gradients_match_finite_differences():
  x, _, variables = _inputs((6, 3, 2, 4), seed=3)
  module = batch_norm.BatchNorm(momentum=0.9)
  with jax.enable_x64(True):
    variables = jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), variables)

    def fn(x, scale, bias):
      params = {'scale': scale, 'bias': bias}
      y, updates = module.apply({**variables, 'params': params}, x, mutable=['batch_stats'])
      return jnp.sin(y), updates['batch_stats']['mean'], updates['batch_stats']['var']

    args = (jnp.asarray(x, jnp.float64), variables['params']['scale'],
            variables['params']['bias'])
    jtu.check_grads(fn, args, order=1, modes=['rev'], atol=1e-6, rtol=1e-6)


def test_bfloat16_keeps_float32_statistics():
  x, _, variables = _inputs((8, 4, 4, 6), seed=4)
  module = batch_norm.BatchNorm(momentum=0.9, dtype=jnp.bfloat16)
  y, updates = module.apply(variables, jnp.asarray(x, jnp.bfloat16), mutable=['batch_stats'])
  assert y.dtype == jnp.bfloat16
  assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(updates))
  ref, ref_updates = batch_norm.BatchNorm(momentum=0.9).apply(
      variables, jnp.asarray(x, jnp.bfloat16).astype(jnp.float32), mutable=['batch_stats'])
  _close(y.astype(jnp.float32), ref, tol=2e-2)
  jax.tree.map(lambda a, b: _close(a, b, tol=1e-5), updates, ref_updates)


@pytest.mark.parametrize('arch', ['dcgan', 'mlp'])
def test_models_are_the_same_with_either_impl(arch):
  """batch_norm_impl changes neither the variables nor the function of a model."""
  outputs = {}
  for impl in networks.BATCH_NORM_IMPLS:
    config = default.get_config()
    config.image_size = 32
    config.model.update(arch=arch, latent_dim=8, g_features=4, d_features=4,
                        batch_norm_impl=impl, g_norm='batch', d_norm='batch')
    generator, discriminator = networks.create_models(config, 3)
    z = jax.random.normal(jax.random.PRNGKey(0), (5, 8))
    g_vars = generator.init(jax.random.PRNGKey(1), z)

    def loss(params, g_vars=g_vars, generator=generator):
      images, updates = generator.apply({**g_vars, 'params': params}, z, train=True,
                                        mutable=['batch_stats'])
      return jnp.sum(jnp.sin(3 * images)), (images, updates)

    (_, aux), grads = jax.value_and_grad(loss, has_aux=True)(g_vars['params'])
    d_vars = discriminator.init(jax.random.PRNGKey(2), aux[0])
    logits = discriminator.apply(d_vars, aux[0], train=True, mutable=['batch_stats'])
    outputs[impl] = (g_vars, d_vars, aux, grads, logits)
  jax.tree.map(_close, outputs['gemv'][:3], outputs['flax'][:3])
  jax.tree.map(_close, outputs['gemv'][4], outputs['flax'][4])
  # Biases in front of batch norm have an exact gradient of 0, which both compute
  # as rounding noise: gradients are compared on the scale of the largest one.
  scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(outputs['flax'][3]))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * scale),
               outputs['gemv'][3], outputs['flax'][3])


def test_unknown_impl_is_rejected():
  with pytest.raises(ValueError, match='batch norm impl'):
    networks.Norm('batch', impl='cudnn').init(jax.random.PRNGKey(0), jnp.zeros((2, 3)), True)
