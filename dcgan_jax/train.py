"""The GAN train step (pure, pmapped) and the training loop around it.

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
import os
import time
from typing import Any

from absl import logging
from clu import metric_writers
from clu import periodic_actions
import flax
from flax import jax_utils
from flax.training import train_state
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import optax

from dcgan_jax import checkpoints
from dcgan_jax import images as image_utils
from dcgan_jax import input_pipeline
from dcgan_jax import losses
from dcgan_jax import models


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


def train_step(g_state, d_state, batch, key, *, config, axis_name='batch'):
  """One D update and one G update.

  Args:
    g_state: the generator's TrainState.
    d_state: the discriminator's TrainState.
    batch: {'image': float32 [B, H, W, C] in [-1, 1]}, this device's share.
    key: the run's base PRNG key (the same on every device).
    config: the run's config (static).
    axis_name: the pmap axis to average over.

  Returns:
    (g_state, d_state, metrics), metrics averaged over devices.
  """
  key = jax.random.fold_in(key, lax.axis_index(axis_name))
  key = jax.random.fold_in(key, g_state.step)
  d_z_key, g_z_key = jax.random.split(key)
  d_loss_fn, g_loss_fn = losses.get_losses(config.loss.type)
  real_images = batch['image']
  batch_size = real_images.shape[0]
  # With batch norm in D, real and generated batches get their own statistics
  # (as in the DCGAN reference); otherwise one forward pass over both is the
  # same function and cheaper.
  separate_d_passes = config.model.d_norm == 'batch'

  # --- Discriminator update.
  fake_images, _ = g_state.apply_fn(
      {'params': g_state.params, 'batch_stats': g_state.batch_stats},
      sample_latent(d_z_key, batch_size, config), train=True, mutable=['batch_stats'])
  fake_images = lax.stop_gradient(fake_images)

  def d_objective(d_params):
    variables = {'params': d_params, 'batch_stats': d_state.batch_stats}
    if separate_d_passes:
      real_logits, updates = d_state.apply_fn(
          variables, real_images, train=True, update_stats=True, mutable=['batch_stats'])
      fake_logits, updates = d_state.apply_fn(
          {'params': d_params, **updates}, fake_images, train=True, update_stats=False,
          mutable=['batch_stats'])
    else:
      logits, updates = d_state.apply_fn(
          variables, jnp.concatenate([real_images, fake_images]), train=True,
          update_stats=True, mutable=['batch_stats'])
      real_logits, fake_logits = logits[:batch_size], logits[batch_size:]
    loss = d_loss_fn(real_logits, fake_logits, 1.0, 0.0)
    return loss, (updates['batch_stats'], real_logits, fake_logits)

  (d_loss, (d_batch_stats, real_logits, fake_logits)), d_grads = jax.value_and_grad(
      d_objective, has_aux=True)(d_state.params)
  d_grads = lax.pmean(d_grads, axis_name)
  d_state = d_state.apply_gradients(
      grads=d_grads, batch_stats=lax.pmean(d_batch_stats, axis_name))

  # --- Generator update, with a fresh z.
  def g_objective(g_params):
    fake_images, g_updates = g_state.apply_fn(
        {'params': g_params, 'batch_stats': g_state.batch_stats},
        sample_latent(g_z_key, batch_size, config), train=True, mutable=['batch_stats'])
    fake_logits, _ = d_state.apply_fn(
        {'params': d_state.params, 'batch_stats': d_state.batch_stats}, fake_images,
        train=True, update_stats=False, mutable=['batch_stats'])
    return g_loss_fn(fake_logits), g_updates['batch_stats']

  (g_loss, g_batch_stats), g_grads = jax.value_and_grad(
      g_objective, has_aux=True)(g_state.params)
  g_grads = lax.pmean(g_grads, axis_name)
  g_state = g_state.apply_gradients(
      grads=g_grads, batch_stats=lax.pmean(g_batch_stats, axis_name))
  if config.ema_decay > 0:
    g_state = g_state.replace(ema_params=optax.incremental_update(
        g_state.params, g_state.ema_params, 1.0 - config.ema_decay))

  metrics = {'d_loss': d_loss, 'g_loss': g_loss, **d_metrics(real_logits, fake_logits)}
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


def fixed_latents(config):
  """The z of the sample grids: the same for every step and every resume of a run."""
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0x5A3B1E)
  return sample_latent(key, config.num_sample_images, config)


def image_shape(config):
  return (config.image_size, config.image_size, input_pipeline.num_channels(config))


def _initial_states(config):
  """Fresh states from config.seed; the step key is derived from the same seed."""
  init_key, step_key = jax.random.split(jax.random.PRNGKey(config.seed))
  g_state, d_state = create_train_states(config, init_key, image_shape(config))
  return g_state, d_state, step_key


def restore_generator_and_discriminator(config, workdir, which='latest'):
  """(g_variables, d_variables, step) of a run's checkpoint ('latest' or 'best')."""
  g_state, d_state, _ = _initial_states(config)
  manager = checkpoints.create_manager(workdir, which, config)
  (g_state, d_state), step = checkpoints.restore(manager, (g_state, d_state))
  if step is None:
    raise FileNotFoundError(f'No {which} checkpoint under {manager.directory}.')
  return generator_variables(g_state), {'params': d_state.params,
                                        'batch_stats': d_state.batch_stats}, step


