"""Tests of layers.py and conv_forms.py: every form equals an independent reference, values and gradients."""

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from dcgan_jax.models import conv_forms
from dcgan_jax.models import layers
from tests.support import conv_references

try:
  import torch  # pylint: disable=g-import-not-at-top
except ImportError:  # torch is an optional extra; lax references stand in.
  torch = None

# (N, H, W, C_in, C_out): DCGAN sizes, the 28 px model's 7 -> 14, odd and
# non-square sides, and a 1-channel image layer.
CASES = [(2, 4, 4, 16, 8), (2, 7, 7, 8, 16), (3, 8, 6, 5, 7), (2, 5, 9, 3, 4),
         (1, 16, 16, 1, 6), (2, 2, 3, 4, 4)]

# Every functional form: the product's choices ('hybrid', 'xla'), the sub-pixel
# building block of 'hybrid' and the im2col/GEMM reference of the tests.
CONV_FORMS = {**conv_forms.CONV, 'subpixel': conv_forms.conv4x4s2_subpixel,
              'matmul': conv_references.conv4x4s2_matmul}
CONV_TRANSPOSE_FORMS = {**conv_forms.CONV_TRANSPOSE,
                        'subpixel': conv_forms.conv_transpose4x4s2_subpixel,
                        'matmul': conv_references.conv_transpose4x4s2_matmul}
CONV3X3_FORMS = {**conv_forms.CONV3X3, 'matmul': conv_references.conv3x3_matmul}


def _assert_close(actual, expected, tol=2e-5):
  expected = np.asarray(expected, np.float64)
  scale = max(1.0, float(np.max(np.abs(expected))))
  np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=tol, atol=tol * scale)


