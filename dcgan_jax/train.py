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
from dcgan_jax import divergence
from dcgan_jax import images as image_utils
from dcgan_jax import input_pipeline
from dcgan_jax import losses
from dcgan_jax import models
from dcgan_jax import preemption
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
        logits, upd = apply_d(params, batch_stats, fake_images, True, dropout_key)
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


def make_evaluator(config):
  """The FID/KID/IS evaluator of `config.eval_feature_extractor` (loads its weights)."""
  from dcgan_jax.evaluation import evaluator as evaluator_lib  # pylint: disable=g-import-not-at-top
  return evaluator_lib.Evaluator(extractor=config.eval_feature_extractor, seed=config.seed)


def reference_stats(evaluator, config):
  """Statistics of the first eval_num_samples training images (cached on disk)."""
  spec = input_pipeline.get_spec(config.dataset)
  num = config.eval_num_samples
  key = f'{spec.tfds_name}/{spec.train_split}/{config.image_size}px'
  return evaluator.reference_stats(key, lambda: input_pipeline.eval_images(config, num), num)


def generated_images(generate, variables, config, num_images, batch_size=250):
  """Yields `num_images` generated images in batches, from a z fixed per run.

  Every evaluation of a run scores the same z, so changes in FID come from
  the generator alone.
  """
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0xE7A1)
  for i, start in enumerate(range(0, num_images, batch_size)):
    z = sample_latent(jax.random.fold_in(key, i), min(batch_size, num_images - start), config)
    yield np.asarray(generate(variables, z))


def evaluate(config, g_state, evaluator, reference):
  """FID/KID(/IS) of eval_num_samples images of G (its EMA params when kept)."""
  generate = make_generate_fn(g_state)
  images = generated_images(generate, generator_variables(g_state), config,
                            config.eval_num_samples)
  scores = evaluator.evaluate(images, reference, config.eval_num_samples)
  return {k: float(v) for k, v in scores.items() if k != 'num_samples'}


def evaluate_checkpoints(config, workdir):
  """Evaluates a finished run's latest and best checkpoints without training.

  Returns:
    {'latest': {'step': s, 'fid': ...}, 'best': {...}} for the checkpoints present.
  """
  evaluator = make_evaluator(config)
  reference = reference_stats(evaluator, config)
  writer = metric_writers.create_default_writer(
      os.path.join(workdir, 'evaluate'), just_logging=jax.process_index() > 0)
  g_state, d_state, _ = _initial_states(config)
  results = {}
  for which in ('latest', 'best'):
    manager = checkpoints.create_manager(workdir, which, config)
    (g, _), step = checkpoints.restore(manager, (g_state, d_state))
    if step is None:
      logging.info('No %s checkpoint in %s.', which, manager.directory)
      continue
    scores = evaluate(config, g, evaluator, reference)
    logging.info('%s checkpoint (step %d): %s', which, step,
                 ', '.join(f'{k}={v:.4g}' for k, v in scores.items()))
    writer.write_scalars(step, {f'{which}_{k}': v for k, v in scores.items()})
    results[which] = {'step': int(step), **scores}
  writer.flush()
  if not results:
    raise checkpoints.CheckpointError(f'No checkpoint to evaluate under {workdir}.')
  return results


def write_samples(writer, workdir, step, generate, g_state, z):
  """The fixed-z sample grid: a PNG under workdir/samples and an image summary."""
  images = np.asarray(generate(generator_variables(g_state), z))
  grid = image_utils.make_grid(images)
  if jax.process_index() == 0:
    image_utils.save_image(grid, os.path.join(workdir, 'samples', f'step_{step:07d}.png'))
  writer.write_images(step, {'samples': grid[None]})


def _restore_or_init(manager, config):
  """(g_state, d_state, step, rollbacks, base step key): the latest intact checkpoint or step 0."""
  g_state, d_state, base_key = _initial_states(config)
  # Host (numpy) copies as the target: every process restores the same values
  # the same way, and nothing is tied to one process's devices.
  (g_state, d_state), step = checkpoints.restore(manager, checkpoints.to_host((g_state, d_state)))
  if step is None:
    return g_state, d_state, 0, 0, base_key
  rollbacks = int(checkpoints.saved_metadata(manager, step).get('rollbacks', 0))
  return g_state, d_state, int(step), rollbacks, base_key


def _poison(batch):
  """The batch times NaN (config.debug_nan_at_step): a divergence on demand, for tests."""
  return jax.pmap(lambda b: jax.tree.map(lambda x: x * jnp.nan, b))(batch)