def write_samples(writer, workdir, step, generate, g_state, z):
  """The fixed-z sample grid: a PNG under workdir/samples and an image summary."""
  images = np.asarray(generate(generator_variables(g_state), z))
  grid = image_utils.make_grid(images)
  if jax.process_index() == 0:
    image_utils.save_image(grid, os.path.join(workdir, 'samples', f'step_{step:07d}.png'))
  writer.write_images(step, {'samples': grid[None]})


def train_and_evaluate(config, workdir):
  """Trains for config.num_train_steps, resuming from workdir's latest checkpoint.

  Returns:
    The final (g_state, d_state), unreplicated.
  """
  writer = metric_writers.create_default_writer(
      workdir, just_logging=jax.process_index() > 0)
  g_state, d_state, step_key = _initial_states(config)
  manager = checkpoints.create_manager(workdir, 'latest', config)
  (g_state, d_state), restored_step = checkpoints.restore(manager, (g_state, d_state))
  start_step = int(restored_step or 0)
  if restored_step is not None:
    logging.info('Resumed from the checkpoint of step %d in %s.', start_step, manager.directory)
  if start_step == 0:
    writer.write_hparams(flax.traverse_util.flatten_dict(config.to_dict(), sep='.'))

  train_iter = input_pipeline.create_train_iter(config, start_step)
  p_train_step = make_p_train_step(config)
  generate = make_generate_fn(g_state)
  sample_z = fixed_latents(config)
  g_state_repl, d_state_repl = jax_utils.replicate((g_state, d_state))
  step_key_repl = jax_utils.replicate(step_key)

  report_progress = periodic_actions.ReportProgress(
      num_train_steps=config.num_train_steps, writer=writer)
  hooks = [report_progress]
  train_metrics = []
  logging.info('Training from step %d to %d.', start_step, config.num_train_steps)
  step = start_step
  for step in range(start_step + 1, config.num_train_steps + 1):
    with jax.profiler.StepTraceAnnotation('train', step_num=step):
      batch = next(train_iter)
      g_state_repl, d_state_repl, metrics = p_train_step(
          g_state_repl, d_state_repl, batch, step_key_repl)
    train_metrics.append(metrics)
    for hook in hooks:
      hook(step)
    is_last = step == config.num_train_steps

    if step % config.log_every_steps == 0 or is_last:
      # The only host sync of the loop: a mean over the steps since the last log.
      fetched = jax.device_get(train_metrics)
      summary = {k: float(np.mean([m[k][0] for m in fetched])) for k in fetched[0]}
      writer.write_scalars(step, summary)
      train_metrics = []

    if step % config.sample_every_steps == 0 or is_last:
      write_samples(writer, workdir, step, generate, jax_utils.unreplicate(g_state_repl),
                    sample_z)

    if step % config.checkpoint_every_steps == 0 or is_last:
      checkpoints.save(manager, step, jax_utils.unreplicate((g_state_repl, d_state_repl)))
    writer.flush()

  checkpoints.wait(manager)
  writer.flush()
  return jax_utils.unreplicate((g_state_repl, d_state_repl))
