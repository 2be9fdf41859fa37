"""Shared helpers of the train-step tests: fixed batches and a cached pmapped step."""

import functools

from flax import jax_utils
import jax
import numpy as np

from dcgan_jax.training import gan_step

IMAGE_SHAPE = (28, 28, 1)


def fixed_batch(num_devices, per_device, seed=0):
  rng = np.random.RandomState(seed)
  images = rng.uniform(-1, 1, (num_devices, per_device, *IMAGE_SHAPE)).astype(np.float32)
  return {'image': images}


@functools.lru_cache(maxsize=None)
def _p_step(config_json, num_devices):
  import ml_collections  # pylint: disable=g-import-not-at-top
  config = ml_collections.ConfigDict(__import__('json').loads(config_json))
  step = functools.partial(gan_step.train_step, config=config)
  return jax.pmap(step, axis_name='batch', devices=jax.devices()[:num_devices])


def p_step(config, num_devices):
  """A pmapped step over the first `num_devices` devices, cached per config."""
  return _p_step(config.to_json(), num_devices)


def run(config, num_devices, num_steps, seed=None):
  seed = config.seed if seed is None else seed
  init_key, step_key = jax.random.split(jax.random.PRNGKey(seed))
  g_state, d_state = gan_step.create_train_states(config, init_key, IMAGE_SHAPE)
  devices = jax.devices()[:num_devices]
  g_repl, d_repl = jax_utils.replicate((g_state, d_state), devices)
  key_repl = jax_utils.replicate(step_key, devices)
  step_fn = p_step(config, num_devices)
  metrics = []
  for i in range(num_steps):
    batch = fixed_batch(num_devices, config.batch_size // num_devices, seed=i)
    g_repl, d_repl, m = step_fn(g_repl, d_repl, batch, key_repl)
    metrics.append(m)
  return g_state, d_state, g_repl, d_repl, jax.device_get(metrics)


def first(tree):
  """Device 0's copy (flax's unreplicate mis-handles a pmap over one of several devices)."""
  return jax.tree.map(lambda x: np.asarray(x)[0], tree)


def leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]