def train_and_evaluate(config, workdir):
  """Trains for config.num_train_steps, resuming from workdir's latest checkpoint.

  SIGTERM/SIGINT stop the run after the current step with a checkpoint
  (`preemption`); non-finite losses or parameters stop it or roll it back
  (`divergence`, config.divergence); a non-finite state is never saved.

  Returns:
    The final (g_state, d_state), unreplicated; their step is lower than
    config.num_train_steps when a signal stopped the run.
  """
  writer = metric_writers.create_default_writer(
      workdir, just_logging=jax.process_index() > 0)
  manager = checkpoints.create_manager(workdir, 'latest', config)
  g_state, d_state, start_step, rollbacks, base_key = _restore_or_init(manager, config)
  if start_step:
    logging.info('Resumed from the checkpoint of step %d in %s.', start_step, manager.directory)
  else:
    writer.write_hparams(flax.traverse_util.flatten_dict(config.to_dict(), sep='.'))

  train_iter = input_pipeline.create_train_iter(config, start_step)
  p_train_step = make_p_train_step(config)
  generate = make_generate_fn(g_state)
  sample_z = fixed_latents(config)
  g_state_repl, d_state_repl = jax_utils.replicate((g_state, d_state))
  step_key_repl = jax_utils.replicate(divergence.step_key(base_key, rollbacks))

  evaluator = reference = None
  best_manager = None
  if config.eval_num_samples > 0:
    evaluator = make_evaluator(config)
    reference = reference_stats(evaluator, config)
    best_manager = checkpoints.create_manager(workdir, 'best', config)

  report_progress = periodic_actions.ReportProgress(
      num_train_steps=config.num_train_steps, writer=writer)
  hooks = [report_progress]
  train_metrics = []
  logging.info('Training from step %d to %d.', start_step, config.num_train_steps)
  step = start_step
  with preemption.StopSignals() as stop:
    while step < config.num_train_steps:
      step += 1
      with jax.profiler.StepTraceAnnotation('train', step_num=step):
        batch = next(train_iter)
        if step == config.get('debug_nan_at_step', -1) and rollbacks == 0:
          batch = _poison(batch)  # Once: a rolled-back run gets past it.
        g_state_repl, d_state_repl, metrics = p_train_step(
            g_state_repl, d_state_repl, batch, step_key_repl)
      train_metrics.append(metrics)
      for hook in hooks:
        hook(step)
      is_last = step == config.num_train_steps
      is_log_step = step % config.log_every_steps == 0 or is_last
      # On several processes all agree on the stop step (a collective at log steps).
      stopping = stop.should_stop(step, sync=is_log_step) and not is_last
      wants_eval = evaluator is not None and (is_last or (
          config.eval_every_steps and step % config.eval_every_steps == 0))
      wants_checkpoint = step % config.checkpoint_every_steps == 0 or is_last or stopping

      diverged = None
      if is_log_step:
        # The only host sync of the loop: a mean over the steps since the last log.
        fetched = jax.device_get(train_metrics)
        summary = {k: float(np.mean([m[k][0] for m in fetched])) for k in fetched[0]}
        writer.write_scalars(step, summary)
        train_metrics = []
        if bad := divergence.nonfinite_metrics(summary):
          diverged = ', '.join(bad)
      if not diverged and (wants_checkpoint or wants_eval) and not divergence.states_are_finite(
          (g_state_repl, d_state_repl)):
        diverged = 'the parameters'
      if diverged:
        checkpoints.wait(manager)
        if config.get('divergence') != 'rollback' or rollbacks >= config.get('max_rollbacks', 0):
          writer.flush()
          raise divergence.DivergenceError(divergence.message(
              step, diverged, manager.latest_step(), workdir, config.get('divergence', 'stop')))
        rollbacks += 1
        g_state, d_state, good_step, _, _ = _restore_or_init(manager, config)
        logging.warning('Training diverged at step %d (%s not finite): rollback %d of %d to '
                        'step %d with new random numbers.', step, diverged, rollbacks,
                        config.max_rollbacks, good_step)
        step = good_step
        g_state_repl, d_state_repl = jax_utils.replicate((g_state, d_state))
        step_key_repl = jax_utils.replicate(divergence.step_key(base_key, rollbacks))
        train_iter = input_pipeline.create_train_iter(config, step)
        train_metrics = []
        continue

      if step % config.sample_every_steps == 0 or is_last:
        write_samples(writer, workdir, step, generate, jax_utils.unreplicate(g_state_repl),
                      sample_z)

      if wants_eval:
        with report_progress.timed('eval'):
          states = jax_utils.unreplicate((g_state_repl, d_state_repl))
          scores = evaluate(config, states[0], evaluator, reference)
          writer.write_scalars(step, scores)
          # Orbax keeps the checkpoint with the lowest FID in best_checkpoint/.
          checkpoints.save(best_manager, step, states, metrics=scores)

      if wants_checkpoint:
        checkpoints.save(manager, step, jax_utils.unreplicate((g_state_repl, d_state_repl)),
                         metadata={'rollbacks': rollbacks})
        writer.flush()
      if stopping:
        logging.warning('Stopped by %s after step %d, with a checkpoint of it in %s; run the '
                        'same command to resume.', stop.received, step, manager.directory)
        break

  checkpoints.wait(manager)
  if best_manager is not None:
    checkpoints.wait(best_manager)
  writer.flush()
  return jax_utils.unreplicate((g_state_repl, d_state_repl))
