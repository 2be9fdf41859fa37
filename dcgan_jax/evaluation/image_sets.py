"""Image sets for the command-line tools: folders of images and .npz files.

A path is one of
* a folder: every .png/.jpg/.jpeg/.bmp/.gif/.tif/.tiff/.webp/.ppm/.pgm file
  below it (recursively, in sorted order), read with PIL; gray images stay
  1-channel (the extractors repeat or average channels), everything else is
  converted to RGB;
* an .npz with key `images`: uint8 [N, H, W, C] (or [N, H, W] gray);
* an .npz of statistics with keys `mu` and `sigma` (pytorch-fid's format, or
  ours with `kid_features` too).
"""

import os

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.tif', '.tiff', '.webp',
                    '.ppm', '.pgm')


class ImageSetError(ValueError):
  """A path that is not a usable image set."""


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


def folder_batches(files, batch_size):
  """Yields uint8 NHWC batches of consecutive same-shape images."""
  batch = []
  for path in files:
    image = _read_image(path)
    if batch and (len(batch) == batch_size or image.shape != batch[0].shape):
      yield np.stack(batch)
      batch = []
    batch.append(image)
  if batch:
    yield np.stack(batch)


def is_stats_file(path):
  if not (os.path.isfile(path) and path.endswith('.npz')):
    return False
  with np.load(path) as f:
    return 'mu' in f.files and 'sigma' in f.files


def open_images(path, batch_size=500):
  """Opens an image set.

  Returns:
    (batches, count): an iterable of uint8 NHWC batches and the image count.

  Raises:
    ImageSetError: for a missing path, an empty folder or a bad .npz.
  """
  if os.path.isdir(path):
    files = list_images(path)
    if not files:
      raise ImageSetError(f'{path} is a folder with no images '
                          f'({", ".join(IMAGE_EXTENSIONS)}).')
    return folder_batches(files, batch_size), len(files)
  if not os.path.exists(path):
    raise ImageSetError(f'{path} does not exist; want a folder of images or an .npz file.')
  if not path.endswith('.npz'):
    raise ImageSetError(f'{path} is neither a folder of images nor an .npz file.')
  try:
    with np.load(path) as f:
      if 'images' not in f.files:
        raise ImageSetError(f'{path} has no `images` array (keys: {f.files}); want '
                            'uint8 [N, H, W, C] images or mu/sigma statistics.')
      images = f['images']
  except (OSError, ValueError) as e:
    if isinstance(e, ImageSetError):
      raise
    raise ImageSetError(f'{path} is not a readable .npz file: {e}') from e
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ImageSetError(f'{path}: `images` has shape {images.shape}; want [N, H, W, 1 or 3].')
  if images.dtype != np.uint8:
    raise ImageSetError(f'{path}: `images` has dtype {images.dtype}; want uint8.')
  return (images[i:i + batch_size] for i in range(0, len(images), batch_size)), len(images)
