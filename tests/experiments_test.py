"""Tests of the study runners in experiments/: grids, the results table, one real run."""

import csv
import functools
import json
import math
import os
import re
import threading

from clu import metric_writers
import numpy as np
import pytest
from scipy import stats

from dcgan_jax.analysis import plots
from experiments import common
from experiments import run

STUDY_IDS = run.STUDIES


@pytest.mark.parametrize('scale', common.SCALES)
@pytest.mark.parametrize('study_id', STUDY_IDS)
def test_grid_builds_valid_configs(study_id, scale):
  study = run.get_study(study_id)
  runs = run.build_grid(study, scale)  # Applies every override and validates.
  assert len(runs) >= 2
  for name, config, overrides in runs:
    assert name and '/' not in name
    for path, value in overrides.items():
      assert run._get(config, path) == value  # pylint: disable=protected-access
    assert set(study.analyses(name, scale)) <= {'latent', 'probe', 'cluster'}
  # Every grid compares something: at least one switch varies.
  assert run.varied_switches(runs)


@pytest.mark.parametrize('study_id', STUDY_IDS)
def test_cpu_grids_use_offline_data_and_digit_fid(study_id):
  for name, config, _ in run.build_grid(run.get_study(study_id), 'cpu'):
    assert config.dataset == 'offline_mnist', name
    assert config.eval_feature_extractor == 'digits', name
    assert config.image_size in (28, 32), name


@pytest.mark.parametrize('study_id', STUDY_IDS)
def test_full_grids_use_the_studies_data_and_inception(study_id):
  for name, config, _ in run.build_grid(run.get_study(study_id), 'full'):
    assert config.dataset in ('mnist', 'emnist', 'cifar10', 'celeb_a'), name
    assert config.eval_feature_extractor == 'inception', name


def test_grids_keep_the_studies_variables():
  """The cpu grid changes the scale, not the question: same switches vary."""
  expected = {
      '000': {'model.g_activation', 'optim.d_lr'},
      '001': {'optim.g_b1', 'optim.g_lr', 'loss.type', 'model.g_attention_res',
              'model.g_activation', 'model.g_norm'},
      '002': {'model.d_dropout', 'loss.label_smoothing', 'd_separate_real_fake'},
      '003': {'optim.g_lr', 'optim.lr_decay_steps'},
      '004': {'model.arch'},
  }
  for study_id, switches in expected.items():
    for scale in common.SCALES:
      varied = set(run.varied_switches(run.build_grid(run.get_study(study_id), scale)))
      assert switches <= varied, (study_id, scale, switches - varied)


def test_study_003_learning_rates_and_schedule():
  runs = {name: config for name, config, _ in run.build_grid(run.get_study('003'), 'full')}
  assert {runs[f'lr_{lr}'].optim.g_lr for lr in ('1e-4', '1e-5', '1e-6')} == {1e-4, 1e-5, 1e-6}
  schedule = runs['schedule_1e-4_1e-5_1e-6']
  assert schedule.num_train_steps == 3 * runs['lr_1e-4'].num_train_steps
  assert schedule.optim.lr_decay_steps == (runs['lr_1e-4'].num_train_steps,
                                           2 * runs['lr_1e-4'].num_train_steps)
  assert all(c.model.spectral_norm for c in runs.values())


def test_unknown_override_is_an_error():
  with pytest.raises(KeyError, match='no field'):
    common.apply_overrides(common.cpu_config(10), {'optim.glr': 1e-4})


def test_parse_overrides():
  assert run.parse_overrides(['num_train_steps=10', 'optim.lr_decay_steps=(1, 2)',
                              'data_dir=/data/tfds']) == {
                                  'num_train_steps': 10, 'optim.lr_decay_steps': (1, 2),
                                  'data_dir': '/data/tfds'}


def test_dry_run_trains_nothing(tmp_path, capsys):
  assert run.run_study('002', 'cpu', str(tmp_path), dry_run=True) == []
  out = capsys.readouterr().out
  assert 'faces:' in out and 'for celeb_a' in out
  assert not os.listdir(tmp_path)
  with pytest.raises(ValueError, match='not in study'):
    run.run_study('002', 'cpu', str(tmp_path), only=['nope'], dry_run=True)


