"""Where evaluations and checkpoints fall does not change what a run trains."""

import jax
import numpy as np

from dcgan_jax.training import train


def test_evaluation_and_checkpoint_schedule_leave_training_unchanged(config, tmp_path):
  """Evaluating (sampling, scoring) and checkpointing every 2 or every 3 steps trains the same.

  experiments.run relies on it: runs of one seed at other budgets, whose
  evaluations fall elsewhere, must be the same run read at other steps.
  """
  config.num_train_steps = 6
  config.num_seeds = 2
  config.eval_num_samples = 16
  config.eval_feature_extractor = 'digits'
  states = []
  for every in (2, 3):
    config.eval_every_steps = config.checkpoint_every_steps = every
    states.append(train.train_and_evaluate(config, str(tmp_path / f'every_{every}')))
  for x, y in zip(jax.tree.leaves(states[0]), jax.tree.leaves(states[1])):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
