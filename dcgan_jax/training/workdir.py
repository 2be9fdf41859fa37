"""One run per workdir, and the same model on every resume of it.

`lock(workdir)` holds an exclusive `flock` on WORKDIR/.lock for the life of a
run (process 0 of it: the processes of one multi-host run share the folder).
A second run on the same workdir stops at once with one line naming the
holder; the kernel drops the lock when its process dies, so a crashed run
leaves no stale lock behind.

`check_same_model(config, workdir)` compares the config saved with the run
(WORKDIR/config.json) with the new one on the fields that shape the saved
states, and names every field that differs before a restore could fail.
"""

import contextlib
import fcntl
import json
import os

import jax

from dcgan_jax import errors

CONFIG_FILE = 'config.json'
# The fields that decide the shapes and structure of the checkpointed states.
STATE_FIELDS = ('model', 'image_size', 'dataset', 'num_channels', 'num_seeds', 'ema_on',
                'lr_decay_on')


class WorkdirError(errors.UserError):
  """The workdir is busy, unusable, or belongs to a run of another model."""


@contextlib.contextmanager
def lock(workdir):
  """Exclusive use of `workdir` while the block runs (WorkdirError if another run has it)."""
  if jax.process_index() > 0:
    yield
    return
  try:
    os.makedirs(workdir, exist_ok=True)
    handle = open(os.path.join(workdir, '.lock'), 'a+')  # pylint: disable=consider-using-with
  except OSError as e:
    error = WorkdirError(f'--workdir {workdir} cannot be used ({e.strerror}): pass a folder '
                         'this user can write.')
    if errors.environment_os_error(e) is not None:
      error.exit_code = errors.EnvironmentFailure.exit_code  # Read-only or full: not the input.
    raise error from e
  try:
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    handle.seek(0)
    holder = handle.read().strip() or 'another process'
    handle.close()
    raise WorkdirError(f'{workdir} is in use by a run still going ({holder}); wait for it, '
                       'stop it, or pass another --workdir.') from None
  handle.truncate(0)
  handle.write(f'pid {os.getpid()}')
  handle.flush()
  try:
    yield
  finally:
    fcntl.flock(handle, fcntl.LOCK_UN)
    handle.close()


def _state_fields(config):
  c = config.to_dict() if hasattr(config, 'to_dict') else dict(config)
  return {'model': c.get('model'), 'image_size': c.get('image_size'),
          'dataset': c.get('dataset'), 'num_channels': c.get('num_channels'),
          'num_seeds': c.get('num_seeds', 1), 'ema_on': c.get('ema_decay', 0) > 0,
          'lr_decay_on': bool(c.get('optim', {}).get('lr_decay_steps'))}


def _flatten(tree, prefix=''):
  if isinstance(tree, dict):
    out = {}
    for key, value in tree.items():
      out.update(_flatten(value, f'{prefix}{key}.'))
    return out
  return {prefix[:-1]: tree}


def check_same_model(config, workdir):
  """Raises WorkdirError naming the fields that differ from the run saved in `workdir`."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return
  with open(path) as f:
    saved = _flatten(json.load(f))
  new = _flatten(json.loads(json.dumps(_state_fields(config), default=list)))
  differ = [f'{k}: saved {saved.get(k)!r}, now {v!r}' for k, v in sorted(new.items())
            if saved.get(k) != v]
  if differ:
    raise WorkdirError(f'{workdir} holds a run of another model ({"; ".join(differ)}): the '
                       'same workdir needs the same model; use a new --workdir, or the saved '
                       f'config in {path}.')


def save_config(config, workdir):
  """Writes the state-shaping fields of `config` next to the checkpoints (process 0)."""
  if jax.process_index() == 0:
    with open(os.path.join(workdir, CONFIG_FILE), 'w') as f:
      json.dump(_state_fields(config), f, indent=2, default=list)
