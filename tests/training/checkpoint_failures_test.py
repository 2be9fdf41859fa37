"""A full disk, a read-only folder, a failed write: one line, nothing lost, no hang.

The mocked cases run everywhere; the real ones need a tmpfs or a read-only
bind mount, which only a root user may make: they skip elsewhere, saying so.
"""

import contextlib
import errno
import logging
import os
import subprocess
import sys
import threading
import types

from absl import flags
from clu import asynclib
import numpy as np
import pytest

from dcgan_jax import cli
from dcgan_jax import errors
from dcgan_jax.training import checkpoints
from tests.support import ROOT


def _states(seed=0, size=1000):
  return {'w': np.random.default_rng(seed).random((size,), np.float32), 'step': 3}


def _failing_save(error):
  """A manager.save that leaves orbax's temporary folder behind and raises `error`."""

  def save(manager, step, **unused_kwargs):
    os.makedirs(os.path.join(str(manager.directory), f'{step}.orbax-checkpoint-tmp'))
    raise error

  return save


WRITE_FAILURES = [
    # (what orbax raises, the words of the one line)
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), 'No space left on device'),
    (OSError(errno.EROFS, os.strerror(errno.EROFS)), 'make that folder writable'),
    (PermissionError(errno.EACCES, os.strerror(errno.EACCES)), 'make that folder writable'),
    # Tensorstore's form of a full disk, as orbax raises it.
    (ValueError('RESOURCE_EXHAUSTED: Error writing "a/0" in OCDBT database: Failed to write '
                "73945 bytes to file 16: No space left on device [os_error_code='28']"),
     'free space on that disk'),
]


@pytest.mark.parametrize('error,words', WRITE_FAILURES,
                         ids=['ENOSPC', 'EROFS', 'EACCES', 'tensorstore-ENOSPC'])
def test_a_failed_save_is_one_line_and_keeps_earlier_checkpoints(tmp_path, monkeypatch, error,
                                                                 words):
  manager = checkpoints.create_manager(str(tmp_path), 'latest')
  checkpoints.save(manager, 3, _states())
  monkeypatch.setattr(type(manager), 'save', _failing_save(error))
  with pytest.raises(checkpoints.CheckpointWriteError) as e:
    checkpoints.save(manager, 6, _states(1))
  message = errors.one_line(e.value)
  assert words in message and 'step 6' in message and str(tmp_path) in message
  assert e.value.exit_code == 1
  # The partial save is gone; the checkpoint of step 3 is listed and intact.
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['3']
  monkeypatch.undo()
  restored, step = checkpoints.restore(checkpoints.create_manager(str(tmp_path), 'latest'),
                                       _states(2))
  assert step == 3 and np.array_equal(restored['w'], _states()['w'])


def test_a_write_still_in_flight_when_the_save_fails_is_removed_too(tmp_path, monkeypatch):
  # Tensorstore's other writes may land after orbax has raised, re-creating the
  # temporary folder that a single removal would already have deleted.
  manager = checkpoints.create_manager(str(tmp_path), 'latest')
  checkpoints.save(manager, 3, _states())
  failing_save = _failing_save(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))

  def late_write():
    path = tmp_path / 'checkpoints' / '6.orbax-checkpoint-tmp' / 'd'
    path.mkdir(parents=True, exist_ok=True)
    (path / 'late').write_bytes(b'0')

  late = threading.Timer(0.15, late_write)

  def save(manager, step, **kwargs):
    late.start()
    failing_save(manager, step, **kwargs)

  monkeypatch.setattr(type(manager), 'save', save)
  with pytest.raises(checkpoints.CheckpointWriteError):
    checkpoints.save(manager, 6, _states(1))
  late.join()
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['3']


def test_a_save_that_fails_for_another_reason_keeps_its_traceback(tmp_path, monkeypatch):
  manager = checkpoints.create_manager(str(tmp_path), 'latest')
  monkeypatch.setattr(type(manager), 'save', _failing_save(ValueError('a bug')))
  with pytest.raises(ValueError, match='a bug'):
    checkpoints.save(manager, 6, _states())


def test_an_unwritable_checkpoints_folder_is_found_before_training(tmp_path, monkeypatch):
  manager = checkpoints.create_manager(str(tmp_path), 'latest')

  def read_only(*unused_args, **unused_kwargs):
    raise OSError(errno.EROFS, os.strerror(errno.EROFS))

  monkeypatch.setattr(checkpoints.tempfile, 'NamedTemporaryFile', read_only)
  with pytest.raises(checkpoints.CheckpointWriteError, match='Read-only file system'):
    checkpoints.check_writable(manager)


