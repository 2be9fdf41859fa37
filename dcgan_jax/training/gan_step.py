"""The GAN train states and the pure, pmapped train step.

`train_step` updates the discriminator on a real and a generated batch, then
the generator on a freshly drawn z. It is a pure function of the two
TrainStates, the batch and a key; under `jax.pmap` gradients, batch statistics
and metrics are averaged over the 'batch' axis, and each device folds its own
index and the step into the key, so no two devices (and no two steps) draw the
same z, and a run is a pure function of `config.seed`.

Which update moves which statistics:
  * D's batch-norm running averages and spectral-norm `u`/`sigma` move only in
    the D update (power iteration once per D update). The G update runs D in
    train mode (batch statistics, as the PyTorch reference does) and discards
    any statistics it computes.
  * G's batch-norm running averages move only in the G update; the generated
    batch of the D update uses batch statistics and leaves them alone.
"""

import functools
from typing import Any

from flax import jax_utils
from flax.training import train_state
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import optax

from dcgan_jax.training import losses
from dcgan_jax.models import networks
from dcgan_jax.training import stabilizers


class TrainState(train_state.TrainState):
  """A TrainState with the model's mutable collection, an optional EMA of params and hparams.

  `hparams` holds the continuous hyperparameters the step reads as data rather
  than as structure ({'ema_decay'} for G, {'instance_noise', 'real_label'} for
  D), so that replicas of one program can each have their own
  (`replicas.SWEEPABLE`); the optimisers keep theirs in `opt_state`
  (optax.inject_hyperparams).
  """
  batch_stats: Any = None
  ema_params: Any = None
  hparams: Any = None


def sample_latent(key, num, config):
  """z for `num` images: N(0, 1) or U(-1, 1), float32 [num, latent_dim]."""
  return networks.sample_latent(key, num, config.model.latent_dim, config.model.latent_dist)


def learning_rate_decay(config):
  """1, then times `optim.lr_decay_factor` at each of `optim.lr_decay_steps`; None if none."""
  boundaries = tuple(config.optim.lr_decay_steps)
  if not boundaries:
    return None
  return optax.piecewise_constant_schedule(
      1.0, {int(step): config.optim.lr_decay_factor for step in boundaries})


def adam(lr, b1, b2, config):
  """Adam whose lr and betas are state (inject_hyperparams), then the shared lr decay.

  The base rate and betas live in the optimiser state, so replicas of one
  program can each have their own (a sweep); the decay is the same for all.
  """
  tx = optax.inject_hyperparams(optax.adam)(learning_rate=lr, b1=b1, b2=b2)
  decay = learning_rate_decay(config)
  return tx if decay is None else optax.chain(tx, optax.scale_by_schedule(decay))


def create_optimizers(config):
  """Adam for G and for D with their own learning rates and betas."""
  o = config.optim
  return adam(o.g_lr, o.g_b1, o.g_b2, config), adam(o.d_lr, o.d_b1, o.d_b2, config)


def _run_once(fn, *args):
  """fn(*args) as one compiled program, compiled for speed of compilation on CPU.

  Op by op, every initialiser of every shape compiles on its own, and a
  quickstart spent seconds of its start-up there; as one program XLA:CPU still
  took 3.6 s to optimise what then runs in 4 ms, and 0.7 s without its LLVM
  optimisations (values equal to 1e-8, a float32 rounding).
  """
  lowered = jax.jit(fn).lower(*args)
  options = {'xla_backend_optimization_level': 0} if jax.default_backend() == 'cpu' else None
  return lowered.compile(compiler_options=options)(*args)


def create_train_states(config, key, image_shape):
  """Initialises (g_state, d_state) for images of `image_shape` = (H, W, C)."""
  generator, discriminator = networks.create_models(config, num_channels=image_shape[-1])

  def init_variables(key):
    g_key, d_key = jax.random.split(key)
    z = jnp.zeros((2, config.model.latent_dim), jnp.float32)
    x = jnp.zeros((2, *image_shape), jnp.float32)
    return (generator.init({'params': g_key}, z, train=False),
            discriminator.init({'params': d_key}, x, train=False))

  g_variables, d_variables = _run_once(init_variables, key)
  g_tx, d_tx = create_optimizers(config)
  g_state = TrainState.create(
      apply_fn=generator.apply, params=g_variables['params'], tx=g_tx,
      batch_stats=g_variables.get('batch_stats', {}),
      ema_params=g_variables['params'] if config.ema_decay > 0 else None,
      hparams={'ema_decay': jnp.float32(config.ema_decay)})
  d_state = TrainState.create(
      apply_fn=discriminator.apply, params=d_variables['params'], tx=d_tx,
      batch_stats=d_variables.get('batch_stats', {}),
      hparams={'instance_noise': jnp.float32(config.instance_noise),
               'real_label': jnp.float32(config.loss.real_label)})
  return g_state, d_state


