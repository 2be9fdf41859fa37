"""Tests of the Evaluator API, the streaming helpers and the command-line tools."""

import logging
import re

import numpy as np
import pytest

from dcgan_jax.evaluation import digits
from dcgan_jax.evaluation import evaluator as evaluator_lib
from dcgan_jax.evaluation import features
from dcgan_jax.evaluation import fid
from dcgan_jax.evaluation import inception_score
from dcgan_jax.evaluation import kid
from dcgan_jax.evaluation import metrics
from dcgan_jax.evaluation import weights


@pytest.fixture(scope='module')
def real_digits():
  _, _, test_x, _ = digits.load_digits()
  return test_x[:300]


@pytest.fixture(scope='module')
def evaluator(stats_cache):
  cache = stats_cache
  return evaluator_lib.Evaluator('digits', batch_size=64, cache_dir=cache,
                                 kid_subset_size=100, kid_subsets=20, progress=False)


def _batches(images, size=37):
  return [images[i:i + size] for i in range(0, len(images), size)]


def _noisy(images, std, seed=0):
  noise = np.random.default_rng(seed).normal(0, std, images.shape)
  return np.clip(images + noise, 0, 255).astype(np.uint8)


def test_rebatch_pads_last_batch_and_keeps_order():
  images = np.arange(10 * 2 * 2 * 1, dtype=np.uint8).reshape(10, 2, 2, 1)
  out = list(features.rebatch([images[:3], images[3:4], images[4:]], 4))
  assert [valid for _, valid in out] == [4, 4, 2]
  assert all(b.shape == (4, 2, 2, 1) for b, _ in out)
  np.testing.assert_array_equal(np.concatenate([b[:v] for b, v in out]), images)
  assert not out[-1][0][2:].any()
  # num_samples stops early; a shape change flushes a partial batch.
  assert [v for _, v in features.rebatch([images], 4, num_samples=5)] == [4, 1]
  other = np.zeros((3, 5, 5, 1), np.uint8)
  assert [v for _, v in features.rebatch([images[:2], other], 4)] == [2, 3]


def test_reservoir_is_deterministic_uniform_sample():
  rows = np.arange(1000)[:, None]
  small = features.Reservoir(2000)
  small.add(rows)
  np.testing.assert_array_equal(small.values(), rows)
  picks = []
  for seed in range(200):
    r = features.Reservoir(10, seed)
    for chunk in np.array_split(rows, 7):
      r.add(chunk)
    picks.append(r.values()[:, 0])
  a = features.Reservoir(10, 0)
  a.add(rows)
  np.testing.assert_array_equal(a.values()[:, 0], picks[0])
  # Each row is kept with probability 10/1000: the first and second halves
  # of the stream are equally represented.
  picks = np.concatenate(picks)
  assert len(set(picks.tolist())) > 500
  assert abs(np.mean(picks < 500) - 0.5) < 0.05


def test_summary_matches_numpy_on_stacked_features(evaluator, real_digits):
  summary = evaluator.features(_batches(real_digits))
  feats = np.concatenate([evaluator.extractor(b)['pool'][:len(b)] if len(b) == 64 else
                          evaluator.extractor(np.concatenate(
                              [b, np.zeros((64 - len(b), *b.shape[1:]), b.dtype)]))['pool'][:len(b)]
                          for b in _batches(real_digits, 64)]).astype(np.float64)
  assert summary.num_samples == 300
  np.testing.assert_allclose(summary.mu, feats.mean(0), rtol=1e-6, atol=1e-8)
  np.testing.assert_allclose(summary.sigma, np.cov(feats, rowvar=False), rtol=1e-5, atol=1e-7)
  assert summary.kid_features.shape == (300, 128)
  assert summary.logits.shape == (300, 10)


