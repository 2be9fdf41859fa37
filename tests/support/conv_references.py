"""Further reference forms of the DCGAN convolutions, for the tests only.

im2col / col2im around one matrix product per layer: the forward pass and both
gradients are plain GEMMs. They were once a `conv_impl` choice (faster than the
sub-pixel form only with XLA:CPU's YNNPACK fusions, experiments/speed/NOTES.md);
now they serve as a second, independent formulation the product's forms are
checked against.
"""

import jax.numpy as jnp
from jax import lax

from dcgan_jax.models import conv_forms


def _im2col4x4s2(x):
  """Patches [N, Ho, Wo, 4 * 4 * C] of Conv2d(k=4, s=2, p=1), order (kh, kw, c)."""
  n, _, _, c = x.shape
  xp, ho, wo = conv_forms._pad_for_blocks(x)
  x6 = conv_forms._space_to_depth6(xp)                                # [N, A, sh, B, sw, C]
  # Tap kh = 2 * jh + sh of output m is block m + jh at phase sh.
  cols = [x6[:, jh:jh + ho, sh, jw:jw + wo, sw, :]
          for jh in range(2) for sh in range(2)
          for jw in range(2) for sw in range(2)]
  return jnp.concatenate(cols, axis=-1).reshape(n, ho, wo, 16 * c)


def conv4x4s2_matmul(x, kernel, precision=None):
  """Conv2d(k=4, s=2, p=1) as im2col + one [N*Ho*Wo, 16*in] x [16*in, out] GEMM."""
  c, o = kernel.shape[-2:]
  cols = _im2col4x4s2(x)
  y = lax.dot_general(cols, kernel.reshape(16 * c, o),
                      (((3,), (0,)), ((), ())), precision=precision)
  return y


def _col2im_axis(y, axis):
  """Overlap-adds the 4 taps on `axis + 1` of y into 2 sub-pixels along `axis`.

  y has the spatial axis at `axis` and its tap axis (size 4) right after it.
  Returns y with the tap axis replaced by the sub-pixel axis (size 2):
  even[m] = tap1[m] + tap3[m - 1], odd[m] = tap2[m] + tap0[m + 1].
  """
  def take(tap):
    return lax.index_in_dim(y, tap, axis + 1, keepdims=False)

  size = y.shape[axis]
  zeros_pad = [(0, 0, 0)] * (y.ndim - 1)
  lo, hi = list(zeros_pad), list(zeros_pad)
  lo[axis] = (1, 0, 0)
  hi[axis] = (0, 1, 0)
  zero = jnp.zeros((), y.dtype)
  even = take(1) + lax.pad(lax.slice_in_dim(take(3), 0, size - 1, axis=axis), zero, lo)
  odd = take(2) + lax.pad(lax.slice_in_dim(take(0), 1, size, axis=axis), zero, hi)
  return jnp.stack([even, odd], axis=axis + 1)


def conv_transpose4x4s2_matmul(x, kernel, precision=None):
  """ConvTranspose2d(k=4, s=2, p=1) as one [N*H*W, in] x [in, 16*out] GEMM + col2im.

  The GEMM gives every (input pixel, tap) contribution; col2im overlap-adds
  them into the 2H x 2W output as in `conv_transpose4x4s2_subpixel`'s
  docstring. Gradients are again GEMMs (with an im2col of the output grad).
  """
  n, h, w, c = x.shape
  o = kernel.shape[-1]
  k = kernel.transpose(2, 0, 1, 3).reshape(c, 16 * o)    # [i, (kh, kw, o)]
  y = lax.dot_general(x, k, (((3,), (0,)), ((), ())), precision=precision)
  y = y.reshape(n, h, w, 4, 4, o).transpose(0, 1, 3, 2, 4, 5)  # [N, H, kh, W, kw, o]
  y = _col2im_axis(y, 1)                                   # [N, H, 2, W, kw, o]
  y = _col2im_axis(y, 3)                                   # [N, H, 2, W, 2, o]
  return y.reshape(n, 2 * h, 2 * w, o)


def conv3x3_matmul(x, kernel, precision=None):
  """Conv2d(k=3, s=1, p=1) as im2col + one [N*H*W, 9*in] x [9*in, out] GEMM.

  Stride-1 convs have no dilation, but XLA:CPU still computes their weight
  gradient as a convolution whose window is the whole image; as a GEMM it is
  as fast as the forward pass.
  """
  n, h, w, c = x.shape
  o = kernel.shape[-1]
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  cols = jnp.concatenate([xp[:, kh:kh + h, kw:kw + w, :]
                          for kh in range(3) for kw in range(3)], axis=-1)
  return lax.dot_general(cols, kernel.reshape(9 * c, o), (((3,), (0,)), ((), ())),
                         precision=precision)
