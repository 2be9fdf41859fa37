"""The benchmark command: a couple of steps of the test config, one JSON line with the figures."""

import json
import os
import statistics
import subprocess
import sys
from tests import support

ROOT = support.ROOT


def _run_benchmark(*flags):
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=1')
  result = subprocess.run(
      [sys.executable, '-m', 'dcgan_jax.benchmark', '--config=configs/test.py', *flags],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def test_train_mode_prints_one_json_line():
  result = _run_benchmark('--steps=2', '--repeats=2', '--warmup=0')
  assert result['mode'] == 'train'
  assert result['arch'] == 'dcgan' and result['image_size'] == 28 and result['batch_size'] == 8
  assert result['min'] <= result['images_per_sec'] <= result['max']
  assert result['images_per_sec'] > 0 and result['compile_s'] > 0
  # step_ms is the same figure as images/s, in the other unit.
  assert abs(result['step_ms'] - 1e3 * 8 / result['images_per_sec']) < 0.01
  assert result['local_device_count'] == 1 and result['steps'] == 2 and result['repeats'] == 2


def test_loop_mode_times_the_loop_against_the_bare_step():
  result = _run_benchmark('--mode=loop', '--steps=4', '--repeats=1', '--warmup=1')
  assert result['mode'] == 'loop' and result['loop_steps_timed'] == 4
  before, after = result['bare_images_per_sec_before_after']
  assert result['images_per_sec'] == round((before + after) / 2, 2)
  assert result['loop_images_per_sec'] > 0
  assert abs(result['host_overhead_share'] -
             (1 - result['loop_images_per_sec'] / result['images_per_sec'])) < 2e-3


def test_timeline_mode_reports_where_a_run_spends_its_time():
  result = _run_benchmark('--mode=timeline', '--config.eval_num_samples=16',
                          '--config.eval_every_steps=3', '--config.eval_feature_extractor=digits')
  assert result['mode'] == 'timeline' and result['num_train_steps'] == 6
  assert list(result['eval_calls_s']) == ['3', '6']  # configs/test.py: 6 steps, one a call.
  parts = (result['to_first_call_s'] + result['second_call_s'] + result['after_last_call_s'] +
           sum(result['eval_calls_s'].values()))
  assert 0 < parts <= result['total_s']


def test_time_to_quality_mode_reports_both_curves(tmp_path):
  import pytest  # pylint: disable=g-import-not-at-top
  pytest.importorskip('torch')
  png = tmp_path / 'curves.png'
  result = _run_benchmark('--mode=time_to_quality', '--config.num_train_steps=4',
                          '--config.eval_every_steps=2', '--config.eval_num_samples=32',
                          '--config.batch_size=8', '--config.eval_feature_extractor=digits',
                          '--runs=2', f'--curve_png={png}')
  names = ('dcgan_jax', 'pytorch')
  for name in names:
    assert [[point[1] for point in curve] for curve in result[f'{name}_curves']] == [[2, 4]] * 2
  # The default target is the best FID every run reaches, so every run has a time for it.
  assert result['target_fid'] == round(max(min(p[2] for p in curve) for n in names
                                           for curve in result[f'{n}_curves']), 3)
  assert all(s > 0 for s in result['jax_seconds_runs'] + result['torch_seconds_runs'])
  assert result['jax_seconds'] == statistics.median(result['jax_seconds_runs'])
  assert result['speedup'] == round(result['torch_seconds'] / result['jax_seconds'], 3)
  assert png.exists()
