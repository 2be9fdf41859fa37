"""The pure train step (gan_step.py): one step on a fixed batch, pmap over fake devices, determinism."""

from flax import jax_utils
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dcgan_jax.data import input_pipeline
from dcgan_jax.training import gan_step
from tests.support import step_runs


def test_one_step_changes_params_and_metrics_in_range(config):
  g0, d0, g1, d1, metrics = step_runs.run(config, 1, 1)
  for before, after in ((g0.params, g1.params), (d0.params, d1.params)):
    after = step_runs.first(after)
    assert all(np.all(np.isfinite(a)) for a in step_runs.leaves(after))
    assert any(not np.array_equal(b, a) for b, a in zip(step_runs.leaves(before), step_runs.leaves(after)))
  m = {k: float(v[0]) for k, v in metrics[0].items()}
  for name in ('d_real', 'd_fake', 'd_acc_real', 'd_acc_fake'):
    assert 0.0 <= m[name] <= 1.0, name
  # An untrained D says about 1/2 of everything, so BCE is near 2 log 2 and log 2.
  assert m['d_loss'] == pytest.approx(2 * np.log(2), abs=0.2)
  assert m['g_loss'] == pytest.approx(np.log(2), abs=0.2)
  assert int(step_runs.first(g1.step)) == 1 and int(step_runs.first(d1.step)) == 1


@pytest.mark.parametrize('num_devices', [2, 4])
@pytest.mark.parametrize('spectral_norm', [False, True])
def test_pmap_keeps_replicas_identical(config, num_devices, spectral_norm):
  config.model.spectral_norm = spectral_norm
  *_, g_repl, d_repl, _ = step_runs.run(config, num_devices, 3)
  for tree in (g_repl.params, g_repl.batch_stats, d_repl.params, d_repl.batch_stats,
               g_repl.opt_state, d_repl.opt_state):
    for x in step_runs.leaves(tree):
      for i in range(1, num_devices):
        np.testing.assert_array_equal(x[0], x[i])
  if spectral_norm:
    sigmas = [x for path, x in jax.tree_util.tree_leaves_with_path(d_repl.batch_stats)
              if 'sigma' in str(path)]
    assert sigmas and all(np.all(s != 1.0) for s in sigmas)  # Power iteration has run.


def test_each_device_draws_its_own_z(config):
  # Generate inside a pmap with the step's key derivation: every device's z differs.
  def z_of_device(key, step):
    key = jax.random.fold_in(key, jax.lax.axis_index('batch'))
    key = jax.random.fold_in(key, step)
    return gan_step.sample_latent(jax.random.split(key)[0], 2, config)

  keys = jax_utils.replicate(jax.random.PRNGKey(0), jax.devices()[:4])
  z = np.asarray(jax.pmap(z_of_device, axis_name='batch', devices=jax.devices()[:4])(
      keys, jnp.zeros(4, jnp.int32)))
  assert len({z[i].tobytes() for i in range(4)}) == 4


def test_same_seed_same_params_other_seed_other_params(config):
  *_, g_a, d_a, _ = step_runs.run(config, 2, 2)
  *_, g_b, d_b, _ = step_runs.run(config, 2, 2)
  *_, g_c, _, _ = step_runs.run(config, 2, 2, seed=config.seed + 1)
  for x, y in zip(step_runs.leaves((g_a.params, d_a.params)), step_runs.leaves((g_b.params, d_b.params))):
    np.testing.assert_array_equal(x, y)
  assert any(not np.array_equal(x, y) for x, y in zip(step_runs.leaves(g_a.params), step_runs.leaves(g_c.params)))


def test_g_step_leaves_d_statistics_alone(config):
  # D's batch-norm running averages after a step equal those of the D update alone:
  # rerun the D forward passes by hand and compare.
  init_key, step_key = jax.random.split(jax.random.PRNGKey(config.seed))
  g_state, d_state = gan_step.create_train_states(config, init_key, step_runs.IMAGE_SHAPE)
  batch = step_runs.fixed_batch(1, config.batch_size)
  _, d_after, _ = step_runs.p_step(config, 1)(*jax_utils.replicate((g_state, d_state), jax.devices()[:1]),
                                    batch, jax_utils.replicate(step_key, jax.devices()[:1]))
  d_keys, _ = gan_step.step_keys(step_key, 0, 0, config.d_steps)
  d_z_key = d_keys[0][0]
  fake, _ = g_state.apply_fn({'params': g_state.params, 'batch_stats': g_state.batch_stats},
                             gan_step.sample_latent(d_z_key, config.batch_size, config), train=True,
                             mutable=['batch_stats'])
  variables = {'params': d_state.params, 'batch_stats': d_state.batch_stats}
  _, upd = d_state.apply_fn(variables, batch['image'][0], train=True, update_stats=True,
                            mutable=['batch_stats'])
  _, upd = d_state.apply_fn({'params': d_state.params, **upd}, fake, train=True,
                            update_stats=False, mutable=['batch_stats'])
  for x, y in zip(step_runs.leaves(upd['batch_stats']), step_runs.leaves(d_after.batch_stats)):
    np.testing.assert_allclose(x, y[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('loss', ['minimax', 'hinge'])
def test_other_losses_train(config, loss):
  config.loss.type = loss
  *_, g_repl, _, metrics = step_runs.run(config, 1, 2)
  assert all(np.all(np.isfinite(x)) for x in step_runs.leaves(g_repl.params))
  assert np.isfinite(metrics[-1]['g_loss']).all()


def test_ema_is_the_exponential_average_of_params(config):
  config.ema_decay = 0.5
  g0, _, g_repl1, _, _ = step_runs.run(config, 1, 1)
  _, _, g_repl2, _, _ = step_runs.run(config, 1, 2)
  p0, p1 = step_runs.leaves(g0.params), step_runs.leaves(step_runs.first(g_repl1).params)
  g2 = step_runs.first(g_repl2)
  # ema_2 = d^2 p0 + d (1 - d) p1 + (1 - d) p2 with d = 1/2.
  for a, b, c, e in zip(p0, p1, step_runs.leaves(g2.params), step_runs.leaves(g2.ema_params)):
    np.testing.assert_allclose(e, 0.25 * a + 0.25 * b + 0.5 * c, rtol=1e-5, atol=1e-7)


def test_train_on_pipeline_batches(config):
  batch = next(iter(input_pipeline.create_train_dataset(config)))
  images = batch['image'].numpy()
  assert images.shape == (4, config.batch_size // 4, 28, 28, 1)
