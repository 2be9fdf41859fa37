"""Latent-space tools: interpolation strips, numbered sample sheets, z arithmetic."""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

from dcgan_jax.data import images as images_lib
from dcgan_jax.models import networks


def make_generate_fn(generator, g_variables):
  """Returns a jitted `z -> images` for a trained generator in eval mode.

  Args:
    generator: the flax generator module from `models.create_models`.
    g_variables: {'params': ..., 'batch_stats': ...} of the generator.

  Returns:
    A pure function mapping z [B, latent_dim] to images [B, H, W, C] in [-1, 1].
  """
  return functools.partial(networks.jit_generate(generator.apply), g_variables)


def batched_apply(fn, x, batch_size=256):
  """Runs `fn` over the leading axis of x in fixed-size chunks; returns numpy.

  The last chunk is zero-padded to `batch_size` so a jitted `fn` compiles once
  whatever the number of inputs (inputs no larger than one chunk run as is).
  """
  x = np.asarray(x, np.float32)
  outputs = []
  for start in range(0, len(x), batch_size):
    chunk = x[start:start + batch_size]
    n = len(chunk)
    if n < batch_size and len(x) > batch_size:
      chunk = np.concatenate([chunk, np.zeros((batch_size - n,) + chunk.shape[1:], chunk.dtype)])
    outputs.append(np.asarray(fn(jnp.asarray(chunk)))[:n])
  return np.concatenate(outputs)


def generate(generate_fn, z, batch_size=256):
  """G(z) as a numpy array, generated in chunks of `batch_size`."""
  return batched_apply(generate_fn, z, batch_size)


def sample_latents(key, num, latent_dim, dist='normal'):
  """Draws `num` latents from the prior the models are trained with.

  The prior of `networks.sample_latent`, under this module's name for the tools.

  Args:
    key: a jax PRNG key.
    num: number of latents.
    latent_dim: dimension of z (`config.model.latent_dim`).
    dist: 'normal' (N(0, 1)) or 'uniform' (U(-1, 1)), as `config.model.latent_dist`.

  Returns:
    A float32 [num, latent_dim] array.
  """
  return networks.sample_latent(key, num, latent_dim, dist)


def lerp(z0, z1, t):
  """Linear interpolation (1 - t) z0 + t z1; t broadcasts against z's last axis."""
  t = jnp.asarray(t)[..., None]
  return (1.0 - t) * z0 + t * z1


def slerp(z0, z1, t, eps=1e-6):
  """Spherical interpolation: the direction moves along the great circle.

  The direction turns from z0 to z1 at a constant rate (the angle to z0 is
  t * w, w the angle between them) and the norm moves linearly from |z0| to
  |z1|. For endpoints of equal norm this is the usual
  sin((1 - t) w) / sin(w) z0 + sin(t w) / sin(w) z1 (Shoemake 1985; White 2016
  for GAN latents), which keeps every point at the endpoints' norm, where
  Gaussian z live; linear interpolation cuts through the low-density region
  near the origin. Applied to endpoints of unequal norm that formula does not
  turn at a constant rate, hence the separate norm. The endpoints are exact.

  Where sin(w) < eps, or an endpoint is zero, the great circle is undefined
  (antiparallel) or not worth the rounding error (parallel), and `lerp` is
  used. Both branches are finite, so the function is safe under jit and grad.

  Args:
    z0, z1: [..., D] latents (broadcastable).
    t: scalar or array of interpolation weights in [0, 1]; broadcasts against
      the leading axes of z.
    eps: threshold on sin(w) below which `lerp` is used.

  Returns:
    The interpolated latents, shape broadcast(z0, z1, t[..., None]).
  """
  z0, z1 = jnp.asarray(z0), jnp.asarray(z1)
  t = jnp.asarray(t, z0.dtype)[..., None]
  tiny = jnp.finfo(z0.dtype).tiny
  norm0 = jnp.linalg.norm(z0, axis=-1, keepdims=True)
  norm1 = jnp.linalg.norm(z1, axis=-1, keepdims=True)
  zero_end = (norm0 < tiny) | (norm1 < tiny)
  u0 = z0 / jnp.where(zero_end, 1.0, norm0)
  u1 = z1 / jnp.where(zero_end, 1.0, norm1)
  # w = 2 atan2(|u0 - u1|, |u0 + u1|) is accurate at every angle, where
  # arccos(u0 . u1) loses half the digits near 0 and pi. The squared norms are
  # replaced by 1 before the sqrt where they vanish, so no branch has a nan
  # gradient (sqrt'(0) = inf) for jnp.where to leak.
  diff2 = jnp.sum((u0 - u1)**2, axis=-1, keepdims=True)
  sum2 = jnp.sum((u0 + u1)**2, axis=-1, keepdims=True)
  vanishing = (diff2 < tiny) | (sum2 < tiny)
  omega = 2.0 * jnp.arctan2(jnp.sqrt(jnp.where(vanishing, 1.0, diff2)),
                            jnp.sqrt(jnp.where(vanishing, 1.0, sum2)))
  sin_omega = jnp.sin(omega)
  degenerate = zero_end | vanishing | (sin_omega < eps)
  safe_sin = jnp.where(degenerate, 1.0, sin_omega)
  norm = (1.0 - t) * norm0 + t * norm1
  # Coefficients first: at t = 0 or 1 they are exactly 1 and 0 (x / x == 1 in
  # IEEE arithmetic), so the endpoints come back bit-exact.
  coef0 = jnp.sin((1.0 - t) * omega) / safe_sin * (norm / jnp.where(zero_end, 1.0, norm0))
  coef1 = jnp.sin(t * omega) / safe_sin * (norm / jnp.where(zero_end, 1.0, norm1))
  spherical = coef0 * z0 + coef1 * z1
  linear = (1.0 - t) * z0 + t * z1
  return jnp.where(degenerate, linear, spherical)


