"""Orbax checkpoints of a run: the latest few under workdir/checkpoints, the best apart.

A checkpoint holds both TrainStates (params, optimiser states, batch-norm and
spectral-norm statistics, EMA params, step). Orbax writes each save into a
temporary folder (`<step>.orbax-checkpoint-tmp-*`) and renames it when
complete, so a process killed mid-save leaves the previous checkpoints intact.

Orbax does not notice every damaged file: a flipped byte in a data file
restores silently as different numbers, and a deleted `_CHECKPOINT_METADATA`
goes unnoticed. Each save therefore records a SHA-256 fingerprint of the saved
values in the checkpoint's own metadata (written inside the temporary folder,
so it is committed with the data), and `restore` recomputes it. A checkpoint
that cannot be read or does not match is reported by name and the one before it
is used.

Saves are synchronous. The states are host copies already, so an asynchronous
save would only overlap the file writes, and when a write fails (a full disk, a
read-only folder) orbax's background threads print their tracebacks and then
wait minutes for signals that never come. A failed save is reported as one
`CheckpointWriteError` naming the folder and the fix; its partial temporary
folder is removed and the checkpoints saved before it are untouched.

States are saved from host (numpy) copies: on several processes the pmapped
states are per-process arrays, which orbax refuses, while numpy values are
written once, by process 0, and read by every process.
"""

import contextlib
import hashlib
import json
import logging as py_logging
import os
import shutil
import sys
import tempfile
import time

from absl import logging
from etils import epath
import jax
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint as ocp

from dcgan_jax import errors

CHECKPOINT_DIRS = {'latest': 'checkpoints', 'best': 'best_checkpoint'}
# Damaged checkpoints are moved to `<step>.damaged` (a name orbax does not list).
DAMAGED_SUFFIX = '.damaged'


class CheckpointError(errors.EnvironmentFailure):
  """No checkpoint of a run can be restored."""


class CheckpointWriteError(errors.EnvironmentFailure):
  """A checkpoint cannot be written (a full disk, a read-only or forbidden folder)."""


def _fid(metrics):
  return metrics['fid']


def create_manager(workdir, which='latest', config=None):
  """A CheckpointManager for the 'latest' checkpoints or the 'best' one of `workdir`."""
  if which not in CHECKPOINT_DIRS:
    raise ValueError(f'Unknown checkpoint kind {which!r}; choose one of {sorted(CHECKPOINT_DIRS)}.')
  directory = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIRS[which])
  if which == 'best':
    # Saved after every evaluation with its scores; orbax keeps the lowest FID.
    options = ocp.CheckpointManagerOptions(max_to_keep=1, best_fn=_fid, best_mode='min',
                                           create=True, enable_async_checkpointing=False)
  else:
    max_to_keep = config.max_checkpoints_to_keep if config else 3
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=False)
  _ignore_closed_loop_callbacks()
  # A step whose _CHECKPOINT_METADATA parses but does not deserialize makes
  # CheckpointManager() itself fail: move such steps aside first.
  moved = [_quarantine(directory, step, reason)
           for step, reason in _undeserializable_steps(directory)]
  manager = ocp.CheckpointManager(directory, options=options)
  if moved and not manager.all_steps():
    raise CheckpointError(
        f'No intact checkpoint in {directory}: the damaged ones were moved to '
        f'{", ".join(moved)}. Run again to start afresh.')
  return manager


def _ignore_closed_loop_callbacks():
  """Stops tensorstore's late callbacks after a failed save or read printing tracebacks.

  When an orbax write or read fails, tensorstore finishes its other pending
  operations later, on worker threads, and their callbacks find orbax's event
  loop closed: each prints "RuntimeError: Event loop is closed" as an
  unraisable exception, dozens of them, seconds after the failure was reported.
  Installed once per process (callbacks come after any scope around the call
  ends); every other unraisable exception still reaches the previous hook.
  """
  previous_hook = sys.unraisablehook
  if getattr(previous_hook, 'ignores_closed_loop_callbacks', False):
    return

  def hook(unraisable):
    if not (isinstance(unraisable.exc_value, RuntimeError) and
            str(unraisable.exc_value) == 'Event loop is closed'):
      previous_hook(unraisable)

  hook.ignores_closed_loop_callbacks = True
  sys.unraisablehook = hook


