"""Batched, pmapped feature extraction and streaming feature summaries.

An extractor maps one global batch of NHWC images (uint8, or float in [-1, 1])
to {'pool': [b, d], 'logits': [b, k]} numpy arrays ('logits' only when it has a
classifier); its input preprocessing runs inside it, on the devices. `run`
feeds it any iterable of image batches, re-batched to the extractor's batch
size (the last batch padded and its padding dropped), with a tqdm progress
bar. `summarize` folds the features into a float64 sum and sum of
outer products, so memory does not grow with the sample count, plus a fixed-size
reservoir of features for KID and (if wanted) the logits for IS.
"""

import dataclasses
import functools
from typing import Iterable, Iterator, Optional

from flax import jax_utils
import jax
import numpy as np
import tqdm

from dcgan_jax.evaluation import inception
from dcgan_jax.evaluation import metrics
from dcgan_jax.evaluation import preprocessing
from dcgan_jax.evaluation import weights as weights_lib


class PmapExtractor:
  """Runs `apply_fn(variables, images) -> dict` pmapped over the local devices.

  Attributes:
    name: identifies the network (and so its features) in cache keys.
    feature_dim: size of 'pool'.
    has_logits: whether outputs include 'logits'.
    batch_size: global batch size, a multiple of the local device count.
    preprocess: names the input preprocessing inside `apply_fn` (recorded
      with statistics; for Inception one of `preprocessing.PREPROCESSINGS`).
  """

  def __init__(self, name, apply_fn, variables, feature_dim, has_logits, batch_size,
               preprocess=preprocessing.UNKNOWN):
    self.name = name
    self.preprocess = preprocess
    self.feature_dim = feature_dim
    self.has_logits = has_logits
    self._num_devices = jax.local_device_count()
    self.batch_size = -(-batch_size // self._num_devices) * self._num_devices
    # Weights are copied to every device once, not per call.
    self._variables = jax_utils.replicate(variables)
    self._fn = jax.pmap(apply_fn)

  def __call__(self, images):
    """Features of exactly `batch_size` images (pad beforehand)."""
    images = np.asarray(images)
    if len(images) != self.batch_size:
      raise ValueError(f'Want a batch of {self.batch_size}, got {len(images)}.')
    sharded = images.reshape(self._num_devices, -1, *images.shape[1:])
    out = self._fn(self._variables, sharded)
    return {k: np.asarray(v).reshape(self.batch_size, -1) for k, v in out.items()}


def _inception_forward(variables, images, with_logits, method):
  out = inception.apply(variables, images, with_logits=with_logits, method=method)
  if with_logits:
    # IS uses the bias-free logits (see metrics.inception_score).
    return {'pool': out['pool'], 'logits': out['logits_unbiased']}
  return {'pool': out['pool']}


def inception_extractor(batch_size=50, weights=None, cache_dir=None,
                        preprocess=preprocessing.DEFAULT):
  """The FID Inception as a `PmapExtractor` (logits if the weights have them).

  Args:
    batch_size: global batch size.
    weights: optional weights path (see `weights.load_variables`).
    cache_dir: cache folder override.
    preprocess: 'tf' (the TF graph's, the papers' FID) or 'pytorch_fid'; it
      runs on the devices, inside the pmapped function.

  Raises:
    weights.WeightsError: with instructions if the weights are missing.
    ValueError: for an unknown `preprocess`.
  """
  preprocessing.validate(preprocess)
  variables, has_logits = weights_lib.load_variables(weights, cache_dir)
  forward = functools.partial(_inception_forward, with_logits=has_logits, method=preprocess)
  return PmapExtractor('inception_fid_2015', forward, variables, inception.POOL_DIM,
                       has_logits, batch_size, preprocess)


def rebatch(batches: Iterable[np.ndarray], batch_size: int,
            num_samples: Optional[int] = None) -> Iterator[tuple[np.ndarray, int]]:
  """Re-chunks NHWC batches into full batches of `batch_size`.

  A batch whose image shape or dtype differs from the previous one's ends the
  current chunk early (padded) rather than mixing shapes.

  Args:
    batches: iterable of [n, H, W, C] arrays (n may vary).
    batch_size: output batch size.
    num_samples: stop after this many images (None: all).

  Yields:
    (batch, num_valid): batch has exactly batch_size images, the last
    batch_size - num_valid of which are zero padding.
  """
  pending, count, seen = [], 0, 0

  def flush():
    chunk = np.concatenate(pending) if len(pending) > 1 else pending[0]
    valid = len(chunk)
    if valid < batch_size:
      pad = np.zeros((batch_size - valid, *chunk.shape[1:]), chunk.dtype)
      chunk = np.concatenate([chunk, pad])
    return chunk, valid

  for batch in batches:
    batch = np.asarray(batch)
    if batch.ndim == 3:
      batch = batch[None]  # A single HWC image.
    if num_samples is not None:
      batch = batch[:num_samples - seen]
    if not len(batch):
      if num_samples is not None and seen >= num_samples:
        break
      continue
    seen += len(batch)
    if pending and (batch.shape[1:] != pending[0].shape[1:] or batch.dtype != pending[0].dtype):
      yield flush()
      pending, count = [], 0
    while len(batch):
      take = batch[:batch_size - count]
      batch = batch[len(take):]
      pending.append(take)
      count += len(take)
      if count == batch_size:
        yield flush()
        pending, count = [], 0
    if num_samples is not None and seen >= num_samples:
      break
  if pending:
    yield flush()


def run(extractor, batches, num_samples=None, progress=True, desc='features'):
  """Yields the extractor's outputs on `batches`, padding rows removed."""
  with tqdm.tqdm(total=num_samples, unit='img', desc=desc, disable=not progress,
                 dynamic_ncols=True) as bar:
    for batch, valid in rebatch(batches, extractor.batch_size, num_samples):
      out = extractor(batch)
      bar.update(valid)
      yield {k: v[:valid] for k, v in out.items()}


class Reservoir:
  """A uniform random sample of at most `capacity` rows of a stream (Algorithm R)."""

  def __init__(self, capacity, seed=0):
    self.capacity = capacity
    self._rng = np.random.default_rng(seed)
    self._rows = []
    self._store = None
    self._seen = 0

  def add(self, rows):
    for row in np.asarray(rows):
      if self._seen < self.capacity:
        self._rows.append(row)
      else:
        j = self._rng.integers(0, self._seen + 1)
        if j < self.capacity:
          self._rows[j] = row
      self._seen += 1

  def values(self):
    return np.stack(self._rows) if self._rows else np.zeros((0, 0), np.float32)


@dataclasses.dataclass
class FeatureSummary:
  """What the metrics need of one image set."""
  mu: np.ndarray  # [d] float64
  sigma: np.ndarray  # [d, d] float64
  num_samples: int
  kid_features: np.ndarray  # [min(n, kid_max_samples), d] float32, uniform sample
  logits: Optional[np.ndarray] = None  # [n, k] float32, when kept


def summarize(extractor, batches, num_samples=None, kid_max_samples=10_000,
              keep_logits=True, seed=0, progress=True, desc='features'):
  """Streams `batches` through `extractor` into a `FeatureSummary`.

  Args:
    extractor: a `PmapExtractor` (or anything with its interface).
    batches: iterable of NHWC image batches.
    num_samples: use only the first so many images (None: all).
    kid_max_samples: size of the feature reservoir kept for KID.
    keep_logits: keep every sample's logits (k floats each) for IS.
    seed: reservoir seed.
    progress: show a progress bar.
    desc: progress bar label.
  """
  stats = metrics.StatsAccumulator(extractor.feature_dim)
  reservoir = Reservoir(kid_max_samples, seed)
  logits = []
  for out in run(extractor, batches, num_samples, progress, desc):
    stats.add(out['pool'])
    reservoir.add(out['pool'])
    if keep_logits and 'logits' in out:
      logits.append(out['logits'])
  if num_samples is not None and stats.n < num_samples:
    raise ValueError(f'Wanted {num_samples} images but the input ran out after {stats.n}.')
  mu, sigma = stats.mu_sigma()
  return FeatureSummary(mu, sigma, stats.n, reservoir.values(),
                        np.concatenate(logits) if logits else None)