def test_collect_only_trains_nothing_and_names_a_wrong_outdir(tmp_path):
  with pytest.raises(run.NothingToCollect, match=r'no finished run of study 003 under .*'
                     r'study_003/runs \(expected lr_1e-4, .*Check --outdir'):
    run.run_study('003', 'cpu', str(tmp_path), collect_only=True)
  assert not (tmp_path / 'study_003' / 'runs').exists()


def test_collect_only_tables_the_finished_runs_and_their_analyses(tmp_path, tfds_data_dir):
  runs = tmp_path / 'study_002' / 'runs'
  for name, accs in (('recipe', (0.7, 0.8, 0.9)), ('no_dropout', (0.5, 0.6, 0.7))):
    _fake_run(runs / name, (300.0, 100.0, 200.0), 10.0)
    mean = np.mean(accs)
    half_width = stats.t.ppf(0.975, 2) * np.std(accs, ddof=1) / math.sqrt(3)
    run.save_run_info(str(runs / name), {
        'finished': True, 'wall_time_s': 10.0,
        'analysis': {'probe_pixels_acc': mean, 'probe_pixels_acc_ci95': half_width,
                     'probe_pixels_acc_seeds': list(accs)}})
  rows = run.run_study('002', 'cpu', str(tmp_path), collect_only=True,
                       overrides={'data_dir': tfds_data_dir})
  assert [r['run'] for r in rows] == ['recipe', 'no_dropout']  # The others never ran.
  with open(tmp_path / 'study_002' / 'results.csv') as f:
    header = next(csv.reader(f))
  assert len(header) == len(set(header))
  assert header[-3:] == ['probe_pixels_acc', 'probe_pixels_acc_ci95', 'probe_pixels_acc_seeds']
  table = (tmp_path / 'study_002' / 'results.md').read_text()
  assert '| probe_pixels_acc |' in table and 'probe_pixels_acc_ci95' not in table
  assert '| 0.8 ± 0.25 |' in table  # t(0.975, 2) * 0.1 / sqrt(3) = 0.248.
  # Held-out real digits against the reference: the same data, so a low FID (about 6).
  floor = re.search(r'Held-out real images .* against the reference: FID ([0-9.]+), ', table)
  assert floor and 1.0 < float(floor.group(1)) < 20.0
  assert (tmp_path / 'study_002' / 'figures' / 'fid_seeds.png').exists()
  assert sorted(os.listdir(runs)) == ['no_dropout', 'recipe']


def _fake_run(workdir, fids, wall_time):
  writer = metric_writers.create_default_writer(str(workdir))
  for step in (10, 20, 30):
    writer.write_scalars(step, {'d_loss': 1.0 + step, 'g_loss': 2.0 + step,
                                'd_acc_real': 0.5, 'd_acc_fake': step / 100})
  for step, fid in zip((10, 20, 30), fids):
    writer.write_scalars(step, {'fid': fid, 'kid': fid / 10, 'is': 2.0})
  writer.write_scalars(30, {'steps_per_sec': 5.0})
  writer.flush()
  writer.close()
  run.save_run_info(str(workdir), {'finished': True, 'wall_time_s': wall_time})


def test_results_table_from_fake_runs(tmp_path):
  _fake_run(tmp_path / 'a', (300.0, 100.0, 200.0), 12.5)
  _fake_run(tmp_path / 'b', (50.0, 60.0, 70.0), 7.0)
  rows = []
  for name, lr in (('a', 1e-4), ('b', 2e-4)):
    row = {'run': name, 'optim.g_lr': lr, 'dataset': 'offline_mnist 28px',
           **run.collect_metrics(str(tmp_path / name))}
    rows.append(row)
  assert rows[0]['best_fid'] == 100.0 and rows[0]['best_fid_step'] == 20
  assert rows[0]['fid'] == 200.0 and rows[0]['steps'] == 30
  assert rows[0]['d_loss'] == 31.0 and rows[0]['d_acc_fake'] == pytest.approx(0.3)
  assert rows[1]['best_fid'] == 50.0 and rows[1]['best_fid_step'] == 10
  assert rows[0]['wall_time_s'] == 12.5 and rows[0]['steps_per_s'] == 5.0
  # FID 300, 100, 200 at steps 10, 20, 30: one evaluation (30) from 3/4 of the last
  # step on, too few for a trend.
  assert math.isnan(rows[0]['fid_change_last_quarter']) and rows[0]['fid_converged_at'] is None
  csv_path, md_path = run.write_results(str(tmp_path / 'out'), rows, ['optim.g_lr'],
                                        title='fake')
  with open(csv_path) as f:
    table = list(csv.DictReader(f))
  assert [r['run'] for r in table] == ['a', 'b']
  assert list(table[0]) == ['run', 'optim.g_lr', *run.METRIC_COLUMNS]
  assert float(table[0]['best_fid']) == 100.0 and float(table[1]['optim.g_lr']) == 2e-4
  with open(md_path) as f:
    md = f.read().splitlines()
  header = [l for l in md if l.startswith('| run |')]
  assert len(header) == 1 and '| best_fid |' in header[0]
  assert sum(l.startswith('| a |') or l.startswith('| b |') for l in md) == 2