def d_metrics(real_logits, fake_logits):
  """What D says of the real and the generated batch."""
  return {
      'd_real': jnp.mean(jax.nn.sigmoid(real_logits)),
      'd_fake': jnp.mean(jax.nn.sigmoid(fake_logits)),
      'd_acc_real': jnp.mean(real_logits > 0),
      'd_acc_fake': jnp.mean(fake_logits < 0),
  }


def step_keys(key, device_index, step, d_steps):
  """The keys of one device's train step: fold in the device, then the step.

  Returns:
    ([d_steps x (z, label, augment, noise, dropout) keys of the D updates],
     (z, noise, dropout) keys of the G update).
  """
  key = jax.random.fold_in(jax.random.fold_in(key, device_index), step)
  d_key, *g_keys = jax.random.split(key, 4)
  d_keys = [tuple(jax.random.split(k, 5)) for k in jax.random.split(d_key, d_steps)]
  return d_keys, tuple(g_keys)


def _apply_d(d_state, params, batch_stats, images, update_stats, dropout_key):
  """D in train mode; returns (logits, {'batch_stats': ...})."""
  return d_state.apply_fn(
      {'params': params, 'batch_stats': batch_stats}, images, train=True,
      update_stats=update_stats, mutable=['batch_stats'], rngs={'dropout': dropout_key})


def _apply_d_update(d_state, objective, axis_name):
  """One Adam step of D on `objective(params, batch_stats) -> (loss, (stats, logits))`."""
  (loss, (batch_stats, logits)), grads = jax.value_and_grad(objective, has_aux=True)(
      d_state.params, d_state.batch_stats)
  d_state = d_state.apply_gradients(grads=lax.pmean(grads, axis_name),
                                    batch_stats=lax.pmean(batch_stats, axis_name))
  return d_state, loss, logits


def d_inputs(g_state, real_images, keys, config, hparams):
  """What one D update sees: (real, generated, real targets, fake targets).

  Augmentation and instance noise are applied to D's inputs here; the
  generated batch uses G's batch statistics and leaves G's running averages alone.
  """
  z_key, label_key, aug_key, noise_key, _ = keys
  batch_size = real_images.shape[0]
  real_images = stabilizers.augment(aug_key, real_images, config)
  fake_images, _ = g_state.apply_fn(
      {'params': g_state.params, 'batch_stats': g_state.batch_stats},
      sample_latent(z_key, batch_size, config), train=True, mutable=['batch_stats'])
  fake_images = lax.stop_gradient(fake_images)
  real_noise_key, fake_noise_key = jax.random.split(noise_key)
  std = hparams['instance_noise']
  real_images = stabilizers.add_instance_noise(real_noise_key, real_images, g_state.step, config,
                                               std)
  fake_images = stabilizers.add_instance_noise(fake_noise_key, fake_images, g_state.step, config,
                                               std)
  targets = stabilizers.d_targets(label_key, batch_size, config, hparams['real_label'])
  return (real_images, fake_images, *targets)


def d_update(g_state, d_state, real_images, keys, config, axis_name='batch'):
  """One D update on a real and a generated batch (two with config.d_separate_real_fake).

  Returns:
    (d_state, d_loss, real_logits, fake_logits).
  """
  real_images, fake_images, real_targets, fake_targets = d_inputs(
      g_state, real_images, keys, config, d_state.hparams)
  dropout_key = keys[-1]
  fake_dropout_key = jax.random.fold_in(dropout_key, 1)  # Each pass its own dropout masks.
  if config.d_separate_real_fake:
    # Two D updates, on the real batch and then on the generated one (as in study 002).
    real_loss_fn, fake_loss_fn = losses.d_loss_parts(config.loss.type)

    def part_objective(images, loss_fn, targets, key):
      def objective(params, batch_stats):
        logits, upd = _apply_d(d_state, params, batch_stats, images, True, key)
        return loss_fn(logits, targets), (upd['batch_stats'], logits)
      return objective

    d_state, real_loss, real_logits = _apply_d_update(
        d_state, part_objective(real_images, real_loss_fn, real_targets, dropout_key), axis_name)
    d_state, fake_loss, fake_logits = _apply_d_update(
        d_state, part_objective(fake_images, fake_loss_fn, fake_targets, fake_dropout_key),
        axis_name)
    return d_state, real_loss + fake_loss, real_logits, fake_logits

  d_loss_fn, _ = losses.get_losses(config.loss.type)

  def objective(params, batch_stats):
    # Real and generated batches in two passes, as in the DCGAN reference: with
    # batch norm each gets its own statistics, and on CPU two passes are faster
    # than one over their concatenation (experiments/speed). The power
    # iteration runs once, on the real pass.
    real_logits, upd = _apply_d(d_state, params, batch_stats, real_images, True, dropout_key)
    fake_logits, upd = _apply_d(d_state, params, upd['batch_stats'], fake_images, False,
                                fake_dropout_key)
    loss = d_loss_fn(real_logits, fake_logits, real_targets, fake_targets)
    return loss, (upd['batch_stats'], (real_logits, fake_logits))

  d_state, d_loss, (real_logits, fake_logits) = _apply_d_update(d_state, objective, axis_name)
  return d_state, d_loss, real_logits, fake_logits


