"""What the seed studies add around D: label smoothing, instance noise, augmentation.

Pure functions of a key, the images and the config, called inside the train
step; each is the identity (or the plain 1/0 targets) when switched off.
"""

import jax
import jax.numpy as jnp

LABEL_SMOOTHINGS = ('none', 'one_sided', 'random')  # config.loss.label_smoothing


def d_targets(key, batch_size, config, real_label=None):
  """D's targets for real and generated images: 1/0, one-sided smoothed, or random ranges.

  `real_label` (a traced value, e.g. a replica's) stands in for config.loss.real_label.
  """
  smoothing = config.loss.label_smoothing
  if smoothing == 'none':
    return 1.0, 0.0
  if smoothing == 'one_sided':
    return config.loss.real_label if real_label is None else real_label, 0.0
  if smoothing == 'random':
    real_key, fake_key = jax.random.split(key)
    (real_lo, real_hi), (fake_lo, fake_hi) = config.loss.real_label_range, config.loss.fake_label_range
    return (jax.random.uniform(real_key, (batch_size,), minval=real_lo, maxval=real_hi),
            jax.random.uniform(fake_key, (batch_size,), minval=fake_lo, maxval=fake_hi))
  raise ValueError(f'Unknown loss.label_smoothing {smoothing!r}; choose one of '
                   f'{LABEL_SMOOTHINGS}.')


def instance_noise_std(step, config, start_std=None):
  """The std of the noise added to D's inputs at `step`: linear decay to 0, or constant.

  `start_std` (a traced value, e.g. a replica's) stands in for config.instance_noise.
  """
  start_std = config.instance_noise if start_std is None else start_std
  if config.instance_noise_decay_steps > 0:
    return start_std * jnp.maximum(0.0, 1.0 - step / config.instance_noise_decay_steps)
  return jnp.asarray(start_std, jnp.float32)


def add_instance_noise(key, images, step, config, start_std=None):
  """Images + N(0, std(step)^2) noise (Sonderby et al. 2017), when instance noise is on."""
  if config.instance_noise <= 0:  # Off is structure: no noise is drawn at all.
    return images
  return images + instance_noise_std(step, config, start_std) * jax.random.normal(
      key, images.shape)


def rotate_images(images, angles):
  """Rotates each NHWC image by its angle (radians) about the centre, as scipy.ndimage.rotate.

  Every output pixel samples its source bilinearly; outside the image the edge
  is repeated (as scipy.ndimage.rotate with mode='nearest').
  """
  _, h, w, _ = images.shape
  ys, xs = jnp.meshgrid(jnp.arange(h) - (h - 1) / 2, jnp.arange(w) - (w - 1) / 2, indexing='ij')

  def rotate(image, angle):
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    src_y = cos * ys + sin * xs + (h - 1) / 2
    src_x = -sin * ys + cos * xs + (w - 1) / 2
    channel = lambda c: jax.scipy.ndimage.map_coordinates(c, [src_y, src_x], order=1,
                                                          mode='nearest')
    return jax.vmap(channel, in_axes=-1, out_axes=-1)(image)

  return jax.vmap(rotate)(images, angles)


def augment(key, images, config):
  """Random horizontal flips and small rotations of D's real images (when switched on)."""
  flip_key, angle_key = jax.random.split(key)
  n = images.shape[0]
  if config.augment.flip:
    flip = jax.random.bernoulli(flip_key, 0.5, (n, 1, 1, 1))
    images = jnp.where(flip, images[:, :, ::-1], images)
  if config.augment.rotate_degrees > 0:
    max_angle = jnp.deg2rad(config.augment.rotate_degrees)
    images = rotate_images(
        images, jax.random.uniform(angle_key, (n,), minval=-max_angle, maxval=max_angle))
  return images