def test_end_to_end_smallest_cpu_run(tmp_path, tfds_data_dir):
  """The MLP GAN of study 004 for 3 steps: trained, analysed, tabled, checkpoints gone."""
  overrides = {'num_train_steps': 3, 'eval_num_samples': 0, 'shuffle_buffer_size': 64,
               'data_dir': tfds_data_dir}
  rows = run.run_study('004', 'cpu', str(tmp_path), only=['mlp_gan_same_steps'],
                       overrides=overrides)
  assert [r['run'] for r in rows] == ['mlp_gan_same_steps']
  assert rows[0]['steps'] == 3 and rows[0]['d_loss'] is not None
  study_dir = tmp_path / 'study_004'
  assert (study_dir / 'results.md').exists() and (study_dir / 'results.csv').exists()
  assert (study_dir / 'figures' / 'losses.png').exists()
  assert (study_dir / 'figures' / 'samples.png').exists()
  workdir = study_dir / 'runs' / 'mlp_gan_same_steps'
  assert (workdir / 'report' / 'report.md').exists()
  assert not (workdir / 'checkpoints').exists()
  info = json.loads((workdir / 'run_info.json').read_text())
  assert info['finished'] and info['wall_time_s'] > 0
  # A finished run is not trained again; the table is rebuilt from its logs.
  again = run.run_study('004', 'cpu', str(tmp_path), only=['mlp_gan_same_steps'],
                        overrides=overrides)
  assert again[0]['wall_time_s'] == info['wall_time_s']
  collected = run.run_study('004', 'cpu', str(tmp_path), overrides=overrides,
                            collect_only=True)  # The other runs are not trained.
  assert collected == again and sorted(os.listdir(study_dir / 'runs')) == ['mlp_gan_same_steps']
  # A longer budget needs the checkpoints, which this run deleted: a clear error.
  with pytest.raises(run.BudgetChanged, match='finished at step 3.*asks for 5 steps.*deleted'):
    run.run_study('004', 'cpu', str(tmp_path), only=['mlp_gan_same_steps'],
                  overrides=dict(overrides, num_train_steps=5))


def test_a_longer_budget_extends_a_kept_run(tmp_path, tfds_data_dir):
  """With --keep_checkpoints a finished run goes on to a longer budget; no shortening."""
  overrides = {'num_train_steps': 2, 'eval_num_samples': 0, 'shuffle_buffer_size': 64,
               'data_dir': tfds_data_dir, 'log_every_steps': 1, 'num_seeds': 1}
  study = functools.partial(run.run_study, '004', 'cpu', str(tmp_path),
                            only=['mlp_gan_same_steps'], keep_checkpoints=True)
  first = study(overrides=overrides)[0]
  workdir = tmp_path / 'study_004' / 'runs' / 'mlp_gan_same_steps'
  assert json.loads((workdir / 'run_info.json').read_text())['steps'] == 2
  longer = study(overrides=dict(overrides, num_train_steps=4))[0]
  info = json.loads((workdir / 'run_info.json').read_text())
  assert info['finished'] and info['steps'] == 4 and longer['steps'] == 4
  assert longer['wall_time_s'] > first['wall_time_s']  # Both parts' training time.
  # The logs hold steps 1-2 of the first part and 3-4 of the extension, once each.
  steps, d_loss = plots.read_scalars(str(workdir))['d_loss']
  assert list(steps) == [1, 2, 3, 4]
  # What a fresh 4-step run trains (resume is exact: training tests).
  fresh = tmp_path / 'fresh'
  run.run_study('004', 'cpu', str(fresh), only=['mlp_gan_same_steps'],
                overrides=dict(overrides, num_train_steps=4))
  _, fresh_d_loss = plots.read_scalars(str(fresh / 'study_004' / 'runs' /
                                           'mlp_gan_same_steps'))['d_loss']
  np.testing.assert_array_equal(d_loss, fresh_d_loss)
  with pytest.raises(run.BudgetChanged, match='cannot be shortened'):
    study(overrides=overrides)