def test_reference_is_cached_and_fid_of_itself_is_zero(evaluator, real_digits, tmp_path):
  evaluator.cache_dir = str(tmp_path)
  calls = []

  def make_images():
    calls.append(1)
    return iter(_batches(real_digits))

  ref = evaluator.reference_stats('offline_digits/test', make_images, num_samples=300)
  again = evaluator.reference_stats('offline_digits/test', make_images, num_samples=300)
  assert len(calls) == 1
  np.testing.assert_array_equal(ref.sigma, again.sigma)
  assert ref.num_samples == 300 and ref.extractor == digits.NAME
  # A different count is a different reference.
  evaluator.reference_stats('offline_digits/test', make_images, num_samples=200)
  assert len(calls) == 2
  with pytest.raises(ValueError, match='ran out'):
    evaluator.reference_stats('other', make_images, num_samples=301)

  same = evaluator.evaluate(_batches(real_digits, 50), ref)
  assert abs(same['fid']) < 1e-6
  assert set(same) == {'fid', 'kid', 'kid_std', 'is', 'is_std', 'num_samples'}
  # A classifier sure of 10 balanced classes: IS near 10 (10 splits of 30).
  assert 5 < same['is'] <= 10


def test_scores_grow_with_perturbation(evaluator, real_digits, tmp_path):
  evaluator.cache_dir = str(tmp_path)
  ref = evaluator.reference_stats('digits', lambda: iter([real_digits]), 300)
  scores = [evaluator.evaluate([_noisy(real_digits, std)], ref) for std in (10, 40, 100)]
  fids = [s['fid'] for s in scores]
  kids = [s['kid'] for s in scores]
  assert 0 < fids[0] < fids[1] < fids[2]
  assert max(kids[0], kids[1]) < kids[2]
  # Against itself KID is only noise (subsets of 100 are drawn independently).
  same = evaluator.evaluate([real_digits], ref)
  assert abs(same['kid']) < kids[2] / 10
  # Float [-1, 1] input is the same set as uint8.
  as_float = evaluator.evaluate([real_digits.astype(np.float32) / 127.5 - 1], ref)
  assert abs(as_float['fid']) < 1e-4


def test_rejects_reference_of_another_extractor(evaluator, real_digits):
  ref = evaluator_lib.ReferenceStats(np.zeros(2048), np.eye(2048), np.zeros((0, 2048)),
                                     10, 'inception_fid_2015')
  with pytest.raises(ValueError, match='inception_fid_2015'):
    evaluator.evaluate([real_digits], ref)


def _last_line(capsys):
  return capsys.readouterr().out.strip().splitlines()[-1]


def test_fid_kid_is_command_lines(stats_cache, real_digits, tmp_path, capsys):
  cache = stats_cache
  a, b = str(tmp_path / 'a.npz'), str(tmp_path / 'b.npz')
  np.savez(a, images=real_digits)
  np.savez(b, images=_noisy(real_digits, 40))
  folder = tmp_path / 'folder'
  folder.mkdir()
  from PIL import Image  # pylint: disable=g-import-not-at-top
  for i, image in enumerate(real_digits[:120]):
    Image.fromarray(image[..., 0]).save(folder / f'{i:04d}.png')
  common = ['--extractor', 'digits', '--cache_dir', cache, '--no_progress']

  assert fid.main([a, b, *common]) == 0
  line = _last_line(capsys)
  assert line.startswith('FID: ')
  value = float(line.split()[1])
  ev = evaluator_lib.Evaluator('digits', cache_dir=cache, progress=False)
  sa, sb = ev.features([real_digits]), ev.features([_noisy(real_digits, 40)])
  assert value == pytest.approx(metrics.frechet_distance(sa.mu, sa.sigma, sb.mu, sb.sigma),
                                rel=1e-9)

  # Saved statistics stand in for the image set, and are pytorch-fid-style.
  stats = str(tmp_path / 'stats.npz')
  assert fid.main(['--save_stats', a, stats, *common]) == 0
  with np.load(stats) as f:
    assert f['mu'].shape == (128,) and f['sigma'].shape == (128, 128)
  assert fid.main([stats, b, *common]) == 0
  assert float(_last_line(capsys).split()[1]) == pytest.approx(value, rel=1e-9)

  # A folder of PNGs is the same images as the .npz.
  assert fid.main([str(folder), a, '--num_samples', '120', *common]) == 0
  assert abs(float(_last_line(capsys).split()[1])) < 1e-6

  assert kid.main([a, b, '--subset_size', '100', '--subsets', '10', *common]) == 0
  mean, pm, std = _last_line(capsys).split()[1:]
  assert pm == '±' and float(mean) > 0 and float(std) >= 0

  assert inception_score.main([a, *common]) == 0
  mean, _, std = _last_line(capsys).split()[1:]
  assert 1 < float(mean) <= 10