def g_update(g_state, d_state, batch_size, keys, config, axis_name='batch'):
  """One G update with a fresh z, through D in train mode (D's statistics discarded).

  Returns:
    (g_state, g_loss).
  """
  z_key, noise_key, dropout_key = keys
  _, g_loss_fn = losses.get_losses(config.loss.type)

  def objective(g_params):
    fake_images, g_updates = g_state.apply_fn(
        {'params': g_params, 'batch_stats': g_state.batch_stats},
        sample_latent(z_key, batch_size, config), train=True, mutable=['batch_stats'])
    fake_images = stabilizers.add_instance_noise(noise_key, fake_images, g_state.step, config,
                                                 d_state.hparams['instance_noise'])
    fake_logits, _ = _apply_d(d_state, d_state.params, d_state.batch_stats, fake_images, False,
                              dropout_key)
    return g_loss_fn(fake_logits), g_updates['batch_stats']

  (g_loss, g_batch_stats), g_grads = jax.value_and_grad(objective, has_aux=True)(g_state.params)
  g_state = g_state.apply_gradients(grads=lax.pmean(g_grads, axis_name),
                                    batch_stats=lax.pmean(g_batch_stats, axis_name))
  if config.ema_decay > 0:
    g_state = g_state.replace(ema_params=optax.incremental_update(
        g_state.params, g_state.ema_params, 1.0 - g_state.hparams['ema_decay']))
  return g_state, g_loss


def train_step(g_state, d_state, batch, key, *, config, axis_name='batch'):
  """`config.d_steps` D updates, then one G update.

  Args:
    g_state: the generator's TrainState.
    d_state: the discriminator's TrainState.
    batch: {'image': float32 [d_steps * B, H, W, C] in [-1, 1]}, this device's
      share; each D update takes its own B real images.
    key: the run's base PRNG key (the same on every device).
    config: the run's config (static).
    axis_name: the pmap axis to average over.

  Returns:
    (g_state, d_state, metrics), metrics averaged over devices.
  """
  step = g_state.step
  d_keys, g_keys = step_keys(key, lax.axis_index(axis_name), step, config.d_steps)
  batch_size = batch['image'].shape[0] // config.d_steps
  for k in range(config.d_steps):
    real_images = batch['image'][k * batch_size:(k + 1) * batch_size]
    d_state, d_loss, real_logits, fake_logits = d_update(
        g_state, d_state, real_images, d_keys[k], config, axis_name)
  g_state, g_loss = g_update(g_state, d_state, batch_size, g_keys, config, axis_name)

  metrics = {'d_loss': d_loss, 'g_loss': g_loss, **d_metrics(real_logits, fake_logits)}
  if config.instance_noise > 0:
    metrics['instance_noise_std'] = stabilizers.instance_noise_std(
        step, config, d_state.hparams['instance_noise'])
  return g_state, d_state, lax.pmean(metrics, axis_name)


def make_p_train_step(config):
  """The pmapped train step: p_train_step(g_state, d_state, batch, key), states donated.

  With config.num_seeds = K > 1 the step runs over a leading replica axis of
  the states, the batch ([K, B, H, W, C] per device) and the key ([K, 2]), as
  `replica_loop(config)` says: 'vmap' (one batched program; what small models
  want on GPUs and TPUs) or 'host' (the one compiled single-replica step called
  K times on the replicas' slices: a vmapped conv with per-replica kernels
  becomes a grouped conv, which runs about twice slower than K plain ones on
  XLA:CPU and on a GPU for DCGAN-64, and `lax.map` over replicas slower still).
  Either way the collectives average over devices only, never across replicas.

  With config.steps_per_call = n > 1 one call runs n steps (`scanned`): the
  batch has an axis of n before per_device ([n, B, ...], [K, n, B, ...] with
  replicas) and each metric one value per step on its last axis.
  """
  step = functools.partial(train_step, config=config)
  if config.get('steps_per_call', 1) > 1:
    step = scanned(step)
  if config.num_seeds == 1:
    return jax.pmap(step, axis_name='batch', donate_argnums=(0, 1))
  if replica_loop(config) == 'vmap':
    return jax.pmap(jax.vmap(step), axis_name='batch', donate_argnums=(0, 1))
  return _host_replica_loop(jax.pmap(step, axis_name='batch', donate_argnums=(0, 1)),
                            config.num_seeds)