def _inputs(n, h, w, ci, co, out_h, out_w, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((n, h, w, ci)).astype(np.float32)
  k = (rng.standard_normal((4, 4, ci, co)) / np.sqrt(4 * ci)).astype(np.float32)
  g = rng.standard_normal((n, out_h, out_w, co)).astype(np.float32)
  return x, k, g


def _t(a, *axes, grad=False):
  """A contiguous float64 torch tensor of a transposed numpy array."""
  return torch.tensor(np.ascontiguousarray(a.transpose(*axes)), dtype=torch.float64,
                      requires_grad=grad)


def _vjp(fn, x, k, g):
  """fn(x, k) and its gradients (dx, dk) for the output cotangent g, one jit."""
  def value_and_vjp(x, k, g):
    y, vjp = jax.vjp(fn, x, k)
    return (y, *vjp(g))
  return jax.jit(value_and_vjp)(jnp.asarray(x), jnp.asarray(k), jnp.asarray(g))


def _reference_conv(x, k, g):
  """Conv2d(4, 2, 1) output and (dx, dk); k in the HWIO / torch [o, i, kh, kw] layout."""
  if torch is not None:
    tx, tk = _t(x, 0, 3, 1, 2, grad=True), _t(k, 3, 2, 0, 1, grad=True)
    ty = torch.nn.functional.conv2d(tx, tk, stride=2, padding=1)
    ty.backward(_t(g, 0, 3, 1, 2))
    return (ty.detach().numpy().transpose(0, 2, 3, 1), tx.grad.numpy().transpose(0, 2, 3, 1),
            tk.grad.numpy().transpose(2, 3, 1, 0))
  fn = lambda x, k: lax.conv_general_dilated(
      x, k, (2, 2), ((1, 1), (1, 1)), dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
      precision=lax.Precision.HIGHEST)
  return _vjp(fn, x, k, g)


def _reference_conv_transpose(x, k, g):
  """ConvTranspose2d(4, 2, 1); k[kh, kw, i, o] == torch weight[i, o, kh, kw] (PyTorch taps)."""
  if torch is not None:
    tx, tk = _t(x, 0, 3, 1, 2, grad=True), _t(k, 2, 3, 0, 1, grad=True)
    ty = torch.nn.functional.conv_transpose2d(tx, tk, stride=2, padding=1)
    ty.backward(_t(g, 0, 3, 1, 2))
    return (ty.detach().numpy().transpose(0, 2, 3, 1), tx.grad.numpy().transpose(0, 2, 3, 1),
            tk.grad.numpy().transpose(2, 3, 0, 1))
  # By hand: out[2i - 1 + kh] += x[i] k[kh] is a correlation of the input
  # dilated by 2 (2H - 1 rows), padded by 4 - 1 - 1 = 2 on each side, with the
  # spatially flipped kernel: 2H - 1 + 4 - 4 + 1 = 2H rows.
  fn = lambda x, k: lax.conv_general_dilated(
      x, k[::-1, ::-1], (1, 1), ((2, 2), (2, 2)), lhs_dilation=(2, 2),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'), precision=lax.Precision.HIGHEST)
  return _vjp(fn, x, k, g)


@pytest.mark.parametrize('impl', CONV_FORMS)
@pytest.mark.parametrize('case', CASES)
def test_conv_matches_reference(impl, case):
  n, h, w, ci, co = case
  x, k, g = _inputs(n, h, w, ci, co, conv_forms.conv_out_size(h), conv_forms.conv_out_size(w))
  y, dx, dk = _vjp(CONV_FORMS[impl], x, k, g)
  ry, rdx, rdk = _reference_conv(x, k, g)
  assert y.shape == ry.shape
  _assert_close(y, ry)
  _assert_close(dx, rdx)
  _assert_close(dk, rdk)


@pytest.mark.parametrize('impl', CONV_TRANSPOSE_FORMS)
@pytest.mark.parametrize('case', CASES)
def test_conv_transpose_matches_reference(impl, case):
  n, h, w, ci, co = case
  x, k, g = _inputs(n, h, w, ci, co, 2 * h, 2 * w)
  y, dx, dk = _vjp(CONV_TRANSPOSE_FORMS[impl], x, k, g)
  ry, rdx, rdk = _reference_conv_transpose(x, k, g)
  assert y.shape == ry.shape == (n, 2 * h, 2 * w, co)
  _assert_close(y, ry)
  _assert_close(dx, rdx)
  _assert_close(dk, rdk)


@pytest.mark.parametrize('case', CASES + [(2, 4, 3, 8, 64), (1, 7, 5, 3, 65)])
def test_conv_transpose_phases_match_reference(case):
  """The per-phase form, and 'hybrid' where it dispatches to it (out >= 64, sides <= 16)."""
  n, h, w, ci, co = case
  x, k, g = _inputs(n, h, w, ci, co, 2 * h, 2 * w)
  reference = _reference_conv_transpose(x, k, g)
  for fn in (conv_forms.conv_transpose4x4s2_phases, conv_forms.conv_transpose4x4s2_hybrid):
    for actual, expected in zip(_vjp(fn, x, k, g), reference):
      _assert_close(actual, expected)
  assert conv_forms.phases_are_faster(x, k) == (co >= 64)


@pytest.mark.parametrize('case', [(2, 8, 6, 64, 8), (1, 4, 10, 96, 5)])
def test_conv_with_per_phase_input_gradient_matches_reference(case):
  """'hybrid' strided convs whose input gradient runs per phase (in >= 64, sides <= 16)."""
  n, h, w, ci, co = case
  x, k, g = _inputs(n, h, w, ci, co, conv_forms.conv_out_size(h), conv_forms.conv_out_size(w))
  for actual, expected in zip(_vjp(conv_forms.conv4x4s2_hybrid, x, k, g), _reference_conv(x, k, g)):
    _assert_close(actual, expected)
  assert conv_forms.phases_are_faster(g, k.transpose(0, 1, 3, 2))


@pytest.mark.parametrize('impl', CONV3X3_FORMS)
@pytest.mark.parametrize('case', CASES[:3])
def test_conv3x3_matches_reference(impl, case):
  n, h, w, ci, co = case
  rng = np.random.default_rng(0)
  x = rng.standard_normal((n, h, w, ci)).astype(np.float32)
  k = (rng.standard_normal((3, 3, ci, co)) / np.sqrt(3 * ci)).astype(np.float32)
  g = rng.standard_normal((n, h, w, co)).astype(np.float32)
  ref = lambda x, k: lax.conv_general_dilated(
      x, k, (1, 1), ((1, 1), (1, 1)), dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
      precision=lax.Precision.HIGHEST)
  for actual, expected in zip(_vjp(CONV3X3_FORMS[impl], x, k, g), _vjp(ref, x, k, g)):
    _assert_close(actual, expected)


def test_sizes():
  assert [conv_forms.conv_out_size(s) for s in (64, 32, 8, 7, 3, 2)] == [32, 16, 4, 3, 1, 1]


def _module_pair(kind, impl, features, use_bias):
  if kind == 'conv3x3':
    return (layers.Conv3x3(features, use_bias=use_bias, impl=impl),
            nn.Conv(features, (3, 3), padding=1, use_bias=use_bias))
  if kind == 'conv':
    return (layers.Conv4x4Stride2(features, use_bias=use_bias, impl=impl),
            nn.Conv(features, (4, 4), (2, 2), padding=((1, 1), (1, 1)), use_bias=use_bias))
  return (layers.ConvTranspose4x4Stride2(features, use_bias=use_bias, impl=impl),
          nn.ConvTranspose(features, (4, 4), (2, 2), padding='SAME', use_bias=use_bias))


def _perturbed(variables, seed=1):
  """Init variables plus noise, so a zero bias or a symmetric kernel hides nothing."""
  leaves, treedef = jax.tree.flatten(variables)
  keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
  return jax.tree.unflatten(
      treedef, [v + 0.1 * jax.random.normal(k, v.shape) for v, k in zip(leaves, keys)])


@pytest.mark.parametrize('use_bias', [False, True])
@pytest.mark.parametrize('impl', layers.IMPLS)
@pytest.mark.parametrize('kind', ['conv', 'conv_transpose', 'conv3x3'])
def test_module_is_drop_in_for_flax_layer(kind, impl, use_bias):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 7, 6, 5))
  ours, theirs = _module_pair(kind, impl, 8, use_bias)
  variables = ours.init(jax.random.PRNGKey(0), x)
  flax_variables = theirs.init(jax.random.PRNGKey(0), x)
  assert (jax.tree.map(jnp.shape, variables) == jax.tree.map(jnp.shape, flax_variables))
  variables = _perturbed(variables)

  def loss(module):
    return lambda v, x: jnp.sum(jnp.sin(module.apply(v, x)))

  y, grads = jax.value_and_grad(loss(ours), argnums=(0, 1))(variables, x)
  ry, rgrads = jax.value_and_grad(loss(theirs), argnums=(0, 1))(variables, x)
  _assert_close(y, ry)
  jax.tree.map(_assert_close, grads, rgrads)


