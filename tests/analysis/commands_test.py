"""Tests of the analysis commands, with tiny models standing in for a checkpoint."""

import json
import os

import ml_collections
import numpy as np
import pytest

from tests.support.tiny_models import IMAGE_SIZE
from tests.support.tiny_models import LATENT_DIM
from tests.support.tiny_models import write_clu_run
from dcgan_jax.analysis import commands
from dcgan_jax.analysis import latent


@pytest.fixture
def config():
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.dataset = 'offline_mnist'
  config.data_dir = None
  config.image_size = IMAGE_SIZE
  config.model = ml_collections.ConfigDict({'latent_dim': LATENT_DIM, 'latent_dist': 'normal'})
  return config


@pytest.fixture
def restored(monkeypatch, tiny_generator, tiny_discriminator):
  """Makes `restore_models` return the tiny models instead of reading a checkpoint."""
  calls = []

  def fake_restore(config, workdir, which='latest'):
    calls.append(which)
    return (*tiny_generator, *tiny_discriminator, 7)

  monkeypatch.setattr(commands, 'restore_models', fake_restore)
  return calls


def test_sheet_then_arithmetic_uses_the_sheet_latents(config, restored, generate_fn, tmp_path):
  outdir = str(tmp_path)
  with pytest.raises(FileNotFoundError, match='--what=sheet'):
    commands.arithmetic(config, 'run', outdir, [0], [1], [2])
  sheet = commands.sheet(config, 'run', outdir, num_samples=9)
  z = latent.load_latents(sheet.replace('.png', '.npz'))
  assert z.shape == (9, LATENT_DIM)
  path = commands.arithmetic(config, 'run', outdir, [0, 1], [2], [3, 4], which='best')
  assert os.path.exists(path) and restored == ['latest', 'best']
  saved = np.load(path.replace('.png', '.npz'))
  np.testing.assert_allclose(saved['result_z'],
                             z[[0, 1]].mean(0) - z[2] + z[[3, 4]].mean(0), rtol=1e-6)


def test_interpolate_writes_both_methods(config, restored, tmp_path):
  paths = commands.interpolate(config, 'run', str(tmp_path), num_rows=2, num_steps=3,
                               method='both')
  assert set(paths) == {'slerp', 'lerp'} and all(os.path.exists(p) for p in paths.values())


def test_probe_and_cluster_write_json(config, restored, tmp_path):
  pytest.importorskip('dcgan_jax.data.input_pipeline')
  summary = commands.probe(config, 'run', str(tmp_path), num_train=300, num_test=100)
  on_disk = json.load(open(tmp_path / 'probe.json'))
  assert on_disk['step'] == 7 and on_disk['dataset'] == 'offline_mnist'
  # Pixels of real digits carry the class: far above the 0.1 of chance.
  assert on_disk['pixels']['accuracy'] > 0.5
  assert summary['discriminator']['num_features'] == 4 + 6
  assert os.path.exists(tmp_path / 'probe_confusion.png')
  result = commands.cluster(config, 'run', str(tmp_path), num_samples=200, num_components=5)
  assert -1 <= result['silhouette'] <= 1 and result['compactness'] > 0
  assert json.load(open(tmp_path / 'clusters.json'))['num_examples'] == 200


def test_report_and_plots_without_a_checkpoint(tmp_path):
  write_clu_run(tmp_path / 'a', {1: {'fid': 50.0, 'd_loss': 1.0}})
  write_clu_run(tmp_path / 'b', {1: {'fid': 40.0, 'd_loss': 2.0}})
  paths = commands.plot(str(tmp_path / 'a'), str(tmp_path / 'out'), runs=[str(tmp_path / 'b')])
  assert {'losses', 'quality', 'comparison', 'table'} <= set(paths)
  assert '| b | 40 (1) / 40 |' in open(paths['table']).read()
  report = commands.report(None, str(tmp_path / 'a'))
  assert '| fid | 50 (step 1) | 50 | 1 |' in open(report).read()