def test_closed_loop_callbacks_are_silent_and_other_unraisables_are_not(monkeypatch):
  seen = []
  monkeypatch.setattr(sys, 'unraisablehook', seen.append)
  checkpoints._ignore_closed_loop_callbacks()  # pylint: disable=protected-access
  checkpoints._ignore_closed_loop_callbacks()  # Once: a second call does not wrap it again.
  closed = types.SimpleNamespace(exc_value=RuntimeError('Event loop is closed'), object=None)
  other = types.SimpleNamespace(exc_value=RuntimeError('something else'), object=None)
  sys.unraisablehook(closed)
  sys.unraisablehook(other)
  assert seen == [other]


@pytest.mark.parametrize('raised', [
    OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), '/w/events.out.tfevents'),
    # clu's asynchronous metric writer re-raises its thread's error wrapped.
    asynclib.AsyncError('Error occurred ASYNCHRONOUSLY.'),
], ids=['OSError', 'clu.AsyncError'])
def test_the_cli_prints_a_full_disk_anywhere_as_one_line(raised, capsys, no_flags):
  if isinstance(raised, asynclib.AsyncError):
    raised.__cause__ = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

  def main(unused_argv):
    raise raised

  with pytest.raises(SystemExit) as e:
    cli.run(main)
  assert e.value.code == 1
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and 'No space left on device' in err and 'Traceback' not in err


def test_a_bug_keeps_its_traceback_in_the_cli(no_flags):
  def main(unused_argv):
    raise KeyError('a bug')

  with pytest.raises(KeyError):
    cli.run(main)


def test_worker_thread_logs_of_a_full_disk_are_dropped():
  log_filter = errors.DropEnvironmentErrorLogs()

  def record(error):
    exc_info = (type(error), error, None) if error else None
    return logging.LogRecord('absl', logging.ERROR, 'clu/asynclib.py', 1, 'Error in producer',
                             None, exc_info)

  assert not log_filter.filter(record(OSError(errno.ENOSPC, 'No space left on device')))
  assert log_filter.filter(record(ValueError('a bug')))
  assert log_filter.filter(record(None))


@pytest.fixture
def no_flags(monkeypatch):
  """cli.run without flag parsing: absl's flags are process-global, and another test's import
  of dcgan_jax.main (in the same pytest worker) makes --config required."""
  was_parsed = flags.FLAGS.is_parsed()

  def parse_no_flags(argv):
    flags.FLAGS.mark_as_parsed()
    return argv

  monkeypatch.setattr(cli, 'parse_flags', parse_no_flags)
  monkeypatch.setattr(sys, 'argv', ['prog'])
  yield
  if not was_parsed:
    flags.FLAGS.unparse_flags()


def _mount(args, target):
  """Mounts (root only); False where this user may not."""
  if os.geteuid() != 0:
    return False
  return subprocess.run(['mount', *args, str(target)], capture_output=True).returncode == 0


@contextlib.contextmanager
def _tmpfs(path, size):
  path.mkdir()
  if not _mount(['-t', 'tmpfs', '-o', f'size={size}', 'tmpfs'], path):
    pytest.skip('needs root to mount a tmpfs; the mocked tests above cover the same paths')
  try:
    yield path
  finally:
    subprocess.run(['umount', str(path)], check=True)


def _run_main(workdir, tfds_data_dir, *flags):
  return subprocess.run(
      [sys.executable, '-m', 'dcgan_jax.main', '--config=configs/test.py',
       f'--workdir={workdir}', f'--config.data_dir={tfds_data_dir}', *flags],
      cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def test_a_real_full_disk_during_training(tmp_path, tfds_data_dir):
  # 400 kB holds the checkpoint of step 3, the events and the grids, not step 6's.
  with _tmpfs(tmp_path / 'disk', '400k') as workdir:
    result = _run_main(workdir, tfds_data_dir, '--config.num_train_steps=30')
    assert result.returncode == 1, result.stderr[-3000:]
    assert 'Traceback' not in result.stderr and 'Event loop is closed' not in result.stderr
    assert 'Error: Cannot write the checkpoint of step 6' in result.stderr
    assert 'No space left on device' in result.stderr
    assert sorted(os.listdir(workdir / 'checkpoints')) == ['3']


def test_a_real_read_only_checkpoints_folder(tmp_path, tfds_data_dir):
  folder = tmp_path / 'w' / 'checkpoints'
  folder.mkdir(parents=True)
  if not _mount(['--bind', str(folder)], folder):
    pytest.skip('needs root for a read-only bind mount; the mocked tests above cover it')
  if not _mount(['-o', 'remount,bind,ro'], folder):
    subprocess.run(['umount', str(folder)], check=True)
    pytest.skip('this system refuses a read-only remount; the mocked tests above cover it')
  try:
    result = _run_main(tmp_path / 'w', tfds_data_dir)
  finally:
    subprocess.run(['umount', str(folder)], check=True)
  assert result.returncode == 1, result.stderr[-3000:]
  assert 'Traceback' not in result.stderr
  assert 'Cannot write checkpoints' in result.stderr and 'Read-only file system' in result.stderr
