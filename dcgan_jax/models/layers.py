"""Fast, exact convolution modules for XLA:CPU: DCGAN's 4x4 stride-2 layers and 3x3 layers.

Drop-in for flax's layers, computed by the functional forms in conv_forms.py
chosen by `impl` ('auto' | 'hybrid' | 'xla'; see there, and
experiments/speed/NOTES.md for the measurements). The bias gradients are
matrix-vector products (`batch_norm.add_bias`).

Every impl has the same parameters (`kernel` [4, 4, in, out] and optional
`bias` [out]), so checkpoints are interchangeable and `nn.SpectralNorm` can wrap
any of them. The kernel is rearranged inside the module, so gradients with
respect to the canonical kernel are exact.

The parameters are those of the flax layers these replace, with the same
meaning, so the modules are drop-in for (and checkpoint-compatible with)

  Conv4x4Stride2(f)          == nn.Conv(f, (4, 4), (2, 2), padding=((1, 1), (1, 1)))
  ConvTranspose4x4Stride2(f) == nn.ConvTranspose(f, (4, 4), (2, 2), padding='SAME')

and their PyTorch correspondence (`w` = torch weight) is

  Conv4x4Stride2:          kernel[kh, kw, i, o] == w[o, i, kh, kw]
  ConvTranspose4x4Stride2: kernel[kh, kw, i, o] == w[i, o, 3 - kh, 3 - kw]

(flax's transposed conv correlates the dilated input with the kernel, PyTorch
scatters the input through it: the same thing up to a spatial flip). The
functional forms `conv_transpose4x4s2_*` in conv_forms.py take the PyTorch tap
layout.
`Conv3x3` (== nn.Conv(f, (3, 3), padding=1)) offers the same switch for the
standard CNN's stride-1 layers.
"""

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from dcgan_jax.models import batch_norm
from dcgan_jax.models import conv_forms

Array = jax.Array
Dtype = Any
Initializer = Callable[..., Array]

# 'auto' is 'hybrid' on CPU and 'xla' on GPU/TPU (`resolve_impl`).
IMPLS = ('auto', *conv_forms.CONV)
DEFAULT_IMPL = 'auto'

# DCGAN (Radford et al. 2016) initialises every weight from N(0, 0.02).
dcgan_init = nn.initializers.normal(stddev=0.02)


def resolve_impl(impl, backend=None):
  """The conv form `impl` names on `backend` (default: jax's default backend).

  'auto' picks the CPU rewrites on CPU only: cuDNN and the TPU compiler run
  transposed convolutions natively, and the rewrites were measured on CPU alone.
  """
  if impl not in IMPLS:
    raise ValueError(f'impl must be one of {IMPLS}, got {impl!r}.')
  if impl != 'auto':
    return impl
  return 'hybrid' if (backend or jax.default_backend()) == 'cpu' else 'xla'


# ----------------------------------------------------------------------------
# Modules.
# ----------------------------------------------------------------------------


class _ConvBase(nn.Module):
  """Shared fields and parameters of the layers below."""

  features: int
  use_bias: bool = False
  impl: str = DEFAULT_IMPL
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  precision: Any = None
  kernel_init: Initializer = dcgan_init
  bias_init: Initializer = nn.initializers.zeros_init()
  kernel_size = 4  # Not a dataclass field: fixed by each layer.

  def _apply(self, fns, x):
    if x.ndim != 4:
      raise ValueError(f'Expected NHWC input, got shape {x.shape}.')
    k = self.kernel_size
    kernel = self.param('kernel', self.kernel_init,
                        (k, k, x.shape[-1], self.features), self.param_dtype)
    bias = (self.param('bias', self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = fns[resolve_impl(self.impl)](x, self._torch_layout(kernel), precision=self.precision)
    if bias is not None:
      y = batch_norm.add_bias(y, bias)
    return y

  def _torch_layout(self, kernel):
    """The parameter in the tap convention of the functional forms."""
    return kernel


class Conv4x4Stride2(_ConvBase):
  """PyTorch Conv2d(in, features, kernel_size=4, stride=2, padding=1), NHWC.

  out[m, l] = sum_{kh, kw} xpad[2m + kh, 2l + kw] @ kernel[kh, kw] (+ bias),
  where xpad is the input zero-padded by 1 on every side, i.e. output pixel
  (m, l) reads input rows 2m-1 .. 2m+2 with taps kh = 0 .. 3. H -> (H - 2)//2 + 1
  (32 -> 16, 7 -> 3). kernel[kh, kw, i, o] == torch weight[o, i, kh, kw].

  Attributes:
    features: output channels.
    use_bias: add a learned bias (initialised to 0).
    impl: 'auto' | 'hybrid' | 'xla' (see `resolve_impl` and conv_forms.py);
      all give the same outputs and gradients up to float rounding.
    dtype: computation dtype (e.g. jnp.bfloat16); default from the inputs.
    param_dtype: dtype of the parameters.
    precision: `lax` precision of the convolution / matmul.
    kernel_init: initialiser of the [4, 4, in, features] kernel; N(0, 0.02).
    bias_init: initialiser of the bias.
  """

  @nn.compact
  def __call__(self, x):
    return self._apply(conv_forms.CONV, x)


class ConvTranspose4x4Stride2(_ConvBase):
  """PyTorch ConvTranspose2d(in, features, kernel_size=4, stride=2, padding=1), NHWC.

  Same parameters and function as flax's
  nn.ConvTranspose(features, (4, 4), (2, 2), padding='SAME'). With the
  PyTorch taps t[kh, kw] = kernel[3 - kh, 3 - kw] (== torch weight[i, o, kh, kw]),
  input pixel (i, j) adds x[i, j] @ t[kh, kw] to output pixel
  (2i - 1 + kh, 2j - 1 + kw) for kh, kw = 0 .. 3 (contributions outside the
  2H x 2W output are dropped). Equivalently, even output rows 2m take taps
  t-row 1 (input row m) and 3 (row m-1); odd rows 2m+1 take t-row 2 (row m)
  and 0 (row m+1). H -> 2H for any H (4 -> 8, 7 -> 14).

  Attributes: as `Conv4x4Stride2`.
  """

  def _torch_layout(self, kernel):
    # Flax's (and lax.conv_transpose's) convention is PyTorch's flipped in
    # space; the flip is folded by XLA into the kernel rearrangement.
    return kernel[::-1, ::-1]

  @nn.compact
  def __call__(self, x):
    return self._apply(conv_forms.CONV_TRANSPOSE, x)


class Conv3x3(_ConvBase):
  """PyTorch Conv2d(in, features, kernel_size=3, stride=1, padding=1), NHWC.

  Same parameters and function as flax's nn.Conv(features, (3, 3), padding=1)
  (kernel [3, 3, in, features] == torch weight[o, i, kh, kw] transposed);
  out[m, l] = sum_{kh, kw} xpad[m + kh, l + kw] @ kernel[kh, kw]. For the
  standard CNN's stride-1 layers. impl 'hybrid' is XLA's conv with
  `conv3x3_hybrid`'s kernel gradient. Attributes as `Conv4x4Stride2`, but
  use_bias defaults to True like nn.Conv.
  """

  use_bias: bool = True
  kernel_size = 3

  @nn.compact
  def __call__(self, x):
    return self._apply(conv_forms.CONV3X3, x)
