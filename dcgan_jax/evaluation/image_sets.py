"""Image sets for the command-line tools: folders of images and .npz files.

A path is one of
* a folder: every .png/.jpg/.jpeg/.bmp/.gif/.tif/.tiff/.webp/.ppm/.pgm file
  below it (recursively, in sorted order), read with PIL; gray images stay
  1-channel (the extractors repeat or average channels), everything else is
  converted to RGB. Files PIL cannot read (not images, truncated, empty) are
  skipped, counted and named in one warning line, as `dataset='folder'` does
  (see `data/image_files.py`); a folder with no usable image is an error;
* an .npz with key `images`: uint8 [N, H, W, C] (or [N, H, W] gray);
* an .npz of statistics with keys `mu` and `sigma` (pytorch-fid's format, or
  ours with `kid_features` too), finite, of shapes [d] and [d, d].

`check` tells which, reading every image of a folder once and only the array
headers of an image .npz, so that the commands refuse a bad path in seconds,
before they load the Inception weights; `batches` then reads the images.
.npz files are opened with allow_pickle=False: they hold arrays, never code.
"""

import concurrent.futures
import dataclasses
import logging
import os
import zipfile
from typing import Optional

import numpy as np
from PIL import Image

from dcgan_jax import errors
from dcgan_jax.data import image_files

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.tif', '.tiff', '.webp',
                    '.ppm', '.pgm')
# The kinds of image set `check` tells apart.
FOLDER, IMAGES, STATS = 'folder', 'images', 'stats'
# Files read per round of the thread pool while a folder is checked.
SCAN_CHUNK = 256


class ImageSetError(errors.UserError, ValueError):
  """A path that is not a usable image set (exit code 2)."""


@dataclasses.dataclass(frozen=True)
class ImageSet:
  """An input path that `check` found usable."""
  path: str
  kind: str  # FOLDER, IMAGES (an .npz of `images`) or STATS (an .npz of mu/sigma).
  count: int  # Usable images (FOLDER: at most the `limit` of `check`); STATS: -1.
  files: tuple = ()  # FOLDER: the readable image files, sorted.
  kid_samples: int = 0  # STATS: rows of `kid_features` (0: none, so no KID).


def list_images(folder):
  files = []
  for root, _, names in os.walk(folder):
    files.extend(os.path.join(root, n) for n in names
                 if n.lower().endswith(IMAGE_EXTENSIONS))
  return sorted(files)


def _read_image(path):
  with Image.open(path) as im:
    if im.mode in ('L', '1', 'I;16', 'I', 'F'):
      arr = np.asarray(im.convert('L'))[..., None]
    else:
      arr = np.asarray(im.convert('RGB'))
  return arr


def _read_error(path):
  """None if PIL reads the image at `path`, else why not (one short line)."""
  try:
    _read_image(path)
    return None
  except Exception as e:  # pylint: disable=broad-except
    # PIL raises OSError, SyntaxError, ValueError, EOFError, zlib and struct errors
    # for damaged files: all mean "skip this file".
    return image_files.read_error(e, path)


def check_folder(path, limit=None):
  """The readable images of a folder (the first `limit` if given), bad files skipped.

  Raises:
    ImageSetError: when the folder holds no image file, or no readable one.
  """
  files = list_images(path)
  if not files:
    raise ImageSetError(f'{path} is a folder with no images '
                        f'({", ".join(IMAGE_EXTENSIONS)}).')
  good, skipped, scanned = [], [], 0
  with concurrent.futures.ThreadPoolExecutor(image_files.num_threads()) as pool:
    while scanned < len(files) and (limit is None or len(good) < limit):
      chunk = files[scanned:scanned + SCAN_CHUNK]
      for file, error in zip(chunk, pool.map(_read_error, chunk)):
        if error is None:
          good.append(file)
        else:
          skipped.append((os.path.relpath(file, path), error.split(':')[0]))
      scanned += len(chunk)
  names = image_files.named(skipped, len(skipped))
  if not good:
    raise ImageSetError(f'No usable image in the folder {path}: all {scanned} image files '
                        f'are unreadable, truncated or empty ({names}).')
  if skipped:
    logging.warning('Skipped %d of %d image files under %s that are unreadable, truncated '
                    'or empty: %s', len(skipped), scanned, path, names)
  good = good[:limit]
  return ImageSet(path, FOLDER, len(good), tuple(good))


def _open_npz(path):
  """np.load(path) without pickles; ImageSetError unless it is an .npz archive."""
  not_npz = f'{path} is not a NumPy .npz of images or statistics'
  try:
    npz = np.load(path, allow_pickle=False)
  except ValueError as e:  # Neither a zip nor an .npy file: numpy took it for a pickle.
    raise ImageSetError(f'{not_npz}: it is not a zip archive of .npy arrays (what '
                        'np.savez writes).') from e
  except (OSError, EOFError, zipfile.BadZipFile) as e:
    raise ImageSetError(f'{not_npz}: cannot read it ({errors.one_line(e)[:120]}).') from e
  if not isinstance(npz, np.lib.npyio.NpzFile):
    raise ImageSetError(f'{not_npz}: it holds a single .npy array; save it with '
                        'np.savez(path, images=...).')
  return npz


