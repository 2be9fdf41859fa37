"""The benchmark command: a couple of steps of the test config, one JSON line with the figures."""

import json
import os
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
