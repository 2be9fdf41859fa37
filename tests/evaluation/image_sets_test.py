"""Bad inputs of `python -m dcgan_jax.evaluation.fid`: one-line errors, bad files skipped."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from dcgan_jax import errors
from dcgan_jax.evaluation import image_sets
from tests import support


def _png(path, seed):
  image = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
  Image.fromarray(image).save(path)


def _not_an_image(path):
  with open(path, 'w') as f:
    f.write('this is text, not a PNG')


def _truncated_png(path):
  _png(path, 7)
  with open(path, 'rb') as f:
    data = f.read()
  with open(path, 'wb') as f:
    f.write(data[:len(data) // 2])


def _folder(path, good=0, bad=()):
  """A folder of `good` PNGs and the `bad` (name, writer) files."""
  os.makedirs(path)
  for i in range(good):
    _png(os.path.join(path, f'good_{i}.png'), i)
  for name, write in bad:
    write(os.path.join(path, name))
  return str(path)


def _stats(path, mu, sigma):
  np.savez(path, mu=np.asarray(mu, np.float64), sigma=np.asarray(sigma, np.float64))
  return str(path)


def _text_npz(path):
  with open(path, 'w') as f:
    f.write('mu,sigma\n1,2\n')
  return str(path)


_BAD_FILES = (('not_an_image.png', _not_an_image), ('truncated.png', _truncated_png))

# (case, make the two paths in tmp, words of the one `Error:` line). Each error
# must come before the Inception weights load: the commands run with an empty
# --cache_dir, where loading them would fail with another message.
CASES = [
    ('folder_of_bad_pngs', lambda t: (_folder(t / 'bad', bad=_BAD_FILES), _folder(t / 'ok', 2)),
     ['No usable image', 'bad', 'not_an_image.png', 'truncated.png']),
    ('text_file_named_npz', lambda t: (_text_npz(t / 'text.npz'), _folder(t / 'ok', 2)),
     ['text.npz', 'not a NumPy .npz of images or statistics']),
    ('nan_mu', lambda t: (_stats(t / 'nan.npz', [0.0, np.nan], np.eye(2)), _folder(t / 'ok', 2)),
     ['nan.npz', '`mu`', 'NaN or infinite']),
    ('infinite_sigma', lambda t: (_folder(t / 'ok', 2),
                                  _stats(t / 'inf.npz', [0.0, 0.0], [[np.inf, 0], [0, 1]])),
     ['inf.npz', '`sigma`', 'NaN or infinite']),
    ('missing_first_path', lambda t: (str(t / 'typo'), _folder(t / 'ok', 2)),
     ['typo', 'does not exist']),
    ('missing_second_path', lambda t: (_folder(t / 'ok', 2), str(t / 'typo.npz')),
     ['typo.npz', 'does not exist']),
]


def _fid(*args):
  return subprocess.run(
      [sys.executable, '-m', 'dcgan_jax.evaluation.fid', *args, '--no_progress'],
      cwd=support.ROOT, capture_output=True, text=True, timeout=600,
      env=dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=1'))


@pytest.mark.parametrize('make_paths, words', [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_inputs_are_one_line_errors_before_the_weights_load(make_paths, words, tmp_path):
  a, b = make_paths(tmp_path)
  empty_cache = str(tmp_path / 'no_weights_here')
  result = _fid(a, b, '--cache_dir', empty_cache)
  assert result.returncode == 2, result.stderr[-2000:]
  lines = [line for line in result.stderr.splitlines() if line.startswith('Error: ')]
  assert len(lines) == 1, result.stderr[-2000:]
  assert all(w in lines[0] for w in words), lines[0]
  assert 'Traceback' not in result.stderr and 'allow_pickle' not in result.stderr


def test_bad_files_are_skipped_counted_and_named_in_one_warning(stats_cache, tmp_path):
  # The digits extractor: the skipping is the same for every extractor, and a
  # 2048-d Inception FID costs this 2-core CPU a minute (scipy's sqrtm).
  cache = stats_cache
  mixed = _folder(tmp_path / 'mixed', 2, _BAD_FILES[:1])
  result = _fid(mixed, _folder(tmp_path / 'ok', 2), '--extractor', 'digits',
                '--cache_dir', cache)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.splitlines()[-1].startswith('FID: ')
  warnings = [line for line in result.stderr.splitlines() if 'Skipped' in line]
  assert len(warnings) == 1, result.stderr[-2000:]
  assert 'Skipped 1 of 3 image files' in warnings[0] and 'not_an_image.png' in warnings[0]
  assert 'Error: ' not in result.stderr and 'Traceback' not in result.stderr


def test_check_names_many_bad_files_and_counts_the_rest(tmp_path):
  bad = [(f'bad_{i}.png', _not_an_image) for i in range(8)]
  folder = _folder(tmp_path / 'bad', bad=bad)
  with pytest.raises(image_sets.ImageSetError) as e:
    image_sets.check(folder)
  assert isinstance(e.value, errors.UserError) and isinstance(e.value, ValueError)
  assert e.value.exit_code == 2 and 'all 8 image files' in str(e.value)
  assert 'bad_0.png' in str(e.value) and 'and 3 more' in str(e.value)


def test_check_reads_a_folder_only_up_to_the_limit(tmp_path):
  folder = _folder(tmp_path / 'mixed', 3, _BAD_FILES)
  checked = image_sets.check(folder, limit=2)
  assert checked.kind == image_sets.FOLDER and checked.count == 2
  assert [os.path.basename(f) for f in checked.files] == ['good_0.png', 'good_1.png']
  assert image_sets.check(folder).count == 3
  batches, count = image_sets.open_images(folder)
  assert count == 3 and sum(len(b) for b in batches) == 3
