"""Batch norm and bias gradients whose per-channel sums are matrix-vector products.

`jnp.sum(x, axis=(0, 1, 2))` over an NHWC activation is what flax's
`nn.BatchNorm` and the gradient of a bias add compute. XLA:CPU's
tree-reduction rewrite turns such long reductions into reduce-windows that run
3-4x slower than the same sums as a [N*H*W] x [N*H*W, C] matrix-vector product
(fwd + bwd of batch norm + ReLU at [64, 32, 32, 64]: 32.4 ms with nn.BatchNorm,
10.6 ms here, 8.4 ms in PyTorch; experiments/speed/NOTES.md). On accelerators
the two are equally fast. Every sum here, forward and (through hand-written
VJPs) backward, is such a product.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

Dtype = Any


def channel_sums(x2, dtype):
  """`jnp.sum(x2, 0)` of a [M, C] matrix, accumulated in `dtype`, as one GEMV."""
  return lax.dot_general(jnp.ones((x2.shape[0],), x2.dtype), x2, (((0,), (0,)), ((), ())),
                         preferred_element_type=dtype)


@jax.custom_vjp
def add_bias(y, bias):
  """y + bias over the last axis; the bias gradient is a matrix-vector product."""
  return y + bias


def _add_bias_fwd(y, bias):
  # Empty arrays carry the two input dtypes to the backward pass.
  return y + bias, (jnp.zeros((0,), y.dtype), jnp.zeros((0,), bias.dtype))


def _add_bias_bwd(dtypes, g):
  y_dtype, bias_dtype = dtypes[0].dtype, dtypes[1].dtype
  stats_dtype = jnp.promote_types(g.dtype, jnp.float32)
  dbias = channel_sums(g.reshape(-1, g.shape[-1]), stats_dtype)
  return g.astype(y_dtype), dbias.astype(bias_dtype)


add_bias.defvjp(_add_bias_fwd, _add_bias_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _batch_norm_train(x2, scale, bias, epsilon):
  return _batch_norm_train_fwd(x2, scale, bias, epsilon)[0]


def _batch_norm_train_fwd(x2, scale, bias, epsilon):
  """(y, mean, var) of batch norm over the rows of x2 [M, C]; statistics in float32."""
  m = x2.shape[0]
  stats_dtype = jnp.promote_types(x2.dtype, jnp.float32)
  mean = channel_sums(x2, stats_dtype) / m
  # E[x^2] - E[x]^2, as flax's BatchNorm (use_fast_variance) computes it.
  x_wide = x2.astype(stats_dtype)  # Squares in float32 also for bfloat16 inputs, as flax.
  var = jnp.maximum(channel_sums(x_wide * x_wide, stats_dtype) / m - mean * mean, 0.0)
  inv = lax.rsqrt(var + epsilon)
  mul = (scale * inv).astype(x2.dtype)
  y = x2 * mul + (bias - mean * scale * inv).astype(x2.dtype)
  return (y, mean, var), (x2, scale, mean, inv)


def _batch_norm_train_bwd(epsilon, residuals, cotangents):
  del epsilon
  x2, scale, mean, inv = residuals
  dy, dmean, dvar = cotangents
  m = x2.shape[0]
  stats_dtype = mean.dtype
  sum_dy = channel_sums(dy, stats_dtype)
  # sum(dy * xhat) with xhat = (x - mean) * inv, from sum(dy * x).
  sum_dy_x = channel_sums(dy.astype(stats_dtype) * x2.astype(stats_dtype), stats_dtype)
  sum_dy_xhat = inv * (sum_dy_x - mean * sum_dy)
  # dx = scale * inv * (dy - mean(dy) - xhat * mean(dy * xhat)), plus the paths
  # through the returned mean and var, gathered into dx = a * dy + b * x + c.
  a = scale * inv
  b = -a * inv * sum_dy_xhat / m + 2.0 * dvar / m
  c = -a * sum_dy / m - b * mean + dmean / m
  dx = dy * a.astype(dy.dtype) + x2 * b.astype(dy.dtype) + c.astype(dy.dtype)
  return dx, sum_dy_xhat.astype(scale.dtype), sum_dy.astype(scale.dtype)


_batch_norm_train.defvjp(_batch_norm_train_fwd, _batch_norm_train_bwd)


class BatchNorm(nn.Module):
  """Batch norm over every axis but the last: flax's `nn.BatchNorm`, faster on CPU.

  The same parameters (`scale`, `bias`), statistics (`batch_stats` `mean`,
  `var`, updated as ra = momentum * ra + (1 - momentum) * batch), defaults and
  function as `nn.BatchNorm(use_running_average, momentum=momentum,
  epsilon=epsilon, dtype=dtype)` with its default axis=-1, so checkpoints are
  interchangeable. Written here for the speed of its sums on CPU (module
  docstring); no cross-device statistics (flax's axis_name), which the models
  do not use.

  Attributes:
    use_running_average: normalise with the running statistics (eval) instead
      of the batch's (train).
    momentum: decay of the running statistics.
    epsilon: added to the variance.
    dtype: computation dtype of the output; statistics are float32 or wider.
    param_dtype: dtype of scale and bias.
  """

  use_running_average: bool = False
  momentum: float = 0.99
  epsilon: float = 1e-5
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    features = x.shape[-1]
    stats_dtype = jnp.promote_types(x.dtype, jnp.float32)
    ra_mean = self.variable('batch_stats', 'mean', jnp.zeros, (features,), stats_dtype)
    ra_var = self.variable('batch_stats', 'var', jnp.ones, (features,), stats_dtype)
    scale = self.param('scale', nn.initializers.ones, (features,), self.param_dtype)
    bias = self.param('bias', nn.initializers.zeros, (features,), self.param_dtype)
    dtype = self.dtype or jnp.result_type(x, scale, bias)
    x2 = x.reshape(-1, features).astype(dtype)
    if self.use_running_average:
      mul = scale * lax.rsqrt(ra_var.value + self.epsilon)
      y = x2 * mul.astype(dtype) + (bias - ra_mean.value * mul).astype(dtype)
    else:
      y, mean, var = _batch_norm_train(x2, scale, bias, self.epsilon)
      if not self.is_initializing():
        ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
        ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
    return y.reshape(x.shape)
