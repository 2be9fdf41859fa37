"""The techniques of the seed studies: each switch does what it says."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from dcgan_jax.training import gan_step
from dcgan_jax.models import networks
from dcgan_jax.training import stabilizers
from tests.support import step_runs


def test_one_sided_label_smoothing(config):
  config.loss.label_smoothing = 'one_sided'
  assert stabilizers.d_targets(jax.random.PRNGKey(0), 4, config) == (0.9, 0.0)


def test_random_label_ranges(config):
  config.loss.label_smoothing = 'random'
  real, fake = stabilizers.d_targets(jax.random.PRNGKey(0), 20_000, config)
  real, fake = np.asarray(real), np.asarray(fake)
  assert real.min() >= 0.7 and real.max() <= 1.2 and abs(real.mean() - 0.95) < 0.01
  assert fake.min() >= 0.0 and fake.max() <= 0.3 and abs(fake.mean() - 0.15) < 0.01


def test_instance_noise_decays_linearly(config):
  config.instance_noise = 0.2
  config.instance_noise_decay_steps = 100
  stds = [float(stabilizers.instance_noise_std(s, config)) for s in (0, 50, 100, 200)]
  np.testing.assert_allclose(stds, [0.2, 0.1, 0.0, 0.0], atol=1e-7)
  noisy = stabilizers.add_instance_noise(jax.random.PRNGKey(0), jnp.zeros((50_000,)), 50, config)
  assert float(jnp.std(noisy)) == pytest.approx(0.1, rel=0.02)
  config.instance_noise = 0.0
  x = jnp.ones((3,))
  assert stabilizers.add_instance_noise(jax.random.PRNGKey(0), x, 0, config) is x


def test_flip_augmentation(config):
  config.augment.flip = True
  images = jax.random.normal(jax.random.PRNGKey(0), (64, 5, 6, 1))
  out = np.asarray(stabilizers.augment(jax.random.PRNGKey(1), images, config))
  images = np.asarray(images)
  flipped = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images)]
  kept = [np.array_equal(o, i) for o, i in zip(out, images)]
  assert all(f or k for f, k in zip(flipped, kept)) and 15 < sum(flipped) < 49


@pytest.mark.parametrize('degrees', [90.0, 12.0])
def test_rotation_matches_scipy(degrees):
  image = np.random.RandomState(0).uniform(-1, 1, (1, 15, 15, 2)).astype(np.float32)
  ours = np.asarray(stabilizers.rotate_images(jnp.asarray(image), jnp.deg2rad(jnp.array([degrees]))))
  reference = scipy.ndimage.rotate(image[0], degrees, reshape=False, order=1,
                                   mode='nearest')
  np.testing.assert_allclose(ours[0], reference, atol=1e-4)


def test_uniform_latent(config):
  config.model.latent_dist = 'uniform'
  z = np.asarray(gan_step.sample_latent(jax.random.PRNGKey(0), 1000, config))
  assert z.min() >= -1 and z.max() <= 1 and z.std() == pytest.approx(1 / np.sqrt(3), rel=0.05)


def test_step_decay_of_learning_rates(config):
  config.optim.g_lr = 1e-4
  config.optim.lr_decay_steps = (10, 20)
  # The base rate is optimiser state (a sweep may set it per replica); the decay multiplies it.
  decay = gan_step.learning_rate_decay(config)
  np.testing.assert_allclose([1e-4 * decay(s) for s in (0, 9, 10, 19, 20, 100)],
                             [1e-4, 1e-4, 1e-5, 1e-5, 1e-6, 1e-6], rtol=1e-6)
  config.optim.lr_decay_steps = ()
  assert gan_step.learning_rate_decay(config) is None  # No decay: plain Adam, no chain.


def run_one(config, steps=1):
  g0, d0, g, d, metrics = step_runs.run(config, 1, steps)
  return g0, d0, step_runs.first(g), step_runs.first(d), metrics


def finite(tree):
  return all(np.all(np.isfinite(x)) for x in step_runs.leaves(tree))


def test_k_discriminator_steps(config):
  config.d_steps = 2
  config.batch_size = 4
  # The step takes d_steps real batches: [2 * 4] per step on one device.
  _, _, g, d, _ = run_one(config)
  assert int(g.step) == 1 and int(d.step) == 2 and finite(d.params)


def test_separate_real_and_fake_updates(config):
  config.d_separate_real_fake = True
  _, _, g, d, metrics = run_one(config)
  assert int(d.step) == 2 and finite(d.params)
  assert np.isfinite(metrics[0]['d_loss']).all()


def test_all_tricks_together(config):
  config.loss.label_smoothing = 'random'
  config.instance_noise = 0.1
  config.instance_noise_decay_steps = 10
  config.augment.flip = True
  config.augment.rotate_degrees = 10.0
  config.ema_decay = 0.9
  config.optim.d_lr = 4e-4  # Asymmetric: D twice as fast.
  config.optim.g_b1 = 0.3
  _, _, g, d, metrics = run_one(config, 2)
  assert finite((g.params, g.ema_params, d.params))
  assert metrics[0]['instance_noise_std'][0] == pytest.approx(0.1)
  assert metrics[1]['instance_noise_std'][0] == pytest.approx(0.09)


def test_self_attention_starts_as_identity_and_learns(config):
  config.model.g_attention_res = 14
  config.model.d_attention_res = 7
  config.model.spectral_norm = True
  g0, d0, g, d, _ = run_one(config)
  assert float(g0.params['attention']['gamma']) == 0.0
  assert float(d0.params['attention']['gamma']) == 0.0
  # Gradients reach gamma: both moved after one step.
  assert float(g.params['attention']['gamma']) != 0.0
  assert float(d.params['attention']['gamma']) != 0.0


def test_attention_block_is_identity_at_init():
  block = networks.SelfAttention()
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 16))
  variables = block.init(jax.random.PRNGKey(1), x)
  np.testing.assert_array_equal(block.apply(variables, x), x)
  variables = jax.tree_util.tree_map_with_path(
      lambda p, v: jnp.ones_like(v) if 'gamma' in str(p) else v, variables)
  assert not np.allclose(block.apply(variables, x), x)


def test_dropout_in_discriminator(config):
  config.model.d_dropout = 0.5
  config.model.d_dropout_layers = (0,)
  _, discriminator = networks.create_models(config, 1)
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 28, 28, 1))
  variables = discriminator.init(jax.random.PRNGKey(0), x)
  apply = lambda key, train: discriminator.apply(
      variables, x, train=train, rngs={'dropout': key}, mutable=['batch_stats'])[0]
  a, b = apply(jax.random.PRNGKey(1), True), apply(jax.random.PRNGKey(2), True)
  assert not np.allclose(a, b)
  np.testing.assert_array_equal(apply(jax.random.PRNGKey(1), False),
                                apply(jax.random.PRNGKey(2), False))
  _, _, _, d, _ = run_one(config)
  assert finite(d.params)


def _dropout_keys_of_d_calls(config):
  """The dropout keys of the step's D calls, in call order (traced once under vmap)."""
  config.model.d_dropout = 0.5
  config.model.d_dropout_layers = (0,)
  g_state, d_state = gan_step.create_train_states(config, jax.random.PRNGKey(0),
                                                  step_runs.IMAGE_SHAPE)
  batch = step_runs.fixed_batch(1, config.batch_size)

  def step(batch, key):
    keys = []

    def recording_apply(*args, rngs, **kwargs):
      keys.append(jax.random.key_data(rngs['dropout']))
      return d_state.apply_fn(*args, rngs=rngs, **kwargs)

    gan_step.train_step(g_state, d_state.replace(apply_fn=recording_apply), batch, key,
                        config=config)
    return jnp.stack(keys)

  return np.asarray(jax.vmap(step, axis_name='batch')(batch, jax.random.PRNGKey(1)[None]))[0]


