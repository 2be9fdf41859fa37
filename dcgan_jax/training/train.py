"""The training loop around `gan_step.train_step`, and the evaluation of runs.

`train_and_evaluate` resumes from the run's latest intact checkpoint, feeds
every local device, writes metrics, sample grids and checkpoints, evaluates
FID/KID(/IS) periodically and stops cleanly on SIGTERM/SIGINT or divergence.
`evaluate_checkpoints` scores a finished run's checkpoints without training.
"""

import dataclasses
import math
import os
from typing import Any

from absl import logging
from clu import metric_writers
from clu import periodic_actions
import flax
from flax import jax_utils
import jax
import jax.numpy as jnp
import numpy as np

from dcgan_jax.training import checkpoints
from dcgan_jax.training import divergence
from dcgan_jax.training import gan_step
from dcgan_jax.data import datasets
from dcgan_jax.data import folder
from dcgan_jax.data import images as image_utils
from dcgan_jax.data import input_pipeline
from dcgan_jax.training import preemption
from dcgan_jax.training import replicas
from dcgan_jax.training import workdir as workdir_lib


def fixed_latents(config):
  """The z of the sample grids: the same for every step and every resume of a run.

  With replicas: [K, n, latent_dim], each replica's single-seed z.
  """
  if config.num_seeds > 1:
    return np.stack([fixed_latents(c) for c in replica_configs(config)])
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0x5A3B1E)
  return gan_step.sample_latent(key, config.num_sample_images, config)


def image_shape(config):
  return (config.image_size, config.image_size, input_pipeline.num_channels(config))


def replica_configs(config):
  """The single-seed config of every replica (replicas.replica_config); [config] when K = 1."""
  if config.num_seeds == 1:
    return [config]
  return [replicas.replica_config(config, i) for i in range(config.num_seeds)]


def _single_initial_states(config):
  init_key, step_key = jax.random.split(jax.random.PRNGKey(config.seed))
  g_state, d_state = gan_step.create_train_states(config, init_key, image_shape(config))
  return g_state, d_state, step_key


def _initial_states(config):
  """Fresh states from config.seed; the step key is derived from the same seed.

  With K = config.num_seeds > 1: each replica's states and key, made exactly as
  the single run of its replica config, stacked on a leading replica axis.
  """
  if config.num_seeds == 1:
    return _single_initial_states(config)
  g_states, d_states, keys = zip(*(_single_initial_states(c) for c in replica_configs(config)))
  return replicas.stack(g_states), replicas.stack(d_states), replicas.stack(keys)


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
  return evaluator_lib.Evaluator(extractor=config.eval_feature_extractor, seed=config.seed,
                                 preprocess=config.eval_preprocess)


def reference_stats(evaluator, config):
  """Statistics of the first eval_num_samples training images (cached on disk)."""
  spec = datasets.get_spec(config.dataset)
  num = config.eval_num_samples
  if spec.source == 'folder':  # The folder's path and content hash: never another's.
    key = folder.reference_key(config)
  else:
    key = f'{spec.tfds_name}/{spec.train_split}/{config.image_size}px'
  return evaluator.reference_stats(key, lambda: input_pipeline.eval_images(config, num), num)


def real_data_scores(evaluator, config, reference):
  """FID/KID(/IS) of eval_num_samples held-out real images against the reference.

  What a generator that had learnt the data exactly would score with this
  many samples: FID's finite-sample bias makes it the floor of the curve, the
  mark a run's FID is read against (input_pipeline.eval_images, heldout).
  """
  num = config.eval_num_samples
  scores = evaluator.evaluate(input_pipeline.eval_images(config, num, heldout=True),
                              reference, num)
  return {k: float(v) for k, v in scores.items() if k != 'num_samples'}


