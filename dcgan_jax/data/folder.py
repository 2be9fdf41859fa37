"""`dataset='folder'`: train on every image under `config.data_dir`, decoded once.

Every .png/.jpg/.jpeg/.bmp/.gif (first frame)/.webp/.tif/.tiff file below the
folder (recursively; hidden files and folders, such as this module's cache,
are left out), in any size and mode, is converted to `config.num_channels`
(None: 3 unless every image is grayscale), centre-cropped to a square and
resized to `config.image_size` (`image_files.decode`, which says how).

Unreadable, truncated and empty files are skipped, counted and named in the
log; a folder with no usable image, or with more than `MAX_BAD_FRACTION` of
unusable files, is a `FolderError`.

Why a uint8 cache file rather than a TFDS builder or tf.data's `cache()`: the
input pipeline's global-order path (`input_pipeline._global_order_batches`)
gathers rows by index, so what it wants is an array: read whole into memory
when it fits, memory-mapped otherwise, with no second pipeline. A raw file plus
a JSON header is that array, written once (in parallel threads: PIL releases
the GIL while it decodes and resizes), valid across runs, and readable from
numpy alone. `tf.data`'s `cache()` keeps a stream, not random access, and a
TFDS builder per folder would re-encode every image and still need decoding.

The cache lives in `$DCGAN_JAX_CACHE/folder_datasets/` when that variable is
set, else in `<data_dir>/.dcgan_jax_cache/` (or `~/.cache/dcgan_jax/folder_datasets/`
when the data folder is read-only). Its name is a hash of the folder's path,
its file list with sizes and modification times, the image size and the
channels: adding, removing or touching a file makes a new one. Every process
of a multi-process run builds it if it is missing (atomically: a temporary
file renamed when complete), so the data folder need not be shared.
"""

import concurrent.futures
import dataclasses
import hashlib
import json
import math
import os
import time
from typing import Iterator

from absl import logging
import numpy as np

from dcgan_jax import errors
from dcgan_jax.data import image_files

# A folder with more than this share of unusable image files is an error, not a data set.
MAX_BAD_FRACTION = 0.5
CACHE_ENV = 'DCGAN_JAX_CACHE'
CACHE_SUBDIR = '.dcgan_jax_cache'
CACHE_VERSION = 1  # Part of the cache key: a change in decoding gets a new cache.
# Files decoded per round of the thread pool while a cache is built.
DECODE_CHUNK = 512

_channels_memo = {}


class FolderError(errors.UserError):
  """A folder that cannot be trained on; the message names it and the fix."""


@dataclasses.dataclass(frozen=True)
class Listing:
  """The image files under a folder: paths relative to it, sizes and mtimes, sorted."""
  folder: str
  files: tuple  # ((relative_path, size, mtime_ns), ...)

  @property
  def content_hash(self) -> str:
    """A hash of the file list with sizes and modification times."""
    return hashlib.sha256(json.dumps(self.files).encode()).hexdigest()

  def path(self, relative: str) -> str:
    return os.path.join(self.folder, relative)


def list_files(folder: str) -> Listing:
  """Every image file under `folder`, recursively, hidden files and folders left out."""
  folder = os.path.abspath(os.path.expanduser(folder))
  if not os.path.isdir(folder):
    raise FolderError(f'config.data_dir = {folder!r} is not a folder; set '
                      '--config.data_dir to the folder of your images.')
  files = []
  for root, dirs, names in os.walk(folder):
    dirs[:] = [d for d in dirs if not d.startswith('.')]
    for name in names:
      if name.startswith('.') or not name.lower().endswith(image_files.IMAGE_EXTENSIONS):
        continue
      path = os.path.join(root, name)
      try:
        stat = os.stat(path)
      except OSError:  # A broken link: counted with the unreadable files.
        stat = None
      files.append((os.path.relpath(path, folder), stat.st_size if stat else -1,
                    stat.st_mtime_ns if stat else -1))
  return Listing(folder, tuple(sorted(files)))


def _data_dir(config) -> str:
  if not config.get('data_dir'):
    raise FolderError("config.dataset = 'folder' needs --config.data_dir=PATH, the folder "
                      'of your images.')
  return config.data_dir


