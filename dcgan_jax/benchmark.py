"""Times the real train step (or the input pipeline) and prints one JSON line.

  python -m dcgan_jax.benchmark --config=configs/celeba64.py
  python -m dcgan_jax.benchmark --config=configs/celeba64.py --config.batch_size=64 \
      --steps=20 --repeats=3 --torch_reference
  python -m dcgan_jax.benchmark --config=configs/cifar10.py --mode=input

--mode=train times `gan_step.make_p_train_step(config)` on a synthetic batch after
compilation: `repeats` timings of `steps` steps each, reported as images/s
(median, min, max over repeats). With --torch_reference the PyTorch reference
step of the same architecture (dcgan_jax/torch_reference, needs the `torch`
extra) runs back to back with it, repeat by repeat, on as many threads as
XLA has devices' worth of cores, and `ratio` is the median of the per-repeat
ratios JAX / torch, robust to the noise of a shared machine.

--mode=loop and --mode=timeline time whole training runs (`loop_timing.py`).
--mode=loop times the whole training loop (`train.train_and_evaluate`: input
pipeline, dispatch, metrics, logs; no evaluation) over `steps` steady steps
against the bare step before and after it, and reports `host_overhead_share`;
try it with --steps=2000, and with --config.steps_per_call=N (several steps a
device call).
--mode=timeline trains the config as given (evaluations included) and reports
where the run's wall time went: to the first device call (start-up and
compilation), the second call, the median call, each call with an evaluation,
and after the last call.
--mode=input times `input_pipeline.create_train_iter(config)` alone; on a folder
dataset (`--config.dataset=folder --config.data_dir=PATH`) it reports the first
epoch (decoding into a fresh cache) and later epochs apart.
--mode=inception times the FID Inception feature extractor on batch_size
uint8 images of the config's size (and, with --torch_reference, the TorchScript
reference network on the same images).
"""

import json
import os
import statistics
import time

import numpy as np

from absl import app
from absl import flags
from ml_collections import config_flags


