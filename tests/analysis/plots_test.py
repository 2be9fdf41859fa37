"""Tests of reading scalars back from event files and plotting them."""

import os

import numpy as np
from PIL import Image
import pytest

from tests.support.tiny_models import write_clu_run
from tests.support.tiny_models import write_legacy_run
from dcgan_jax.analysis import plots


# Values exactly representable in float32, so the read-back can be exact.
RUN = {
    100: {'d_loss': 1.25, 'g_loss': 0.75, 'd_real': 0.5, 'd_fake': 0.25, 'd_acc_real': 0.5,
          'd_acc_fake': 0.75},
    200: {'d_loss': 1.0, 'g_loss': 1.5, 'd_real': 0.625, 'd_fake': 0.375, 'd_acc_real': 0.625,
          'd_acc_fake': 0.5, 'fid': 80.5, 'is': 2.5},
    300: {'d_loss': 0.5, 'g_loss': 2.0, 'd_real': 0.75, 'd_fake': 0.125, 'd_acc_real': 0.875,
          'd_acc_fake': 0.875, 'fid': 90.25, 'is': 3.0},
}


@pytest.fixture(scope='module')
def clu_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('run')
  write_clu_run(workdir, RUN, images=True)
  return str(workdir)


def test_read_scalars_returns_exact_values_from_clu_tensor_summaries(clu_run):
  scalars = plots.read_scalars(clu_run)
  assert 'samples' not in scalars  # Image summaries are tensors too; not scalars.
  assert set(scalars) == set(RUN[200])
  steps, values = scalars['d_loss']
  np.testing.assert_array_equal(steps, [100, 200, 300])
  np.testing.assert_array_equal(values, [1.25, 1.0, 0.5])
  np.testing.assert_array_equal(scalars['fid'][0], [200, 300])
  np.testing.assert_array_equal(scalars['fid'][1], [80.5, 90.25])
  assert set(plots.read_scalars(clu_run, tags=['fid'])) == {'fid'}


def test_read_scalars_reads_legacy_simple_values(tmp_path):
  write_legacy_run(tmp_path, 'g_loss', [(1, 0.5), (2, 0.25)])
  steps, values = plots.read_scalars(str(tmp_path))['g_loss']
  np.testing.assert_array_equal(steps, [1, 2])
  np.testing.assert_array_equal(values, [0.5, 0.25])


def test_rewritten_steps_keep_the_last_write(tmp_path):
  # A run resumed from step 2 writes steps 3.. again; the newer values win.
  write_legacy_run(tmp_path, 'd_loss', [(1, 1.0), (2, 2.0), (3, 3.0)])
  write_legacy_run(tmp_path, 'd_loss', [(3, 30.0), (4, 40.0)], wall_time=100.0)
  steps, values = plots.read_scalars(str(tmp_path))['d_loss']
  np.testing.assert_array_equal(steps, [1, 2, 3, 4])
  np.testing.assert_array_equal(values, [1.0, 2.0, 30.0, 40.0])


def test_summarize_scalars_picks_best_by_direction(clu_run):
  summary = plots.summarize_scalars(plots.read_scalars(clu_run))
  assert summary['fid'] == {'final_step': 300, 'final': 90.25, 'best_step': 200, 'best': 80.5}
  assert summary['is']['best'] == 3.0 and summary['is']['best_step'] == 300
  assert summary['d_loss'] == {'final_step': 300, 'final': 0.5}


def test_smooth_matches_tensorboard_debiased_ema():
  values = np.array([1.0, 3.0, 2.0])
  w = 0.6
  ema1 = 0.4 * 1
  ema2 = w * ema1 + 0.4 * 3
  ema3 = w * ema2 + 0.4 * 2
  expected = [ema1 / (1 - w), ema2 / (1 - w**2), ema3 / (1 - w**3)]
  np.testing.assert_allclose(plots.smooth(values, w), expected)
  np.testing.assert_array_equal(plots.smooth(values, 0.0), values)