# The step's outputs carry the device axis under the pmap's axis name, and pmap
# compiles anew for arrays laid out otherwise: states straight from
# jax_utils.replicate made the step compile twice (3-4 s more at each start).
_as_step_outputs = jax.pmap(lambda tree: tree, axis_name='batch')


def replicate(tree):
  """`tree` on every local device, laid out as p_train_step's outputs (one compilation)."""
  return _as_step_outputs(jax_utils.replicate(tree))


def scanned(step):
  """step(g_state, d_state, batch, key) over a leading axis of batches, as one lax.scan.

  The scan body is the same step, so n steps of one call give the numbers of n
  calls of one step, to float32 rounding: XLA compiles a loop body on its own
  terms (tests/training/steps_per_call_test.py). The host dispatches once per
  n steps.
  """

  def steps(g_state, d_state, batches, key):
    def body(states, batch):
      g_state, d_state, metrics = step(*states, batch, key)
      return (g_state, d_state), metrics

    (g_state, d_state), metrics = lax.scan(body, (g_state, d_state), batches)
    # Steps last, so that a replica axis stays first (metrics [K, n] with replicas).
    return g_state, d_state, jax.tree.map(lambda m: jnp.moveaxis(m, 0, -1), metrics)

  return steps


def _host_replica_loop(p_step, num_replicas):
  """p_step over the replica axis (axis 1, after the devices) as K calls of one program."""
  take = jax.pmap(lambda tree: [jax.tree.map(lambda x, i=i: x[i], tree)
                                for i in range(num_replicas)])
  stack = jax.pmap(lambda trees: jax.tree.map(lambda *xs: jnp.stack(xs), *trees))

  def p_replicas_step(g_state, d_state, batch, key):
    outputs = [p_step(*args) for args in take((g_state, d_state, batch, key))]
    return tuple(stack(list(parts)) for parts in zip(*outputs))

  return p_replicas_step


REPLICA_LOOPS = ('auto', 'vmap', 'host')  # config.replica_loop

# 'auto' off CPU vmaps only replicas too small to fill the accelerator alone.
# Measured on one H200 (experiments/tools/accelerator_check.py; README, "Many
# seeds in one program"): the quickstart model (size 1.6e6) trains 5.0x more
# images/s summed at K = 8 vmapped than host-looped, and DCGAN-64 at batch 128
# (size 3.4e7) 2.8x fewer at K = 4, since the vmapped convolutions with
# per-replica kernels become grouped ones. Between them the mnist DCGAN (6.4e6)
# gains 1.9x at K = 4 from vmap and the cifar10 CNN (4.2e6) ties (host 6% ahead);
# the crossover between 6.4e6 and 3.4e7 has not been measured more finely.
VMAP_MAX_REPLICA_SIZE = 2 ** 23


def replica_size(config):
  """batch x pixels x widest feature count: how much of a device one replica's step fills."""
  return (config.batch_size * config.image_size ** 2 *
          max(config.model.g_features, config.model.d_features))


def replica_loop(config, backend=None):
  """'vmap' or 'host' for config.replica_loop.

  'auto' is 'host' on CPU (XLA:CPU runs vmapped convolutions about twice
  slower than K plain ones); on GPU and TPU it is 'vmap' for replicas smaller
  than VMAP_MAX_REPLICA_SIZE and 'host' for larger ones. It depends on the
  config and the backend only, so a run's numbers do not depend on timing.
  """
  loop = config.replica_loop
  if loop != 'auto':
    return loop
  if (backend or jax.default_backend()) == 'cpu':
    return 'host'
  return 'vmap' if replica_size(config) < VMAP_MAX_REPLICA_SIZE else 'host'


def generated_images(generate, variables, config, num_images, batch_size=250):
  """Yields `num_images` generated images in batches, from a z fixed per run.

  Every evaluation of a run scores the same z, so changes in FID come from
  the generator alone.
  """
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0xE7A1)
  for i, start in enumerate(range(0, num_images, batch_size)):
    z = sample_latent(jax.random.fold_in(key, i), min(batch_size, num_images - start), config)
    yield np.asarray(generate(variables, z))


def generator_variables(g_state, use_ema=True):
  """The variables to sample with: the EMA params when the run keeps them."""
  params = g_state.ema_params if use_ema and g_state.ema_params is not None else g_state.params
  return {'params': params, 'batch_stats': g_state.batch_stats}


def make_generate_fn(g_state):
  """A jitted generate(variables, z) -> images in [-1, 1], G in inference mode."""
  return networks.jit_generate(g_state.apply_fn)
