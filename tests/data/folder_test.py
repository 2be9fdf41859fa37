"""dataset='folder': decoding against PIL by hand, bad files, the cache, order and resume."""

import logging
import os

import jax
import numpy as np
import pytest
from PIL import Image

from dcgan_jax import config_validation
from dcgan_jax import errors
from dcgan_jax.data import folder
from dcgan_jax.data import image_files
from dcgan_jax.data import input_pipeline
from dcgan_jax.evaluation import image_sets
from dcgan_jax.training import train

SIZE = 28  # configs/test.py's image_size.
BAD_FILES = ('truncated.jpg', 'empty.png', 'notes.png')


def smooth_image(width, height, channels, seed):
  """A smooth random image (noise would make every resize look alike)."""
  rng = np.random.RandomState(seed)
  y, x = np.mgrid[0:height, 0:width] / max(width, height)
  planes = [127 + 120 * np.sin(rng.uniform(2, 9) * x + rng.uniform(2, 9) * y + rng.uniform(0, 6))
            for _ in range(channels)]
  return np.clip(np.stack(planes, -1), 0, 255).astype(np.uint8)


def write_good_images(root):
  """Mixed sizes, formats and modes; returns their paths relative to `root`."""
  os.makedirs(os.path.join(root, 'sub', 'deeper'), exist_ok=True)
  rgba = smooth_image(33, 33, 4, 2)
  rgba[:10, :, 3] = 0  # Fully transparent rows: white after compositing.
  images = {
      'rgb_40x30.png': Image.fromarray(smooth_image(40, 30, 3, 0)),
      'gray_50x70.jpg': Image.fromarray(smooth_image(50, 70, 1, 1)[..., 0], 'L'),
      'rgba_33x33.png': Image.fromarray(rgba, 'RGBA'),
      'palette_60x45.gif': Image.fromarray(smooth_image(60, 45, 3, 3)).convert(
          'P', palette=Image.ADAPTIVE),
      'sub/deeper/rgb_81x60.bmp': Image.fromarray(smooth_image(81, 60, 3, 4)),
      'sub/photo_64x64.webp': Image.fromarray(smooth_image(64, 64, 3, 5)),
      'sub/small_20x26.tiff': Image.fromarray(smooth_image(20, 26, 3, 6)),
      'big_300x200.jpg': Image.fromarray(smooth_image(300, 200, 3, 7)),
  }
  for name, image in images.items():
    image.save(os.path.join(root, name), **({'lossless': True} if name.endswith('webp') else {}))
  return sorted(images)