def test_an_unfinished_run_without_checkpoints_starts_clean(tmp_path, tfds_data_dir):
  """Old logs of a run that must train from step 0 again are deleted, not mixed in."""
  workdir = tmp_path / 'study_004' / 'runs' / 'mlp_gan_same_steps'
  _fake_run(workdir, (300.0, 100.0, 200.0), 1e6)  # Logs at steps 10-30 ...
  run.save_run_info(str(workdir), {'wall_time_s': 1e6})  # ... and not finished.
  (workdir / 'samples').mkdir()
  (workdir / 'samples' / 'step_0000030.png').write_bytes(b'old')
  overrides = {'num_train_steps': 2, 'eval_num_samples': 0, 'shuffle_buffer_size': 64,
               'data_dir': tfds_data_dir, 'log_every_steps': 1, 'num_seeds': 1}
  row = run.run_study('004', 'cpu', str(tmp_path), only=['mlp_gan_same_steps'],
                      overrides=overrides)[0]
  scalars = plots.read_scalars(str(workdir))
  assert list(scalars['d_loss'][0]) == [1, 2] and 'fid' not in scalars
  assert not (workdir / 'samples' / 'step_0000030.png').exists()
  assert row['steps'] == 2 and row['wall_time_s'] < 1e6  # The old time is not added.
  assert json.loads((workdir / 'run_info.json').read_text())['finished']


def test_wall_time_is_saved_while_training_runs(tmp_path, monkeypatch):
  """A run killed mid-way keeps the wall time it had; the final save adds all of it."""
  def on_disk():
    return json.loads((tmp_path / run.RUN_INFO).read_text())

  saved = threading.Event()
  save_run_info = run.save_run_info

  def save_and_signal(workdir, info):
    save_run_info(workdir, info)
    saved.set()

  monkeypatch.setattr(run, 'save_run_info', save_and_signal)
  info = {'wall_time_s': 100.0}  # What an interrupted earlier invocation recorded.
  with run.recording_wall_time(str(tmp_path), info, every_s=0.01):
    # Training: the saver writes meanwhile, once and then again.
    assert saved.wait(timeout=60)
    during = on_disk()['wall_time_s']
    assert during > 100.0
    saved.clear()
    assert saved.wait(timeout=60)
  assert info['wall_time_s'] == on_disk()['wall_time_s'] > during
  # An error inside still records the time it took; no temporary file stays.
  with pytest.raises(RuntimeError):
    with run.recording_wall_time(str(tmp_path), info, every_s=60.0):
      raise RuntimeError('stopped')
  assert on_disk()['wall_time_s'] == info['wall_time_s']
  assert sorted(os.listdir(tmp_path)) == [run.RUN_INFO]


def test_git_keeps_what_rebuilds_a_study_but_not_checkpoints():
  """.gitignore: a finished run's logs, samples and reports are kept; checkpoints are not."""
  import shutil as shutil_lib  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  if not shutil_lib.which('git') or not os.path.isdir(os.path.join(root, '.git')):
    pytest.skip('not a git checkout')
  run_dir = 'experiments/results/cpu/study_009/runs/x'
  paths = {f'{run_dir}/{p}': kept for p, kept in (
      ('events.out.tfevents.1.vm.2.0.v2', True), ('samples/step_0000010.png', True),
      ('report/report.md', True), ('run_info.json', True), ('config.json', True),
      ('checkpoints/10/x', False), ('best_checkpoint/10/x', False), ('.lock', False))}
  ignored = subprocess.run(['git', 'check-ignore', '--no-index', *paths], cwd=root,
                           capture_output=True, text=True, check=False).stdout.split()
  assert {p: p not in ignored for p in paths} == paths