def evaluate(config, g_state, evaluator, reference):
  """FID/KID(/IS) of eval_num_samples images of G (its EMA params when kept).

  With replicas: every replica scored against the same reference (with the z
  of its single-seed run), as `replicas.replica_scalars` (per replica, mean,
  ci95), and the mean under the plain names ('fid', ...).
  """
  if config.num_seeds > 1:
    per_replica = [evaluate(c, replicas.take(g_state, i), evaluator, reference)
                   for i, c in enumerate(replica_configs(config))]
    scores = {}
    for name in per_replica[0]:
      scores.update(replicas.replica_scalars(name, [s[name] for s in per_replica]))
      scores[name] = scores.pop(f'{name}/mean')
    return scores
  generate = gan_step.make_generate_fn(g_state)
  images = gan_step.generated_images(generate, gan_step.generator_variables(g_state), config,
                                     config.eval_num_samples)
  scores = evaluator.evaluate(images, reference, config.eval_num_samples)
  return {k: float(v) for k, v in scores.items() if k != 'num_samples'}


def evaluate_checkpoints(config, workdir):
  """Evaluates a finished run's latest and best checkpoints without training.

  Returns:
    {'latest': {'step': s, 'fid': ...}, 'best': {...}} for the checkpoints present.
  """
  workdir_lib.check_same_model(config, workdir)
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
    # When best and latest are one step, it is one checkpoint: score it once.
    same = [r for r in results.values() if r['step'] == int(step)]
    scores = ({k: v for k, v in same[0].items() if k != 'step'} if same
              else evaluate(config, g, evaluator, reference))
    logging.info('%s checkpoint (step %d): %s', which, step,
                 ', '.join(f'{k}={v:.4g}' for k, v in scores.items()))
    writer.write_scalars(step, {f'{which}_{k}': v for k, v in scores.items()})
    results[which] = {'step': int(step), **scores}
  writer.flush()
  if not results:
    raise checkpoints.CheckpointError(f'No checkpoint to evaluate under {workdir}.')
  return results


def write_samples(writer, workdir, step, generate, g_state, z):
  """The fixed-z sample grid: a PNG under workdir/samples and an image summary.

  With replicas (z stacked per replica): samples/replica_<i>/step_N.png per
  replica, and samples/step_N.png is one strip, a row of each replica's grid.
  """
  variables = gan_step.generator_variables(g_state)
  if z.ndim == 2:
    grid = image_utils.make_grid(np.asarray(generate(variables, z)))
    grids = {'samples': grid}
  else:
    per_replica = [np.asarray(generate(replicas.take(variables, i), z[i])) for i in range(len(z))]
    row = math.isqrt(z.shape[1])
    grid = image_utils.make_grid(np.concatenate([images[:row] for images in per_replica]), row)
    grids = {'samples': grid, **{f'samples/replica_{i}': image_utils.make_grid(images)
                                 for i, images in enumerate(per_replica)}}
  if jax.process_index() == 0:
    for name, image in grids.items():
      folder = os.path.join(workdir, *name.split('/'))
      image_utils.save_image(image, os.path.join(folder, f'step_{step:07d}.png'))
  writer.write_images(step, {name: image[None] for name, image in grids.items()})


@dataclasses.dataclass
class LoopState:
  """What the loop carries from step to step; a rollback replaces it whole."""
  g_state: Any  # Replicated over the local devices.
  d_state: Any
  step: int
  rollbacks: int
  step_key: Any  # Replicated base key of the step (changes with each rollback).
  train_iter: Any
  metrics: list = dataclasses.field(default_factory=list)  # Device metrics since the last log.


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


def _loop_state(manager, config, rollbacks=None):
  """The loop state at the latest intact checkpoint (or step 0), on the local devices."""
  g_state, d_state, step, saved_rollbacks, base_key = _restore_or_init(manager, config)
  rollbacks = saved_rollbacks if rollbacks is None else rollbacks
  g_state, d_state = gan_step.replicate((g_state, d_state))
  if config.num_seeds > 1:
    step_key = jax.vmap(lambda k: divergence.step_key(k, rollbacks))(base_key)
    train_iter = input_pipeline.create_train_iter(config, step, replica_configs(config))
  else:
    step_key = divergence.step_key(base_key, rollbacks)
    train_iter = input_pipeline.create_train_iter(config, step)
  return LoopState(g_state, d_state, step, rollbacks, jax_utils.replicate(step_key), train_iter)