def test_command_line_errors_are_clear(stats_cache, tmp_path, capsys):
  cache = stats_cache
  common = ['--extractor', 'digits', '--cache_dir', cache, '--no_progress']
  assert fid.cli.run(fid.main, [str(tmp_path / 'missing'), str(tmp_path), *common]) == 2
  assert 'does not exist' in capsys.readouterr().err
  assert fid.cli.run(fid.main, [str(tmp_path), str(tmp_path), *common]) == 2
  assert 'no images' in capsys.readouterr().err
  bad = str(tmp_path / 'bad.npz')
  np.savez(bad, pictures=np.zeros((2, 2)))
  assert fid.cli.run(fid.main, [bad, bad, *common]) == 2
  assert 'no `images` array' in capsys.readouterr().err


@pytest.fixture(scope='module')
def inception_evaluators():
  """{preprocessing: an Inception Evaluator with it} (batch 4, the fake devices)."""
  try:
    return {p: evaluator_lib.Evaluator('inception', batch_size=4, preprocess=p,
                                       progress=False)
            for p in evaluator_lib.PREPROCESSINGS}
  except weights.WeightsError as e:
    pytest.fail(f'FID Inception weights are not set up: {e}')


def test_preprocessing_default_and_registry(inception_evaluators, stats_cache):
  assert evaluator_lib.PREPROCESSINGS == ('tf', 'pytorch_fid')
  assert inception_evaluators['tf'].preprocess == 'tf'
  assert inception_evaluators['pytorch_fid'].preprocess == 'pytorch_fid'
  with pytest.raises(ValueError, match='clean'):
    evaluator_lib.Evaluator('inception', preprocess='clean')
  # The digits extractor keeps its own preprocessing whatever is passed.
  cache = stats_cache
  for p in evaluator_lib.PREPROCESSINGS:
    ev = evaluator_lib.Evaluator('digits', cache_dir=cache, preprocess=p, progress=False)
    assert ev.preprocess == digits.PREPROCESS


def test_statistics_files_record_the_preprocessing(inception_evaluators, real_digits,
                                                   tmp_path):
  images = real_digits[:6]
  for p, ev in inception_evaluators.items():
    path = str(tmp_path / f'{p}.npz')
    ev.to_stats(ev.features([images])).save(path)
    with np.load(path) as f:
      assert str(f['preprocess']) == p and f['mu'].shape == (2048,)
    loaded = evaluator_lib.ReferenceStats.load(path)
    assert (loaded.preprocess, loaded.extractor) == (p, 'inception_fid_2015')
  # Files that do not say: pytorch-fid's/TTUR's are 'unknown', ours from before
  # (with `extractor`) were made with pytorch-fid's preprocessing.
  theirs, old = str(tmp_path / 'theirs.npz'), str(tmp_path / 'old.npz')
  np.savez(theirs, mu=np.zeros(2048), sigma=np.eye(2048))
  np.savez(old, mu=np.zeros(2048), sigma=np.eye(2048), extractor=np.str_('inception_fid_2015'))
  assert evaluator_lib.ReferenceStats.load(theirs).preprocess == 'unknown'
  assert evaluator_lib.ReferenceStats.load(old).preprocess == 'pytorch_fid'


def _stats(preprocess, extractor='inception_fid_2015', dim=2048):
  return evaluator_lib.ReferenceStats(np.zeros(dim), np.eye(dim), np.zeros((0, dim)), 6,
                                      extractor, preprocess)


