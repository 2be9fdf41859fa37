"""Tests of the per-run report."""

import os
import re

import ml_collections
import numpy as np

from tests.support.tiny_models import LATENT_DIM
from tests.support.tiny_models import write_clu_run
from dcgan_jax.data import images as images_lib
from dcgan_jax.analysis import report


def _config():
  config = ml_collections.ConfigDict()
  config.seed = 3
  config.dataset = 'offline_mnist'
  config.model = ml_collections.ConfigDict({'latent_dim': LATENT_DIM, 'latent_dist': 'normal'})
  return config


def test_latest_sample_grid_goes_by_step(tmp_path):
  assert report.latest_sample_grid(str(tmp_path)) is None
  for step in (900, 10000, 2000):  # 10000 sorts before 2000 as a string.
    images_lib.save_image(np.zeros((4, 4, 3), np.uint8), str(tmp_path / 'samples' /
                                                              f'step_{step}.png'))
  assert report.latest_sample_grid(str(tmp_path)).endswith('step_10000.png')
  # With replicas: the grid with a row of every seed, not one seed's written later.
  images_lib.save_image(np.zeros((4, 4, 3), np.uint8),
                        str(tmp_path / 'samples' / 'replica_2' / 'step_10000.png'))
  assert report.latest_sample_grid(str(tmp_path)) == str(tmp_path / 'samples' / 'step_10000.png')


def test_write_report_has_metrics_and_working_image_links(tmp_path, generate_fn):
  write_clu_run(tmp_path, {100: {'d_loss': 1.25, 'g_loss': 0.75, 'fid': 80.5},
                           200: {'d_loss': 1.0, 'g_loss': 1.5, 'fid': 90.25}})
  images_lib.save_image(np.full((6, 6, 3), 100, np.uint8),
                        str(tmp_path / 'samples' / 'step_0000200.png'))
  path = report.write_report(str(tmp_path), _config(), generate_fn, metrics={'kid_final': 0.0125},
                             num_rows=2, num_steps=4)
  assert path == str(tmp_path / 'report' / 'report.md')
  text = open(path).read()
  assert '| fid | 90.25 (step 200) | 80.5 | 100 |' in text
  assert '| d_loss | 1 (step 200) |' in text
  assert '| kid_final | 0.0125 |' in text
  assert 'latent_dim: 8' in text  # The config is shown.
  links = re.findall(r'!\[[^\]]*\]\(([^)]+)\)', text)
  names = {os.path.basename(link) for link in links}
  assert {'step_0000200.png', 'losses.png', 'quality.png', 'interpolation_slerp.png'} <= names
  for link in links:
    assert os.path.exists(os.path.join(tmp_path, 'report', link)), link
  html = open(tmp_path / 'report' / 'report.html').read()
  assert '<img src="../samples/step_0000200.png"' in html and '90.25' in html


def test_write_report_without_generator_or_logs(tmp_path):
  path = report.write_report(str(tmp_path), write_html=False)
  text = open(path).read()
  assert 'No scalars logged yet.' in text and '![' not in text
  assert not os.path.exists(tmp_path / 'report' / 'report.html')
