"""Runs survive interruption, damaged checkpoints and divergence, and end bitwise as unbroken runs.

Kill points are chosen by watching the checkpoint folder of a training
subprocess; every killed or stopped run is resumed, and the checkpoints it left
and the final parameters are compared bitwise with one unbroken run.
"""

import fcntl
import glob
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np
import pytest

from dcgan_jax.training import checkpoints
from dcgan_jax.training import divergence
from dcgan_jax.training import preemption
from dcgan_jax.training import train
from tests import support

ROOT = support.ROOT
NUM_STEPS = 30
# Every kill point tried and whether its resume matched the unbroken run; printed at the end.
KILL_POINTS = []


def leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def assert_bitwise_equal(a, b):
  a, b = leaves(a), leaves(b)
  assert len(a) == len(b)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)


def bitwise_equal(a, b):
  a, b = leaves(a), leaves(b)
  return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y)
                                  for x, y in zip(a, b))


# --- Damaged checkpoints (no training needed).

def small_state(value):
  return {'w': np.full((64, 32), value, np.float32), 'b': np.arange(32, dtype=np.float32) * value,
          'step': np.asarray(int(value), np.int32)}


def damage(path, how):
  if how == 'delete':
    os.remove(path)
  elif how == 'truncate':
    with open(path, 'r+b') as f:
      f.truncate(os.path.getsize(path) // 2)
  elif how == 'flip':
    data = bytearray(open(path, 'rb').read())
    data[len(data) // 2] ^= 0x01
    with open(path, 'wb') as f:
      f.write(bytes(data))


def test_damaged_checkpoints_are_never_restored_silently(tmp_path):
  """Every file of the newest checkpoint deleted, truncated or bit-flipped: it restores
  exactly, or is reported by name and the one before it is used. Never other numbers."""
  pristine = tmp_path / 'pristine'
  manager = checkpoints.create_manager(str(pristine))
  checkpoints.save(manager, 1, small_state(1.0))
  checkpoints.save(manager, 2, small_state(2.0))
  checkpoints.wait(manager)
  manager.close()
  files = sorted(f for f in glob.glob(str(pristine / 'checkpoints' / '2' / '**'), recursive=True)
                 if os.path.isfile(f))
  assert any('_CHECKPOINT_METADATA' in f for f in files) and len(files) >= 6
  fell_back = set()
  for i, path in enumerate(files):
    for how in ('delete', 'truncate', 'flip'):
      workdir = tmp_path / f'{i}_{how}'
      shutil.copytree(pristine, workdir)
      damage(path.replace(str(pristine), str(workdir)), how)
      manager = checkpoints.create_manager(str(workdir))
      restored, step = checkpoints.restore(manager, small_state(0.0))
      assert step in (1, 2)
      assert_bitwise_equal(restored, small_state(float(step)))
      if step == 1:
        fell_back.add((os.path.relpath(path, pristine), how))
        # The damaged step was moved aside: the resumed run can save that step again.
        checkpoints.save(manager, 2, small_state(2.0))
        checkpoints.wait(manager)
        assert glob.glob(str(workdir / 'checkpoints' / f'2{checkpoints.DAMAGED_SUFFIX}*'))
        restored, step = checkpoints.restore(manager, small_state(0.0))
        assert step == 2
        assert_bitwise_equal(restored, small_state(2.0))
      manager.close()
  # The cases orbax alone misses: a flipped byte in the data restores as other
  # numbers, and a deleted _CHECKPOINT_METADATA goes unnoticed.
  data_files = [os.path.relpath(f, pristine) for f in files if '/d/' in f]
  assert any((f, 'flip') in fell_back for f in data_files)
  assert ('checkpoints/2/_CHECKPOINT_METADATA', 'delete') in fell_back
  assert ('checkpoints/2/_CHECKPOINT_METADATA', 'truncate') in fell_back


def test_all_checkpoints_damaged_is_one_error_naming_them(tmp_path, caplog):
  manager = checkpoints.create_manager(str(tmp_path))
  for step in (1, 2):
    checkpoints.save(manager, step, small_state(float(step)))
  checkpoints.wait(manager)
  for step in (1, 2):
    os.remove(tmp_path / 'checkpoints' / str(step) / '_CHECKPOINT_METADATA')
  with caplog.at_level(logging.ERROR), pytest.raises(checkpoints.CheckpointError) as e:
    checkpoints.restore(checkpoints.create_manager(str(tmp_path)), small_state(0.0))
  message = str(e.value)
  assert '\n' not in message
  for step in (1, 2):
    assert os.path.join(str(tmp_path), 'checkpoints', str(step)) in message


def test_metadata_round_trip(tmp_path):
  manager = checkpoints.create_manager(str(tmp_path))
  checkpoints.save(manager, 3, small_state(3.0), metadata={'rollbacks': 2})
  checkpoints.wait(manager)
  assert checkpoints.saved_metadata(manager, 3) == {'rollbacks': 2}


# --- Signals.

SIGNAL_SCRIPT = """
import os, signal, sys, time
from dcgan_jax.training import preemption

# What the process had before (a shell may start it with SIGINT ignored): restored after.
before = signal.getsignal(signal.{sig})
with preemption.StopSignals() as stop:
  assert not stop.should_stop(0)
  # os.kill runs the Python handler of a signal sent to this process before it
  # returns (CPython checks pending signals there): no wait of any kind.
  os.kill(os.getpid(), signal.{sig})
  assert stop.should_stop(1) and stop.received == '{sig}'
  print('first signal: clean stop requested', flush=True)
  if {twice}:
    os.kill(os.getpid(), signal.{sig})  # The handler re-raises it with the default action.
    print('still alive after the second signal', flush=True)
assert signal.getsignal(signal.{sig}) is before
print('handlers restored', flush=True)
"""


@pytest.mark.parametrize('sig', ['SIGTERM', 'SIGINT'])
def test_first_signal_asks_to_stop_second_one_kills(sig):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  once = subprocess.run([sys.executable, '-c', SIGNAL_SCRIPT.format(sig=sig, twice=False)],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
  assert once.returncode == 0, once.stderr[-2000:]
  assert 'clean stop requested' in once.stdout and 'handlers restored' in once.stdout
  twice = subprocess.run([sys.executable, '-c', SIGNAL_SCRIPT.format(sig=sig, twice=True)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
  assert twice.returncode == -getattr(signal, sig), twice.stderr[-2000:]
  assert 'still alive' not in twice.stdout


# --- Training runs: stops, kills and divergence, compared with one unbroken run.

# Every run of this module compiles the same train step: a persistent compilation
# cache turns all but the first compilation into a file read (subprocesses too).
CACHE_DIR = os.path.join(tempfile.gettempdir(), f'dcgan_jax_test_compilation_cache_{os.getuid()}')
jax.config.update('jax_compilation_cache_dir', CACHE_DIR)
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)


@pytest.fixture
def run_config(config):
  config.num_train_steps = NUM_STEPS
  config.checkpoint_every_steps = 3
  config.log_every_steps = 2
  config.sample_every_steps = 1000  # Only the last step's grid: PNGs are not what is tested.
  config.max_checkpoints_to_keep = 100  # Keep every checkpoint, to compare each.
  return config


def host_target(config):
  g_state, d_state, _ = train._initial_states(config)  # pylint: disable=protected-access
  return checkpoints.to_host((g_state, d_state))


def restore_step(workdir, config, step):
  manager = checkpoints.create_manager(workdir, 'latest', config)
  assert step in manager.all_steps(), (step, manager.all_steps())
  return checkpoints.restore_step(manager, step, host_target(config))


@pytest.fixture(scope='module')
def reference(tmp_path_factory, tfds_data_dir, request):
  """An unbroken run with a checkpoint at every step: (workdir, final states).

  Under pytest-xdist the workers share one reference run (the first to get the
  lock trains it) instead of each training its own.
  """
  from configs import test as test_config  # pylint: disable=g-import-not-at-top
  config = test_config.get_config()
  config.data_dir = tfds_data_dir
  config.num_train_steps = NUM_STEPS
  config.checkpoint_every_steps = 1
  config.log_every_steps = 2
  config.sample_every_steps = 1000
  config.max_checkpoints_to_keep = 1000
  worker = getattr(request.config, 'workerinput', {}).get('workerid')
  # Under xdist the parent of the worker's temp folder belongs to this session only.
  root = tmp_path_factory.getbasetemp().parent if worker else tmp_path_factory.mktemp('ref')
  workdir = root / 'resilience_reference'
  with open(root / 'resilience_reference.lock', 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not (root / 'resilience_reference.done').exists():
      shutil.rmtree(workdir, ignore_errors=True)
      train.train_and_evaluate(config, str(workdir))
      (root / 'resilience_reference.done').touch()
  return str(workdir), restore_step(str(workdir), config, NUM_STEPS)


def latest_step(workdir, config):
  return checkpoints.create_manager(workdir, 'latest', config).latest_step()


def test_stops_right_at_after_and_before_checkpoints_resume_bitwise(run_config, reference,
                                                                    tmp_path, monkeypatch):
  reference_dir, reference_final = reference
  workdir = str(tmp_path / 'run')
  stop_at = {3, 5, 7}  # At a checkpoint step, right before one (6), right after one.
  monkeypatch.setattr(preemption.StopSignals, 'should_stop',
                      lambda self, step, sync=False: step in stop_at)
  for stop in sorted(stop_at):
    g_state, _ = train.train_and_evaluate(run_config, workdir)
    assert int(g_state.step) == stop == latest_step(workdir, run_config)
    assert_bitwise_equal(restore_step(workdir, run_config, stop),
                         restore_step(reference_dir, run_config, stop))
  final = train.train_and_evaluate(run_config, workdir)
  assert int(final[0].step) == NUM_STEPS
  assert_bitwise_equal(final, reference_final)


def checkpoint_entries(workdir):
  try:
    return os.listdir(os.path.join(workdir, 'checkpoints'))
  except FileNotFoundError:
    return []


def complete_steps(workdir):
  return sorted(int(e) for e in checkpoint_entries(workdir) if e.isdigit())


def start_run(workdir, config):
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4',
             JAX_COMPILATION_CACHE_DIR=CACHE_DIR, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0')
  command = [sys.executable, '-m', 'dcgan_jax.main', '--config=configs/test.py',
             f'--workdir={workdir}', f'--config.data_dir={config.data_dir}',
             f'--config.num_train_steps={config.num_train_steps}',
             f'--config.checkpoint_every_steps={config.checkpoint_every_steps}',
             f'--config.log_every_steps={config.log_every_steps}',
             f'--config.sample_every_steps={config.sample_every_steps}',
             f'--config.max_checkpoints_to_keep={config.max_checkpoints_to_keep}']
  return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def kill_when(process, workdir, condition, sig, timeout=300):
  """Sends `sig` the moment `condition(entries of checkpoints/)` holds; returns the output.

  A deliberate race against the run (for instance, to kill it in the middle of an
  orbax save): no log line marks such moments, so the folder is polled, and the
  assertions of the test hold wherever the kill lands (KILL_POINTS records it).
  Between looks it waits on the process itself (its exit ends the wait at once),
  never a blind sleep; the 2 ms bound decides only how finely the moment is hit,
  never a result.
  """
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if condition(checkpoint_entries(workdir)):
      process.send_signal(sig)
      break
    try:
      process.wait(timeout=0.002)
      break  # The run ended before the moment came; the assertions say so.
    except subprocess.TimeoutExpired:
      pass
  _, stderr = process.communicate(timeout=timeout)
  return stderr


def after_checkpoint(step):
  return lambda entries: any(e.isdigit() and int(e) >= step for e in entries)


def during_a_save_after(step):
  return lambda entries: any('orbax-checkpoint-tmp' in e and int(e.split('.')[0]) > step
                             for e in entries)


# (signal, when): a chain of runs of one workdir, each killed at its point and resumed by the next.
KILLS = [
    (signal.SIGTERM, after_checkpoint(3)),
    (signal.SIGKILL, after_checkpoint(9)),
    (signal.SIGKILL, during_a_save_after(12)),
    (signal.SIGKILL, during_a_save_after(21)),
]


def test_killed_and_preempted_runs_resume_bitwise(run_config, reference, tmp_path):
  reference_dir, reference_final = reference
  workdir = str(tmp_path / 'run')
  for sig, when in KILLS:
    before = complete_steps(workdir)
    process = start_run(workdir, run_config)
    stderr = kill_when(process, workdir, when, sig)
    steps = complete_steps(workdir)
    if process.returncode == 0:
      KILL_POINTS.append((sig.name, 'the run had finished', None))
      break
    if sig == signal.SIGTERM:
      # A clean stop: the step it stopped after is checkpointed and named in the log.
      assert process.returncode == preemption.EXIT_STOPPED, stderr[-3000:]
      stopped = int(re.search(r'Stopped by SIGTERM after step (\d+)', stderr).group(1))
      assert steps[-1] == stopped
    else:
      assert process.returncode == -signal.SIGKILL, stderr[-3000:]
    assert steps and steps[-1] >= (before[-1] if before else 0)
    latest = steps[-1]
    same = bitwise_equal(restore_step(workdir, run_config, latest),
                         restore_step(reference_dir, run_config, latest))
    leftovers = [e for e in checkpoint_entries(workdir) if 'tmp' in e]
    KILL_POINTS.append((sig.name, f'latest complete checkpoint {latest}'
                        + (f', unfinished save left: {leftovers}' if leftovers else ''), same))
    assert same
  final = train.train_and_evaluate(run_config, workdir)
  assert_bitwise_equal(final, reference_final)
  tried = [k for k in KILL_POINTS if k[2] is not None]
  print(f'\nkill points tried: {len(tried)}, resumed bitwise identically: '
        f'{sum(k[2] for k in tried)}; final params bitwise equal to the unbroken run')
  for point in KILL_POINTS:
    print('  ', point)
  # Each point must have hit a running process, or the test proved nothing.
  assert len(tried) == len(KILLS)


def test_divergence_stops_without_saving_a_bad_checkpoint(run_config, reference, tmp_path):
  reference_dir, _ = reference
  for nan_step, caught_by in ((5, 'd_loss'), (3, 'the parameters')):
    # Step 5: the metrics of log step 6 are NaN, before checkpoint 6 is saved.
    # Step 3: a checkpoint step but no log step: the parameter check before the save.
    workdir = str(tmp_path / f'nan_at_{nan_step}')
    run_config.debug_nan_at_step = nan_step
    with pytest.raises(divergence.DivergenceError) as e:
      train.train_and_evaluate(run_config, workdir)
    message = str(e.value)
    good = 3 if nan_step == 5 else None
    assert '\n' not in message and caught_by in message, message
    assert f'diverged at step {6 if nan_step == 5 else 3}' in message, message
    assert complete_steps(workdir) == ([good] if good else [])
    if good:
      assert f'last good checkpoint (step {good})' in message
      assert_bitwise_equal(restore_step(workdir, run_config, good),
                           restore_step(reference_dir, run_config, good))


def test_divergence_rollback_completes_with_new_random_numbers(run_config, reference, tmp_path):
  _, reference_final = reference
  workdir = str(tmp_path / 'rollback')
  run_config.debug_nan_at_step = 5
  run_config.divergence = 'rollback'
  final = train.train_and_evaluate(run_config, workdir)
  assert int(final[0].step) == NUM_STEPS
  assert all(np.all(np.isfinite(x)) for x in leaves(final) if x.dtype.kind == 'f')
  manager = checkpoints.create_manager(workdir, 'latest', run_config)
  assert checkpoints.saved_metadata(manager, 3) == {'rollbacks': 0}
  assert checkpoints.saved_metadata(manager, NUM_STEPS) == {'rollbacks': 1}
  assert not bitwise_equal(final, reference_final)  # Another key after step 3.
  # A resume of the rolled-back run continues its stream of random numbers.
  resumed_dir = str(tmp_path / 'rollback_resumed')
  shutil.copytree(workdir, resumed_dir)
  for step in complete_steps(resumed_dir):
    if step > 9:
      shutil.rmtree(os.path.join(resumed_dir, 'checkpoints', str(step)))
  assert_bitwise_equal(train.train_and_evaluate(run_config, resumed_dir), final)
