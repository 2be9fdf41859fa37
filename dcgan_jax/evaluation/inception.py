"""InceptionV3 in the FID configuration (the TF 2015-12-05 graph), in Flax Linen.

This is the network of Heusel et al.'s TTUR FID code as pytorch-fid re-creates
it, which differs from the Keras/torchvision InceptionV3:

* batch norm has no scale (gamma), epsilon 1e-3, and always uses the stored
  statistics;
* the 3x3 average pools inside the A, C and first E blocks do not count the
  zero padding (TF's 'SAME' avg-pool);
* the last E block (Mixed_7c) pools its pool branch with a 3x3 max pool;
* the classifier has 1008 outputs (1000 ImageNet classes and 8 unused ones).

Layer names follow torchvision / pytorch-fid (`Conv2d_1a_3x3`, `Mixed_5b`,
`branch1x1`, ...) so that their state_dicts map one to one.

Preprocessing (`preprocess` and `apply`, see `preprocessing.py`): by default
the TF graph's own (TF1 bilinear resize without half-pixel centres, then
(x - 128) / 128), which gives the FID of the papers; method='pytorch_fid' gives
pytorch-fid's (x / 127.5 - 1, torch's half-pixel bilinear resize).
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from dcgan_jax.evaluation import preprocessing

INPUT_SIZE = preprocessing.INPUT_SIZE
POOL_DIM = 2048
NUM_LOGITS = 1008
BN_EPSILON = 1e-3


def preprocess(images, method=preprocessing.DEFAULT):
  """Maps NHWC uint8 [0, 255] or float [-1, 1] images to the network's input.

  Args:
    images: [N, H, W, C] array with C in {1, 3}; uint8 or float in [-1, 1].
    method: one of `preprocessing.PREPROCESSINGS` ('tf', the default, or
      'pytorch_fid').

  Returns:
    float32 [N, 299, 299, 3], as the FID Inception network expects.
  """
  return preprocessing.apply(images, method)


def _pair(v):
  return (v, v) if isinstance(v, int) else tuple(v)


class BasicConv(nn.Module):
  """Conv (no bias) -> batch norm without scale (inference mode) -> ReLU."""
  features: int
  kernel_size: Any = 1
  strides: int = 1
  padding: Any = 0  # int or (pad_h, pad_w): symmetric zero padding.

  @nn.compact
  def __call__(self, x):
    ph, pw = _pair(self.padding)
    x = nn.Conv(self.features, _pair(self.kernel_size), strides=self.strides,
                padding=((ph, ph), (pw, pw)), use_bias=False, name='conv')(x)
    x = nn.BatchNorm(use_running_average=True, use_scale=False,
                     epsilon=BN_EPSILON, name='bn')(x)
    return nn.relu(x)


def _avg_pool_same(x):
  # TF 'SAME' average pooling divides by the number of real (unpadded) inputs.
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)),
                     count_include_pad=False)


def _max_pool_3x3_s2(x):
  return nn.max_pool(x, (3, 3), strides=(2, 2), padding='VALID')


class InceptionA(nn.Module):
  pool_features: int

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv(64, name='branch1x1')(x)
    b5 = BasicConv(48, name='branch5x5_1')(x)
    b5 = BasicConv(64, 5, padding=2, name='branch5x5_2')(b5)
    b3 = BasicConv(64, name='branch3x3dbl_1')(x)
    b3 = BasicConv(96, 3, padding=1, name='branch3x3dbl_2')(b3)
    b3 = BasicConv(96, 3, padding=1, name='branch3x3dbl_3')(b3)
    bp = BasicConv(self.pool_features, name='branch_pool')(_avg_pool_same(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):

  @nn.compact
  def __call__(self, x):
    b3 = BasicConv(384, 3, strides=2, name='branch3x3')(x)
    bd = BasicConv(64, name='branch3x3dbl_1')(x)
    bd = BasicConv(96, 3, padding=1, name='branch3x3dbl_2')(bd)
    bd = BasicConv(96, 3, strides=2, name='branch3x3dbl_3')(bd)
    return jnp.concatenate([b3, bd, _max_pool_3x3_s2(x)], axis=-1)


class InceptionC(nn.Module):
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c7 = self.channels_7x7
    b1 = BasicConv(192, name='branch1x1')(x)
    b7 = BasicConv(c7, name='branch7x7_1')(x)
    b7 = BasicConv(c7, (1, 7), padding=(0, 3), name='branch7x7_2')(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name='branch7x7_3')(b7)
    bd = BasicConv(c7, name='branch7x7dbl_1')(x)
    bd = BasicConv(c7, (7, 1), padding=(3, 0), name='branch7x7dbl_2')(bd)
    bd = BasicConv(c7, (1, 7), padding=(0, 3), name='branch7x7dbl_3')(bd)
    bd = BasicConv(c7, (7, 1), padding=(3, 0), name='branch7x7dbl_4')(bd)
    bd = BasicConv(192, (1, 7), padding=(0, 3), name='branch7x7dbl_5')(bd)
    bp = BasicConv(192, name='branch_pool')(_avg_pool_same(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):

  @nn.compact
  def __call__(self, x):
    b3 = BasicConv(192, name='branch3x3_1')(x)
    b3 = BasicConv(320, 3, strides=2, name='branch3x3_2')(b3)
    b7 = BasicConv(192, name='branch7x7x3_1')(x)
    b7 = BasicConv(192, (1, 7), padding=(0, 3), name='branch7x7x3_2')(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name='branch7x7x3_3')(b7)
    b7 = BasicConv(192, 3, strides=2, name='branch7x7x3_4')(b7)
    return jnp.concatenate([b3, b7, _max_pool_3x3_s2(x)], axis=-1)


class InceptionE(nn.Module):
  max_pool: bool  # The FID graph's last block max-pools its pool branch.

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv(320, name='branch1x1')(x)
    b3 = BasicConv(384, name='branch3x3_1')(x)
    b3 = jnp.concatenate([
        BasicConv(384, (1, 3), padding=(0, 1), name='branch3x3_2a')(b3),
        BasicConv(384, (3, 1), padding=(1, 0), name='branch3x3_2b')(b3),
    ], axis=-1)
    bd = BasicConv(448, name='branch3x3dbl_1')(x)
    bd = BasicConv(384, 3, padding=1, name='branch3x3dbl_2')(bd)
    bd = jnp.concatenate([
        BasicConv(384, (1, 3), padding=(0, 1), name='branch3x3dbl_3a')(bd),
        BasicConv(384, (3, 1), padding=(1, 0), name='branch3x3dbl_3b')(bd),
    ], axis=-1)
    if self.max_pool:
      pooled = nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
    else:
      pooled = _avg_pool_same(x)
    bp = BasicConv(192, name='branch_pool')(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class FIDInceptionV3(nn.Module):
  """The FID InceptionV3 on preprocessed [N, 299, 299, 3] inputs in [-1, 1].

  Attributes:
    with_logits: also build the 1008-way classifier (`fc`); needs weights that
      have it (pytorch-fid's .pth, not the fid-helper TorchScript archive).

  Returns from `__call__`: {'pool': [N, 2048]} and, with logits,
  'logits' = pool @ W + b and 'logits_unbiased' = pool @ W (both [N, 1008]).
  """
  with_logits: bool = False

  @nn.compact
  def __call__(self, x):
    x = BasicConv(32, 3, strides=2, name='Conv2d_1a_3x3')(x)
    x = BasicConv(32, 3, name='Conv2d_2a_3x3')(x)
    x = BasicConv(64, 3, padding=1, name='Conv2d_2b_3x3')(x)
    x = _max_pool_3x3_s2(x)
    x = BasicConv(80, 1, name='Conv2d_3b_1x1')(x)
    x = BasicConv(192, 3, name='Conv2d_4a_3x3')(x)
    x = _max_pool_3x3_s2(x)
    x = InceptionA(32, name='Mixed_5b')(x)
    x = InceptionA(64, name='Mixed_5c')(x)
    x = InceptionA(64, name='Mixed_5d')(x)
    x = InceptionB(name='Mixed_6a')(x)
    x = InceptionC(128, name='Mixed_6b')(x)
    x = InceptionC(160, name='Mixed_6c')(x)
    x = InceptionC(160, name='Mixed_6d')(x)
    x = InceptionC(192, name='Mixed_6e')(x)
    x = InceptionD(name='Mixed_7a')(x)
    x = InceptionE(max_pool=False, name='Mixed_7b')(x)
    x = InceptionE(max_pool=True, name='Mixed_7c')(x)
    pool = jnp.mean(x, axis=(1, 2))  # The 8x8 average pool down to 1x1.
    out = {'pool': pool}
    if self.with_logits:
      fc = nn.Dense(NUM_LOGITS, name='fc')
      out['logits'] = fc(pool)
      out['logits_unbiased'] = pool @ fc.variables['params']['kernel']
    return out


def variable_shapes(with_logits):
  """Returns the variables' shape/dtype tree without computing anything."""
  model = FIDInceptionV3(with_logits=with_logits)
  return jax.eval_shape(
      model.init, jax.random.PRNGKey(0),
      jax.ShapeDtypeStruct((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32))


@functools.partial(jax.jit, static_argnames=('with_logits', 'method'))
def apply(variables, images, with_logits=False, method=preprocessing.DEFAULT):
  """Preprocesses NHWC images and runs the network (jitted, pure).

  Args:
    variables: {'params', 'batch_stats'} of `FIDInceptionV3`.
    images: [N, H, W, 1 or 3] uint8 or float in [-1, 1].
    with_logits: also return 'logits' and 'logits_unbiased'.
    method: the preprocessing, one of `preprocessing.PREPROCESSINGS`.

  Returns:
    dict of float32 arrays, see `FIDInceptionV3`.
  """
  return FIDInceptionV3(with_logits=with_logits).apply(variables, preprocess(images, method))
