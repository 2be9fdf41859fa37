"""End to end: train_and_evaluate on the test config writes its outputs and resumes exactly."""

import glob
import os
import subprocess
import sys

import jax
import numpy as np
from PIL import Image

from dcgan_jax import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
