"""`python -m dcgan_jax.generate`: images of the EMA generator that the FID tool reads."""

import os
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest
from PIL import Image

from dcgan_jax import generate
from dcgan_jax.data import images as image_utils
from dcgan_jax.evaluation import image_sets
from dcgan_jax.models import networks
from dcgan_jax.training import gan_step
from dcgan_jax.training import train
from tests import support

ROOT = support.ROOT


def test_generate_writes_the_ema_generators_images_as_npz_and_pngs(config, tmp_path):
  config.num_train_steps = 2
  config.ema_decay = 0.5
  workdir = str(tmp_path / 'run')
  g_state, _ = train.train_and_evaluate(config, workdir)

  npz = str(tmp_path / 'out' / 'samples.npz')
  assert generate.generate_to(config, workdir, 10, npz, seed=3, batch_size=4) == 2
  batches, count = image_sets.open_images(npz)
  images = np.concatenate(list(batches))
  assert count == 10 and images.shape == (10, 28, 28, 1) and images.dtype == np.uint8

  # Independent reference: the returned state's EMA params on the same z, in one batch.
  assert not np.array_equal(jax.tree.leaves(g_state.ema_params)[0],
                            jax.tree.leaves(g_state.params)[0])
  z = generate.latents(config, 3, 0, 10)
  expected = image_utils.to_uint8(networks.jit_generate(g_state.apply_fn)(
      gan_step.generator_variables(g_state), z))
  assert np.abs(images.astype(int) - expected).max() <= 1

  # The same seed gives the same images; another seed others.
  again = str(tmp_path / 'again.npz')
  generate.generate_to(config, workdir, 10, again, seed=3, batch_size=4)
  np.testing.assert_array_equal(np.load(again)['images'], images)
  generate.generate_to(config, workdir, 10, again, seed=4, batch_size=4)
  assert not np.array_equal(np.load(again)['images'], images)

  # Numbered PNGs: the same images, read back by the FID tool's folder reader.
  pngs = str(tmp_path / 'pngs')
  generate.generate_to(config, workdir, 10, pngs, seed=3, batch_size=4)
  assert sorted(os.listdir(pngs)) == [f'{i:06d}.png' for i in range(10)]
  batches, count = image_sets.open_images(pngs)
  assert count == 10
  np.testing.assert_array_equal(np.concatenate(list(batches)), images)
  assert Image.open(os.path.join(pngs, '000000.png')).mode == 'L'


def test_latents_do_not_depend_on_the_batching():
  config = ml_collections.ConfigDict({'model': {'latent_dim': 5, 'latent_dist': 'normal'}})
  whole = generate.latents(config, 7, 0, 2_500)
  np.testing.assert_array_equal(generate.latents(config, 7, 990, 20), whole[990:1010])
  np.testing.assert_array_equal(generate.latents(config, 7, 0, 10), whole[:10])
  assert not np.array_equal(generate.latents(config, 8, 0, 10), whole[:10])


def test_replica_selects_a_slice_of_stacked_variables():
  config = ml_collections.ConfigDict({'num_seeds': 3})
  stacked = {'params': {'w': np.arange(6).reshape(3, 2)}}
  np.testing.assert_array_equal(generate.select_replica(stacked, config, 2)['params']['w'], [4, 5])
  with pytest.raises(generate.GenerateError, match='num_seeds = 3'):
    generate.select_replica(stacked, config, 3)
  single = ml_collections.ConfigDict({'num_seeds': 1})
  assert generate.select_replica(stacked, single, 0) is stacked
  with pytest.raises(generate.GenerateError):
    generate.select_replica(stacked, single, 1)


@pytest.mark.parametrize('flags, fragment', [
    (['--num=0'], '--num=0'),
    (['--out={tmp}/images.png'], 'not a .png file'),
    ([], 'No latest checkpoint'),
])
def test_bad_flags_are_one_line_errors(flags, fragment, tmp_path):
  flags = [f.format(tmp=tmp_path) for f in flags]
  result = subprocess.run(
      [sys.executable, '-m', 'dcgan_jax.generate', '--config=configs/test.py',
       f'--workdir={tmp_path}', f'--out={tmp_path}/out.npz', '--num=4', *flags],
      cwd=ROOT, env=dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=1'),
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 2, result.stderr[-2000:]
  errors = [line for line in result.stderr.splitlines() if line.startswith('Error:')]
  assert len(errors) == 1 and fragment in errors[0], result.stderr[-2000:]
  assert 'Traceback' not in result.stderr


def test_sampling_a_folder_run_needs_its_channels_not_its_images(tmp_path):
  from configs import folder as folder_config  # pylint: disable=g-import-not-at-top
  config = folder_config.get_config()
  config.data_dir = str(tmp_path / 'gone')
  with pytest.raises(generate.GenerateError, match='--config.num_channels'):
    generate._validate(config)  # pylint: disable=protected-access
  config.num_channels = 3
  generate._validate(config)  # pylint: disable=protected-access
  assert config.data_dir == str(tmp_path / 'gone')  # Checked on a copy.