# --- Channels and cache location -------------------------------------------------------------


def cache_dir(folder: str) -> str:
  """Where the decoded images of `folder` are cached (see the module docstring)."""
  if os.environ.get(CACHE_ENV):
    return os.path.join(os.path.abspath(os.path.expanduser(os.environ[CACHE_ENV])),
                        'folder_datasets')
  folder = os.path.abspath(folder)
  if os.access(folder, os.W_OK):
    return os.path.join(folder, CACHE_SUBDIR)
  return os.path.join(os.path.expanduser('~'), '.cache', 'dcgan_jax', 'folder_datasets')


def _detect_channels(listing: Listing) -> int:
  """1 when every readable image is grayscale, else 3 (remembered on disk and in the process)."""
  key = (listing.folder, listing.content_hash)
  if key in _channels_memo:
    return _channels_memo[key]
  name = hashlib.sha256(f'{listing.folder}\n{listing.content_hash}'.encode()).hexdigest()[:24]
  path = os.path.join(cache_dir(listing.folder), f'channels-{name}.json')
  if os.path.exists(path):
    with open(path) as f:
      channels = int(json.load(f)['channels'])
  else:
    with concurrent.futures.ThreadPoolExecutor(image_files.num_threads()) as pool:
      paths = (listing.path(f[0]) for f in listing.files)
      gray = [g for g in pool.map(image_files.is_gray_file, paths)
              if g is not None]
    channels = 1 if gray and all(gray) else 3
    _write_json_quietly(path, {'channels': channels})
  _channels_memo[key] = channels
  return channels


def num_channels(config) -> int:
  """config.num_channels, or 1 when every image under config.data_dir is gray, else 3."""
  if config.get('num_channels') is not None:
    return int(config.num_channels)
  return _detect_channels(list_files(_data_dir(config)))


def _write_json_quietly(path, value):
  try:
    _atomic_write_json(path, value)
  except OSError as e:  # A memo only: the run goes on without it.
    logging.warning('Could not write %s: %s', path, e)


def _atomic_write_json(path, value):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f'{path}.tmp-{os.getpid()}'
  with open(tmp, 'w') as f:
    json.dump(value, f)
  os.replace(tmp, path)


# --- The cache of decoded images ---------------------------------------------------------------


def _cache_paths(listing: Listing, image_size: int, channels: int):
  key = hashlib.sha256(json.dumps([CACHE_VERSION, listing.folder, listing.content_hash,
                                   image_size, channels]).encode()).hexdigest()[:24]
  directory = cache_dir(listing.folder)
  return os.path.join(directory, f'{key}.u8'), os.path.join(directory, f'{key}.json')


def _read_meta(data_path, meta_path):
  """The metadata of a complete cache, or None."""
  try:
    with open(meta_path) as f:
      meta = json.load(f)
    row_bytes = meta['image_size'] ** 2 * meta['channels']
    if os.path.getsize(data_path) == meta['num_images'] * row_bytes:
      return meta
  except (OSError, ValueError, KeyError, TypeError):
    pass
  return None


def _check_usable(listing: Listing, num_images: int, skipped):
  """Raises FolderError when too few of the folder's image files could be decoded."""
  num_files, num_bad = len(listing.files), len(skipped)
  names = image_files.named([(n, w.split(':')[0]) for n, w in skipped], num_bad)
  if num_images == 0:
    raise FolderError(f'No usable image under {listing.folder}: all {num_files} image files are '
                      f'unreadable, truncated or empty ({names}); replace them or set '
                      '--config.data_dir to another folder.')
  if num_bad > MAX_BAD_FRACTION * num_files:
    raise FolderError(f'{num_bad} of {num_files} image files under {listing.folder} are '
                      f'unreadable, truncated or empty (more than {MAX_BAD_FRACTION:.0%}: '
                      f'{names}); repair or remove them, or set --config.data_dir to another '
                      'folder.')


