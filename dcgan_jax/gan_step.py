"""The GAN train states and the pure, pmapped train step.

`train_step` updates the discriminator on a real and a generated batch, then
the generator on a freshly drawn z. It is a pure function of the two
TrainStates, the batch and a key; under `jax.pmap` gradients, batch statistics
and metrics are averaged over the 'batch' axis, and each device folds its own
index and the step into the key, so no two devices (and no two steps) draw the
same z, and a run is a pure function of `config.seed`.

Which update moves which statistics:
  * D's batch-norm running averages and spectral-norm `u`/`sigma` move only in
    the D update (power iteration once per D update). The G update runs D in
    train mode (batch statistics, as the PyTorch reference does) and discards
    any statistics it computes.
  * G's batch-norm running averages move only in the G update; the generated
    batch of the D update uses batch statistics and leaves them alone.
"""

import functools
from typing import Any

from flax.training import train_state
import jax
from jax import lax
import jax.numpy as jnp
import optax

from dcgan_jax import losses
from dcgan_jax import models
from dcgan_jax import stabilizers


class TrainState(train_state.TrainState):
  """A TrainState with the model's mutable collection and an optional EMA of params."""
  batch_stats: Any = None
  ema_params: Any = None


def sample_latent(key, num, config):
  """z for `num` images: N(0, 1) or U(-1, 1), float32 [num, latent_dim]."""
  shape = (num, config.model.latent_dim)
  if config.model.latent_dist == 'normal':
    return jax.random.normal(key, shape)
  if config.model.latent_dist == 'uniform':
    return jax.random.uniform(key, shape, minval=-1.0, maxval=1.0)
  raise ValueError(f'Unknown model.latent_dist {config.model.latent_dist!r}; '
                   "choose 'normal' or 'uniform'.")


def learning_rate_schedule(base_lr, config):
  """Constant, or stepped down by `optim.lr_decay_factor` at each of `optim.lr_decay_steps`."""
  boundaries = tuple(config.optim.lr_decay_steps)
  if not boundaries:
    return base_lr
  return optax.piecewise_constant_schedule(
      base_lr, {int(step): config.optim.lr_decay_factor for step in boundaries})


def create_optimizers(config):
  """Adam for G and for D with their own learning rates and betas."""
  o = config.optim
  g_tx = optax.adam(learning_rate_schedule(o.g_lr, config), b1=o.g_b1, b2=o.g_b2)
  d_tx = optax.adam(learning_rate_schedule(o.d_lr, config), b1=o.d_b1, b2=o.d_b2)
  return g_tx, d_tx


def create_train_states(config, key, image_shape):
  """Initialises (g_state, d_state) for images of `image_shape` = (H, W, C)."""
  generator, discriminator = models.create_models(config, num_channels=image_shape[-1])
  g_key, d_key = jax.random.split(key)
  z = jnp.zeros((2, config.model.latent_dim), jnp.float32)
  g_variables = generator.init({'params': g_key}, z, train=False)
  x = jnp.zeros((2, *image_shape), jnp.float32)
  d_variables = discriminator.init({'params': d_key}, x, train=False)
  g_tx, d_tx = create_optimizers(config)
  g_state = TrainState.create(
      apply_fn=generator.apply, params=g_variables['params'], tx=g_tx,
      batch_stats=g_variables.get('batch_stats', {}),
      ema_params=g_variables['params'] if config.ema_decay > 0 else None)
  d_state = TrainState.create(
      apply_fn=discriminator.apply, params=d_variables['params'], tx=d_tx,
      batch_stats=d_variables.get('batch_stats', {}))
  return g_state, d_state


def d_metrics(real_logits, fake_logits):
  """What D says of the real and the generated batch."""
  return {
      'd_real': jnp.mean(jax.nn.sigmoid(real_logits)),
      'd_fake': jnp.mean(jax.nn.sigmoid(fake_logits)),
      'd_acc_real': jnp.mean(real_logits > 0),
      'd_acc_fake': jnp.mean(fake_logits < 0),
  }


def step_keys(key, device_index, step, d_steps):
  """The keys of one device's train step: fold in the device, then the step.

  Returns:
    ([d_steps x (z, label, augment, noise, dropout) keys of the D updates],
     (z, noise, dropout) keys of the G update).
  """
  key = jax.random.fold_in(jax.random.fold_in(key, device_index), step)
  d_key, *g_keys = jax.random.split(key, 4)
  d_keys = [tuple(jax.random.split(k, 5)) for k in jax.random.split(d_key, d_steps)]
  return d_keys, tuple(g_keys)