@pytest.mark.parametrize('kind', ['conv', 'conv_transpose'])
def test_init_is_dcgan_normal_and_impl_independent(kind):
  x = jnp.zeros((1, 8, 8, 64))
  inits = [_module_pair(kind, impl, 64, True)[0].init(jax.random.PRNGKey(3), x)
           for impl in layers.IMPLS]
  for v in inits[1:]:
    jax.tree.map(np.testing.assert_array_equal, v, inits[0])
  kernel = np.asarray(inits[0]['params']['kernel'])
  assert kernel.shape == (4, 4, 64, 64) and kernel.dtype == np.float32
  assert abs(kernel.std() - 0.02) < 0.001 and abs(kernel.mean()) < 0.001
  np.testing.assert_array_equal(inits[0]['params']['bias'], 0.0)


@pytest.mark.parametrize('kind', ['conv', 'conv_transpose', 'conv3x3'])
def test_spectral_norm_wraps_every_impl(kind):
  """nn.SpectralNorm normalises our kernel exactly as it does flax's layer."""
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 6))
  wrapped = {impl: nn.SpectralNorm(_module_pair(kind, impl, 10, True)[0])
             for impl in layers.IMPLS}
  wrapped['flax'] = nn.SpectralNorm(_module_pair(kind, 'xla', 10, True)[1])
  variables = wrapped['flax'].init(jax.random.PRNGKey(0), x, update_stats=True)
  variables = {'params': _perturbed(variables['params']),
               'batch_stats': variables['batch_stats']}
  results = {}
  for impl, module in wrapped.items():
    shapes = jax.tree.map(jnp.shape, module.init(jax.random.PRNGKey(0), x, update_stats=True))
    assert shapes == jax.tree.map(jnp.shape, variables)

    def loss(params, x, module=module):
      y, updates = module.apply({'params': params, 'batch_stats': variables['batch_stats']},
                                x, update_stats=True, mutable=['batch_stats'])
      return jnp.sum(jnp.sin(y)), updates

    (value, updates), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
        variables['params'], x)
    results[impl] = (value, updates, grads)
  for impl in layers.IMPLS:
    jax.tree.map(_assert_close, results[impl], results['flax'])
  # The power iteration really ran on the 4-D kernel, flattened to [4 * 4 * in, out].
  stats = results['flax'][1]['batch_stats']
  (u,) = [v for k, v in jax.tree_util.tree_leaves_with_path(stats) if 'u' in str(k[-1])]
  assert u.shape == (1, 10)


@pytest.mark.parametrize('impl', layers.IMPLS)
@pytest.mark.parametrize('kind', ['conv', 'conv_transpose', 'conv3x3'])
def test_mixed_precision(kind, impl):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 16))
  module = _module_pair(kind, impl, 8, True)[0].clone(dtype=jnp.bfloat16)
  variables = module.init(jax.random.PRNGKey(0), x)
  assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(variables))
  y = module.apply(_perturbed(variables), x)
  assert y.dtype == jnp.bfloat16
  ref = module.clone(dtype=jnp.float32, impl='xla').apply(_perturbed(variables), x)
  _assert_close(y.astype(jnp.float32), ref, tol=3e-2)


def test_bad_impl_raises():
  with pytest.raises(ValueError, match='impl'):
    layers.Conv4x4Stride2(4, impl='cudnn').init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 2)))


@pytest.mark.parametrize('backend, expected', [('cpu', 'hybrid'), ('gpu', 'xla'), ('tpu', 'xla')])
def test_auto_follows_the_default_backend(monkeypatch, backend, expected):
  assert layers.resolve_impl('auto', backend) == expected
  monkeypatch.setattr(jax, 'default_backend', lambda: backend)
  assert layers.resolve_impl('auto') == expected
  assert layers.resolve_impl('xla') == 'xla' and layers.resolve_impl('hybrid') == 'hybrid'
