"""The training loop around `gan_step.train_step`, and the evaluation of runs.

`train_and_evaluate` resumes from the run's latest intact checkpoint, feeds
every local device, writes metrics, sample grids and checkpoints, evaluates
FID/KID(/IS) periodically and stops cleanly on SIGTERM/SIGINT or divergence.
`evaluate_checkpoints` scores a finished run's checkpoints without training.
"""

import os

from absl import logging
from clu import metric_writers
from clu import periodic_actions
import flax
from flax import jax_utils
import jax
import jax.numpy as jnp
import numpy as np

from dcgan_jax import checkpoints
from dcgan_jax import divergence
from dcgan_jax import gan_step
from dcgan_jax import images as image_utils
from dcgan_jax import input_pipeline
from dcgan_jax import preemption


def fixed_latents(config):
  """The z of the sample grids: the same for every step and every resume of a run."""
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0x5A3B1E)
  return gan_step.sample_latent(key, config.num_sample_images, config)


def image_shape(config):
  return (config.image_size, config.image_size, input_pipeline.num_channels(config))


def _initial_states(config):
  """Fresh states from config.seed; the step key is derived from the same seed."""
  init_key, step_key = jax.random.split(jax.random.PRNGKey(config.seed))
  g_state, d_state = gan_step.create_train_states(config, init_key, image_shape(config))
  return g_state, d_state, step_key


def restore_generator_and_discriminator(config, workdir, which='latest'):
  """(g_variables, d_variables, step) of a run's checkpoint ('latest' or 'best')."""
  g_state, d_state, _ = _initial_states(config)
  manager = checkpoints.create_manager(workdir, which, config)
  (g_state, d_state), step = checkpoints.restore(manager, (g_state, d_state))
  if step is None:
    raise FileNotFoundError(f'No {which} checkpoint under {manager.directory}.')
  return gan_step.generator_variables(g_state), {'params': d_state.params,
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
    z = gan_step.sample_latent(jax.random.fold_in(key, i),
                               min(batch_size, num_images - start), config)
    yield np.asarray(generate(variables, z))


def evaluate(config, g_state, evaluator, reference):
  """FID/KID(/IS) of eval_num_samples images of G (its EMA params when kept)."""
  generate = gan_step.make_generate_fn(g_state)
  images = generated_images(generate, gan_step.generator_variables(g_state), config,
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
  images = np.asarray(generate(gan_step.generator_variables(g_state), z))
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
  p_train_step = gan_step.make_p_train_step(config)
  generate = gan_step.make_generate_fn(g_state)
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
