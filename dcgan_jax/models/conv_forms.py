"""The functional forms of the fast, exact convolutions in layers.py.

DCGAN-style models up-sample with PyTorch's `ConvTranspose2d(k=4, s=2, p=1)`
(H -> 2H) and down-sample with `Conv2d(k=4, s=2, p=1)` (H -> floor(H/2)).
Written as `lax` convolutions these have a dilated base (the transposed conv
and the input gradient of the strided conv) or a dilated kernel (the kernel
gradient of the strided conv). XLA:CPU runs base-dilated convolutions on a
slow generic path (10-25x slower than a sub-pixel conv for DCGAN's layers):
on 2 CPU threads a plain Flax DCGAN step is ~5x slower than PyTorch. The
functions here compute exactly the same function from the same canonical 4x4
kernel with one of four implementations:

  impl='xla'       the textbook `lax.conv_general_dilated` (the reference;
                   its transposed conv is the slow one).
  subpixel         stride-1 2x2 `lax` convolutions on space-to-depth /
                   depth-to-space rearrangements, so neither the forward pass
                   nor either gradient has a dilated base (a building block
                   of 'hybrid'; tests/support/conv_references.py keeps an
                   im2col/GEMM form as a further reference).
  impl='hybrid'    (default, fastest on CPU) a custom VJP using each layer's
                   duality: the strided conv runs as XLA's strided conv, the
                   transposed conv as the sub-pixel conv or, where that wastes
                   much (small sides, wide outputs), as four per-phase 2x2
                   convs, and each one's input gradient is the other one.
                   Kernel gradients are XLA's (kernel-dilated, which XLA:CPU
                   runs fast), per phase where the forward pass is: that
                   spares XLA:CPU a channel-major transpose of the large
                   cotangent, which it runs slowly when fused with the
                   cotangent's producer.

Measurements: experiments/speed/NOTES.md.

x is NHWC; kernels are [4, 4, in, out] in the PyTorch tap layout (layers.py).
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

_DN = ('NHWC', 'HWIO', 'NHWC')


def conv_out_size(size):
  """Output side of Conv2d(k=4, s=2, p=1) on an input of side `size`."""
  return (size + 2 - 4) // 2 + 1


# ----------------------------------------------------------------------------
# Functional forms. x is NHWC, kernel is [4, 4, in, out] (PyTorch tap layout).
# ----------------------------------------------------------------------------


def conv4x4s2_xla(x, kernel, precision=None):
  """Conv2d(k=4, s=2, p=1) as one strided `lax` convolution."""
  return lax.conv_general_dilated(
      x, kernel, window_strides=(2, 2), padding=((1, 1), (1, 1)),
      dimension_numbers=_DN, precision=precision)


def _pad_for_blocks(x):
  """Pads H and W by 1 in front and so that 2 * (out + 1) rows remain.

  After this, 2x2 blocks b = 0..out of the padded input hold the original rows
  2b - 1 and 2b, and output row m reads exactly blocks m and m + 1.
  """
  _, h, w, _ = x.shape
  ho, wo = conv_out_size(h), conv_out_size(w)
  if ho < 1 or wo < 1:
    raise ValueError(f'Conv4x4Stride2 needs H, W >= 2, got {x.shape}.')
  pad_h = 2 * (ho + 1) - h - 1
  pad_w = 2 * (wo + 1) - w - 1
  # For odd sizes pad_* can be -1: the last row is never read (PyTorch floors).
  x = lax.pad(x, jnp.zeros((), x.dtype),
              ((0, 0, 0), (1, pad_h, 0), (1, pad_w, 0), (0, 0, 0)))
  return x, ho, wo


def _space_to_depth6(x):
  """[N, 2A, 2B, C] -> [N, A, 2, B, 2, C] (block, phase) views of each axis."""
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c)


def conv4x4s2_subpixel(x, kernel, precision=None):
  """Conv2d(k=4, s=2, p=1) as space-to-depth + a stride-1 2x2 convolution.

  With the input padded by 1, output row m reads original rows 2m-1 .. 2m+2,
  i.e. padded 2x2 blocks j=0,1 (m and m+1) at phases s=0,1, and tap
  kh = 2 * j + s. So the 2x2 kernel over 4 * in channels is a pure reshape
  and transpose of the 4x4 kernel.
  """
  n, _, _, c = x.shape
  xp, ho, wo = _pad_for_blocks(x)
  x6 = _space_to_depth6(xp)                                # [N, A, sh, B, sw, C]
  xs = x6.transpose(0, 1, 3, 2, 4, 5).reshape(n, ho + 1, wo + 1, 4 * c)
  o = kernel.shape[-1]
  k = kernel.reshape(2, 2, 2, 2, c, o)                     # [jh, sh, jw, sw, i, o]
  k = k.transpose(0, 2, 1, 3, 4, 5).reshape(2, 2, 4 * c, o)
  return lax.conv_general_dilated(
      xs, k, window_strides=(1, 1), padding='VALID', dimension_numbers=_DN,
      precision=precision)


def conv_transpose4x4s2_xla(x, kernel, precision=None):
  """ConvTranspose2d(k=4, s=2, p=1) as a base-dilated `lax` convolution.

  out[2i - 1 + kh, 2j - 1 + kw] += x[i, j] @ kernel[kh, kw]  (PyTorch). A
  correlation with the flipped kernel over the 2x-dilated input padded by 2.
  """
  return lax.conv_general_dilated(
      x, kernel[::-1, ::-1], window_strides=(1, 1), padding=((2, 2), (2, 2)),
      lhs_dilation=(2, 2), dimension_numbers=_DN, precision=precision)


def conv_transpose4x4s2_subpixel(x, kernel, precision=None):
  """ConvTranspose2d(k=4, s=2, p=1) as a stride-1 2x2 conv + depth-to-space.

  Output row 2m (even) gets taps kh=1 from input row m and kh=3 from row m-1;
  row 2m+1 (odd) gets kh=2 from row m and kh=0 from row m+1. With the input
  padded by 1, the 2x2 window at padded row p covers input rows p-1 and p;
  writing window tap t and sub-pixel j (output row 2p - 1 + j), the tap is
  kh = 2 - 2t + j. The 2x2 conv produces (H + 1) x (W + 1) x 4 * out values;
  depth-to-space gives 2H + 2 rows of which the first and last are dropped.
  """
  n, h, w, c = x.shape
  o = kernel.shape[-1]
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  # kernel rows kh = 2a + b; tap t, sub-pixel j read a = 1 - t, b = j.
  k = kernel.reshape(2, 2, 2, 2, c, o)[::-1, :, ::-1]     # [th, jh, tw, jw, i, o]
  k = k.transpose(0, 2, 4, 1, 3, 5).reshape(2, 2, c, 4 * o)
  y = lax.conv_general_dilated(
      xp, k, window_strides=(1, 1), padding='VALID', dimension_numbers=_DN,
      precision=precision)                                 # [N, H+1, W+1, 4o]
  y = y.reshape(n, h + 1, w + 1, 2, 2, o).transpose(0, 1, 3, 2, 4, 5)
  y = y.reshape(n, 2 * h + 2, 2 * w + 2, o)
  return y[:, 1:-1, 1:-1, :]


def conv_transpose4x4s2_phases(x, kernel, precision=None):
  """ConvTranspose2d(k=4, s=2, p=1) as four stride-1 2x2 convs, one per output phase.

  Output pixel (2m + jh, 2l + jw) reads input rows m - 1 + jh + t (t = 0, 1)
  with kernel rows kh = 3 - jh - 2t (and the same for columns): a 2x2 conv
  over the input padded by (1 - jh, jh). The four phase outputs are
  interleaved into the 2H x 2W image. Unlike `conv_transpose4x4s2_subpixel`,
  which computes (H + 1) x (W + 1) blocks for H x W (56% extra work at H = 4,
  27% at 8), nothing is wasted, but each GEMM has `out` columns, not 4 * out.
  """
  n, h, w, _ = x.shape
  o = kernel.shape[-1]
  phases = [[lax.conv_general_dilated(
      x, kernel[3 - jh::-2, 3 - jw::-2], window_strides=(1, 1),
      padding=((1 - jh, jh), (1 - jw, jw)), dimension_numbers=_DN, precision=precision)
             for jw in range(2)] for jh in range(2)]
  y = jnp.stack([jnp.stack(row, axis=3) for row in phases], axis=2)  # [N, H, jh, W, jw, o]
  return y.reshape(n, 2 * h, 2 * w, o)


def phases_are_faster(x, kernel):
  """Whether `conv_transpose4x4s2_phases` beats the sub-pixel form on XLA:CPU.

  Measured per layer (experiments/speed/NOTES.md): the phases win where the
  sub-pixel form wastes much (small sides) and the GEMMs stay wide (out >= 64):
  4 -> 8 with 512 -> 256 channels 10.6 vs 17.1 ms; they lose on image layers
  (out = 3: 12.8 vs 3.0 ms) and at 32 px (100 vs 94 ms).
  """
  return kernel.shape[-1] >= 64 and min(x.shape[1], x.shape[2]) <= 16


def _conv_transpose4x4s2_forward(x, kernel, precision):
  """ConvTranspose2d(k=4, s=2, p=1) in its faster exact form for these shapes."""
  if phases_are_faster(x, kernel):
    return conv_transpose4x4s2_phases(x, kernel, precision)
  return conv_transpose4x4s2_subpixel(x, kernel, precision)


def _conv_kernel_grad_xla(x, g, precision):
  """d/dkernel of conv4x4s2_xla(x, kernel) for the output cotangent g (rhs-dilated conv)."""
  kernel = jnp.zeros((4, 4, x.shape[-1], g.shape[-1]), x.dtype)
  return jax.vjp(lambda k: conv4x4s2_xla(x, k, precision), kernel)[1](g)[0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv4x4s2_hybrid(x, kernel, precision):
  return conv4x4s2_xla(x, kernel, precision)


def _conv4x4s2_hybrid_fwd(x, kernel, precision):
  return conv4x4s2_xla(x, kernel, precision), (x, kernel)


def _conv4x4s2_hybrid_bwd(precision, residuals, g):
  x, kernel = residuals
  # The input gradient of a strided conv is a transposed conv of g with the
  # in/out-swapped kernel: the sub-pixel or per-phase one, not XLA's
  # base-dilated one.
  dx = _conv_transpose4x4s2_forward(g, kernel.transpose(0, 1, 3, 2), precision)
  return dx, _conv_kernel_grad_xla(x, g, precision)


_conv4x4s2_hybrid.defvjp(_conv4x4s2_hybrid_fwd, _conv4x4s2_hybrid_bwd)


def conv4x4s2_hybrid(x, kernel, precision=None):
  """Conv2d(k=4, s=2, p=1): XLA's strided conv forward, custom VJP without base dilation.

  Forward and kernel gradient are XLA's own (neither has a dilated base);
  the input gradient is `conv_transpose4x4s2_subpixel`. Odd sides (whose
  input gradient needs PyTorch's output_padding) use the sub-pixel impl.
  """
  if x.shape[1] % 2 or x.shape[2] % 2:
    return conv4x4s2_subpixel(x, kernel, precision)
  return _conv4x4s2_hybrid(x, kernel, precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_transpose4x4s2_hybrid(x, kernel, precision):
  return _conv_transpose4x4s2_forward(x, kernel, precision)


def _conv_transpose4x4s2_hybrid_fwd(x, kernel, precision):
  return _conv_transpose4x4s2_forward(x, kernel, precision), (x, kernel)


def _conv_transpose4x4s2_hybrid_bwd(precision, residuals, g):
  x, kernel = residuals
  # The input gradient of a transposed conv is the strided conv of g with the
  # in/out-swapped kernel: XLA-native, no copies.
  dx = conv4x4s2_xla(g, kernel.transpose(0, 1, 3, 2), precision)
  if phases_are_faster(x, kernel):
    # The per-phase kernel gradients: XLA lays out x (the smaller operand) and
    # strided slices of g for them, instead of transposing all of g to
    # channel-major order (slow on XLA:CPU when fused with g's producer).
    dk = jax.vjp(lambda k: conv_transpose4x4s2_phases(x, k, precision), kernel)[1](g)[0]
  else:
    # That of the strided conv with the roles of input and cotangent swapped.
    dk = _conv_kernel_grad_xla(g, x, precision).transpose(0, 1, 3, 2)
  return dx, dk


_conv_transpose4x4s2_hybrid.defvjp(_conv_transpose4x4s2_hybrid_fwd,
                                   _conv_transpose4x4s2_hybrid_bwd)


def conv_transpose4x4s2_hybrid(x, kernel, precision=None):
  """ConvTranspose2d(k=4, s=2, p=1): custom VJP with XLA strided convs for the gradients.

  The forward pass is `conv_transpose4x4s2_phases` where that is faster
  (`phases_are_faster`), else `conv_transpose4x4s2_subpixel`.
  """
  return _conv_transpose4x4s2_hybrid(x, kernel, precision)


def conv3x3_xla(x, kernel, precision=None):
  """Conv2d(k=3, s=1, p=1) as one `lax` convolution."""
  return lax.conv_general_dilated(
      x, kernel, window_strides=(1, 1), padding=((1, 1), (1, 1)),
      dimension_numbers=_DN, precision=precision)


def _conv3x3_kernel_grad(x, g, precision):
  """d/dkernel of conv3x3_xla(x, kernel) for the output cotangent g."""
  kernel = jnp.zeros((3, 3, x.shape[-1], g.shape[-1]), x.dtype)
  return jax.vjp(lambda k: conv3x3_xla(x, k, precision), kernel)[1](g)[0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv3x3_hybrid(x, kernel, precision=None):
  """Conv2d(k=3, s=1, p=1): XLA's conv, with the kernel gradient's operands chosen by size.

  XLA:CPU computes a kernel gradient as a convolution that needs the input x
  in channel-major order (a slow transpose when fused with x's producer) and
  g in a cheaper block order. The same gradient is that of a conv of g with
  x as cotangent (taps flipped, in and out swapped), so where x has more
  channels than g (an image layer, 64 -> 3: 13.6 vs 2.2 ms; NOTES.md) the
  roles are swapped.
  """
  return conv3x3_xla(x, kernel, precision)


def _conv3x3_hybrid_fwd(x, kernel, precision):
  return conv3x3_xla(x, kernel, precision), (x, kernel)


def _conv3x3_hybrid_bwd(precision, residuals, g):
  x, kernel = residuals
  dx = jax.vjp(lambda x: conv3x3_xla(x, kernel, precision), x)[1](g)[0]
  if x.shape[-1] > g.shape[-1]:
    dk = _conv3x3_kernel_grad(g, x, precision)[::-1, ::-1].transpose(0, 1, 3, 2)
  else:
    dk = _conv3x3_kernel_grad(x, g, precision)
  return dx, dk


conv3x3_hybrid.defvjp(_conv3x3_hybrid_fwd, _conv3x3_hybrid_bwd)


# The forms a layer's `impl` chooses: 'hybrid' (fast on CPU) or 'xla' (plain
# lax convolutions, which cuDNN and the TPU compiler run natively). The
# sub-pixel and per-phase forms above are building blocks of 'hybrid'.
CONV3X3 = {'xla': conv3x3_xla, 'hybrid': conv3x3_hybrid}
CONV = {'xla': conv4x4s2_xla, 'hybrid': conv4x4s2_hybrid}
CONV_TRANSPOSE = {'xla': conv_transpose4x4s2_xla, 'hybrid': conv_transpose4x4s2_hybrid}