def test_welch_verdict_follows_scipy_and_the_stated_rule():
  from scipy import stats  # pylint: disable=g-import-not-at-top
  low, high = [10.0, 11.0, 12.0], [20.0, 21.5, 19.0]
  assert common.welch_verdict(low, high) == ('a', pytest.approx(
      stats.ttest_ind(low, high, equal_var=False).pvalue))
  assert common.welch_verdict(low, high, lower_is_better=False)[0] == 'b'
  # Means apart but within the noise of three seeds: no verdict.
  assert common.welch_verdict([10.0, 30.0, 20.0], [22.0, 12.0, 32.0])[0] == 'not resolved'


def test_last_quarter_change_and_the_plateau_rule():
  # A curve falling 20% a quarter, exactly: the fit reads it back.
  steps = np.arange(1, 17) * 500.0
  falling = 100.0 * 0.8 ** (steps / 2000.0)
  assert common.last_quarter_change(steps, falling) == pytest.approx(-0.2)
  # Noisy evaluations: the slope is the median of the slopes of log FID between
  # every pair of evaluations from 3/4 of the last step on (computed here by hand).
  noisy = falling * np.exp(np.random.default_rng(0).normal(0, 0.05, steps.shape))
  x, y = steps[steps >= 6000], np.log(noisy[steps >= 6000])
  pairs = [(y[j] - y[i]) / (x[j] - x[i]) for i in range(len(x)) for j in range(i + 1, len(x))]
  assert common.last_quarter_change(steps, noisy) == pytest.approx(
      np.exp(np.median(pairs) * 2000) - 1)
  # One high last evaluation does not make a flat curve rise: a fit, not the two ends.
  flat = np.full(16, 50.0)
  flat[-1] = 60.0
  assert flat[-1] / flat[-5] - 1 == pytest.approx(0.2)
  assert common.last_quarter_change(steps, flat) == 0.0
  # Fewer than three evaluations in the window: no reading (two would be the two ends).
  assert math.isnan(common.last_quarter_change([100], [5.0]))
  assert math.isnan(common.last_quarter_change([1000, 4000], [5.0, 4.0]))
  assert math.isnan(common.last_quarter_change([1000, 3000, 4000], [5.0, 5.0, 4.0]))
  assert common.last_quarter_change([1000, 3000, 3500, 4000], [5.0, 5.0, 4.0, 5.0]) == 0.0
  assert [common.plateau_label(c) for c in (-0.25, -0.05, 0.0, 0.099, 0.3, float('nan'))] == [
      'falling', 'flat', 'flat', 'flat', 'rising', '-']
  # A cell has plateaued when no seed is still falling; a rising seed has stopped.
  assert common.plateau_verdict([-0.05, 0.02, -0.09]) == 'plateaued (3 flat)'
  assert common.plateau_verdict([-0.05, 0.15, 0.0]) == 'plateaued (2 flat, 1 rising)'
  assert common.plateau_verdict([-0.3, 0.15, 0.0]) == (
      'not plateaued (1 flat, 1 rising, 1 falling)')
  assert common.plateau_verdict([-0.05, float('nan')]).startswith('not plateaued')


