"""TFDS input pipelines: seeded order, [-1, 1] images batched per device.

The order of the training examples is a pure function of (config.seed, step):
epoch e is the split shuffled with a seed derived from (seed, e), and a run
that starts at step s skips exactly the examples an unbroken run would have
consumed. A resumed run therefore sees the same batches as one that never
stopped, with no iterator state in the checkpoint.

A split that fits in memory (IN_MEMORY_LIMIT_BYTES) is read whole by every
process, which takes its slice of each global batch: the global batches, and so
the run, are then the same for any number of processes. A larger split is read
as per-process shards (`tfds.split_for_jax_process`), each shuffled on its own.

A folder of images (dataset='folder') is decoded once into a cache by
`dcgan_jax/data/folder.py` and takes the whole-split path at any size: in
memory when it fits, memory-mapped otherwise.
"""

import os
import socket
from typing import Iterator

import flax.jax_utils
import jax
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from dcgan_jax import errors
from dcgan_jax.data import datasets
from dcgan_jax.data import folder
from dcgan_jax.data import offline_mnist  # noqa: F401  (registers the offline_mnist builder)


# Where TFDS downloads most datasets from; probed before a download is tried.
TFDS_DOWNLOAD_HOST = 'storage.googleapis.com'
# A process's shard is decoded once and kept in memory when it fits in this many bytes.
IN_MEMORY_LIMIT_BYTES = 1 << 30
# tf.data threads of the training batches (gathers and casts of decoded images:
# cheap next to a train step), and batches they keep ready.
PIPELINE_THREADS = 2


class DatasetUnavailableError(errors.UserError):
  """A TFDS dataset is neither prepared locally nor downloadable."""


def _unavailable_message(name, builder, error):
  data_dir = builder.data_dir if builder is not None else '(unknown)'
  manual_dir = os.path.join(os.path.dirname(os.path.dirname(str(data_dir))), 'downloads', 'manual')
  return (
      f'Dataset {name!r} is not prepared in {data_dir} and could not be downloaded ({error}).\n'
      f'Fix: on a machine with network access run `tfds build {name}` (or any run of this '
      f'project with that dataset), then copy its folder {data_dir} to the same place here, '
      f'or set --config.data_dir to a folder that holds it. Source files placed by hand go in '
      f'{manual_dir}. With no network at all, use --config.dataset=offline_mnist.')


def _download_host_reachable(timeout=5.0):
  """Whether TFDS's download host answers; TFDS itself retries for minutes when offline."""
  try:
    socket.create_connection((TFDS_DOWNLOAD_HOST, 443), timeout=timeout).close()
    return True
  except OSError:
    return False


def _prepare(builder, name: str, data_dir):
  """builder.download_and_prepare(), safe against another process preparing the same data.

  Two runs started together on a fresh machine both build the dataset; the second to
  finish fails on TFDS's final rename (FileExistsError) although the data are in place.
  """
  try:
    builder.download_and_prepare()
  except FileExistsError:
    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
      raise
  return builder


def get_builder(dataset: str, data_dir=None, download: bool = True):
  """A prepared TFDS builder for `dataset`, or a DatasetUnavailableError saying how to get it."""
  spec = datasets.get_spec(dataset)
  name = spec.tfds_name
  if spec.source != 'tfds':
    raise DatasetUnavailableError(
        f'Dataset {dataset!r} is the images under config.data_dir (dcgan_jax/data/folder.py), '
        'not a TFDS dataset: it has no builder, splits or labels.')
  if spec.local:
    # Built here from local files: offline is fine, and an error in the build is
    # what it is (a bug or bad local data), not a failed download.
    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
      builder = _prepare(builder, name, data_dir)
    return builder
  builder = None
  try:
    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
      if not download:
        raise FileNotFoundError('downloads are switched off')
      if not _download_host_reachable():
        raise ConnectionError(f'no network connection to {TFDS_DOWNLOAD_HOST}')
      builder = _prepare(builder, name, data_dir)
  except DatasetUnavailableError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    # TFDS raises many kinds of network and file errors; they all mean the same here.
    raise DatasetUnavailableError(_unavailable_message(name, builder, f'{type(e).__name__}: {e}')) from e
  return builder