def _assert_nontrivial_png(path, min_colors=20):
  assert os.path.exists(path) and os.path.getsize(path) > 5000
  image = np.asarray(Image.open(path).convert('RGB'))
  assert image.shape[0] > 200 and image.shape[1] > 300
  assert len(np.unique(image.reshape(-1, 3), axis=0)) >= min_colors


def test_plot_training_curves_writes_all_plots(clu_run, tmp_path):
  paths = plots.plot_training_curves(clu_run, str(tmp_path))
  assert set(paths) == {'losses', 'discriminator', 'quality'}
  for path in paths.values():
    _assert_nontrivial_png(path)


def test_plot_training_curves_skips_what_was_not_logged(tmp_path):
  write_legacy_run(tmp_path, 'd_loss', [(1, 0.5), (2, 0.25)])
  assert set(plots.plot_training_curves(str(tmp_path))) == {'losses'}
  assert os.path.exists(tmp_path / 'plots' / 'losses.png')


def test_seed_curves_draw_each_seed(clu_run, tmp_path):
  seeds = tmp_path / 'seeds'
  write_clu_run(seeds, {step: {'fid/replica_0': 100.0 / step, 'fid/replica_1': 300.0 / step,
                               'fid': 200.0 / step} for step in (1, 2, 3, 4)})
  assert plots.per_seed(plots.read_scalars(str(seeds)), 'fid')[1][1].tolist() == [
      300.0, 150.0, 100.0, 75.0]
  assert plots.per_seed(plots.read_scalars(clu_run), 'fid')[0][1].tolist() == [80.5, 90.25]
  path = plots.seed_curves({'two seeds': str(seeds), 'one': clu_run},
                           str(tmp_path / 'fid_seeds.png'), trend_from=0.75)
  _assert_nontrivial_png(path)
  # A zoomed row under the first: twice the height, the same width.
  zoomed = plots.seed_curves({'two seeds': str(seeds), 'one': clu_run},
                             str(tmp_path / 'zoomed.png'), trend_from=0.75, zoom_from=0.5,
                             floors={'two seeds': 20.0})
  _assert_nontrivial_png(zoomed)
  with Image.open(path) as one_row, Image.open(zoomed) as two_rows:
    assert two_rows.width == one_row.width and two_rows.height == 2 * one_row.height
  empty = tmp_path / 'empty'
  write_clu_run(empty, {1: {'d_loss': 1.0}})
  assert plots.seed_curves([str(empty)], str(tmp_path / 'none.png')) is None
  assert not os.path.exists(tmp_path / 'none.png')


def test_window_trend_fits_the_last_part():
  steps = np.arange(1, 9) * 10.0
  values = 50.0 * 0.9 ** (steps / 10)  # 10% down every 10 steps, exactly.
  window, fitted, change = plots.window_trend(steps, values, 0.5)
  assert window.tolist() == [40, 50, 60, 70, 80]
  np.testing.assert_allclose(fitted, values[3:])
  assert change == pytest.approx(0.9 ** 4 - 1)  # Over the 40 steps from 40 to 80.
  assert plots.window_trend([10.0, 20.0], [1.0, 2.0], 0.9) is None  # One point in the window.


def test_compare_runs_and_table(clu_run, tmp_path):
  other = tmp_path / 'other'
  write_clu_run(other, {100: {'fid': 60.0}, 200: {'fid': 50.0}})
  runs = {'base': clu_run, 'other': str(other)}
  path = plots.compare_runs(runs, str(tmp_path / 'fid.png'), tags=('fid', 'd_loss'))
  _assert_nontrivial_png(path)
  table = plots.runs_table(runs, tags=('fid', 'd_loss'))
  lines = table.strip().split('\n')
  assert lines[0] == '| run | fid | d_loss |'
  assert lines[2] == '| base | 80.5 (200) / 90.25 | 0.5 |'
  assert lines[3] == '| other | 50 (200) / 50 | - |'