def _poison(batch):
  """The batch times NaN (config.debug_nan_at_step): a divergence on demand, for tests."""
  return jax.pmap(lambda b: jax.tree.map(lambda x: x * jnp.nan, b))(batch)


def _train_one_call(loop, p_train_step, config):
  """config.steps_per_call steps (one device call)."""
  first = loop.step + 1
  loop.step += config.steps_per_call
  with jax.profiler.StepTraceAnnotation('train', step_num=loop.step):
    batch = next(loop.train_iter)
    if first <= config.debug_nan_at_step <= loop.step and loop.rollbacks == 0:
      batch = _poison(batch)  # Once: a rolled-back run gets past it.
    loop.g_state, loop.d_state, metrics = p_train_step(
        loop.g_state, loop.d_state, batch, loop.step_key)
  loop.metrics.append(metrics)


def _per_step(fetched, name, steps_per_call):
  """Metric `name` of every step since the last log, [steps] or [steps, K], in step order.

  The mean over them is then the same sum in the same order whatever
  config.steps_per_call is (one call's metrics hold its steps on the last axis).
  """
  values = [np.asarray(m[name][0]) for m in fetched]
  if steps_per_call == 1:
    return np.stack(values)
  return np.concatenate([np.moveaxis(v, -1, 0) for v in values])


def _write_train_metrics(writer, loop, steps_per_call):
  """Writes the mean metrics since the last log; returns the names of non-finite ones.

  The only host sync of the loop outside evaluation and checkpoints.
  """
  fetched = jax.device_get(loop.metrics)
  # Device 0's copy (all devices hold the same means); with replicas, one value each.
  means = {k: np.mean(_per_step(fetched, k, steps_per_call), axis=0) for k in fetched[0]}
  if all(v.ndim == 0 for v in means.values()):
    summary = {k: float(v) for k, v in means.items()}
  else:
    summary = {}
    for k, values in means.items():
      summary.update(replicas.replica_scalars(k, values))
      summary[k] = summary.pop(f'{k}/mean')
  writer.write_scalars(loop.step, summary)
  loop.metrics = []
  return divergence.nonfinite_metrics(summary)


def _rollback(loop, diverged, manager, config, workdir, writer):
  """The loop state at the last good checkpoint, or DivergenceError when the policy says stop."""
  checkpoints.wait(manager)
  if config.divergence != 'rollback' or loop.rollbacks >= config.max_rollbacks:
    writer.flush()
    raise divergence.DivergenceError(divergence.message(
        loop.step, diverged, manager.latest_step(), workdir, config.divergence))
  new = _loop_state(manager, config, rollbacks=loop.rollbacks + 1)
  logging.warning('Training diverged at step %d (%s not finite): rollback %d of %d to '
                  'step %d with new random numbers.', loop.step, diverged, new.rollbacks,
                  config.max_rollbacks, new.step)
  return new


class _Outputs:
  """Sample grids, evaluations and checkpoints of one run, at the steps the config says."""

  def __init__(self, config, workdir, writer, manager, g_state):
    self.config, self.workdir, self.writer, self.manager = config, workdir, writer, manager
    self.generate = gan_step.make_generate_fn(g_state)
    self.sample_z = fixed_latents(config)
    self.evaluator = self.reference = self.best_manager = None
    if config.eval_num_samples > 0:
      self.evaluator = make_evaluator(config)
      self.reference = reference_stats(self.evaluator, config)
      self.best_manager = checkpoints.create_manager(workdir, 'best', config)
      checkpoints.check_writable(self.best_manager)

  def wants_eval(self, step, is_last):
    every = self.config.eval_every_steps
    return self.evaluator is not None and (is_last or (every and step % every == 0))

  def write(self, loop, is_last, wants_eval, wants_checkpoint, report_progress):
    step, config = loop.step, self.config
    if step % config.sample_every_steps == 0 or is_last:
      write_samples(self.writer, self.workdir, step, self.generate,
                    jax_utils.unreplicate(loop.g_state), self.sample_z)
    if wants_eval:
      with report_progress.timed('eval'):
        states = jax_utils.unreplicate((loop.g_state, loop.d_state))
        scores = evaluate(config, states[0], self.evaluator, self.reference)
        self.writer.write_scalars(step, scores)
        # Orbax keeps the checkpoint with the lowest FID in best_checkpoint/.
        checkpoints.save(self.best_manager, step, states, metrics=scores)
    if wants_checkpoint:
      checkpoints.save(self.manager, step, jax_utils.unreplicate((loop.g_state, loop.d_state)),
                       metadata={'rollbacks': loop.rollbacks})
      self.writer.flush()

  def wait(self):
    for manager in (self.manager, self.best_manager):
      if manager is not None:
        checkpoints.wait(manager)
    self.writer.flush()