def test_verdicts_table_from_per_seed_values(tmp_path):
  from scipy import stats  # pylint: disable=g-import-not-at-top
  from experiments import verdicts  # pylint: disable=g-import-not-at-top
  seeds = {'a': {'fid': (10.0, 11.0, 12.0), 'is': (5.0, 5.1, 4.9), 'd_acc_fake': (0.9, 0.8, 0.7)},
           'b': {'fid': (20.0, 21.5, 19.0), 'is': (5.0, 4.8, 5.3), 'd_acc_fake': (0.5, 0.6, 0.4)}}
  changes = {'a': (-0.05, 0.02, -0.09), 'b': (-0.3, 0.15, 0.0)}
  with open(tmp_path / 'results.csv', 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['run', 'fid', 'fid_seeds', 'is', 'is_seeds', 'd_acc_fake_seeds',
                     'fid_change_last_quarter_seeds', 'fid_converged_at'])
    for name, values in seeds.items():
      writer.writerow([name, 0, str(values['fid']), 0, str(values['is']),
                       str(values['d_acc_fake']), str(changes[name]),
                       {'a': 12000, 'b': ''}[name]])
  study = type('Study', (), {'TITLE': 'test', 'COMPARISONS': (('a', 'b'), ('a', 'absent'))})
  text = open(verdicts.write_verdicts(str(tmp_path), study)).read()
  rows = {line.split(' | ')[1]: line for line in text.splitlines() if line.startswith('| a vs b')}
  assert sorted(rows) == ['d_acc_fake', 'fid', 'is']
  p_fid = stats.ttest_ind(seeds['a']['fid'], seeds['b']['fid'], equal_var=False).pvalue
  assert f'| {p_fid:.2g} | **a** better |' in rows['fid']
  assert rows['is'].endswith('| not resolved |')
  assert rows['d_acc_fake'].endswith('| b lower |')  # No better or worse for D accuracy.
  # A run's own curve is described, not compared between runs.
  assert 'fid_change_last_quarter' not in rows
  convergence = text.split('## Convergence')[1]
  assert '| a | -4.0% | -5.0%, +2.0%, -9.0% | plateaued (3 flat) | 12,000 |' in convergence
  assert ('| b | -5.0% | -30.0%, +15.0%, +0.0% | not plateaued (1 flat, 1 rising, 1 falling) | '
          'not yet |') in convergence