@pytest.mark.parametrize('separate', [False, True])
def test_each_d_pass_draws_its_own_dropout_masks(config, separate):
  # Real pass, fake pass (one D update or two), then the G update's pass.
  config.d_separate_real_fake = separate
  keys = _dropout_keys_of_d_calls(config)
  assert len(keys) == 3
  assert len({k.tobytes() for k in keys}) == 3


def test_bfloat16_mixed_precision(config):
  config.model.dtype = 'bfloat16'
  _, _, g, d, metrics = run_one(config)
  assert all(x.dtype == np.float32 for x in step_runs.leaves((g.params, d.params)))
  assert finite((g.params, d.params)) and np.isfinite(metrics[0]['d_loss']).all()
  generator, _ = networks.create_models(config, 1)
  z = jnp.zeros((2, config.model.latent_dim))
  hidden = jax.eval_shape(lambda: generator.apply(
      {'params': g.params, 'batch_stats': g.batch_stats}, z, capture_intermediates=True,
      mutable=['intermediates']))[1]['intermediates']['up0']['__call__'][0]
  assert hidden.dtype == jnp.bfloat16


def test_mlp_gan_trains(config):
  config.model.arch = 'mlp'
  config.model.g_norm = 'none'
  config.model.d_norm = 'none'
  config.model.d_dropout = 0.3
  _, _, g, d, _ = run_one(config)
  assert finite((g.params, d.params))
