"""config.steps_per_call: n steps a device call give the numbers and outputs of one a call."""

import os

import jax
import numpy as np
import pytest

from dcgan_jax import config_validation
from dcgan_jax.analysis import plots
from dcgan_jax.training import train


def _leaves(states):
  return [np.asarray(x) for x in jax.tree.leaves(states)]


def _outputs(workdir):
  """What a run leaves that has steps in it: checkpoints, sample grids, logged scalars."""
  scalars = plots.read_scalars(workdir)
  return (sorted(os.listdir(os.path.join(workdir, 'checkpoints'))),
          sorted(os.listdir(os.path.join(workdir, 'samples'))),
          {tag: (list(steps), values) for tag, (steps, values) in scalars.items()
           if tag != 'steps_per_sec' and not tag.startswith('uptime')})


# The scan body is the same step, but XLA compiles a loop body on its own terms
# (fusions, the order of float32 sums), so n steps a call agree with one a call
# to float32 rounding, about 1e-8 absolute after 8 steps here, not bitwise. A run
# with a given steps_per_call is bitwise reproducible and resumes exactly.
ATOL = 1e-6


def _assert_same_run(a, b):
  a_states, a_workdir = a
  b_states, b_workdir = b
  for x, y in zip(_leaves(a_states), _leaves(b_states), strict=True):
    np.testing.assert_allclose(x, y, rtol=0, atol=ATOL)
  a_files, a_samples, a_scalars = _outputs(a_workdir)
  b_files, b_samples, b_scalars = _outputs(b_workdir)
  assert (a_files, a_samples) == (b_files, b_samples)
  assert a_scalars.keys() == b_scalars.keys() and a_scalars
  for tag, (steps, values) in a_scalars.items():
    assert steps == b_scalars[tag][0], tag
    np.testing.assert_allclose(values, b_scalars[tag][1], rtol=1e-4, atol=ATOL, err_msg=tag)


@pytest.mark.parametrize('num_seeds', [1, 2])
def test_n_steps_a_call_equal_one_step_a_call_and_resume(config, tmp_path, num_seeds):
  config.num_seeds = num_seeds
  config.num_train_steps = 8
  config.log_every_steps = 2
  config.sample_every_steps = 4
  config.checkpoint_every_steps = 4
  runs, hooked = {}, {1: [], 2: []}
  for n in (1, 2):
    config.steps_per_call = n
    workdir = str(tmp_path / f'n{n}')
    runs[n] = (train.train_and_evaluate(config, workdir, hooks=(hooked[n].append,)), workdir)
  _assert_same_run(runs[1], runs[2])
  # Hooks run once a device call, with the step it ended on.
  assert hooked == {1: list(range(1, 9)), 2: [2, 4, 6, 8]}
  assert _outputs(runs[2][1])[0] == ['4', '8']

  # A run of 2 steps a call stopped at step 4 resumes to the same end.
  workdir = str(tmp_path / 'resumed')
  config.num_train_steps = 4
  train.train_and_evaluate(config, workdir)
  config.num_train_steps = 8
  resumed = train.train_and_evaluate(config, workdir)
  for x, y in zip(_leaves(resumed), _leaves(runs[2][0]), strict=True):
    np.testing.assert_array_equal(x, y)


def test_steps_per_call_must_divide_every_interval(config):
  config.num_train_steps = config.sample_every_steps = config.checkpoint_every_steps = 12
  config.steps_per_call = 4
  config.log_every_steps = 6
  with pytest.raises(config_validation.ConfigError, match='must divide config.log_every_steps'):
    config_validation.validate(config, num_devices=1)
  config.steps_per_call = 0
  with pytest.raises(config_validation.ConfigError, match='steps_per_call'):
    config_validation.validate(config, num_devices=1)