def test_accelerator_check_runs_without_tensorflow(tmp_path):
  """The GPU/TPU check: step timings and a 2-replica run whose replica 0 is the 1-seed run."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, DCGAN_JAX_CACHE=str(tmp_path / 'cache'))
  subprocess.run(
      [sys.executable, os.path.join(root, 'experiments', 'tools', 'accelerator_check.py'),
       f'--out={tmp_path}', '--bench=quickstart:2', '--bench_steps=2', '--bench_repeats=1',
       '--train_steps=6', '--train_seeds=1,2'], check=True, cwd=tmp_path, env=env,
      capture_output=True)
  records = [json.loads(line) for line in
             (tmp_path / 'accelerator_check.jsonl').read_text().splitlines()]
  assert [r['kind'] for r in records] == ['environment', 'train_step', 'training', 'training',
                                          'done']
  assert not records[0]['tensorflow_imported'] and not records[-1]['tensorflow_imported']
  assert records[0]['auto_replica_loop'] == 'host'  # On CPU.
  assert records[1]['num_seeds'] == 2 and records[1]['images_per_sec'] > 0
  one, two = records[2], records[3]
  assert one['step'] == two['step'] == 6 and len(two['fid']) == 2
  # The host loop runs replica 0 as the single-seed run: the same losses and FID.
  assert two['d_loss'][0] == one['d_loss'][0] and two['fid'][0] == one['fid'][0]
  assert two['fid'][1] != one['fid'][0]
  assert (tmp_path / 'samples_k2.png').exists()


def test_plateau_readings_and_step_stretch_on_power_laws():
  from experiments.tools import plateau_readings as tool  # pylint: disable=g-import-not-at-top
  steps = np.arange(500.0, 40_001.0, 500.0)
  # FID ∝ step^-c falls by 1 - (4/3)^-c over any last quarter: 13.4% at c = 0.5, 5.6% at 0.2.
  steep, shallow = [(steps, 500.0 * steps ** -0.5)], [(steps, 500.0 * steps ** -0.2)]
  assert common.changes_at(steep, 40_000) == [pytest.approx((4 / 3) ** -0.5 - 1, abs=1e-3)]
  assert not any(flat for _, flat in common.plateau_readings(steep, 10_000))
  readings = common.plateau_readings(shallow, 10_000)
  assert readings[0] == (10_000, True) and all(flat for _, flat in readings)
  assert tool._spans(readings) == '10,000-40,000'
  assert tool._spans([(1, True), (2, False), (3, True), (4, True)]) == '1, 3-4'
  # A reading holds at B when every budget from B to 1.25 B reads plateaued:
  # 10,000-11,000 is too short a flat stretch, 20,000 holds once 25,000 is read.
  flat_at = lambda b: 10_000 <= b <= 11_000 or b >= 20_000
  stairs = [(b, flat_at(b)) for b in range(8_000, 30_001, 500)]
  assert common.converged_at(stairs) == 20_000
  assert common.converged_at([r for r in stairs if r[0] < 25_000]) is None
  assert common.converged_at(stairs, hold=1.1) == 10_000
  assert common.converged_at(readings) == 10_000
  assert common.converged_at(common.plateau_readings(steep, 10_000)) is None
  # The power law at the rule's exponent falls by the rule's 10% a quarter (read by
  # the Theil-Sen path). A curve bending to a floor, F = b t^-0.5 + 5, has the local
  # exponent -d log F / d log t = 0.5 b t^-0.5 / F, read at each window's middle.
  assert tool.power_law_exponent(steps, 500.0 * steps ** -0.3) == pytest.approx(0.3)
  edge = [(steps, 500.0 * steps ** -tool.rule_exponent())]
  assert common.changes_at(edge, 40_000) == [pytest.approx(-common.PLATEAU_CHANGE, abs=1e-3)]
  bending = tool.local_exponents((steps, 500.0 * steps ** -0.5 + 5.0), from_step=2_000)
  assert bending[-1][1] == 40_000 and bending[0][0] >= 2_000 and len(bending) == 7
  for lo, hi, exponent in bending:
    power = 500.0 * (lo * hi) ** -0.25
    assert exponent == pytest.approx(0.5 * power / (power + 5.0), rel=0.01)
  # A is B slowed 3 times: A(t) = B(t / 3). The misfit is least at 3, and ~0 there.
  b = (steps, 500.0 * steps ** -0.3 + 5.0)
  a = (steps, 500.0 * (steps / 3) ** -0.3 + 5.0)
  misfits = {s: tool.stretch_misfit(a, b, s, from_step=3_000, width=1)[0]
             for s in (2, 2.5, 3, 3.5, 4)}  # Unsmoothed: only the interpolation errs.
  assert min(misfits, key=misfits.get) == 3 and misfits[3] < 0.03 * misfits[2.5]


def test_plateau_readings_command_line(tmp_path, capsys):
  from experiments.tools import plateau_readings as tool  # pylint: disable=g-import-not-at-top
  steps = np.arange(500, 40_001, 500)
  for name, power in (('steep', 0.5), ('shallow', 0.2)):
    writer = metric_writers.create_default_writer(str(tmp_path / name))
    for step in steps:
      fids = [500.0 * (1 + 0.1 * i) * step ** -power for i in range(3)]
      writer.write_scalars(int(step), dict(fid=np.mean(fids),
                                           **{f'fid/replica_{i}': f for i, f in enumerate(fids)}))
    writer.close()
  figure = tmp_path / 'readings.png'
  tool.main([str(tmp_path / 'steep'), str(tmp_path / 'shallow'), '--stretches=1,2',
             '--budgets=40000', f'--figure={figure}'])
  lines = capsys.readouterr().out.splitlines()
  assert lines[0].endswith('steep: reads plateaued at 0 of 61 budgets from 10,000: none; '
                           'no reading holds yet')
  assert lines[2].endswith('shallow: reads plateaued at 61 of 61 budgets from 10,000: '
                           '10,000-40,000; converged at 10,000 (its reading holds to 1.25 x)')
  # Both means are power laws: every window reads their exponent.
  for line, exponent in ((lines[1], '0.50'), (lines[3], '0.20')):
    assert line.count(f'e = {exponent}') == 3 and 'e > 0.37' in line
  assert figure.stat().st_size > 10_000


def test_plateau_readings_labels_runs_of_the_same_name_apart():
  from experiments.tools import plateau_readings as tool  # pylint: disable=g-import-not-at-top
  assert tool.run_labels(('a/runs/baseline', 'a/runs/lr_2e-4/')) == ['baseline', 'lr_2e-4']
  assert tool.run_labels(('r/cpu/s/runs/lr_1e-4', 'r/cpu_next/s/runs/lr_1e-4')) == [
      'cpu/s/runs/lr_1e-4', 'cpu_next/s/runs/lr_1e-4']