@contextlib.contextmanager
def _quiet_orbax_errors():
  """Orbax's worker-thread logs of a full disk or forbidden folder dropped; they still raise.

  The entry points install the same filter for the whole run (`cli.run`); this
  scope gives library users (notebooks) the one error without the log storm.
  """
  log_filter = errors.DropEnvironmentErrorLogs()
  logger = py_logging.getLogger('absl')
  logger.addFilter(log_filter)
  try:
    yield
  finally:
    logger.removeFilter(log_filter)


def _write_error(error, what, directory):
  """CheckpointWriteError for a failed write under `directory`; None if not a full disk etc."""
  os_error = errors.environment_os_error(error)
  if os_error is None:
    return None
  return errors.write_failure(os_error, what, directory, error_class=CheckpointWriteError)


def check_writable(manager):
  """Raises CheckpointWriteError now, before training, if the manager's folder cannot be written.

  Creates and removes a small file, which catches read-only mounts, missing
  permissions and a disk already full (a probe of os.access would miss the
  first for root and the last always).
  """
  if jax.process_index() != 0:
    return
  directory = str(manager.directory)
  try:
    os.makedirs(directory, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, prefix='.write_probe') as f:
      f.write(b'0' * 4096)
      f.flush()
      os.fsync(f.fileno())
  except OSError as e:
    raise (_write_error(e, 'checkpoints', directory) or e) from e


def _remove_partial(directory, step):
  """Removes what a failed save of `step` left in `directory` (orbax's temporary folders).

  When one of tensorstore's parallel writes fails, orbax raises while the others
  may still be in flight, and they create the files (and folders) they write.
  So removal is repeated after growing pauses, until the folder has stayed gone
  through a pause of 0.4 s or more.
  """
  def partial():
    return list(epath.Path(directory).glob(f'{step}.orbax-checkpoint-tmp*'))

  for pause in (0.1, 0.2, 0.4, 0.8, 1.6, 3.2):
    for path in partial():
      shutil.rmtree(path, ignore_errors=True)
    time.sleep(pause)
    if pause >= 0.4 and not partial():
      return
  for path in partial():
    logging.warning('Could not remove the partial checkpoint %s; delete it by hand.', path)


def _undeserializable_steps(directory):
  """(step, reason) of the steps whose orbax step metadata cannot be read."""
  damaged = []
  if not epath.Path(directory).exists():
    return damaged
  for metadata in ocp.step.standard_name_format().find_all(epath.Path(directory)):
    try:
      metadata.commit_timestamp  # pylint: disable=pointless-statement  (reads the metadata)
    except Exception as e:  # pylint: disable=broad-except
      damaged.append((metadata.step, f'{type(e).__name__}: {e}'))
  return damaged


def _quarantine(directory, step, reason):
  """Moves a damaged checkpoint aside, so that orbax neither lists it nor collides with it.

  Orbax refuses to save a step whose folder exists, so a damaged checkpoint left
  in place would stop the run when it reaches that step again. Nothing is
  deleted: the folder can be inspected, or renamed back.

  Returns:
    The new path.
  """
  path = epath.Path(directory) / str(step)
  target = path.parent / f'{step}{DAMAGED_SUFFIX}'
  if jax.process_index() == 0 and path.exists():
    if target.exists():
      target = path.parent / f'{step}{DAMAGED_SUFFIX}-{time.time_ns()}'
    path.rename(target)
    logging.error('Checkpoint %s is damaged (%s); moved it to %s.', path, reason, target)
  if jax.process_count() > 1:
    # Every process lists the folder next; none may do so before the move.
    multihost_utils.sync_global_devices(f'quarantine {directory}/{step}')
  return str(target)


def fingerprint(tree):
  """SHA-256 over the leaves' shapes, dtypes and bytes, in tree order."""
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(tree):
    leaf = np.asarray(leaf)
    if leaf.ndim == 0:
      # Scalars (the step) come back as Python or numpy numbers of another width.
      digest.update(repr(leaf.item()).encode())
      continue
    digest.update(f'{leaf.shape}{leaf.dtype.str}'.encode())
    digest.update(np.ascontiguousarray(leaf).tobytes())
  return digest.hexdigest()