def train_step(g_state, d_state, batch, key, *, config, axis_name='batch'):
  """`config.d_steps` D updates, then one G update.

  Args:
    g_state: the generator's TrainState.
    d_state: the discriminator's TrainState.
    batch: {'image': float32 [d_steps * B, H, W, C] in [-1, 1]}, this device's
      share; each D update takes its own B real images.
    key: the run's base PRNG key (the same on every device).
    config: the run's config (static).
    axis_name: the pmap axis to average over.

  Returns:
    (g_state, d_state, metrics), metrics averaged over devices.
  """
  d_keys, (g_z_key, g_noise_key, g_dropout_key) = step_keys(
      key, lax.axis_index(axis_name), g_state.step, config.d_steps)
  d_loss_fn, g_loss_fn = losses.get_losses(config.loss.type)
  real_loss_fn, fake_loss_fn = losses.d_loss_parts(config.loss.type)
  batch_size = batch['image'].shape[0] // config.d_steps
  step = g_state.step

  def apply_d(params, batch_stats, images, update_stats, dropout_key):
    return d_state.apply_fn(
        {'params': params, 'batch_stats': batch_stats}, images, train=True,
        update_stats=update_stats, mutable=['batch_stats'], rngs={'dropout': dropout_key})

  def d_update(d_state, objective):
    (loss, (batch_stats, logits)), grads = jax.value_and_grad(objective, has_aux=True)(
        d_state.params, d_state.batch_stats)
    d_state = d_state.apply_gradients(grads=lax.pmean(grads, axis_name),
                                      batch_stats=lax.pmean(batch_stats, axis_name))
    return d_state, loss, logits

  # --- Discriminator updates.
  for k in range(config.d_steps):
    z_key, label_key, aug_key, noise_key, dropout_key = d_keys[k]
    real_images = batch['image'][k * batch_size:(k + 1) * batch_size]
    real_images = stabilizers.augment(aug_key, real_images, config)
    fake_images, _ = g_state.apply_fn(
        {'params': g_state.params, 'batch_stats': g_state.batch_stats},
        sample_latent(z_key, batch_size, config), train=True, mutable=['batch_stats'])
    fake_images = lax.stop_gradient(fake_images)
    real_noise_key, fake_noise_key = jax.random.split(noise_key)
    real_images = stabilizers.add_instance_noise(real_noise_key, real_images, step, config)
    fake_images = stabilizers.add_instance_noise(fake_noise_key, fake_images, step, config)
    real_targets, fake_targets = stabilizers.d_targets(label_key, batch_size, config)

    if config.d_separate_real_fake:
      # Two D updates, on the real batch and then on the generated one (as in study 002).
      def real_objective(params, batch_stats):
        logits, upd = apply_d(params, batch_stats, real_images, True, dropout_key)
        return real_loss_fn(logits, real_targets), (upd['batch_stats'], logits)

      def fake_objective(params, batch_stats):
        logits, upd = apply_d(params, batch_stats, fake_images, True,
                              jax.random.fold_in(dropout_key, 1))
        return fake_loss_fn(logits, fake_targets), (upd['batch_stats'], logits)

      d_state, real_loss, real_logits = d_update(d_state, real_objective)
      d_state, fake_loss, fake_logits = d_update(d_state, fake_objective)
      d_loss = real_loss + fake_loss
    else:
      def d_objective(params, batch_stats):
        # Real and generated batches in two passes, as in the DCGAN reference:
        # with batch norm each gets its own statistics, and on CPU two passes
        # are faster than one over their concatenation (experiments/speed).
        # The power iteration runs once, on the real pass; each pass draws its
        # own dropout masks.
        real_logits, upd = apply_d(params, batch_stats, real_images, True, dropout_key)
        fake_logits, upd = apply_d(params, upd['batch_stats'], fake_images, False,
                                   jax.random.fold_in(dropout_key, 1))
        loss = d_loss_fn(real_logits, fake_logits, real_targets, fake_targets)
        return loss, (upd['batch_stats'], (real_logits, fake_logits))

      d_state, d_loss, (real_logits, fake_logits) = d_update(d_state, d_objective)

  # --- Generator update, with a fresh z.
  def g_objective(g_params):
    fake_images, g_updates = g_state.apply_fn(
        {'params': g_params, 'batch_stats': g_state.batch_stats},
        sample_latent(g_z_key, batch_size, config), train=True, mutable=['batch_stats'])
    fake_images = stabilizers.add_instance_noise(g_noise_key, fake_images, step, config)
    fake_logits, _ = apply_d(d_state.params, d_state.batch_stats, fake_images, False,
                             g_dropout_key)
    return g_loss_fn(fake_logits), g_updates['batch_stats']

  (g_loss, g_batch_stats), g_grads = jax.value_and_grad(
      g_objective, has_aux=True)(g_state.params)
  g_state = g_state.apply_gradients(grads=lax.pmean(g_grads, axis_name),
                                    batch_stats=lax.pmean(g_batch_stats, axis_name))
  if config.ema_decay > 0:
    g_state = g_state.replace(ema_params=optax.incremental_update(
        g_state.params, g_state.ema_params, 1.0 - config.ema_decay))

  metrics = {'d_loss': d_loss, 'g_loss': g_loss, **d_metrics(real_logits, fake_logits)}
  if config.instance_noise > 0:
    metrics['instance_noise_std'] = stabilizers.instance_noise_std(step, config)
  return g_state, d_state, lax.pmean(metrics, axis_name)


def make_p_train_step(config):
  """The pmapped train step: p_train_step(g_state, d_state, batch, key), states donated."""
  return jax.pmap(functools.partial(train_step, config=config), axis_name='batch',
                  donate_argnums=(0, 1))


def generator_variables(g_state, use_ema=True):
  """The variables to sample with: the EMA params when the run keeps them."""
  params = g_state.ema_params if use_ema and g_state.ema_params is not None else g_state.params
  return {'params': params, 'batch_stats': g_state.batch_stats}


def make_generate_fn(g_state):
  """A jitted generate(variables, z) -> images in [-1, 1], G in inference mode."""
  return jax.jit(lambda variables, z: g_state.apply_fn(variables, z, train=False))
