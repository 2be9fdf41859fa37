"""End to end: train_and_evaluate on the test config writes its outputs and resumes exactly."""

import glob
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from dcgan_jax.training import train
from tests import support

ROOT = support.ROOT


def leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_train_writes_outputs_and_resumes_bitwise(config, tmp_path):
  workdir = str(tmp_path / 'run')
  config.num_train_steps = 3
  train.train_and_evaluate(config, workdir)
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['3']
  assert glob.glob(os.path.join(workdir, 'events.out.tfevents.*'))
  grid = np.asarray(Image.open(os.path.join(workdir, 'samples', 'step_0000003.png')))
  assert grid.shape == (4 * 30 + 2, 4 * 30 + 2)  # 16 digits of 28 px, 2 px apart.

  config.num_train_steps = 6
  g_resumed, d_resumed = train.train_and_evaluate(config, workdir)
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['3', '6']
  assert os.path.exists(os.path.join(workdir, 'samples', 'step_0000006.png'))

  g_unbroken, d_unbroken = train.train_and_evaluate(config, str(tmp_path / 'unbroken'))
  assert int(g_resumed.step) == int(g_unbroken.step) == 6
  for x, y in zip(leaves((g_resumed, d_resumed)), leaves((g_unbroken, d_unbroken))):
    np.testing.assert_array_equal(x, y)


def test_cli_runs_the_quickstart_config_briefly(tfds_data_dir, tmp_path):
  workdir = str(tmp_path / 'cli')
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=1')
  result = subprocess.run(
      [sys.executable, '-m', 'dcgan_jax.main', '--config=configs/quickstart.py',
       f'--workdir={workdir}', '--config.num_train_steps=2', '--config.batch_size=8',
       f'--config.data_dir={tfds_data_dir}', '--config.log_every_steps=1'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'd_loss=' in result.stderr
  assert os.listdir(os.path.join(workdir, 'checkpoints')) == ['2']


def test_training_evaluates_and_keeps_the_best_checkpoint(config, tmp_path):
  from dcgan_jax.analysis import plots  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path / 'eval')
  config.num_train_steps = 4
  config.eval_every_steps = 1
  config.eval_num_samples = 64
  config.eval_feature_extractor = 'digits'
  train.train_and_evaluate(config, workdir)
  steps, fids = plots.read_scalars(workdir, tags=['fid'])['fid']
  assert list(steps) == [1, 2, 3, 4] and np.all(np.isfinite(fids))
  best_step = int(steps[int(np.argmin(fids))])
  assert os.listdir(os.path.join(workdir, 'best_checkpoint')) == [str(best_step)]

  # --mode=evaluate scores the same checkpoints with the same z: the same numbers.
  results = train.evaluate_checkpoints(config, workdir)
  assert results['latest']['step'] == 4 and results['best']['step'] == best_step
  assert results['best']['fid'] == pytest.approx(min(fids), rel=1e-4)
  assert results['latest']['fid'] == pytest.approx(fids[-1], rel=1e-4)


BAD_COMMAND_LINES = [
    # (flags after --workdir, what the one line must say)
    (['--config=configs/test.py', '--config.nonexistent=1'], '--config.nonexistent: the config has no such field'),
    (['--config=configs/does_not_exist.py'], "cannot read the config file 'configs/does_not_exist.py'"),
    (['--config={syntax_error}'], 'has a syntax error at line 1'),
    (['--config={no_get_config}'], 'defines no get_config()'),
    (['--config=configs/test.py', '--config.seed=-1'], 'config.seed = -1: must be an integer >= 0'),
    (['--config=configs/test.py', '--config.seed=4294967296'], 'must be an integer in [0, 2**32)'),
    (['--config=configs/test.py', '--config.seed=abc'], '--config.seed=abc'),
    (['--config=configs/test.py', '--config.num_seeds=2', '--config.sweep=model.latent_dim=8,16'],
     "'model.latent_dim' cannot be swept"),
]


@pytest.mark.parametrize('flags, expected', BAD_COMMAND_LINES)
def test_bad_command_lines_are_one_line_errors(tmp_path, flags, expected):
  (tmp_path / 'syntax_error.py').write_text('def get_config(:\n')
  (tmp_path / 'no_get_config.py').write_text('x = 1\n')
  flags = [f.format(syntax_error=tmp_path / 'syntax_error.py',
                    no_get_config=tmp_path / 'no_get_config.py') for f in flags]
  result = subprocess.run([sys.executable, '-m', 'dcgan_jax.main', f'--workdir={tmp_path}/w',
                           *flags], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 2, result.stderr[-2000:]
  errors = [line for line in result.stderr.splitlines() if line.startswith('Error: ')]
  assert len(errors) == 1 and expected in errors[0], result.stderr[-2000:]
  assert 'Traceback' not in result.stderr


def test_sigterm_during_start_up_says_what_happened(capsys):
  from dcgan_jax import cli  # pylint: disable=g-import-not-at-top  (no flags: main's clash)
  import signal  # pylint: disable=g-import-not-at-top
  with pytest.raises(SystemExit) as e:
    cli.stopped_outside_training(signal.SIGTERM, None)
  assert e.value.code == 143
  assert 'Stopped by SIGTERM outside the training loop' in capsys.readouterr().err


LIBRARY_RUN = """
import sys
from configs import test as test_config
from dcgan_jax.training import train  # The library API, as a notebook calls it: no main.py.
config = test_config.get_config()
config.data_dir, config.num_train_steps = sys.argv[1], 3
train.train_and_evaluate(config, sys.argv[2])
"""


def test_cli_and_library_give_bitwise_the_same_run(tfds_data_dir, tmp_path):
  """One seed, one result on every entry point: the library applies the XLA flags itself."""
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=1')
  env.pop('DCGAN_JAX_NO_DEFAULT_XLA_FLAGS', None)
  cli = subprocess.run(
      [sys.executable, '-m', 'dcgan_jax.main', '--config=configs/test.py',
       f'--workdir={tmp_path / "cli"}', '--config.num_train_steps=3',
       f'--config.data_dir={tfds_data_dir}'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert cli.returncode == 0, cli.stderr[-3000:]
  library = subprocess.run(
      [sys.executable, '-c', LIBRARY_RUN, tfds_data_dir, str(tmp_path / 'library')],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert library.returncode == 0, library.stderr[-3000:]
  from dcgan_jax.training import checkpoints  # pylint: disable=g-import-not-at-top
  from configs import test as test_config  # pylint: disable=g-import-not-at-top
  config = test_config.get_config()
  states = []
  for name in ('cli', 'library'):
    manager = checkpoints.create_manager(str(tmp_path / name), 'latest', config)
    initial = train._initial_states(config)[:2]  # pylint: disable=protected-access
    restored, step = checkpoints.restore(manager, checkpoints.to_host(initial))
    assert step == 3
    states.append(restored)
  for x, y in zip(leaves(states[0]), leaves(states[1]), strict=True):
    np.testing.assert_array_equal(x, y)