def to_host(tree):
  """Numpy copies of a pytree's arrays (copies: the device buffers may be donated later)."""
  return jax.tree.map(lambda x: np.array(x) if isinstance(x, (jax.Array, np.ndarray)) else x,
                      tree)


def save(manager, step, states, metrics=None, metadata=None):
  """Saves `states` (a pytree of TrainStates) as checkpoint `step`.

  Args:
    manager: from `create_manager`.
    step: the step the states are after.
    states: a pytree of arrays (on any device) and Python scalars.
    metrics: for the 'best' manager.
    metadata: a JSON-able dict stored with the checkpoint (`saved_metadata`).

  Raises:
    CheckpointWriteError: the folder cannot be written (the partial save is removed).
  """
  states = to_host(states)
  custom = {**(metadata or {}), 'fingerprint': fingerprint(states)}
  try:
    with _quiet_orbax_errors():
      manager.save(int(step), args=ocp.args.StandardSave(states), metrics=metrics,
                   custom_metadata=custom)
  except (OSError, ValueError) as e:
    error = _write_error(e, f'the checkpoint of step {step}', manager.directory)
    if error is None:
      raise
    if jax.process_index() == 0:
      _remove_partial(manager.directory, step)
    raise error from e


def _step_metadata(manager, step):
  """The JSON of a step's `_CHECKPOINT_METADATA`; raises if it is missing or unreadable."""
  path = manager.directory / str(step) / '_CHECKPOINT_METADATA'
  if not path.exists():
    raise CheckpointError(f'{path} is missing, so the checkpoint cannot be verified')
  try:
    return json.loads(path.read_text())
  except (ValueError, UnicodeDecodeError) as e:
    raise CheckpointError(f'{path} is damaged ({type(e).__name__}: {e})') from e


def saved_metadata(manager, step):
  """The `metadata` dict saved with checkpoint `step` (without the fingerprint)."""
  custom = dict(_step_metadata(manager, step).get('custom_metadata') or {})
  custom.pop('fingerprint', None)
  return custom


def restore_step(manager, step, target):
  """Checkpoint `step` restored into the structure of `target`, its fingerprint checked.

  Raises:
    CheckpointError (or orbax's errors): the checkpoint is damaged.
  """
  meta = _step_metadata(manager, step)
  restored = manager.restore(step, args=ocp.args.StandardRestore(target))
  expected = (meta.get('custom_metadata') or {}).get('fingerprint')
  if expected is None:
    logging.warning('Checkpoint %s has no fingerprint (written before they were recorded); '
                    'restored unverified.', manager.directory / str(step))
  elif fingerprint(restored) != expected:
    raise CheckpointError('its values do not match the fingerprint saved with them '
                          '(a damaged data file)')
  return restored


def wait(manager):
  """Blocks until the pending save is on disk."""
  manager.wait_until_finished()


def restore(manager, target):
  """Restores the newest readable and intact checkpoint into the structure of `target`.

  Returns:
    (restored, step), or (target, None) when there is no checkpoint.

  Raises:
    CheckpointError: checkpoints exist but none of them can be read.
  """
  steps = sorted(manager.all_steps(), reverse=True)
  failures = []
  damaged = []
  for step in steps:
    try:
      restored = restore_step(manager, step, target)
    except Exception as e:  # pylint: disable=broad-except
      # Orbax raises many kinds of errors for a damaged folder; each means "unusable".
      path = manager.directory / str(step)
      logging.error('Checkpoint %s cannot be restored (%s: %s); trying the one before it.',
                    path, type(e).__name__, e)
      first_line = (str(e).strip().splitlines() or [''])[0]
      failures.append(f'{path} ({type(e).__name__}: {first_line})')
      damaged.append((step, f'{type(e).__name__}: {first_line}'))
      continue
    if damaged:
      # The run goes on from `step` and will save the damaged steps' numbers again.
      for bad_step, reason in damaged:
        _quarantine(manager.directory, bad_step, reason)
      manager.reload()
    return restored, step
  if failures:
    # One line: the command line prints it as the run's only error message.
    raise CheckpointError(
        'No checkpoint in {} can be restored: {}. Move the damaged folders away to start '
        'afresh, or point --workdir elsewhere.'.format(manager.directory, '; '.join(failures)))
  return target, None
