"""FID/KID/IS of generated images against cached reference statistics.

The API the train loop calls:

  evaluator = Evaluator(extractor='inception',  # or 'digits'
                        preprocess='tf',  # or 'pytorch_fid'
                        batch_size=50, cache_dir=None, weights=None)
  reference = evaluator.reference_stats(
      key='offline_mnist/test', make_images=lambda: iter(real_batches),
      num_samples=10_000)  # computed once, then loaded from the cache
  scores = evaluator.evaluate(generated_batches, reference, num_samples=10_000)
  # {'fid': ..., 'kid': ..., 'kid_std': ..., 'is': ..., 'is_std': ...,
  #  'num_samples': ...}; 'is'/'is_std' only when the extractor has logits
  #  (digits: always; inception: only with pytorch-fid's .pth weights).

`preprocess='tf'` (the default) feeds Inception as the TF 2015 graph does and
gives the FID of the papers; 'pytorch_fid' gives pytorch-fid's values (see
`preprocessing.py`). The digits extractor has its own fixed preprocessing and
ignores the choice.

Images are iterables of NHWC batches (numpy or jax arrays), uint8 [0, 255] or
float in [-1, 1], any size, 1 or 3 channels; batches may have any length (they
are re-batched and the last one padded). Features go through a float64 running
sum / sum of outer products, so memory does not grow with num_samples; a
uniform reservoir of at most `kid_max_samples` features is kept for KID, and
the logits (k floats per image) for IS.

Reference statistics are cached per (extractor, preprocessing, key,
num_samples) as
`<cache>/reference_stats/<extractor>/<key>-<hash>-<preprocess>-v<version>-n<num_samples>.npz`
(version: STATS_VERSION), with pytorch-fid's `mu` and `sigma` arrays (so
pytorch-fid can read them) plus `kid_features` and the `preprocess` name.
Files of older versions (`<key>-<hash>-n<num_samples>.npz`, from before the
preprocessing was part of the name) are never read: they are recomputed.
Statistics of two different preprocessings are never compared (ValueError).
The key must name everything that determines the real images (dataset, split,
image size, ...). Evaluation runs on the local devices of the calling process.
"""

import dataclasses
import hashlib
import logging
import os
import re
from typing import Callable, Iterable, Optional

import numpy as np

from dcgan_jax.evaluation import features as features_lib
from dcgan_jax.evaluation import metrics
from dcgan_jax.evaluation import preprocessing
from dcgan_jax.evaluation import weights as weights_lib

EXTRACTORS = ('inception', 'digits')
PREPROCESSINGS = preprocessing.PREPROCESSINGS  # ('tf', 'pytorch_fid'); default 'tf'.
# Version of the cached reference statistics, part of their file names. 1: no
# preprocessing recorded, pytorch-fid's; 2: the preprocessing in name and file.
STATS_VERSION = 2


@dataclasses.dataclass
class ReferenceStats:
  """Statistics of a reference (real) image set."""
  mu: np.ndarray  # [d] float64
  sigma: np.ndarray  # [d, d] float64
  kid_features: np.ndarray  # [m, d] float32 (m may be 0: then no KID)
  num_samples: int
  extractor: str  # Name of the feature extractor the statistics belong to.
  # Input preprocessing ('tf', 'pytorch_fid', the digits' own 'digits'), or
  # 'unknown' for files that do not record it (pytorch-fid's, TTUR's, ours
  # before version 2).
  preprocess: str = preprocessing.UNKNOWN

  def save(self, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}.npz'
    np.savez(tmp, mu=self.mu, sigma=self.sigma, kid_features=self.kid_features,
             num_samples=np.int64(self.num_samples), extractor=np.str_(self.extractor),
             preprocess=np.str_(self.preprocess))
    os.replace(tmp, path)  # Atomic: a concurrent reader never sees half a file.

  @classmethod
  def load(cls, path):
    """Loads ours, or a pytorch-fid/TTUR statistics file (mu, sigma only).

    Files without a `preprocess` entry: ours from before version 2 (they
    have `extractor`) used pytorch-fid's preprocessing (the digits' own for
    digits) and load so; any other (pytorch-fid's, TTUR's) loads as 'unknown',
    which may be compared, with a warning (see `preprocessing.check_match`):
    such a file may hold TF statistics (TTUR's) as well as pytorch-fid's.
    """
    with np.load(path) as f:
      if 'mu' not in f.files or 'sigma' not in f.files:
        raise ValueError(f'{path} is not a statistics file: it has no mu/sigma '
                         f'(keys: {f.files}).')
      dim = f['mu'].shape[-1]
      return cls(
          mu=f['mu'].astype(np.float64), sigma=f['sigma'].astype(np.float64),
          kid_features=(f['kid_features'] if 'kid_features' in f.files
                        else np.zeros((0, dim), np.float32)),
          num_samples=int(f['num_samples']) if 'num_samples' in f.files else -1,
          extractor=str(f['extractor']) if 'extractor' in f.files else '',
          preprocess=_recorded_preprocess(f))