def _array_header(npz, key):
  """(shape, dtype) of npz[key], from its .npy header when numpy has a reader for it."""
  readers = {(1, 0): np.lib.format.read_array_header_1_0,
             (2, 0): np.lib.format.read_array_header_2_0}
  with npz.zip.open(f'{key}.npy') as f:
    reader = readers.get(np.lib.format.read_magic(f))
    if reader:
      shape, _, dtype = reader(f)
      return shape, dtype
  array = npz[key]
  return array.shape, array.dtype


def _check_images_npz(path, npz):
  if 'images' not in npz.files:
    raise ImageSetError(f'{path} has no `images` array (keys: {npz.files}); want '
                        'uint8 [N, H, W, C] images or mu/sigma statistics.')
  shape, dtype = _array_header(npz, 'images')
  if len(shape) == 3:
    shape = (*shape, 1)
  if len(shape) != 4 or shape[-1] not in (1, 3):
    raise ImageSetError(f'{path}: `images` has shape {shape}; want [N, H, W, 1 or 3].')
  if dtype != np.uint8:
    raise ImageSetError(f'{path}: `images` has dtype {dtype}; want uint8.')
  if not shape[0]:
    raise ImageSetError(f'{path}: `images` holds no image.')
  return ImageSet(path, IMAGES, shape[0])


def _check_stats_npz(path, npz):
  mu, sigma = npz['mu'], npz['sigma']
  for name, value in (('mu', mu), ('sigma', sigma)):
    if not np.issubdtype(value.dtype, np.number):
      raise ImageSetError(f'{path}: `{name}` has dtype {value.dtype}; want numbers.')
  if mu.ndim != 1 or sigma.shape != (*mu.shape, *mu.shape):
    raise ImageSetError(f'{path}: `mu` has shape {mu.shape} and `sigma` {sigma.shape}; want '
                        '[d] and [d, d].')
  for name, value in (('mu', mu), ('sigma', sigma)):
    bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
    if bad:
      raise ImageSetError(f'{path}: `{name}` has {bad} NaN or infinite values, so these '
                          'statistics are unusable; recompute them (fid --save_stats).')
  kid_samples = (_array_header(npz, 'kid_features')[0][0]
                 if 'kid_features' in npz.files else 0)
  return ImageSet(path, STATS, -1, kid_samples=kid_samples)


def check(path, allow_stats=True, limit=None) -> ImageSet:
  """Checks that `path` is a usable image set (see the module docstring).

  Args:
    path: a folder of images or an .npz of `images` or statistics.
    allow_stats: whether a statistics .npz is accepted.
    limit: a folder's files are read only until this many usable ones are found.

  Raises:
    ImageSetError: naming the path and what is wrong with it.
  """
  if os.path.isdir(path):
    return check_folder(path, limit)
  if not os.path.exists(path):
    raise ImageSetError(f'{path} does not exist; want a folder of images or an .npz file.')
  if not path.endswith('.npz'):
    raise ImageSetError(f'{path} is neither a folder of images nor an .npz file.')
  with _open_npz(path) as npz:
    try:
      if 'mu' in npz.files and 'sigma' in npz.files:
        if not allow_stats:
          raise ImageSetError(f'{path} holds statistics; this needs images.')
        return _check_stats_npz(path, npz)
      return _check_images_npz(path, npz)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
      if isinstance(e, ImageSetError):
        raise
      raise ImageSetError(f'{path} is not a readable .npz file: {errors.one_line(e)}') from e


def folder_batches(files, batch_size):
  """Yields uint8 NHWC batches of consecutive same-shape images."""
  batch = []
  for path in files:
    try:
      image = _read_image(path)
    except Exception as e:  # pylint: disable=broad-except  (readable when checked)
      raise ImageSetError(f'{path} became unreadable while in use: '
                          f'{image_files.read_error(e, path)}') from e
    if batch and (len(batch) == batch_size or image.shape != batch[0].shape):
      yield np.stack(batch)
      batch = []
    batch.append(image)
  if batch:
    yield np.stack(batch)


def _npz_batches(path, batch_size):
  try:
    with np.load(path, allow_pickle=False) as f:
      images = f['images']
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    raise ImageSetError(f'{path} is not a readable .npz file: {errors.one_line(e)}') from e
  if images.ndim == 3:
    images = images[..., None]
  for i in range(0, len(images), batch_size):
    yield images[i:i + batch_size]


def batches(image_set: ImageSet, batch_size=500):
  """The images of a checked FOLDER or IMAGES set, as uint8 NHWC batches."""
  if image_set.kind == FOLDER:
    return folder_batches(image_set.files, batch_size)
  if image_set.kind == IMAGES:
    return _npz_batches(image_set.path, batch_size)
  raise ImageSetError(f'{image_set.path} holds statistics; this needs images.')


def open_images(path, batch_size=500, limit: Optional[int] = None):
  """Opens an image set.

  Returns:
    (batches, count): an iterable of uint8 NHWC batches and the image count.

  Raises:
    ImageSetError: for a missing path, a folder with no readable image, a
      statistics file or a bad .npz.
  """
  image_set = check(path, allow_stats=False, limit=limit)
  return batches(image_set, batch_size), image_set.count