def test_mixing_preprocessings_is_an_error_naming_both(inception_evaluators, real_digits,
                                                       caplog):
  # (No FID is computed here: at 2048-d with a few samples scipy's sqrtm takes
  # a minute on a loaded 2-core CPU.)
  tf_ev = inception_evaluators['tf']
  with pytest.raises(ValueError, match="used 'pytorch_fid'.*used 'tf'"):
    tf_ev.evaluate([real_digits[:6]], _stats('pytorch_fid'))
  summary = features.FeatureSummary(np.zeros(2048), np.eye(2048), 6, np.zeros((0, 2048)))
  with pytest.raises(ValueError, match="used 'tf'.*used 'pytorch_fid'"):
    inception_evaluators['pytorch_fid'].scores(summary, _stats('tf'))
  for p, ev in inception_evaluators.items():
    ev.check_compatible(_stats(p))  # Same preprocessing: fine.
  # Unknown (a pytorch-fid/TTUR file, no extractor either): allowed, with a warning.
  with caplog.at_level(logging.WARNING):
    tf_ev.check_compatible(_stats('unknown', extractor=''), 'theirs.npz')
  assert 'theirs.npz' in caplog.text and 'unknown' in caplog.text


def test_reference_cache_is_versioned_per_preprocessing(inception_evaluators, real_digits,
                                                        tmp_path):
  paths = {}
  for p, ev in inception_evaluators.items():
    ev.cache_dir = str(tmp_path)
    paths[p] = ev.reference_path('offline_digits/test', 6)
    assert f'-{p}-v{evaluator_lib.STATS_VERSION}-n6.npz' in paths[p]
  assert paths['tf'] != paths['pytorch_fid']
  # A cached file of the old naming (<key>-<hash>-n<N>.npz, pytorch-fid's
  # preprocessing) is not reused: the statistics are computed afresh.
  old = re.sub(r'-pytorch_fid-v\d+-n6', '-n6', paths['pytorch_fid'])
  assert old != paths['pytorch_fid']
  evaluator_lib.ReferenceStats(np.zeros(2048), np.eye(2048), np.zeros((0, 2048)), 6,
                               'inception_fid_2015').save(old)
  calls = []

  def make_images():
    calls.append(1)
    return iter([real_digits[:6]])

  ev = inception_evaluators['tf']
  ref = ev.reference_stats('offline_digits/test', make_images, 6)
  assert calls == [1] and ref.preprocess == 'tf' and np.abs(ref.mu).max() > 0
  assert ev.reference_stats('offline_digits/test', make_images, 6).preprocess == 'tf'
  assert calls == [1]  # Now cached, under the new name.
  with np.load(paths['tf']) as f:
    assert str(f['preprocess']) == 'tf'


def test_command_lines_take_and_check_the_preprocessing(real_digits, tmp_path, capsys):
  a, b = str(tmp_path / 'a.npz'), str(tmp_path / 'b.npz')
  np.savez(a, images=real_digits[:6])
  np.savez(b, images=_noisy(real_digits[:6], 40))
  common = ['--batch_size', '4', '--no_progress']
  assert fid.cli.parser('fid', '').parse_args([]).preprocess == 'tf'  # The default.
  mus = {}
  for p in evaluator_lib.PREPROCESSINGS:
    stats = str(tmp_path / f'stats_{p}.npz')
    assert fid.main(['--save_stats', a, stats, '--preprocess', p, *common]) == 0
    with np.load(stats) as f:
      assert str(f['preprocess']) == p
      mus[p] = f['mu']
  assert np.abs(mus['tf'] - mus['pytorch_fid']).max() > 1e-3 * np.abs(mus['tf']).max()
  capsys.readouterr()
  # pytorch_fid statistics against the default (tf) images: refused.
  stats = str(tmp_path / 'stats_pytorch_fid.npz')
  assert fid.cli.run(fid.main, [stats, b, *common]) == 2
  err = capsys.readouterr().err
  assert "used 'pytorch_fid'" in err and "used 'tf'" in err
  # Accepted with the matching --preprocess (KID here: a 2048-d FID of 6
  # samples costs scipy's sqrtm a minute on this CPU).
  assert kid.main([stats, b, '--preprocess', 'pytorch_fid', '--subset_size', '6',
                   '--subsets', '2', *common]) == 0
  assert _last_line(capsys).startswith('KID: ')
