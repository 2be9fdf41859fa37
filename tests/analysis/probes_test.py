"""Tests of discriminator features, linear SVM probes and clustering."""

import os

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest
from sklearn import datasets as sk_datasets
from sklearn import metrics as sk_metrics

from tests.support.tiny_models import IMAGE_SIZE
from tests.support.tiny_models import ManyBlockDiscriminator
from dcgan_jax.analysis import probes


def test_global_max_pool_equals_numpy_max_over_space():
  x = np.random.default_rng(0).normal(size=(3, 5, 4, 6)).astype(np.float32)
  np.testing.assert_array_equal(probes.global_max_pool(x), x.max(axis=(1, 2)))
  dense = x.reshape(3, -1)
  np.testing.assert_array_equal(probes.global_max_pool(dense), dense)
  with pytest.raises(ValueError):
    probes.global_max_pool(x[0])


def test_feature_fn_concatenates_pooled_maps_in_block_order(tiny_discriminator):
  discriminator, variables = tiny_discriminator
  images = jax.random.uniform(jax.random.PRNGKey(2), (5, IMAGE_SIZE, IMAGE_SIZE, 1),
                              minval=-1, maxval=1)
  _, state = discriminator.apply(variables, images, mutable=['intermediates'])
  h0, h1 = (np.asarray(h) for h in state['intermediates']['features'])
  assert h0.shape == (5, 4, 4, 4) and h1.shape == (5, 2, 2, 6)
  features = np.asarray(probes.make_feature_fn(discriminator, variables)(images))
  expected = np.concatenate([h0.max(axis=(1, 2)), h1.max(axis=(1, 2))], axis=-1)
  np.testing.assert_allclose(features, expected, rtol=1e-6)
  last = np.asarray(probes.make_feature_fn(discriminator, variables, 'flatten', [-1])(images))
  np.testing.assert_allclose(last, h1.reshape(5, -1), rtol=1e-6)


def test_feature_maps_of_sub_modules_keep_call_order():
  model = ManyBlockDiscriminator()
  x = jnp.ones((2, 3, 3, 1))
  variables = {'params': jax.jit(model.init)(jax.random.PRNGKey(0), x)['params']}
  _, state = model.apply(variables, x, mutable=['intermediates'])
  maps = probes.collect_feature_maps(state['intermediates'])
  # Block i has i + 1 features, so the widths reveal the order.
  assert [m.shape[-1] for m in maps] == list(range(1, 13))
  # The jitted feature function collects inside the trace, so the order
  # survives jit (whose outputs would have sorted keys: Block_10 < Block_2).
  features = probes.make_feature_fn(model, variables)(x)
  np.testing.assert_allclose(features, np.concatenate(maps, axis=-1), rtol=1e-6)
  with pytest.raises(ValueError):
    probes.collect_feature_maps({'other': (x,)})


def _separable(num_per_class, num_classes=3, dim=20, seed=0):
  rng = np.random.default_rng(seed)
  centers = rng.normal(size=(num_classes, dim)) * 10
  y = np.repeat(np.arange(num_classes), num_per_class)
  return centers[y] + rng.normal(size=(len(y), dim)), y


def test_linear_svm_probe_separates_separable_features():
  train_x, train_y = _separable(40, seed=1)
  test_x, test_y = _separable(20, seed=1)  # Same centres, fresh noise below.
  test_x = test_x + np.random.default_rng(9).normal(size=test_x.shape) * 0.1
  result = probes.linear_svm_probe(train_x, train_y, test_x, test_y, name='synthetic')
  assert result.accuracy >= 0.99
  np.testing.assert_array_equal(result.confusion_matrix, np.diag([20, 20, 20]))
  assert result.converged and result.num_features == 20 and result.num_test == 60
  sgd = probes.linear_svm_probe(train_x, train_y, test_x, test_y, solver='sgd')
  assert sgd.accuracy >= 0.95


def test_linear_svm_probe_picks_c_as_grid_search_does():
  from sklearn import model_selection  # pylint: disable=g-import-not-at-top
  from sklearn import pipeline  # pylint: disable=g-import-not-at-top
  from sklearn import preprocessing  # pylint: disable=g-import-not-at-top
  from sklearn import svm  # pylint: disable=g-import-not-at-top
  # Noisy labels, so C matters; with this seed the middle C wins clearly
  # (CV accuracies 0.71, 0.73, 0.68), so "first" or "last" would fail.
  rng = np.random.default_rng(0)
  x = rng.normal(size=(150, 30))
  y = (x[:, 0] + 0.8 * rng.normal(size=150) > 0).astype(int)
  grid = [1e-4, 1e-2, 1.0]
  result = probes.linear_svm_probe(x[:120], y[:120], x[120:], y[120:], c=grid)
  reference = model_selection.GridSearchCV(
      pipeline.make_pipeline(preprocessing.StandardScaler(),
                             svm.LinearSVC(max_iter=5000, random_state=0)),
      {'linearsvc__C': grid},
      cv=model_selection.StratifiedKFold(3, shuffle=True, random_state=0)).fit(x[:120], y[:120])
  assert result.c == reference.best_params_['linearsvc__C'] == 1e-2
  assert result.accuracy == reference.score(x[120:], y[120:])