def interpolate(z0, z1, num_steps, method='slerp'):
  """Returns [num_steps, D] latents from z0 to z1 inclusive (or [R, num_steps, D]).

  Args:
    z0, z1: [D] or [R, D] latents; with R rows each row is its own path.
    num_steps: number of points on each path, endpoints included.
    method: 'slerp' or 'lerp'.
  """
  if method not in ('slerp', 'lerp'):
    raise ValueError(f'Unknown interpolation method {method!r}; expected slerp or lerp.')
  z0, z1 = jnp.asarray(z0), jnp.asarray(z1)
  t = jnp.linspace(0.0, 1.0, num_steps, dtype=z0.dtype)
  # Put the step axis just before the feature axis so rows stay leading.
  z0, z1 = z0[..., None, :], z1[..., None, :]
  fn = slerp if method == 'slerp' else lerp
  return fn(z0, z1, t)


def interpolation_strip(generate_fn, z0, z1, num_steps=8, method='slerp', path=None):
  """Generates the images along z0 -> z1 and tiles them as one strip per row.

  Args:
    generate_fn: pure `z [B, D] -> images [B, H, W, C]` in [-1, 1].
    z0, z1: [D] or [R, D] endpoints; R rows give an R x num_steps grid.
    num_steps: images per row, endpoints included.
    method: 'slerp' or 'lerp'.
    path: if given, the strip is written there as PNG.

  Returns:
    The uint8 strip (HWC).
  """
  z = interpolate(z0, z1, num_steps, method)
  images = generate(generate_fn, z.reshape(-1, z.shape[-1]))
  strip = images_lib.make_grid(images, ncols=num_steps)
  if path:
    images_lib.save_image(strip, path)
  return strip


def _font(size):
  try:
    return ImageFont.load_default(size=size)
  except TypeError:  # Pillow without FreeType: the fixed bitmap font.
    return ImageFont.load_default()