def _decode_all(listing: Listing, image_size: int, channels: int, out):
  """Decodes every file in order, writing the usable ones to the file `out`.

  Returns:
    (number of images written, [[relative path, error], ...] of the skipped files).
  """
  import tqdm  # pylint: disable=g-import-not-at-top
  skipped, num_images = [], 0
  decode_one = lambda path: image_files.try_decode(path, image_size, channels)  # noqa: E731
  with concurrent.futures.ThreadPoolExecutor(image_files.num_threads()) as pool, tqdm.tqdm(
      total=len(listing.files), desc='decoding', unit='img', disable=None) as progress:
    for start in range(0, len(listing.files), DECODE_CHUNK):
      files = listing.files[start:start + DECODE_CHUNK]
      images = []
      for (relative, _, _), (image, error) in zip(
          files, pool.map(decode_one, [listing.path(f[0]) for f in files])):
        if image is None:
          skipped.append([relative, error])
        else:
          images.append(image)
      if images:
        out.write(np.stack(images).tobytes())
        num_images += len(images)
      progress.update(len(files))
  return num_images, skipped


def _build(listing: Listing, image_size: int, channels: int, data_path, meta_path):
  """Decodes the folder once into the cache; returns its metadata."""
  logging.info('Decoding the %d image files under %s once (%d px, %d channel(s)) into %s',
               len(listing.files), listing.folder, image_size, channels, data_path)
  start = time.perf_counter()
  tmp = f'{data_path}.tmp-{os.getpid()}'
  try:
    os.makedirs(os.path.dirname(data_path), exist_ok=True)
    with open(tmp, 'wb') as out:
      num_images, skipped = _decode_all(listing, image_size, channels, out)
    _check_usable(listing, num_images, skipped)
    os.replace(tmp, data_path)
    meta = {'version': CACHE_VERSION, 'folder': listing.folder, 'image_size': image_size,
            'channels': channels, 'num_files': len(listing.files), 'num_images': num_images,
            'num_skipped': len(skipped), 'skipped': skipped[:1000],
            'decode_seconds': round(time.perf_counter() - start, 2)}
    _atomic_write_json(meta_path, meta)
  except OSError as e:
    raise errors.EnvironmentFailure(
        f'Could not write the decoded images of {listing.folder} to {data_path} ({e}); free '
        f'some space there or set ${CACHE_ENV} to a writable folder with room.') from e
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  logging.info('Decoded %d images under %s in %.1f s (%.0f images/s).', num_images,
               listing.folder, meta['decode_seconds'],
               len(listing.files) / max(meta['decode_seconds'], 1e-9))
  return meta


def prepare(listing: Listing, image_size: int, channels: int):
  """The cache of `listing` at this size and channels, built if missing.

  Returns:
    (path of the raw uint8 [num_images, image_size, image_size, channels] file, metadata).

  Raises:
    FolderError: the folder has no image files, no usable one, or too many bad ones.
  """
  if not listing.files:
    raise FolderError(f'No image files under {listing.folder} (looked recursively for '
                      f'{", ".join(image_files.IMAGE_EXTENSIONS)}); set --config.data_dir to a '
                      'folder of images.')
  data_path, meta_path = _cache_paths(listing, image_size, channels)
  meta = _read_meta(data_path, meta_path)
  if meta is None:
    meta = _build(listing, image_size, channels, data_path, meta_path)
  else:
    logging.info('Reading the %d decoded images of %s from %s', meta['num_images'],
                 listing.folder, data_path)
  if meta['num_skipped']:
    logging.warning('Skipped %d of %d image files under %s that are unreadable, truncated or '
                    'empty: %s', meta['num_skipped'], meta['num_files'], listing.folder,
                    image_files.named([tuple(s) for s in meta['skipped']], meta['num_skipped']))
  return data_path, meta


def load_images(config, in_memory_limit: int) -> np.ndarray:
  """The decoded images of config.data_dir: uint8 [N, size, size, channels].

  In memory when they take at most `in_memory_limit` bytes, else a read-only
  np.memmap of the cache file (rows are then read from disk as they are used).
  """
  listing = list_files(_data_dir(config))
  channels = (int(config.num_channels) if config.get('num_channels') is not None
              else _detect_channels(listing))
  data_path, meta = prepare(listing, config.image_size, channels)
  shape = (meta['num_images'], config.image_size, config.image_size, channels)
  if math.prod(shape) <= in_memory_limit:
    return np.fromfile(data_path, np.uint8).reshape(shape)
  return np.memmap(data_path, np.uint8, 'r', shape=shape)