def test_linear_svm_probe_is_at_chance_on_noise():
  rng = np.random.default_rng(3)
  x, y = rng.normal(size=(400, 10)), rng.integers(0, 2, 400)
  result = probes.linear_svm_probe(x[:300], y[:300], x[300:], y[300:])
  assert 0.3 < result.accuracy < 0.7
  # The confusion matrix and the accuracy agree.
  assert np.trace(result.confusion_matrix) / 100 == pytest.approx(result.accuracy)


def test_compare_probes_and_confusion_plot(tiny_discriminator, tmp_path):
  discriminator, variables = tiny_discriminator
  rng = np.random.default_rng(4)
  # Class 1 images are bright, class 0 dark: both probes should get it right.
  y = np.tile([0, 1], 30)
  images = (np.where(y[:, None, None, None] == 1, 0.6, -0.6) +
            0.1 * rng.normal(size=(60, IMAGE_SIZE, IMAGE_SIZE, 1))).astype(np.float32)
  feature_fn = probes.make_feature_fn(discriminator, variables)
  results = probes.compare_probes(feature_fn, images[:40], y[:40], images[40:], y[40:])
  assert set(results) == {'discriminator', 'pixels'}
  assert results['pixels'].accuracy == 1.0
  assert results['discriminator'].num_features == 4 + 6
  path = probes.plot_confusion_matrices(results, str(tmp_path / 'cm.png'),
                                        class_names=['dark', 'bright'])
  image = np.asarray(Image.open(path).convert('L'))
  assert image.shape[1] > image.shape[0] and image.std() > 10


@pytest.fixture(scope='module')
def blobs():
  x, y = sk_datasets.make_blobs(n_samples=90, centers=[[0, 0], [10, 0], [0, 10]],
                                cluster_std=0.5, random_state=0)
  return x, y


def _silhouette_by_hand(x, labels):
  """Rousseeuw's silhouette in plain numpy, as an independent reference."""
  d = np.linalg.norm(x[:, None] - x[None], axis=-1)
  scores = []
  for i in range(len(x)):
    same = labels == labels[i]
    a = d[i, same].sum() / (same.sum() - 1)
    b = min(d[i, labels == k].mean() for k in np.unique(labels) if k != labels[i])
    scores.append((b - a) / max(a, b))
  return np.mean(scores)


def test_clustering_finds_known_blobs_and_scores_them(blobs):
  x, y = blobs
  result = probes.cluster_features(x, num_clusters=3, num_components=None, standardize=False,
                                   true_labels=y)
  assert result.adjusted_rand == pytest.approx(1.0) and result.nmi == pytest.approx(1.0)
  assert result.explained_variance is None
  assert result.silhouette == pytest.approx(sk_metrics.silhouette_score(x, y), rel=1e-9)
  assert result.silhouette == pytest.approx(_silhouette_by_hand(x, y), rel=1e-9)
  # Compactness: mean squared distance to the own cluster's mean, by hand.
  by_hand = sum(((x[y == k] - x[y == k].mean(0))**2).sum() for k in range(3)) / len(x)
  assert result.compactness == pytest.approx(by_hand, rel=1e-6)


def test_clustering_with_pca_and_standardisation(blobs, tmp_path):
  x, y = blobs
  rng = np.random.default_rng(0)
  # Lift the blobs into 30 dims with a random linear map plus a little noise.
  lifted = x @ rng.normal(size=(2, 30)) + 0.01 * rng.normal(size=(len(x), 30))
  result = probes.cluster_features(lifted * 100, num_clusters=3, num_components=2,
                                   true_labels=y)
  assert result.embedding.shape == (90, 2) and result.explained_variance > 0.99
  assert result.adjusted_rand == pytest.approx(1.0)
  # Standardised first, so scaling the features leaves compactness unchanged.
  same = probes.cluster_features(lifted, num_clusters=3, num_components=2)
  assert same.compactness == pytest.approx(result.compactness, rel=1e-4)
  path = probes.plot_clusters(result, str(tmp_path / 'clusters.png'), true_labels=y)
  assert os.path.getsize(path) > 5000


def test_offline_digits_load_with_the_pipeline_preprocessing():
  pytest.importorskip('dcgan_jax.data.input_pipeline')
  images, labels = probes.load_offline_digits('test', image_size=32)
  assert images.shape == (500, 32, 32, 1) and images.dtype == np.float32
  np.testing.assert_array_equal(np.bincount(labels), np.full(10, 50))
  assert images.min() == -1.0 and images.max() == 1.0
  # Padded, not resized: the 2 px border is background.
  assert np.all(images[:, :2] == -1.0) and np.all(images[:, :, -2:] == -1.0)
  capped, capped_labels = probes.load_labelled_images('offline_mnist', 'train', 28, 100)
  assert capped.shape == (100, 28, 28, 1) and len(np.unique(capped_labels)) == 10


def test_missing_cifar10_raises_a_clear_error(tmp_path):
  input_pipeline = pytest.importorskip('dcgan_jax.data.input_pipeline')
  with pytest.raises(input_pipeline.DatasetUnavailableError, match='cifar10'):
    probes.load_labelled_images('cifar10', 'train', 32, data_dir=str(tmp_path))