def train_and_evaluate(config, workdir, hooks=()):
  """Trains for config.num_train_steps, resuming from workdir's latest checkpoint.

  SIGTERM/SIGINT stop the run after the current step with a checkpoint
  (`preemption`); non-finite losses or parameters stop it or roll it back
  (`divergence`, config.divergence); a non-finite state is never saved.

  One run at a time holds the workdir (`workdir.lock`), and a resume with a
  config of another model stops with the fields that differ.

  `hooks` are called as hook(step) after each device call and its outputs
  (like clu's periodic actions); at log steps the metrics have been fetched,
  so the devices have finished that step (loop_timing.py times the loop so).

  Returns:
    The final (g_state, d_state), unreplicated; their step is lower than
    config.num_train_steps when a signal stopped the run.
  """
  with workdir_lib.lock(workdir):
    workdir_lib.check_same_model(config, workdir)
    return _train(config, workdir, hooks)


def _train(config, workdir, hooks):
  """train_and_evaluate, with the workdir held."""
  writer = metric_writers.create_default_writer(
      workdir, just_logging=jax.process_index() > 0)
  manager = checkpoints.create_manager(workdir, 'latest', config)
  checkpoints.check_writable(manager)
  loop = _loop_state(manager, config)
  workdir_lib.save_config(config, workdir)
  if loop.step:
    logging.info('Resumed from the checkpoint of step %d in %s.', loop.step, manager.directory)
  else:
    writer.write_hparams(flax.traverse_util.flatten_dict(config.to_dict(), sep='.'))
  p_train_step = gan_step.make_p_train_step(config)
  if config.steps_per_call > 1 and jax.default_backend() == 'cpu':
    logging.warning('steps_per_call=%d on CPU: XLA:CPU runs the scanned step about 14x slower '
                    'than single steps (README, "Speed"); 1 is faster here.', config.steps_per_call)
  outputs = _Outputs(config, workdir, writer, manager, loop.g_state)
  report_progress = periodic_actions.ReportProgress(
      num_train_steps=config.num_train_steps, writer=writer)
  logging.info('Training from step %d to %d.', loop.step, config.num_train_steps)
  with preemption.StopSignals() as stop:
    while loop.step < config.num_train_steps:
      _train_one_call(loop, p_train_step, config)
      report_progress(loop.step)
      step = loop.step
      is_last = step == config.num_train_steps
      is_log_step = step % config.log_every_steps == 0 or is_last
      # On several processes all agree on the stop step (a collective at log steps).
      stopping = stop.should_stop(step, sync=is_log_step) and not is_last
      wants_eval = outputs.wants_eval(step, is_last)
      wants_checkpoint = step % config.checkpoint_every_steps == 0 or is_last or stopping
      diverged = (', '.join(_write_train_metrics(writer, loop, config.steps_per_call))
                  if is_log_step else '')
      if not diverged and (wants_checkpoint or wants_eval) and not divergence.states_are_finite(
          (loop.g_state, loop.d_state)):
        diverged = 'the parameters'
      if diverged:
        loop = _rollback(loop, diverged, manager, config, workdir, writer)
        continue
      outputs.write(loop, is_last, wants_eval, wants_checkpoint, report_progress)
      for hook in hooks:
        hook(step)
      if stopping:
        logging.warning('Stopped by %s after step %d, with a checkpoint of it in %s; run the '
                        'same command to resume.', stop.received, step, manager.directory)
        break
  outputs.wait()
  return jax_utils.unreplicate((loop.g_state, loop.d_state))