os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Path to a config file (configs/*.py).',
                                lock_config=True)
flags.DEFINE_integer('steps', 20, 'Steps (batches) per timed repeat.')
flags.DEFINE_integer('repeats', 3, 'Timed repeats; images/s is their median.')
flags.DEFINE_integer('warmup', 2, 'Untimed steps after compilation.')
flags.DEFINE_enum('mode', 'train',
                  ['train', 'loop', 'timeline', 'input', 'inception', 'time_to_quality'],
                  'What to time.')
flags.DEFINE_float('target_fid', None, 'time_to_quality: the FID to reach; default the best FID '
                   'every run of both implementations reaches.')
flags.DEFINE_string('curve_png', None, 'time_to_quality: where to write the FID-vs-seconds PNG.')
flags.DEFINE_integer('runs', 1, 'time_to_quality: runs (seeds) of each implementation; '
                     'the seconds reported are medians.')
flags.DEFINE_bool('torch_reference', False,
                  'Also time the PyTorch reference step, interleaved, and report the ratio.')
flags.DEFINE_integer('torch_threads', None, 'torch threads; default os.cpu_count().')
flags.mark_flags_as_required(['config'])


def torch_arch(config):
  """The reference architecture matching `config`, or None."""
  if config.model.arch == 'dcgan' and config.image_size == 64:
    return 'dcgan64'
  if config.model.arch == 'standard_cnn' and config.image_size == 32:
    return 'standard_cnn32'
  return None


def _summary(rates, prefix=''):
  median = statistics.median(rates)
  return {f'{prefix}images_per_sec': round(median, 2), f'{prefix}min': round(min(rates), 2),
          f'{prefix}max': round(max(rates), 2), f'{prefix}step_ms': None}


def _cost_gflop(stage):
  """FLOPs per call (per device) from XLA's cost analysis of a lowered or compiled step."""
  try:
    cost = stage.cost_analysis()
  except Exception:  # pylint: disable=broad-except
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  if not cost or 'flops' not in cost:
    return None
  return float(cost['flops']) / 1e9


def _train_setup(config):
  """(p_train_step, [g_state, d_state], batch, key) on every local device, synthetic data.

  Imports no TensorFlow: the models, the step and this mode run where only
  jax, flax and optax are installed.
  """
  import jax  # pylint: disable=g-import-not-at-top
  from flax import jax_utils  # pylint: disable=g-import-not-at-top
  from dcgan_jax.data import datasets  # pylint: disable=g-import-not-at-top
  from dcgan_jax.training import gan_step  # pylint: disable=g-import-not-at-top
  from dcgan_jax.training import replicas  # pylint: disable=g-import-not-at-top

  shape = (config.image_size, config.image_size, datasets.get_spec(config.dataset).num_channels)
  num_devices = jax.local_device_count()
  if config.batch_size % (num_devices * jax.process_count()):
    raise ValueError(f'batch_size {config.batch_size} does not split over the devices.')
  per_device = config.batch_size // (num_devices * jax.process_count())
  configs = [replicas.replica_config(config, i) for i in range(config.num_seeds)]
  states = [gan_step.create_train_states(c, jax.random.PRNGKey(c.seed), shape) for c in configs]
  keys = [jax.random.PRNGKey(c.seed + 1) for c in configs]
  # A synthetic batch, laid out as the input pipeline's (one slice per device,
  # [devices, K, per_device, ...] with replicas).
  steps_per_call = config.get('steps_per_call', 1)
  batch_shape = (per_device, *shape) if steps_per_call == 1 else (steps_per_call, per_device, *shape)
  if config.num_seeds > 1:
    states, keys = [tuple(replicas.stack(parts) for parts in zip(*states))], [replicas.stack(keys)]
    batch_shape = (config.num_seeds, *batch_shape)
  batch_shape = (num_devices, *batch_shape)
  state = list(gan_step.replicate(tuple(states[0])))
  key = jax_utils.replicate(keys[0])
  images = jax.random.uniform(jax.random.PRNGKey(1), batch_shape, minval=-1.0, maxval=1.0)
  batch = {'image': jax.pmap(lambda x: x)(images)}  # Sharded over the devices once.
  return gan_step.make_p_train_step(config), state, batch, key


def _torch_step(config, warmup, torch_threads):
  """The PyTorch reference step of the config's architecture, warmed up."""
  arch = torch_arch(config)
  if arch is None:
    raise ValueError('No torch reference for this config (dcgan 64 px or standard_cnn 32 px).')
  from dcgan_jax.torch_reference import step as torch_ref  # pylint: disable=g-import-not-at-top
  torch_step = torch_ref.TorchStep(arch, config.batch_size,
                                   threads=torch_threads or os.cpu_count())
  for _ in range(warmup):
    torch_step()
  return torch_step


def _timed(fn, n):
  t = time.perf_counter()
  for _ in range(n):
    fn()
  return time.perf_counter() - t


def benchmark_train(config, steps, repeats, warmup, torch_reference=False, torch_threads=None):
  """Times p_train_step; returns the result dict (see the module docstring)."""
  import jax  # pylint: disable=g-import-not-at-top

  p_train_step, state, batch, key = _train_setup(config)
  # XLA's cost analysis of the lowered step (the HLO the compiler starts from;
  # asking the compiled one would compile twice). Its count for dilated
  # convolutions (conv_impl 'xla', plain flax) differs from the useful work,
  # so compare GFLOP/s only between dilation-free impls.
  gflop = (_cost_gflop(p_train_step.lower(state[0], state[1], batch, key))
           if hasattr(p_train_step, 'lower') else None)  # The host replica loop has no one HLO.
  last = {}

  def step():
    state[0], state[1], last['metrics'] = p_train_step(state[0], state[1], batch, key)

  def run(n):
    elapsed = _timed(step, n) if n else 0.0
    t = time.perf_counter()
    jax.block_until_ready(last['metrics'])
    return elapsed + time.perf_counter() - t

  compile_s = run(1)
  run(warmup)
  torch_step = _torch_step(config, warmup, torch_threads) if torch_reference else None
  jax_rates, torch_rates = [], []
  # Summed over replicas; a call is steps_per_call steps.
  images_per_step = config.batch_size * config.num_seeds * config.get('steps_per_call', 1)
  for _ in range(repeats):
    jax_rates.append(images_per_step * steps / run(steps))
    if torch_step is not None:
      torch_rates.append(config.batch_size * steps / _timed(torch_step, steps))
  result = _train_result(config, jax_rates, gflop, compile_s, steps, repeats)
  if torch_rates:
    result.update(_torch_result(config, jax_rates, torch_rates))
  return result


def _train_result(config, jax_rates, gflop, compile_s, steps, repeats):
  """The JSON fields of the JAX step's timing."""
  import jax  # pylint: disable=g-import-not-at-top
  num_devices = jax.local_device_count()
  result = {
      'mode': 'train',
      'num_seeds': config.num_seeds,
      'arch': config.model.arch,
      'image_size': config.image_size,
      'batch_size': config.batch_size,
      'dtype': str(config.model.dtype),
      'conv_impl': str(config.model.conv_impl),
      **_summary(jax_rates),
      'compile_s': round(compile_s, 2),
      'gflop_per_step': None if gflop is None else round(gflop * num_devices, 3),
      'achieved_gflop_per_sec': None,
      'device_kind': jax.local_devices()[0].device_kind,
      'device_count': jax.device_count(),
      'local_device_count': num_devices,
      'steps': steps,
      'repeats': repeats,
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
  }
  images_per_step = config.batch_size * config.num_seeds * config.get('steps_per_call', 1)
  result['steps_per_call'] = config.get('steps_per_call', 1)
  result['step_ms'] = round(1e3 * images_per_step / result['images_per_sec'], 2)
  if gflop is not None:
    result['achieved_gflop_per_sec'] = round(
        result['gflop_per_step'] * result['images_per_sec'] / images_per_step, 1)
    if jax.default_backend() == 'cpu':
      result['cpu_ceiling_gflop_per_sec'] = round(matmul_ceiling_gflop(), 1)
      result['share_of_ceiling'] = round(
          result['achieved_gflop_per_sec'] / result['cpu_ceiling_gflop_per_sec'], 3)
  return result


def matmul_ceiling_gflop(size=2048, repeats=5):
  """The machine's float32 GEMM rate in this process: numpy (BLAS) size^3, best of repeats."""
  a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
  a @ a  # pylint: disable=pointless-statement  (warm-up: threads, pages)
  best = min(_timed(lambda: a @ a, 1) for _ in range(repeats))
  return 2 * size ** 3 / best / 1e9


def _torch_result(config, jax_rates, torch_rates):
  """The JSON fields of the PyTorch reference and the ratio, repeat by repeat."""
  import torch  # pylint: disable=g-import-not-at-top
  result = _summary(torch_rates, prefix='torch_')
  result['torch_step_ms'] = round(1e3 * config.batch_size / result['torch_images_per_sec'], 2)
  result['torch_threads'] = torch.get_num_threads()
  result['torch_version'] = torch.__version__
  result['ratio'] = round(statistics.median(a / b for a, b in zip(jax_rates, torch_rates)), 3)
  result['ratios'] = [round(a / b, 3) for a, b in zip(jax_rates, torch_rates)]
  return result


def _folder_first_epoch(config, input_pipeline, folder):
  """(iterator after one epoch, epoch images, seconds to the first batch, seconds of the epoch)."""
  import jax  # pylint: disable=g-import-not-at-top
  t0 = time.perf_counter()
  it = input_pipeline.create_train_iter(config, 0)
  batch = next(it)
  jax.block_until_ready(batch)
  first_batch_s = time.perf_counter() - t0
  num_images = len(folder.load_images(config, in_memory_limit=0))  # Mapped: no reading.
  num_batches = max(1, num_images // config.batch_size)
  for _ in range(num_batches - 1):
    batch = next(it)
  jax.block_until_ready(batch)
  return it, num_batches * config.batch_size, first_batch_s, time.perf_counter() - t0


def benchmark_folder_input(config, steps, repeats, warmup):
  """A folder dataset from a cold cache: the first epoch (decode + cache) and later epochs.

  The cache goes to a temporary $DCGAN_JAX_CACHE, removed afterwards, so the
  first epoch always decodes; `cached_start_s` is a later run's time to its
  first batch, with the cache in place. The image files themselves may be in
  the OS page cache (say so when reporting).
  """
  import shutil  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from dcgan_jax.data import folder  # pylint: disable=g-import-not-at-top
  from dcgan_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top

  cache = tempfile.mkdtemp(prefix='dcgan_jax_benchmark_cache_')
  previous = os.environ.get(folder.CACHE_ENV)
  os.environ[folder.CACHE_ENV] = cache
  try:
    it, epoch_images, first_batch_s, first_epoch_s = _folder_first_epoch(
        config, input_pipeline, folder)
    rates = _batch_rates(it, config.batch_size, steps, repeats, warmup)
    t = time.perf_counter()
    jax.block_until_ready(next(input_pipeline.create_train_iter(config, 0)))
    cached_start_s = time.perf_counter() - t
  finally:
    if previous is None:
      os.environ.pop(folder.CACHE_ENV, None)
    else:
      os.environ[folder.CACHE_ENV] = previous
    shutil.rmtree(cache, ignore_errors=True)
  result = {'mode': 'input', 'dataset': config.dataset, 'data_dir': config.data_dir,
            'image_size': config.image_size, 'batch_size': config.batch_size,
            'epoch_images': epoch_images,
            'first_epoch_images_per_sec': round(epoch_images / first_epoch_s, 2),
            'first_epoch_s': round(first_epoch_s, 2), 'first_batch_s': round(first_batch_s, 2),
            **_summary(rates), 'cached_start_s': round(cached_start_s, 2), 'steps': steps,
            'repeats': repeats}
  result['later_epochs_images_per_sec'] = result['images_per_sec']
  result['step_ms'] = round(1e3 * config.batch_size / result['images_per_sec'], 2)
  return result


def _batch_rates(it, batch_size, steps, repeats, warmup):
  """Images/s of `repeats` timings of `steps` batches of an input iterator, after `warmup`."""
  import jax  # pylint: disable=g-import-not-at-top
  for _ in range(warmup):
    next(it)
  rates = []
  for _ in range(repeats):
    t = time.perf_counter()
    for _ in range(steps):
      batch = next(it)
    jax.block_until_ready(batch)
    rates.append(batch_size * steps / (time.perf_counter() - t))
  return rates


def benchmark_input(config, steps, repeats, warmup):
  """Times the input pipeline alone (batches already on the device).

  A folder dataset reports its first epoch (decoding and caching) and later
  epochs apart (`benchmark_folder_input`).
  """
  import jax  # pylint: disable=g-import-not-at-top
  from dcgan_jax.data import datasets  # pylint: disable=g-import-not-at-top
  from dcgan_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top

  if datasets.get_spec(config.dataset).source == 'folder':
    return benchmark_folder_input(config, steps, repeats, warmup)

  t0 = time.perf_counter()
  it = input_pipeline.create_train_iter(config, 0)
  jax.block_until_ready(next(it))
  first_s = time.perf_counter() - t0
  rates = _batch_rates(it, config.batch_size, steps, repeats, warmup)
  result = {'mode': 'input', 'dataset': config.dataset, 'image_size': config.image_size,
            'batch_size': config.batch_size, **_summary(rates), 'first_batch_s': round(first_s, 2),
            'steps': steps, 'repeats': repeats}
  result['step_ms'] = round(1e3 * config.batch_size / result['images_per_sec'], 2)
  return result


def benchmark_inception(config, steps, repeats, warmup, torch_reference=False,
                        torch_threads=None):
  """Times the FID Inception feature extractor on uint8 images of the config's size."""
  import jax  # pylint: disable=g-import-not-at-top
  from dcgan_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  from dcgan_jax.evaluation import features  # pylint: disable=g-import-not-at-top
  from dcgan_jax.evaluation import weights  # pylint: disable=g-import-not-at-top

  extractor = features.inception_extractor(batch_size=config.batch_size,
                                           preprocess=config.eval_preprocess)
  batch_size = extractor.batch_size
  shape = (config.image_size, config.image_size, input_pipeline.num_channels(config))
  images = np.random.RandomState(0).randint(0, 256, (batch_size, *shape), dtype=np.uint8)
  t0 = time.perf_counter()
  extractor(images)
  compile_s = time.perf_counter() - t0
  for _ in range(warmup):
    extractor(images)
  reference = None
  if torch_reference:
    from dcgan_jax.torch_reference import inception as torch_inception  # pylint: disable=g-import-not-at-top
    # The same preprocessing as ours (the TF FID's), so both time the same work.
    reference = torch_inception.TorchInception(weights.find_default_1(),
                                               threads=torch_threads or os.cpu_count(),
                                               preprocess=config.eval_preprocess)
    reference(images)

  jax_rates, torch_rates = [], []
  for _ in range(repeats):
    t = time.perf_counter()
    for _ in range(steps):
      extractor(images)  # Returns host numpy arrays: the time includes the transfer.
    jax_rates.append(batch_size * steps / (time.perf_counter() - t))
    if reference is not None:
      t = time.perf_counter()
      for _ in range(steps):
        reference(images)
      torch_rates.append(batch_size * steps / (time.perf_counter() - t))
  result = {'mode': 'inception', 'image_size': config.image_size, 'batch_size': batch_size,
            **_summary(jax_rates), 'compile_s': round(compile_s, 2),
            'device_kind': jax.local_devices()[0].device_kind,
            'device_count': jax.device_count(), 'dtype': 'float32', 'steps': steps,
            'repeats': repeats}
  result['step_ms'] = round(1e3 * batch_size / result['images_per_sec'], 2)
  if torch_rates:
    result.update(_summary(torch_rates, prefix='torch_'))
    result['ratio'] = round(statistics.median(a / b for a, b in zip(jax_rates, torch_rates)), 3)
  return result


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  config = FLAGS.config
  if FLAGS.mode == 'train':
    result = benchmark_train(config, FLAGS.steps, FLAGS.repeats, FLAGS.warmup,
                             FLAGS.torch_reference, FLAGS.torch_threads)
  elif FLAGS.mode == 'time_to_quality':
    from dcgan_jax import time_to_quality  # pylint: disable=g-import-not-at-top
    result = time_to_quality.benchmark_time_to_quality(config, FLAGS.torch_threads,
                                                       FLAGS.target_fid, FLAGS.curve_png,
                                                       FLAGS.runs)
  elif FLAGS.mode == 'loop':
    from dcgan_jax import loop_timing  # pylint: disable=g-import-not-at-top
    result = loop_timing.benchmark_loop(
        config, FLAGS.steps,
        lambda c, n: benchmark_train(c, n, FLAGS.repeats, FLAGS.warmup))
  elif FLAGS.mode == 'timeline':
    from dcgan_jax import loop_timing  # pylint: disable=g-import-not-at-top
    result = loop_timing.benchmark_timeline(config)
  elif FLAGS.mode == 'inception':
    result = benchmark_inception(config, FLAGS.steps, FLAGS.repeats, FLAGS.warmup,
                                 FLAGS.torch_reference, FLAGS.torch_threads)
  else:
    result = benchmark_input(config, FLAGS.steps, FLAGS.repeats, FLAGS.warmup)
  print(json.dumps(result), flush=True)


if __name__ == '__main__':
  app.run(main)