def eval_images(config, num_images: int, batch_size: int = 250,
                heldout: bool = False) -> Iterator[np.ndarray]:
  """Yields uint8 batches of `num_images` images spread evenly over the folder's sorted files.

  These are the real images of the FID reference statistics; with as many as
  the folder holds, they are all of them. heldout=True: `num_images` others,
  spread evenly over the rest (`input_pipeline.eval_images`).

  Raises:
    FolderError: the folder has fewer usable images than `num_images` (than
      2 * num_images when heldout).
  """
  images = load_images(config, in_memory_limit=0)  # Mapped: only the chosen rows are read.
  if num_images > len(images):
    raise FolderError(f'config.eval_num_samples = {num_images}, but {config.data_dir} holds '
                      f'only {len(images)} usable images; set --config.eval_num_samples='
                      f'{len(images)} or fewer.')
  indices = _spread(num_images, np.arange(len(images)))
  if heldout:  # As many again, spread over the images the reference does not use.
    rest = np.setdiff1d(np.arange(len(images)), indices)
    if len(rest) < num_images:
      raise FolderError(f'Held-out real images: {config.data_dir} holds {len(images)} usable '
                        f'images, fewer than twice config.eval_num_samples = {num_images}; set '
                        f'--config.eval_num_samples={len(images) // 2} or fewer.')
    indices = _spread(num_images, rest)
  for start in range(0, num_images, batch_size):
    yield np.asarray(images[indices[start:start + batch_size]])


def _spread(num, indices):
  """`num` of `indices`, evenly spaced."""
  return indices[np.arange(num) * len(indices) // max(num, 1)]


def reference_key(config) -> str:
  """A key for the FID reference statistics of config.data_dir at this size and channels.

  It holds the folder's path and its content hash (file list, sizes and
  modification times): statistics of another folder, or of this one before a
  file changed, are not reused.
  """
  listing = list_files(_data_dir(config))
  return (f'folder/{listing.content_hash[:16]}/{config.image_size}px/'
          f'{num_channels(config)}ch/{listing.folder}')


# --- Command line: the decoded folder as an .npz (a like-for-like FID reference) -----------------


def export_npz(config, path: str) -> int:
  """Writes the decoded images of config.data_dir to `path` as uint8 `images`; returns N."""
  if not path.endswith('.npz'):
    raise FolderError(f'{path} does not end in .npz; name the output FILE.npz.')
  images = load_images(config, in_memory_limit=0)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f'{path}.tmp-{os.getpid()}'
  with open(tmp, 'wb') as f:
    np.savez(f, images=np.asarray(images))
  os.replace(tmp, path)
  return len(images)


def main(argv=None) -> int:
  """`python -m dcgan_jax.data.folder FOLDER OUT.npz --image_size=64 [--num_channels=3]`."""
  import argparse  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(
      prog='python -m dcgan_jax.data.folder',
      description='Decodes a folder of images as dataset=folder trains on it (centre crop, '
                  'resize) and writes them as one .npz with uint8 `images` [N, H, W, C].')
  parser.add_argument('folder')
  parser.add_argument('out', help='FILE.npz')
  parser.add_argument('--image_size', type=int, default=64)
  parser.add_argument('--num_channels', type=int, choices=(1, 3), default=None,
                      help='default: 3 unless every image is grayscale')
  args = parser.parse_args(argv)
  logging.set_verbosity(logging.INFO)
  config = ml_collections.ConfigDict({'data_dir': args.folder, 'image_size': args.image_size,
                                      'num_channels': args.num_channels})
  try:
    num = export_npz(config, args.out)
  except errors.UserError as e:
    print(f'Error: {errors.one_line(e)}', file=sys.stderr, flush=True)
    return e.exit_code
  print(f'Wrote {num} images of {args.folder} to {args.out}')
  return 0


if __name__ == '__main__':
  raise SystemExit(main())
