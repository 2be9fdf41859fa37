"""Two processes on localhost (CPU collectives) train exactly as one process with the same devices."""

import glob
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile

import jax
import numpy as np

from dcgan_jax.training import checkpoints
from dcgan_jax.data import input_pipeline
from dcgan_jax.training import preemption
from dcgan_jax.training import train
from tests import support
from tests.support import processes

ROOT = support.ROOT
NUM_STEPS = 8
CACHE_DIR = os.path.join(tempfile.gettempdir(), f'dcgan_jax_test_compilation_cache_{os.getuid()}')


def free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def start(workdir, data_dir, devices, extra=()):
  env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}',
             JAX_COMPILATION_CACHE_DIR=CACHE_DIR, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0')
  command = [sys.executable, '-m', 'dcgan_jax.main', '--config=configs/test.py',
             f'--workdir={workdir}', f'--config.data_dir={data_dir}',
             f'--config.num_train_steps={NUM_STEPS}', '--config.checkpoint_every_steps=4',
             '--config.log_every_steps=2', '--config.sample_every_steps=4', *extra]
  return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def start_pair(workdir, data_dir):
  """Process 0 and process 1 of a two-process run, one CPU device each."""
  address = f'127.0.0.1:{free_port()}'
  return [start(workdir, data_dir, 1, [f'--coordinator_address={address}', '--num_processes=2',
                                       f'--process_id={i}']) for i in range(2)]


def finish(process, timeout=400):
  _, stderr = process.communicate(timeout=timeout)
  return process.returncode, stderr


def final_states(workdir, config):
  g_state, d_state, _ = train._initial_states(config)  # pylint: disable=protected-access
  manager = checkpoints.create_manager(workdir, 'latest', config)
  states, step = checkpoints.restore(manager, checkpoints.to_host((g_state, d_state)))
  return states, step


def assert_bitwise_equal(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_processes_take_their_slices_of_the_global_batches(config, monkeypatch):
  """Each of 2 (simulated) processes gets its rows of the batches one process would see."""
  config.d_steps = 2  # Each step takes d_steps * batch_size images.
  it = iter(input_pipeline.create_train_dataset(config, start_step=3))
  single = [next(it)['image'].numpy() for _ in range(2)]  # [4 devices, 4, 28, 28, 1]
  monkeypatch.setattr(jax, 'process_count', lambda: 2)
  monkeypatch.setattr(jax, 'local_device_count', lambda: 2)
  for index in range(2):
    monkeypatch.setattr(jax, 'process_index', lambda index=index: index)
    it = iter(input_pipeline.create_train_dataset(config, start_step=3))
    for batch in single:
      np.testing.assert_array_equal(next(it)['image'].numpy(), batch[2 * index:2 * index + 2])


def test_two_processes_match_one_process_bitwise_and_survive_preemption(config, tmp_path):
  single_dir, pair_dir, preempted_dir = (str(tmp_path / n) for n in ('single', 'pair', 'preempted'))
  single = start(single_dir, config.data_dir, 2)
  pair = start_pair(pair_dir, config.data_dir)
  results = [finish(p) for p in [single, *pair]]
  for returncode, stderr in results:
    assert returncode == 0, stderr[-3000:]
  config.num_train_steps = NUM_STEPS
  reference, step = final_states(single_dir, config)
  assert step == NUM_STEPS
  two_process, step = final_states(pair_dir, config)
  assert step == NUM_STEPS
  assert_bitwise_equal(two_process, reference)
  # Only process 0 writes the TensorBoard file and the sample grids.
  assert len(glob.glob(os.path.join(pair_dir, 'events.out.tfevents.*'))) == 1
  assert sorted(os.listdir(os.path.join(pair_dir, 'samples'))) == [
      'step_0000004.png', 'step_0000008.png']

  # SIGTERM to process 1 only: JAX's preemption sync point stops both at the
  # same step, with a checkpoint; two new processes resume to the same numbers.
  pair = start_pair(preempted_dir, config.data_dir)
  # Process 1's first metrics line: the processes have joined and the loop, which
  # turns SIGTERM into a clean stop, is running. An event, not a fixed wait.
  watcher = processes.StderrWatcher(pair[1])
  assert watcher.wait_for(r'\[2\] d_acc'), ''.join(watcher.lines)[-3000:]
  pair[1].send_signal(signal.SIGTERM)
  results = [finish(pair[0]), watcher.finish()]
  stopped = []
  for returncode, stderr in results:
    assert returncode == preemption.EXIT_STOPPED, stderr[-3000:]
    stopped.append(int(re.search(r'Stopped by .* after step (\d+)', stderr).group(1)))
  assert stopped[0] == stopped[1] < NUM_STEPS
  _, step = final_states(preempted_dir, config)
  assert step == stopped[0]
  results = [finish(p) for p in start_pair(preempted_dir, config.data_dir)]
  for returncode, stderr in results:
    assert returncode == 0, stderr[-3000:]
  resumed, step = final_states(preempted_dir, config)
  assert step == NUM_STEPS
  assert_bitwise_equal(resumed, reference)


def test_distributed_flags_go_together(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'dcgan_jax.main', '--config=configs/test.py',
       f'--workdir={tmp_path}', '--num_processes=2'],
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode != 0
  assert '--coordinator_address, --num_processes and --process_id go together' in result.stderr
  assert 'Traceback' not in result.stderr