def preprocess(image, spec: datasets.DatasetSpec, image_size: int):
  """uint8 [h, w, c] from TFDS -> uint8 [image_size, image_size, c]."""
  if spec.transpose:
    image = tf.transpose(image, (1, 0, 2))
  if spec.center_crop:
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    side = tf.minimum(h, w)
    image = tf.image.crop_to_bounding_box(image, (h - side) // 2, (w - side) // 2, side, side)
  native = spec.native_size
  if image_size == native and not spec.center_crop:
    return image
  if native == 28 and image_size == 32:
    # MNIST-like digits for 32 px models: pad with background, as is customary.
    return tf.pad(image, ((2, 2), (2, 2), (0, 0)))
  image = tf.image.resize(image, (image_size, image_size), method='bilinear', antialias=True)
  return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def _per_process_batch_size(batch_size):
  if batch_size % jax.device_count():
    raise ValueError(f'batch_size={batch_size} must be divisible by the number of devices '
                     f'({jax.device_count()}).')
  return batch_size // jax.process_count()


def _read_images(builder, spec, split, image_size, whole_split):
  """The uint8 images of `split` (or of this process's shard of it), and how many there are."""
  if not whole_split:
    split = tfds.split_for_jax_process(split, drop_remainder=False)
  read_config = tfds.ReadConfig(interleave_cycle_length=1)  # Files in their order.
  ds = builder.as_dataset(split=split, shuffle_files=False, read_config=read_config)
  num_examples = int(ds.cardinality())
  if num_examples < 0:  # Unknown to tf.data (e.g. under tfds.testing.mock_data): count.
    num_examples = int(ds.reduce(0, lambda n, _: n + 1))
  ds = ds.map(lambda ex: preprocess(ex['image'], spec, image_size),
              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds, num_examples


def _fits_in_memory(num_examples, spec, image_size):
  return num_examples * image_size * image_size * spec.num_channels <= IN_MEMORY_LIMIT_BYTES


def _row_gather(images):
  """gather(indices) -> those rows of `images`: a numpy array, or an np.memmap read on demand."""
  if not isinstance(images, np.memmap):
    constant = tf.constant(images)
    return lambda indices: tf.gather(constant, indices)

  # A folder cache too large for memory (dcgan_jax/data/folder.py): each batch reads its rows.
  def gather(indices):
    rows = tf.numpy_function(lambda i: np.asarray(images[i]), [indices], tf.uint8,
                             stateful=False)
    rows.set_shape((None, *images.shape[1:]))
    return rows

  return gather


def _global_order_batches(images, num_examples, config, start_step, global_batch, local_batch,
                          buffer_size=None):
  """This process's rows of the global batches of the whole split, in the global order.

  Every process draws the same permutation of example indices from
  (seed, epoch) and takes its slice of each global batch, so the global batch
  of a step is the same examples in the same device order for any number of
  processes: a run gives the same numbers on one host or on many.
  """
  start_epoch, offset = divmod(start_step * global_batch, num_examples)
  base_seed = np.int64(np.uint32(config.seed) * 1_000_003)
  gather = _row_gather(images)

  def epoch(e):
    # shuffle() draws a permutation that depends only on the seed, the buffer
    # and the length, so indices come in the order the images themselves would.
    return tf.data.Dataset.range(num_examples).shuffle(
        min(buffer_size or config.shuffle_buffer_size, num_examples), seed=base_seed + e * 7_919,
        reshuffle_each_iteration=False)

  first = jax.process_index() * local_batch
  ds = tf.data.Dataset.range(start_epoch, np.iinfo(np.int64).max).flat_map(epoch).skip(offset)
  ds = ds.batch(global_batch, drop_remainder=True)
  return ds.map(lambda indices: gather(indices[first:first + local_batch]),
                num_parallel_calls=PIPELINE_THREADS, deterministic=True)


def _process_shard_batches(images, num_examples, config, start_step, local_batch):
  """Batches of this process's own shard (datasets too large to hold in memory whole).

  The order then depends on the number of processes; a resume on the same
  topology is still exact.
  """
  start_epoch, offset = divmod(start_step * local_batch, num_examples)
  base_seed = np.int64(np.uint32(config.seed) * 1_000_003 + jax.process_index())

  def epoch(e):
    return images.shuffle(min(config.shuffle_buffer_size, num_examples),
                          seed=base_seed + e * 7_919, reshuffle_each_iteration=False)

  ds = tf.data.Dataset.range(start_epoch, np.iinfo(np.int64).max).flat_map(epoch).skip(offset)
  return ds.batch(local_batch, drop_remainder=True)


def _tfds_batches(config, spec, builder, start_step, global_batch, local_batch):
  """This process's uint8 batches of a TFDS dataset's training split."""
  builder = builder or get_builder(config.dataset, config.data_dir)
  split = spec.train_split
  images, num_examples = _read_images(builder, spec, split, config.image_size, whole_split=True)
  if _fits_in_memory(num_examples, spec, config.image_size):
    # Decoded once and kept in memory: every epoch then costs nothing.
    if num_examples == 0:
      raise ValueError(f'Split {split!r} of {spec.tfds_name} has no examples.')
    images = next(iter(tfds.as_numpy(images.batch(num_examples))))
    return _global_order_batches(images, num_examples, config, start_step, global_batch,
                                 local_batch)
  images, num_examples = _read_images(builder, spec, split, config.image_size,
                                      whole_split=False)
  if num_examples == 0:
    raise ValueError(f'Split {split!r} of {spec.tfds_name} has no examples for '
                     f'process {jax.process_index()}.')
  return _process_shard_batches(images, num_examples, config, start_step, local_batch)


def create_train_dataset(config, start_step: int = 0, builder=None) -> tf.data.Dataset:
  """Infinite training batches of float32 [local_devices, per_device, H, W, C] in [-1, 1].

  Args:
    config: the run's config (dataset, data_dir, image_size, batch_size, seed,
      shuffle_buffer_size).
    start_step: the first step the batches are for; a run resumed at step s
      gets the batches an unbroken run would have had from step s on.
    builder: a prepared TFDS builder; by default `get_builder(config.dataset)`.
  """
  spec = datasets.get_spec(config.dataset)
  # Each of the d_steps discriminator updates of a train step takes its own real batch.
  local_batch = _per_process_batch_size(config.batch_size) * config.get('d_steps', 1)
  global_batch = local_batch * jax.process_count()
  num_local_devices = jax.local_device_count()
  channels = num_channels(config)
  if spec.source == 'folder':
    # Decoded once into a cache (dcgan_jax/data/folder.py): in memory when it fits, else
    # memory-mapped; either way every process reads the whole set in the global order.
    images = folder.load_images(config, IN_MEMORY_LIMIT_BYTES)
    # Its files come sorted, often grouped by subfolder: every epoch is a full permutation
    # (a shuffle buffer of all indices, 8 bytes an image), not a window of shuffle_buffer_size.
    ds = _global_order_batches(images, len(images), config, start_step, global_batch,
                               local_batch, buffer_size=len(images))
  else:
    ds = _tfds_batches(config, spec, builder, start_step, global_batch, local_batch)

  def to_device_batch(image):
    image = tf.cast(image, tf.float32) / 127.5 - 1.0
    shape = (num_local_devices, local_batch // num_local_devices, config.image_size,
             config.image_size, channels)
    return {'image': tf.reshape(image, shape)}

  ds = ds.map(to_device_batch, num_parallel_calls=PIPELINE_THREADS, deterministic=True)
  options = tf.data.Options()
  options.deterministic = True
  options.threading.private_threadpool_size = PIPELINE_THREADS
  # No autotuner: with it, deleting the iterator at the end of a run (or a
  # rollback) after a pause in reading, such as an evaluation, waited up to a
  # minute for its model thread (47-59 s at the end of a 150 s quickstart run).
  options.autotune.enabled = False
  return ds.with_options(options).prefetch(PIPELINE_THREADS)


def prefetch_to_device(ds: tf.data.Dataset, size: int) -> Iterator[dict]:
  """Numpy batches from `ds`, `size` of them kept in flight on the local devices."""
  # tfds.as_numpy gives views of TensorFlow's buffers, which TensorFlow reuses once
  # the tensor is dropped, while a CPU device_put may alias host memory without a
  # copy: own the memory first, or queued batches get overwritten.
  it = (jax.tree.map(np.array, batch) for batch in tfds.as_numpy(ds))
  if size <= 0:
    return it
  return flax.jax_utils.prefetch_to_device(it, size)


def create_train_iter(config, start_step: int = 0, replica_configs=None) -> Iterator[dict]:
  """Sharded training batches on the local devices, starting at `start_step`.

  With `replica_configs` (one single-seed config per replica of a
  config.num_seeds > 1 run) the batches are [devices, K, per_device, H, W, C]:
  replica i reads the data in the order of its own config (its own seed),
  exactly as the single run of that config would. With config.steps_per_call
  = n > 1 each element holds the batches of n consecutive steps, on an axis
  before per_device: [devices, (K,) n, per_device, H, W, C].
  """
  steps_per_call = config.get('steps_per_call', 1)

  def dataset(c):
    ds = create_train_dataset(c, start_step, builder)
    if steps_per_call == 1:
      return ds
    return ds.batch(steps_per_call, drop_remainder=True).map(
        lambda b: {'image': tf.experimental.numpy.moveaxis(b['image'], 0, 1)})

  builder = None
  if not replica_configs:
    ds = dataset(config)
  else:
    builder = (get_builder(config.dataset, config.data_dir)
               if datasets.get_spec(config.dataset).source == 'tfds' else None)  # (folder: none)
    ds = tf.data.Dataset.zip(tuple(dataset(c) for c in replica_configs)).map(
        lambda *batches: {'image': tf.stack([b['image'] for b in batches], axis=1)})
  return prefetch_to_device(ds, config.prefetch_to_device)


def eval_images(config, num_images: int, batch_size: int = 250, split=None, heldout=False):
  """Yields uint8 [b, H, W, C] batches of the first `num_images` images of a split.

  These are the real images that generated ones are compared against (FID
  reference statistics); the order is the dataset's own, so it is stable. A
  folder dataset has one split: its images are spread evenly over its files.

  heldout=True yields `num_images` other real images of the same split (the
  next ones; a folder's: spread over the rest): scored against the reference,
  they give what a generator that had learnt the data exactly would score at
  this sample size (`train.real_data_scores`).

  Raises:
    ValueError: heldout and the split holds fewer than 2 * num_images images.
  """
  spec = datasets.get_spec(config.dataset)
  if spec.source == 'folder':
    yield from folder.eval_images(config, num_images, batch_size, heldout)
    return
  builder = get_builder(config.dataset, config.data_dir)
  split = split or spec.train_split
  # No TFDS auto-cache: take() reads part of the split, and a partly read cache makes
  # TensorFlow warn ("partially cached contents ... discarded") on every run.
  ds = builder.as_dataset(split=split, shuffle_files=False,
                          read_config=tfds.ReadConfig(try_autocache=False))
  if heldout:
    available = builder.info.splits[split].num_examples
    if available < 2 * num_images:
      raise ValueError(f'Held-out real images: the {split} split of {config.dataset} holds '
                       f'{available} images, fewer than twice config.eval_num_samples = '
                       f'{num_images}; set --config.eval_num_samples={available // 2} or fewer.')
    ds = ds.skip(num_images)
  ds = ds.take(num_images).map(lambda ex: preprocess(ex['image'], spec, config.image_size))
  yield from tfds.as_numpy(ds.batch(batch_size))


def num_channels(config) -> int:
  """Channels of the dataset's images (a folder's: config.num_channels or its images')."""
  if datasets.get_spec(config.dataset).source == 'folder':
    return folder.num_channels(config)
  return datasets.get_spec(config.dataset).num_channels
