"""Shared pieces of the study grids: base configs per scale, overrides and budgets."""

import copy

import numpy as np

from configs import default

SCALES = ('cpu', 'full')
# Seeds (replicas of one vmapped program, config.num_seeds) of every run: a
# verdict needs at least 3 (experiments/README.md); `--seeds` changes it.
SEEDS = 3
# Offline data only at cpu scale: nothing may need a download on a laptop or CI.
CPU_DATASET = 'offline_mnist'
# Training images per epoch of the studies' datasets (TFDS train splits), to turn
# the studies' epochs into steps at full scale.
TRAIN_EXAMPLES = {'mnist': 60_000, 'emnist': 112_800, 'cifar10': 50_000, 'celeb_a': 162_770,
                  # All of CelebA, as study 002 counted its epochs.
                  'celeb_a_all': 202_599}


def epochs_to_steps(dataset, epochs, batch_size):
  """G steps of `epochs` passes over `dataset` at `batch_size` (k = 1 D step a G step)."""
  return -(-TRAIN_EXAMPLES[dataset] * epochs // batch_size)


def _divisor_every(num_steps, num_events):
  """An interval near num_steps / num_events that divides num_steps.

  So the last scheduled evaluation falls on the last step, where the loop
  evaluates anyway, instead of a wasted one a few steps before it.
  """
  every = max(1, num_steps // num_events)
  while num_steps % every:
    every -= 1
  return every


def set_budget(config, num_steps, num_evals=4, num_samples=2, num_logs=40):
  """Sets the steps and spreads evaluations, sample grids and logs over them."""
  config.num_train_steps = num_steps
  config.eval_every_steps = _divisor_every(num_steps, num_evals)
  config.sample_every_steps = max(1, num_steps // num_samples)
  config.checkpoint_every_steps = config.eval_every_steps
  config.log_every_steps = max(1, min(50, num_steps // num_logs))
  return config


def budget_overrides(num_steps, num_evals=4, num_samples=2, num_logs=40):
  """The overrides of `set_budget`, for a run whose budget differs from its study's."""
  every = _divisor_every(num_steps, num_evals)
  return {'num_train_steps': num_steps,
          'eval_every_steps': every,
          'sample_every_steps': max(1, num_steps // num_samples),
          'checkpoint_every_steps': every,
          'log_every_steps': max(1, min(50, num_steps // num_logs))}


def cpu_config(num_steps, image_size=28, batch_size=64, num_evals=6, num_samples=2):
  """Small widths, the offline digits and the digit-classifier FID: minutes on 2 cores.

  Batch 64 (half the studies' 128): on 2 cores it trains more images a second
  than batch 32 (less host work per image), and it is closer to the studies.
  """
  config = default.get_config()
  config.dataset = CPU_DATASET
  config.image_size = image_size  # 32 pads the 28 px digits, for 32 px architectures.
  config.batch_size = batch_size
  config.shuffle_buffer_size = 5_000
  config.eval_feature_extractor = 'digits'
  config.eval_num_samples = 1_000
  config.max_checkpoints_to_keep = 1
  config.model.latent_dim = 64
  config.model.g_features = 32
  config.model.d_features = 32
  config.num_seeds = SEEDS
  return set_budget(config, num_steps, num_evals=num_evals, num_samples=num_samples)


def full_config(dataset, image_size, batch_size, num_steps):
  """The study's dataset and image size, Inception FID/KID/IS on 10,000 samples."""
  config = default.get_config()
  config.dataset = dataset
  config.image_size = image_size
  config.batch_size = batch_size
  config.eval_feature_extractor = 'inception'
  config.eval_num_samples = 10_000
  config.model.latent_dim = 100
  config.model.g_features = 64
  config.model.d_features = 64
  config.num_seeds = SEEDS
  return set_budget(config, num_steps, num_evals=10, num_samples=20, num_logs=500)


def apply_overrides(config, overrides):
  """A copy of `config` with {'dotted.path': value} overrides; unknown fields are errors.

  Raises KeyError for a path the base config does not have, so a typo in a grid
  fails when the grid is built rather than training the wrong thing.
  """
  config = copy.deepcopy(config)
  for path, value in overrides.items():
    node = config
    *parents, leaf = path.split('.')
    for part in parents:
      if part not in node:
        raise KeyError(f'Override {path!r}: the config has no field {part!r}.')
      node = node[part]
    if leaf not in node:
      raise KeyError(f'Override {path!r}: the config has no field {leaf!r}.')
    node[leaf] = value
  return config


# The rule every verdict of the studies follows (experiments/README.md): two cells
# differ when Welch's t-test over their seeds gives p < VERDICT_ALPHA.
VERDICT_ALPHA = 0.05
# The rule for "converged" (experiments/README.md): a seed's FID has plateaued
# when its fitted change over the last quarter of its run is less than
# PLATEAU_CHANGE (relative); a cell has when no seed is still falling.
PLATEAU_CHANGE = 0.10
# The rule's window: the evaluations from this fraction of the last step on.
PLATEAU_WINDOW = 0.75
# The fewest evaluations the window must hold for a reading: two would be the
# two-ends form the rule gave up, where one evaluation's noise decides.
PLATEAU_MIN_EVALS = 3
# When the reading holds (experiments/README.md): a budget B is converged when
# the rule reads plateaued at every evaluation from B to PLATEAU_HOLD * B.
PLATEAU_HOLD = 1.25


def last_quarter_change(steps, values):
  """Fitted relative change of a curve over the last quarter of its steps.

  The Theil-Sen line through log(value) at the evaluations in the last quarter
  (`plots.window_trend`: the median of the slopes between every pair), read
  over the quarter: -0.2 is a fall of 20%. A robust fit through every
  evaluation in the window rather than its two ends, so that one evaluation's
  noise (FID moves by about 5 between evaluations at FID 50) is not read as a
  trend.

  Returns:
    The change, or NaN when fewer than PLATEAU_MIN_EVALS evaluations fall in
    the window.
  """
  from dcgan_jax.analysis import plots  # pylint: disable=g-import-not-at-top
  trend = plots.window_trend(steps, values, PLATEAU_WINDOW)
  if trend is None or len(trend[0]) < PLATEAU_MIN_EVALS:
    return float('nan')
  return trend[2]


def plateau_label(change):
  """'flat', 'falling', 'rising' or '-' (unknown) for one seed's last-quarter change."""
  if not np.isfinite(change):
    return '-'
  if change < -PLATEAU_CHANGE:
    return 'falling'
  return 'rising' if change > PLATEAU_CHANGE else 'flat'


def plateau_verdict(changes):
  """The rule for a cell: 'plateaued (...)' when no seed is falling, else 'not plateaued (...)'.

  A rising seed counts as stopped: it has stopped improving, so more steps
  would not buy it anything, which is what the rule asks of a budget.
  """
  labels = [plateau_label(c) for c in changes]
  counts = ', '.join(f'{labels.count(k)} {k}' for k in ('flat', 'rising', 'falling', '-')
                     if labels.count(k))
  if not labels or 'falling' in labels or '-' in labels:
    return f'not plateaued ({counts})'
  return f'plateaued ({counts})'


def changes_at(seeds, budget):
  """Each seed's last-quarter FID change had the run stopped at `budget` (NaN: too short).

  `seeds`: [(steps, values)] per seed, e.g. `plots.per_seed(scalars, 'fid')`.
  """
  changes = []
  for steps, values in seeds:
    keep = np.asarray(steps) <= budget
    changes.append(last_quarter_change(np.asarray(steps)[keep], np.asarray(values)[keep]))
  return changes


def reads_plateaued(changes):
  """Whether the rule reads a cell with these per-seed last-quarter changes plateaued."""
  return plateau_verdict(changes).startswith('plateaued')


def plateau_readings(seeds, from_step=0):
  """[(budget, plateaued?)] at each evaluation >= from_step, as if the run had stopped there."""
  steps = np.asarray(seeds[0][0])
  return [(int(t), reads_plateaued(changes_at(seeds, t))) for t in steps[steps >= from_step]]


def converged_at(readings, hold=PLATEAU_HOLD):
  """The earliest budget B whose reading holds: plateaued at every budget from B to hold * B.

  None when no budget does, or the readings stop before hold * B
  (experiments/README.md, "When the reading holds").
  """
  for i, (budget, _) in enumerate(readings):
    if readings[-1][0] < hold * budget:
      return None
    if all(flat for b, flat in readings[i:] if b <= hold * budget):
      return budget
  return None


def welch_verdict(a, b, lower_is_better=True, alpha=VERDICT_ALPHA):
  """('a' | 'b' | 'not resolved', p): which of two cells' per-seed values is better.

  Welch's unequal-variance t-test (scipy) on the per-seed values; a difference
  with p >= alpha is 'not resolved', whatever the means say.
  """
  from scipy import stats  # pylint: disable=g-import-not-at-top
  p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
  if not p < alpha:
    return 'not resolved', p
  a_better = (sum(a) / len(a) < sum(b) / len(b)) == lower_is_better
  return ('a' if a_better else 'b'), p
