"""Orbax checkpoints of a run: the latest few under workdir/checkpoints, the best apart.

A checkpoint holds both TrainStates (params, optimiser states, batch-norm and
spectral-norm statistics, EMA params, step). Orbax writes each save into a
temporary folder and renames it when complete, so a process killed mid-save
leaves the previous checkpoints intact; a checkpoint that still cannot be read
is reported by name and the one before it is used.
"""

import os

from absl import logging
import orbax.checkpoint as ocp

CHECKPOINT_DIRS = {'latest': 'checkpoints', 'best': 'best_checkpoint'}


class CheckpointError(RuntimeError):
  """No checkpoint of a run can be restored."""


def create_manager(workdir, which='latest', config=None):
  """A CheckpointManager for the 'latest' checkpoints or the 'best' one of `workdir`."""
  if which not in CHECKPOINT_DIRS:
    raise ValueError(f'Unknown checkpoint kind {which!r}; choose one of {sorted(CHECKPOINT_DIRS)}.')
  max_to_keep = 1 if which == 'best' else (config.max_checkpoints_to_keep if config else 3)
  directory = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIRS[which])
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
  return ocp.CheckpointManager(directory, options=options)


def save(manager, step, states, metrics=None):
  """Saves `states` (a pytree of TrainStates) as checkpoint `step` (asynchronously)."""
  manager.save(int(step), args=ocp.args.StandardSave(states), metrics=metrics)


def wait(manager):
  """Blocks until the pending save is on disk."""
  manager.wait_until_finished()


def restore(manager, target):
  """Restores the newest readable checkpoint into the structure of `target`.

  Returns:
    (restored, step), or (target, None) when there is no checkpoint.

  Raises:
    CheckpointError: checkpoints exist but none of them can be read.
  """
  steps = sorted(manager.all_steps(), reverse=True)
  errors = []
  for step in steps:
    try:
      return manager.restore(step, args=ocp.args.StandardRestore(target)), step
    except Exception as e:  # pylint: disable=broad-except
      # Orbax raises many kinds of errors for a damaged folder; each means "unusable".
      path = os.path.join(str(manager.directory), str(step))
      logging.error('Checkpoint %s cannot be restored (%s: %s); trying the one before it.',
                    path, type(e).__name__, e)
      errors.append(f'{path}: {type(e).__name__}: {e}')
  if errors:
    raise CheckpointError(
        'No checkpoint in {} can be restored:\n  {}\nMove the damaged folders away to start '
        'afresh, or point --workdir elsewhere.'.format(manager.directory, '\n  '.join(errors)))
  return target, None
