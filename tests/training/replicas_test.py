"""Replicas (config.num_seeds, config.sweep): K GANs in one program equal K single runs."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from scipy import stats

from dcgan_jax.training import replicas
from dcgan_jax.training import train
from tests import support

# Replica i and the single run compute the same arithmetic. The host loop runs
# the single run's own compiled step, so it is bitwise equal; under vmap XLA
# batches the convolutions and reductions of the K replicas together, which
# may change the order of float32 sums: equal to float32 rounding (about
# 1e-8 absolute after a few steps here), not bitwise.
ATOL = {'host': 0.0, 'vmap': 1e-6}


def _leaves(g_state, d_state):
  return jax.tree.leaves((g_state.params, g_state.ema_params, g_state.batch_stats,
                          g_state.opt_state, d_state.params, d_state.batch_stats,
                          d_state.opt_state))


def _assert_replica_equals_single(stacked, index, single, atol):
  for replica_leaf, single_leaf in zip(_leaves(*stacked), _leaves(*single), strict=True):
    np.testing.assert_allclose(np.asarray(replica_leaf)[index], np.asarray(single_leaf),
                               rtol=0, atol=atol)


@pytest.mark.parametrize('replica_loop', ['host', 'vmap'])
def test_k3_replicas_equal_single_runs_and_resume_exactly(config, tmp_path, replica_loop):
  config.num_seeds = 3
  config.replica_loop = replica_loop
  config.num_train_steps = 4
  config.checkpoint_every_steps = 2
  unbroken = train.train_and_evaluate(config, str(tmp_path / 'k3'))
  for i in range(3):
    single = train.train_and_evaluate(replicas.replica_config(config, i), str(tmp_path / f's{i}'))
    _assert_replica_equals_single(unbroken, i, single, ATOL[replica_loop])
  # Replicas differ from each other (their own seeds).
  params = jax.tree.leaves(unbroken[0].params)[0]
  assert not np.allclose(params[0], params[1])

  config.num_train_steps = 2
  train.train_and_evaluate(config, str(tmp_path / 'resumed'))
  config.num_train_steps = 4
  resumed = train.train_and_evaluate(config, str(tmp_path / 'resumed'))
  for x, y in zip(_leaves(*resumed), _leaves(*unbroken), strict=True):
    np.testing.assert_array_equal(x, y)
  assert sorted(os.listdir(tmp_path / 'k3' / 'samples')) == [
      'replica_0', 'replica_1', 'replica_2', 'step_0000003.png', 'step_0000004.png']


def test_a_sweep_replica_equals_the_single_run_with_its_values(config, tmp_path):
  config.num_seeds = 2
  config.num_train_steps = 3
  config.ema_decay = 0.999
  config.instance_noise = 0.1
  config.sweep = ('optim.g_lr=1e-4,3e-4;optim.d_b1=0.5,0.3;ema_decay=0.9,0.99;'
                  'instance_noise=0.2,0.05')
  stacked = train.train_and_evaluate(config, str(tmp_path / 'sweep'))
  single = replicas.replica_config(config, 1)
  assert (single.seed, single.optim.g_lr, single.optim.d_b1, single.ema_decay,
          single.instance_noise) == (config.seed + 1, 3e-4, 0.3, 0.99, 0.05)
  _assert_replica_equals_single(stacked, 1, train.train_and_evaluate(single, str(tmp_path / 's')),
                                ATOL['host'])
  # The swept values are state: one per replica.
  np.testing.assert_allclose(stacked[0].hparams['ema_decay'], [0.9, 0.99])
  np.testing.assert_allclose(stacked[0].opt_state.hyperparams['learning_rate'], [1e-4, 3e-4])


@pytest.mark.parametrize('name, backend, expected', [
    ('quickstart', 'cpu', 'host'), ('quickstart', 'gpu', 'vmap'), ('quickstart', 'tpu', 'vmap'),
    ('celeba64', 'cpu', 'host'), ('celeba64', 'gpu', 'host'), ('celeba64', 'tpu', 'host')])
def test_auto_replica_loop_follows_the_backend_and_the_size(name, backend, expected):
  """vmap only off CPU and for replicas as small as the quickstart's (measured on a GPU)."""
  import importlib  # pylint: disable=g-import-not-at-top
  from dcgan_jax.training import gan_step  # pylint: disable=g-import-not-at-top
  config = importlib.import_module(f'configs.{name}').get_config()
  config.num_seeds = 4
  assert config.replica_loop == 'auto'
  assert gan_step.replica_loop(config, backend) == expected
  config.replica_loop = 'vmap'
  assert gan_step.replica_loop(config, 'cpu') == 'vmap'


@pytest.mark.parametrize('sweep, message', [
    ('model.g_features=8,16', 'cannot be swept'),
    ('optim.g_lr=1e-4', 'has 1 values for 2 replicas'),
    ('optim.g_lr=1e-4,x', 'not a list of numbers'),
    ('ema_decay=0.9,0.99', 'base config.ema_decay > 0'),
])
def test_bad_sweeps_are_one_line_config_errors(config, sweep, message):
  from dcgan_jax import config_validation  # pylint: disable=g-import-not-at-top
  config.num_seeds = 2
  config.sweep = sweep
  with pytest.raises(config_validation.ConfigError, match=message) as e:
    config_validation.validate(config, num_devices=4)
  assert '\n' not in str(e.value) and str(e.value).startswith('config.sweep = ')


@pytest.mark.parametrize('values', [[3.0, 5.0], [1.0, 2.0, 4.0, 8.0], np.linspace(0, 1, 10)])
def test_confidence_interval_matches_scipy(values):
  mean, half_width = replicas.mean_and_ci(values)
  low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values),
                               scale=stats.sem(values))
  assert mean == pytest.approx(np.mean(values))
  assert mean - half_width == pytest.approx(low) and mean + half_width == pytest.approx(high)
  assert np.isnan(replicas.mean_and_ci([1.0])[1])


def test_replica_scalars_hold_each_value_the_mean_and_the_interval():
  scalars = replicas.replica_scalars('fid', [10.0, 12.0, 14.0])
  assert scalars['fid/replica_1'] == 12.0 and scalars['fid/mean'] == 12.0
  assert scalars['fid/ci95'] == pytest.approx(stats.t.ppf(0.975, 2) * 2 / np.sqrt(3))


def test_two_devices_times_two_replicas_from_the_command_line(tfds_data_dir, tmp_path):
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2')
  result = subprocess.run(
      [sys.executable, '-m', 'dcgan_jax.main', '--config=configs/test.py',
       f'--workdir={tmp_path}', '--config.num_train_steps=2', '--config.log_every_steps=1',
       f'--config.data_dir={tfds_data_dir}', '--config.num_seeds=2',
       '--config.sweep=optim.d_lr=1e-4,4e-4'],
      cwd=support.ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'd_loss/replica_1=' in result.stderr and 'd_loss/ci95=' in result.stderr
  assert os.listdir(tmp_path / 'checkpoints') == ['2']
  meta = json.loads((tmp_path / 'checkpoints' / '2' / '_CHECKPOINT_METADATA').read_text())
  assert meta  # An orbax checkpoint of the stacked states.