def _recorded_preprocess(npz):
  if 'preprocess' in npz.files:
    return str(npz['preprocess'])
  if 'extractor' not in npz.files:
    return preprocessing.UNKNOWN  # Not ours.
  # Ours before version 2: Inception then always used pytorch-fid's conventions.
  return 'digits' if str(npz['extractor']).startswith('digits') else preprocessing.PYTORCH_FID


def _cache_name(key, num_samples, preprocess):
  safe = re.sub(r'[^A-Za-z0-9._-]+', '_', key).strip('_')[:80]
  digest = hashlib.sha1(key.encode()).hexdigest()[:8]  # Keys that sanitise alike differ.
  # Preprocessing and version in the name: statistics of another preprocessing
  # or of an older version (`<key>-<hash>-n<N>.npz`, pytorch-fid's) are not reused.
  return f'{safe}-{digest}-{preprocess}-v{STATS_VERSION}-n{num_samples}.npz'


class Evaluator:
  """Computes FID, KID and (with logits) IS with one feature extractor.

  Args:
    extractor: 'inception' (FID Inception, TF 2015 weights) or 'digits' (the
      small digit classifier of `digits.py`, for fast CPU runs on digits).
    preprocess: Inception's input preprocessing, one of PREPROCESSINGS: 'tf'
      (default; the TF 2015 graph's, so the FID of the papers) or
      'pytorch_fid'. The digits extractor has its own and ignores it.
    batch_size: global batch for feature extraction (default 50 for
      inception, 500 for digits); rounded up to a multiple of the local
      device count.
    cache_dir: cache folder (default $DCGAN_JAX_CACHE or ~/.cache/dcgan_jax).
    weights: Inception weights file overriding the cache (see
      `weights.load_variables`).
    kid_subsets, kid_subset_size: KID subsets and their size (capped at the
      smaller sample count).
    kid_max_samples: features kept (uniform reservoir) per image set for KID.
    is_splits: IS splits.
    seed: seed of the KID reservoir and subsets.
    progress: show tqdm progress bars.

  Raises:
    weights.WeightsError: if the Inception weights are not set up (the message
      says how to set them up).
    ValueError: for an unknown extractor or preprocessing.
  """

  def __init__(self, extractor='inception', batch_size=None, cache_dir=None, weights=None,
               kid_subsets=100, kid_subset_size=1000, kid_max_samples=10_000,
               is_splits=10, seed=0, progress=True, preprocess=preprocessing.DEFAULT):
    preprocessing.validate(preprocess)
    if extractor == 'inception':
      self.extractor = features_lib.inception_extractor(batch_size or 50, weights, cache_dir,
                                                        preprocess)
    elif extractor == 'digits':
      from dcgan_jax.evaluation import digits  # pylint: disable=g-import-not-at-top
      if preprocess != preprocessing.DEFAULT:
        logging.warning('preprocess=%r does not apply to the digits extractor, which '
                        'has its own preprocessing.', preprocess)
      self.extractor = digits.digits_extractor(batch_size or 500)
    else:
      raise ValueError(f'Unknown extractor {extractor!r}; choose one of {EXTRACTORS}.')
    self.cache_dir = weights_lib.cache_dir(cache_dir)
    self.kid_subsets = kid_subsets
    self.kid_subset_size = kid_subset_size
    self.kid_max_samples = kid_max_samples
    self.is_splits = is_splits
    self.seed = seed
    self.progress = progress

  @property
  def has_logits(self):
    """Whether `evaluate` reports IS."""
    return self.extractor.has_logits

  @property
  def preprocess(self):
    """The extractor's input preprocessing ('tf', 'pytorch_fid' or 'digits')."""
    return self.extractor.preprocess

  def check_compatible(self, stats, label='the reference statistics'):
    """Checks that `stats` belong to this evaluator's extractor and preprocessing.

    Args:
      stats: a `ReferenceStats`.
      label: names `stats` in the messages.

    Raises:
      ValueError: for another extractor or another preprocessing (naming both).
      A warning is logged when the preprocessing of `stats` is unknown.
    """
    if stats.extractor and stats.extractor != self.extractor.name:
      raise ValueError(f'{label} were made with {stats.extractor!r}, not '
                       f'{self.extractor.name!r} (see --extractor).')
    preprocessing.check_match(stats.preprocess, self.preprocess, label, 'this evaluator')

  def features(self, images: Iterable[np.ndarray], num_samples: Optional[int] = None,
               desc='features') -> features_lib.FeatureSummary:
    """Feature statistics of `images` (the first `num_samples` if given)."""
    return features_lib.summarize(
        self.extractor, images, num_samples, kid_max_samples=self.kid_max_samples,
        keep_logits=self.has_logits, seed=self.seed, progress=self.progress, desc=desc)

  def reference_path(self, key: str, num_samples: int) -> str:
    """The cache file of `key`'s statistics (versioned, per preprocessing)."""
    return os.path.join(self.cache_dir, 'reference_stats', self.extractor.name,
                        _cache_name(key, num_samples, self.preprocess))

  def reference_stats(self, key: str, make_images: Callable[[], Iterable[np.ndarray]],
                      num_samples: int) -> ReferenceStats:
    """Reference statistics for `key`, computed once and then read from disk.

    Args:
      key: names the reference image set, e.g. 'cifar10/train/32px'.
      make_images: called only on a cache miss; returns an iterable of NHWC
        batches with at least `num_samples` images.
      num_samples: images to use (the first ones).

    Raises:
      ValueError: if make_images() yields fewer than num_samples images.
    """
    path = self.reference_path(key, num_samples)
    if os.path.exists(path):
      ref = ReferenceStats.load(path)
      self.check_compatible(ref, f'cached statistics {path}')
      return ref
    summary = self.features(make_images(), num_samples, desc=f'reference {key}')
    ref = self.to_stats(summary)
    ref.save(path)
    return ref

  def to_stats(self, summary: features_lib.FeatureSummary) -> ReferenceStats:
    """A summary of this evaluator's as `ReferenceStats` (to save)."""
    return ReferenceStats(summary.mu, summary.sigma, summary.kid_features,
                          summary.num_samples, self.extractor.name, self.preprocess)

  def evaluate(self, images: Iterable[np.ndarray], reference: ReferenceStats,
               num_samples: Optional[int] = None) -> dict:
    """FID, KID (if the reference kept features) and IS (if logits) of `images`.

    Args:
      images: iterable of NHWC batches (e.g. generator samples).
      reference: from `reference_stats` (or `ReferenceStats.load`).
      num_samples: use only the first so many images (None: all).

    Returns:
      {'fid', 'kid', 'kid_std', 'is', 'is_std', 'num_samples'} as floats/int;
      KID keys are absent when the reference has no features, IS keys when
      the extractor has no logits.

    Raises:
      ValueError: if `reference` belongs to another extractor or preprocessing.
    """
    self.check_compatible(reference)
    summary = self.features(images, num_samples, desc='evaluate')
    return self._scores(summary, reference)

  def scores(self, summary: features_lib.FeatureSummary, reference: ReferenceStats) -> dict:
    """The metrics of an image set summarised by this evaluator (see `evaluate`)."""
    self.check_compatible(reference)
    return self._scores(summary, reference)

  def _scores(self, summary, reference):
    out = {'fid': metrics.frechet_distance(summary.mu, summary.sigma, reference.mu,
                                           reference.sigma),
           'num_samples': summary.num_samples}
    if len(reference.kid_features) >= 2:
      out['kid'], out['kid_std'] = metrics.kernel_inception_distance(
          summary.kid_features, reference.kid_features, self.kid_subsets,
          self.kid_subset_size, self.seed)
    if summary.logits is not None:
      out['is'], out['is_std'] = metrics.inception_score(summary.logits, self.is_splits)
    return out
