"""Divergence guard: non-finite losses or parameters stop a run or roll it back.

Checking the parameters after every step would cost a host sync per step, so
the loop checks what it already has on the host (the metrics fetched at log
steps) and, before each checkpoint save, reduces every parameter to a single
"all finite" flag on the devices. A non-finite state is never saved, so the
latest checkpoint is always the last good one.

`config.divergence`:
  * 'stop': raise DivergenceError naming the step, what went non-finite and the
    last good checkpoint.
  * 'rollback': restore the last good checkpoint and go on with a new stream of
    random numbers (the rollback count is folded into the step key and stored
    with every later checkpoint, so a resume reproduces the rolled-back run);
    after `config.max_rollbacks` rollbacks the run stops as with 'stop'.
"""

import math

import jax
import jax.numpy as jnp

from dcgan_jax import errors

POLICIES = ('stop', 'rollback')  # config.divergence


class DivergenceError(errors.EnvironmentFailure):
  """Training produced non-finite values; the message says where and what to do."""


def nonfinite_metrics(summary):
  """Names of the (host) scalar metrics that are NaN or infinite."""
  return sorted(k for k, v in summary.items() if not math.isfinite(float(v)))


def _all_finite(tree):
  leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


# On the replicated states: one boolean per local device (they hold the same values).
p_all_finite = jax.pmap(_all_finite)


def states_are_finite(replicated_states):
  """Whether every float in the (pmap-replicated) states is finite; one small device->host copy."""
  return bool(jax.device_get(p_all_finite(replicated_states))[0])


def step_key(base_key, rollbacks):
  """The run's step key after `rollbacks` rollbacks (the base key when there were none)."""
  return base_key if rollbacks == 0 else jax.random.fold_in(base_key, rollbacks)


def message(step, what, last_good_step, workdir, policy):
  """The one-line explanation of a stop."""
  good = (f'the last good checkpoint (step {last_good_step}) in {workdir}/checkpoints is intact'
          if last_good_step is not None else 'no checkpoint was saved before it')
  hint = ("lower the learning rates, or set --config.divergence=rollback"
          if policy == 'stop' else 'lower the learning rates')
  return f'Training diverged at step {step}: {what} not finite; {good}. To go on, {hint}.'