def numbered_sheet(images, ncols=None, min_tile=64, padding=2):
  """Tiles images into a grid with each tile's index drawn in its corner.

  Small tiles (28 px digits) are upscaled by an integer factor (nearest
  neighbour, so pixels stay sharp) until a tile is at least `min_tile` px wide,
  so the index stays legible and covers little of the image.

  Args:
    images: [N, H, W, C] uint8 or float in [-1, 1].
    ncols: tiles per row; default ceil(sqrt(N)).
    min_tile: minimum tile side after upscaling, in pixels.
    padding: pixels between tiles.

  Returns:
    An RGB uint8 [H', W', 3] array.
  """
  images = images_lib.to_uint8(images)
  if images.shape[-1] == 1:
    images = np.repeat(images, 3, axis=-1)
  scale = max(1, -(-min_tile // images.shape[2]))
  images = images.repeat(scale, axis=1).repeat(scale, axis=2)
  n, h, w, _ = images.shape
  grid = images_lib.make_grid(images, ncols=ncols, padding=padding)
  ncols = ncols or int(np.ceil(np.sqrt(n)))
  canvas = Image.fromarray(grid)
  draw = ImageDraw.Draw(canvas)
  font = _font(max(10, w // 5))
  for i in range(n):
    row, col = divmod(i, ncols)
    left, top = padding + col * (w + padding), padding + row * (h + padding)
    box = draw.textbbox((left + 1, top), str(i), font=font)
    # A dark box behind white text reads on both light and dark samples.
    draw.rectangle((box[0] - 1, box[1] - 1, box[2] + 1, box[3] + 1), fill=(0, 0, 0))
    draw.text((left + 1, top), str(i), fill=(255, 255, 255), font=font)
  return np.asarray(canvas)


def save_latents(path, z):
  """Writes latents to an .npz file (key 'z'), creating parent folders."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  np.savez(path, z=np.asarray(z))
  return path


def load_latents(path):
  """Reads latents written by `save_latents`."""
  with np.load(path) as data:
    return data['z']


def sample_sheet(generate_fn, z, path=None, ncols=None):
  """Renders a numbered sheet of G(z) so a user can pick latents by index.

  Args:
    generate_fn: pure `z -> images` in [-1, 1].
    z: [N, D] latents; tile i shows G(z[i]).
    path: if given, writes the sheet to `path` (PNG) and z next to it as
      `<path without extension>.npz`, so indices picked on the sheet can be
      resolved later (e.g. by `python -m dcgan_jax.analysis --what=arithmetic`).
    ncols: tiles per row.

  Returns:
    (sheet, z): the uint8 RGB sheet and the latents as numpy.
  """
  z = np.asarray(z)
  sheet = numbered_sheet(generate(generate_fn, z), ncols=ncols)
  if path:
    images_lib.save_image(sheet, path)
    save_latents(os.path.splitext(path)[0] + '.npz', z)
  return sheet, z


def group_mean(z, indices):
  """Mean of the latents z[indices] (a group picked on a numbered sheet)."""
  indices = np.asarray(indices, np.int64)
  if indices.ndim != 1 or not len(indices):
    raise ValueError(f'Need a non-empty list of indices, got {indices!r}.')
  if indices.min() < -len(z) or indices.max() >= len(z):
    raise IndexError(f'Indices {indices.tolist()} out of range for {len(z)} latents.')
  return np.asarray(z)[indices].mean(axis=0)


def latent_arithmetic(z, a_indices, b_indices, c_indices):
  """Returns mean(z[A]) - mean(z[B]) + mean(z[C]).

  Radford et al. (2016) average about three latents per concept because single
  latents gave unstable results, e.g. smiling woman - neutral woman + neutral
  man = smiling man.
  """
  return group_mean(z, a_indices) - group_mean(z, b_indices) + group_mean(z, c_indices)


def arithmetic_grid(generate_fn, z, a_indices, b_indices, c_indices, key=None,
                    num_variations=8, noise_scale=0.25, path=None):
  """Renders the members of A, B, C, their mean images and the result.

  Rows 1-3 show G(z) for each member of A, B and C followed by G(mean of the
  group). The last row shows G(result) and `num_variations - 1` images of
  G(result + U(-noise_scale, noise_scale) noise), the way Radford et al. show
  that the result is a region of latent space, not one lucky point.

  Args:
    generate_fn: pure `z -> images` in [-1, 1].
    z: [N, D] latents of a numbered sheet.
    a_indices, b_indices, c_indices: lists of indices into z.
    key: PRNG key for the noise; default PRNGKey(0).
    num_variations: images in the result row (the first is noise-free).
    noise_scale: half-width of the uniform noise added to the result.
    path: if given, the grid is written there as PNG.

  Returns:
    A dict with 'result_z' [D], 'result_images' [num_variations, H, W, C] and
    'grid' (uint8 HWC; rows padded with white tiles to equal length).
  """
  z = np.asarray(z, np.float32)
  groups = [np.asarray(g, np.int64) for g in (a_indices, b_indices, c_indices)]
  result_z = latent_arithmetic(z, *groups)
  key = jax.random.PRNGKey(0) if key is None else key
  noise = np.asarray(jax.random.uniform(key, (num_variations - 1, z.shape[-1]), jnp.float32,
                                        -noise_scale, noise_scale))
  result_batch = np.concatenate([result_z[None], result_z[None] + noise])
  rows = [np.concatenate([z[g], group_mean(z, g)[None]]) for g in groups]
  rows.append(result_batch)
  lengths = [len(r) for r in rows]
  # One generate call for all rows; split back afterwards.
  all_images = generate(generate_fn, np.concatenate(rows))
  ncols = max(lengths)
  blank = np.ones_like(all_images[:1])  # White in [-1, 1].
  tiles, start = [], 0
  for length in lengths:
    row = all_images[start:start + length]
    start += length
    tiles.append(np.concatenate([row] + [blank] * (ncols - length)))
  grid = images_lib.make_grid(np.concatenate(tiles), ncols=ncols)
  if path:
    images_lib.save_image(grid, path)
  return {'result_z': result_z, 'result_images': all_images[-num_variations:], 'grid': grid}