def write_bad_files(root):
  jpeg = os.path.join(root, 'truncated.jpg')
  Image.fromarray(smooth_image(64, 64, 3, 8)).save(jpeg, quality=95)
  with open(jpeg, 'rb') as f:
    data = f.read()
  with open(jpeg, 'wb') as f:
    f.write(data[:len(data) // 2])
  open(os.path.join(root, 'empty.png'), 'wb').close()
  with open(os.path.join(root, 'notes.png'), 'w') as f:
    f.write('not an image\n')


@pytest.fixture(autouse=True)
def cache_in_the_data_folder(monkeypatch):
  monkeypatch.delenv(folder.CACHE_ENV, raising=False)


@pytest.fixture
def image_folder(tmp_path):
  root = str(tmp_path / 'images')
  os.makedirs(root)
  write_good_images(root)
  write_bad_files(root)
  with open(os.path.join(root, 'readme.txt'), 'w') as f:
    f.write('not an image file name: ignored\n')
  return root


@pytest.fixture
def folder_config(config, image_folder):
  config.dataset = 'folder'
  config.data_dir = image_folder
  return config


def by_hand(path, size, channels):
  """PIL by hand: composite over white, convert, crop the central square, bicubic resize."""
  with Image.open(path) as image:
    image.load()
    if image.mode in ('RGBA', 'LA', 'PA') or 'transparency' in image.info:
      white = Image.new('RGBA', image.size, (255, 255, 255, 255))
      image = Image.alpha_composite(white, image.convert('RGBA'))
    image = image.convert('L' if channels == 1 else 'RGB')
  width, height = image.size
  side = min(width, height)
  box = ((width - side) // 2, (height - side) // 2)
  image = image.crop((*box, box[0] + side, box[1] + side)).resize((size, size), Image.BICUBIC)
  return np.asarray(image).reshape(size, size, channels)


# --- Decoding ----------------------------------------------------------------------------------


def test_decoding_is_pil_crop_and_resize_by_hand(image_folder):
  for name in write_good_images(image_folder):
    path = os.path.join(image_folder, name)
    for channels in (1, 3):
      ours = image_files.decode(path, SIZE, channels)
      assert ours.shape == (SIZE, SIZE, channels) and ours.dtype == np.uint8
      reference = by_hand(path, SIZE, channels).astype(int)
      if name.startswith('big'):  # Decoded at 1/2 scale by the JPEG decoder: close, not equal.
        assert np.abs(ours - reference).mean() < 2.0, name
      else:
        np.testing.assert_array_equal(ours, reference, err_msg=name)


def test_only_the_central_square_is_kept_and_transparency_is_white(tmp_path):
  wide = np.zeros((30, 60, 3), np.uint8)
  wide[:, :15] = (255, 0, 0)
  wide[:, 15:45] = (0, 200, 0)
  wide[:, 45:] = (0, 0, 255)
  Image.fromarray(wide).save(tmp_path / 'wide.png')
  tall = np.full((90, 30), 10, np.uint8)
  tall[30:60] = 77
  Image.fromarray(tall, 'L').save(tmp_path / 'tall.png')
  Image.new('RGBA', (40, 40), (12, 34, 56, 0)).save(tmp_path / 'clear.png')
  assert np.all(image_files.decode(str(tmp_path / 'wide.png'), 16, 3) == (0, 200, 0))
  assert np.all(image_files.decode(str(tmp_path / 'tall.png'), 16, 1) == 77)
  assert np.all(image_files.decode(str(tmp_path / 'clear.png'), 16, 3) == 255)
  frames = [Image.new('RGB', (20, 20), colour) for colour in ((0, 0, 255), (255, 0, 0))]
  frames[0].save(tmp_path / 'animated.gif', save_all=True, append_images=frames[1:])
  assert np.all(image_files.decode(str(tmp_path / 'animated.gif'), 16, 3) == (0, 0, 255))  # Frame 0.
  # Gray from RGB is ITU-R 601 luma, as PIL computes it.
  luma = round(0.587 * 200)
  assert np.all(np.abs(image_files.decode(str(tmp_path / 'wide.png'), 16, 1).astype(int) - luma) <= 1)


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
  values = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
  Image.fromarray(values).save(tmp_path / 'deep.png')
  ours = image_files.decode(str(tmp_path / 'deep.png'), 32, 1)[..., 0].astype(int)
  assert np.abs(ours - np.round(values / 257.0)).max() <= 1


def test_channels_are_detected_or_set(tmp_path, folder_config):
  assert input_pipeline.num_channels(folder_config) == 3  # Mixed RGB and gray images.
  gray = tmp_path / 'gray'
  gray.mkdir()
  Image.fromarray(smooth_image(30, 20, 1, 0)[..., 0], 'L').save(gray / 'a.png')
  Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16), 'P').save(gray / 'b.gif')
  folder_config.data_dir = str(gray)
  assert input_pipeline.num_channels(folder_config) == 1  # A palette of grays is gray.
  folder_config.num_channels = 3
  assert input_pipeline.num_channels(folder_config) == 3
  images = folder.load_images(folder_config, 1 << 30)
  assert images.shape == (2, SIZE, SIZE, 3)
  np.testing.assert_array_equal(images[..., 0], images[..., 2])


# --- Bad files and bad folders -------------------------------------------------------------------


def test_bad_files_are_skipped_counted_and_named(folder_config, caplog):
  with caplog.at_level(logging.INFO):
    images = folder.load_images(folder_config, 1 << 30)
  assert images.shape == (8, SIZE, SIZE, 3)
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert len(warnings) == 1 and 'Skipped 3 of 11 image files' in warnings[0]
  assert all(name in warnings[0] for name in BAD_FILES)
  # The usable images, in sorted file order, decoded as by hand.
  names = write_good_images(folder_config.data_dir)
  for image, name in zip(images, names):
    if not name.startswith('big'):
      np.testing.assert_array_equal(
          image, by_hand(os.path.join(folder_config.data_dir, name), SIZE, 3), err_msg=name)


def assert_one_line_folder_error(config, *fragments):
  with pytest.raises(folder.FolderError) as e:
    folder.load_images(config, 1 << 30)
  assert isinstance(e.value, errors.UserError) and e.value.exit_code == 2
  message = str(e.value)
  assert '\n' not in message and config.data_dir in message, message
  assert all(f in message for f in fragments), message


def test_empty_all_bad_and_mostly_bad_folders_are_one_line_errors(tmp_path, config):
  config.dataset = 'folder'
  config.data_dir = str(tmp_path / 'empty')
  os.makedirs(config.data_dir)
  with open(os.path.join(config.data_dir, 'readme.txt'), 'w') as f:
    f.write('no images here')
  assert_one_line_folder_error(config, 'No image files')
  config.data_dir = str(tmp_path / 'bad')
  os.makedirs(config.data_dir)
  write_bad_files(config.data_dir)
  assert_one_line_folder_error(config, 'No usable image', *BAD_FILES)
  Image.fromarray(smooth_image(30, 30, 3, 0)).save(os.path.join(config.data_dir, 'good.png'))
  assert_one_line_folder_error(config, '3 of 4 image files', 'more than 50%')


def test_validation_wants_an_existing_folder_and_one_or_three_channels(folder_config, tmp_path):
  config_validation.validate(folder_config, num_devices=4)
  for field, value, fragment in (('data_dir', None, 'existing folder'),
                                 ('data_dir', str(tmp_path / 'missing'), 'existing folder'),
                                 ('num_channels', 2, 'None'), ('num_channels', True, 'None'),
                                 ('dataset', 'folder/x', 'no TFDS config')):
    bad = folder_config.copy_and_resolve_references()
    with bad.ignore_type():
      bad[field] = value
    with pytest.raises(config_validation.ConfigError) as e:
      config_validation.validate(bad, num_devices=4)
    assert str(e.value).startswith(f'config.{field} =') and fragment in str(e.value)
    assert '\n' not in str(e.value)


# --- The cache -----------------------------------------------------------------------------------


def test_decoded_once_then_read_from_the_cache_until_files_change(folder_config, monkeypatch):
  first = folder.load_images(folder_config, 1 << 30)
  decode = image_files.decode
  calls = []
  monkeypatch.setattr(image_files, 'decode', lambda *a: calls.append(a[0]) or decode(*a))
  np.testing.assert_array_equal(folder.load_images(folder_config, 1 << 30), first)
  mapped = folder.load_images(folder_config, 0)  # Too large for memory: mapped, same rows.
  assert isinstance(mapped, np.memmap)
  np.testing.assert_array_equal(mapped, first)
  assert not calls  # Later runs cost no decoding.
  Image.fromarray(smooth_image(30, 30, 3, 9)).save(os.path.join(folder_config.data_dir, 'new.png'))
  assert len(folder.load_images(folder_config, 1 << 30)) == 9
  assert len(calls) == 12  # A changed folder is a new cache.
  assert os.path.isdir(os.path.join(folder_config.data_dir, folder.CACHE_SUBDIR))


def test_cache_goes_to_dcgan_jax_cache_when_set(folder_config, tmp_path, monkeypatch):
  monkeypatch.setenv(folder.CACHE_ENV, str(tmp_path / 'cache'))
  folder.load_images(folder_config, 1 << 30)
  assert any(f.endswith('.u8') for f in os.listdir(tmp_path / 'cache' / 'folder_datasets'))
  assert not os.path.exists(os.path.join(folder_config.data_dir, folder.CACHE_SUBDIR))


def test_reference_images_and_key(folder_config):
  images = folder.load_images(folder_config, 1 << 30)
  batches = list(input_pipeline.eval_images(folder_config, 4, batch_size=3))
  assert [len(b) for b in batches] == [3, 1]
  np.testing.assert_array_equal(np.concatenate(batches), images[[0, 2, 4, 6]])  # Spread evenly.
  with pytest.raises(folder.FolderError, match='eval_num_samples'):
    list(input_pipeline.eval_images(folder_config, 9))
  # Held out: as many others, spread over the images the reference leaves.
  heldout = np.concatenate(list(input_pipeline.eval_images(folder_config, 4, heldout=True)))
  np.testing.assert_array_equal(heldout, images[[1, 3, 5, 7]])
  heldout = np.concatenate(list(input_pipeline.eval_images(folder_config, 3, heldout=True)))
  np.testing.assert_array_equal(heldout, images[[1, 3, 6]])  # Reference: 0, 2, 5.
  with pytest.raises(folder.FolderError, match='fewer than twice.*eval_num_samples=4 or fewer'):
    list(input_pipeline.eval_images(folder_config, 5, heldout=True))
  key = folder.reference_key(folder_config)
  assert folder_config.data_dir in key and '28px' in key and '3ch' in key
  assert folder.reference_key(folder_config) == key
  os.remove(os.path.join(folder_config.data_dir, 'empty.png'))
  assert folder.reference_key(folder_config) != key  # Another file list: another key.


def test_real_data_scores_are_the_held_out_images_against_the_reference(folder_config,
                                                                        tmp_path):
  folder_config.eval_feature_extractor = 'digits'
  folder_config.eval_num_samples = 4
  evaluator = train.make_evaluator(folder_config)
  evaluator.cache_dir = str(tmp_path / 'cache')
  evaluator.is_splits = 2  # IS in 10 splits needs 10 images; the folder has 8.
  images = folder.load_images(folder_config, 1 << 30)
  reference = train.reference_stats(evaluator, folder_config)
  expected = evaluator.evaluate([images[[1, 3, 5, 7]]], reference)
  scores = train.real_data_scores(evaluator, folder_config, reference)
  assert scores['fid'] == pytest.approx(expected['fid']) and scores['fid'] > 0
  assert set(scores) == set(expected) - {'num_samples'}


def test_export_writes_an_npz_the_fid_tool_reads(folder_config, tmp_path):
  out = str(tmp_path / 'ref.npz')
  assert folder.main([folder_config.data_dir, out, '--image_size=28']) == 0
  batches, count = image_sets.open_images(out)
  assert count == 8
  np.testing.assert_array_equal(np.concatenate(list(batches)),
                                folder.load_images(folder_config, 1 << 30))
  assert folder.main([str(tmp_path / 'nothing'), out]) == 2


# --- Order, resume, processes and training ------------------------------------------------------


def take(ds, n):
  it = iter(ds)
  return [next(it)['image'].numpy() for _ in range(n)]


def test_order_is_a_function_of_seed_and_step(folder_config, monkeypatch):
  # 8 images, 8 a batch: every batch is one epoch, reshuffled; a start at step s is the
  # unbroken run from step s on.
  unbroken = take(input_pipeline.create_train_dataset(folder_config), 5)
  images = folder.load_images(folder_config, 1 << 30).astype(np.float32) / 127.5 - 1.0
  for batch in unbroken:
    rows = batch.reshape(-1, SIZE * SIZE * 3)
    assert sorted(map(bytes, rows)) == sorted(map(bytes, images.reshape(8, -1)))
  assert not np.array_equal(unbroken[0], unbroken[1])
  # Epochs are full permutations whatever shuffle_buffer_size says (sorted files are
  # often grouped by subfolder); with a buffer of 1 a window shuffle would keep file order.
  folder_config.shuffle_buffer_size = 1
  first = take(input_pipeline.create_train_dataset(folder_config), 1)[0].reshape(8, -1)
  assert not np.array_equal(first, images.reshape(8, -1))
  folder_config.shuffle_buffer_size = 256
  for start in (1, 3):
    resumed = take(input_pipeline.create_train_dataset(folder_config, start_step=start), 2)
    np.testing.assert_array_equal(np.stack(resumed), np.stack(unbroken[start:start + 2]))
  # A folder too large for memory is memory-mapped: the same batches.
  monkeypatch.setattr(input_pipeline, 'IN_MEMORY_LIMIT_BYTES', 0)
  np.testing.assert_array_equal(
      np.stack(take(input_pipeline.create_train_dataset(folder_config), 5)), np.stack(unbroken))


def test_each_process_takes_its_slice_of_the_global_batch(folder_config, monkeypatch):
  folder_config.batch_size = 8
  one = take(input_pipeline.create_train_dataset(folder_config), 3)
  monkeypatch.setattr(jax, 'process_count', lambda: 2)
  parts = []
  for index in (0, 1):
    monkeypatch.setattr(jax, 'process_index', lambda index=index: index)
    parts.append(take(input_pipeline.create_train_dataset(folder_config), 3))
  for step in range(3):
    # Each process: 4 images over its 4 local devices; together the one-process batch.
    joined = np.concatenate([p[step].reshape(4, SIZE, SIZE, 3) for p in parts])
    np.testing.assert_array_equal(joined, one[step].reshape(8, SIZE, SIZE, 3))


def leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_training_on_a_folder_logs_bad_files_and_resumes_bitwise(folder_config, tmp_path, caplog):
  workdir = str(tmp_path / 'run')
  folder_config.num_train_steps = 3
  with caplog.at_level(logging.WARNING):
    train.train_and_evaluate(folder_config, workdir)
  skipped = [r.getMessage() for r in caplog.records if 'Skipped 3 of 11' in r.getMessage()]
  assert skipped and all(name in skipped[0] for name in BAD_FILES)
  grid = np.asarray(Image.open(os.path.join(workdir, 'samples', 'step_0000003.png')))
  assert grid.shape == (4 * 30 + 2, 4 * 30 + 2, 3)  # 16 RGB images of 28 px.

  folder_config.num_train_steps = 6
  g_resumed, d_resumed = train.train_and_evaluate(folder_config, workdir)
  g_unbroken, d_unbroken = train.train_and_evaluate(folder_config, str(tmp_path / 'unbroken'))
  assert int(g_resumed.step) == int(g_unbroken.step) == 6
  for x, y in zip(leaves((g_resumed, d_resumed)), leaves((g_unbroken, d_unbroken))):
    np.testing.assert_array_equal(x, y)


def test_input_benchmark_reports_first_and_later_epochs(folder_config):
  from dcgan_jax import benchmark  # pylint: disable=g-import-not-at-top
  result = benchmark.benchmark_input(folder_config, steps=2, repeats=2, warmup=1)
  assert result['epoch_images'] == 8 and result['first_epoch_images_per_sec'] > 0
  assert result['later_epochs_images_per_sec'] == result['images_per_sec'] > 0
  assert not os.path.exists(os.path.join(folder_config.data_dir, folder.CACHE_SUBDIR))
  assert folder.CACHE_ENV not in os.environ
