"""K independent GANs in one program: seeds and hyperparameter sweeps as replicas.

With `config.num_seeds = K > 1` every leaf of both TrainStates gets a leading
replica axis and the pure train step is `jax.vmap`-ed over it inside the
`pmap` (gradients and statistics are averaged over devices only, never across
replicas). Replica i of a run with `config.seed = s` is the single-seed run of
`replica_config(config, i)`: seed s + i, its own initialisation, z, noise,
dropout and data order, and the i-th value of every field in `config.sweep`.

`config.sweep` names per-replica values of continuous hyperparameters, one
value per replica, as text (it has to survive a command line):

  --config.num_seeds=3 --config.sweep='optim.g_lr=1e-4,2e-4,4e-4;optim.d_lr=4e-4,4e-4,4e-4'

Only fields that leave the compiled graph's structure alone can be swept
(`SWEEPABLE`): they live in the states (optax.inject_hyperparams for the
optimisers, `TrainState.hparams` for the rest), so K replicas with K values
compile once.
"""

import copy
import math

import jax
import numpy as np
from scipy import stats

# Fields whose value is data in the step (state), not structure: what a sweep may set.
SWEEPABLE = ('optim.g_lr', 'optim.d_lr', 'optim.g_b1', 'optim.d_b1', 'optim.g_b2', 'optim.d_b2',
             'ema_decay', 'instance_noise', 'loss.real_label')
# Fields that are structure when 0 (off) and data when positive: every value and
# the base config's must be positive for a sweep of them.
POSITIVE_ONLY = ('ema_decay', 'instance_noise')


class SweepError(ValueError):
  """`config.sweep` cannot be parsed or names a field that cannot be swept."""


def parse_sweep(text, num_seeds):
  """{field: (value per replica, ...)} from 'a.b=1,2,3;c=4,5,6' ('' or None: no sweep)."""
  sweep = {}
  for item in filter(None, (part.strip() for part in (text or '').split(';'))):
    field, sep, values = item.partition('=')
    field = field.strip()
    if not sep:
      raise SweepError(f"{item!r} is not 'field=v1,v2,...'")
    if field not in SWEEPABLE:
      raise SweepError(f'{field!r} cannot be swept (it changes the compiled program); '
                       f'sweepable fields: {", ".join(SWEEPABLE)}')
    try:
      numbers = tuple(float(v) for v in values.split(','))
    except ValueError:
      raise SweepError(f'{field}: {values!r} is not a list of numbers') from None
    if len(numbers) != num_seeds:
      raise SweepError(f'{field} has {len(numbers)} values for {num_seeds} replicas '
                       '(config.num_seeds): give one value per replica')
    if not all(math.isfinite(v) for v in numbers):
      raise SweepError(f'{field}: every value must be finite')
    sweep[field] = numbers
  return sweep


def _set(config, path, value):
  node = config
  *parents, leaf = path.split('.')
  for part in parents:
    node = node[part]
  node[leaf] = value


def replica_config(config, index):
  """The single-seed config replica `index` of `config` equals (seed + index, sweep values)."""
  single = copy.deepcopy(config)
  single.seed = config.seed + index
  for field, values in parse_sweep(config.sweep, config.num_seeds).items():
    _set(single, field, values[index])
  single.num_seeds = 1
  single.sweep = ''
  return single


def stack(trees):
  """One tree whose leaves stack the trees' leaves on a new leading (replica) axis.

  The structure (and the static fields: apply_fn, tx) is the first tree's: the
  replicas share one program, and what differs between them is data.
  """
  def stack_leaves(group):
    # Python ints (a fresh state's step) would stack as int64; JAX keeps int32.
    stacked = np.stack([np.asarray(x) for x in group])
    return stacked.astype(jax.dtypes.canonicalize_dtype(stacked.dtype))

  leaves = [stack_leaves(group) for group in zip(*(jax.tree.leaves(t) for t in trees))]
  return jax.tree.unflatten(jax.tree.structure(trees[0]), leaves)


def take(tree, index):
  """Replica `index` of a stacked tree."""
  return jax.tree.map(lambda x: x[index], tree)


def mean_and_ci(values, confidence=0.95):
  """(mean, half-width) of the Student-t confidence interval of the mean of `values`.

  With one value the half-width is NaN: one run carries no error bar.
  """
  values = np.asarray(values, np.float64)
  mean = float(values.mean())
  if values.size < 2:
    return mean, float('nan')
  sem = float(values.std(ddof=1)) / math.sqrt(values.size)
  return mean, float(stats.t.ppf(0.5 + confidence / 2, values.size - 1) * sem)


def replica_scalars(name, values):
  """{name/replica_i: v_i, name/mean: m, name/ci95: h}: TensorBoard scalars over replicas."""
  scalars = {f'{name}/replica_{i}': float(v) for i, v in enumerate(values)}
  mean, half_width = mean_and_ci(values)
  scalars[f'{name}/mean'] = mean
  if math.isfinite(half_width):
    scalars[f'{name}/ci95'] = half_width
  return scalars
