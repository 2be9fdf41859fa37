"""Reading image files, whatever their format, mode and size: one concern of folder datasets.

`decode(path, image_size, channels)` is what training sees of a file: converted
to 'L' or 'RGB' (transparent pixels over white, 16-bit and float images scaled
to 8 bits, the EXIF orientation applied), centre-cropped to a square and
resized with PIL's antialiased bicubic filter. Large JPEGs are first decoded at
a reduced scale and reduced by integer factors (`REDUCING_GAP`, as PIL's
`thumbnail` does: indistinguishable from a full decode and much faster).
`try_decode` and `read_error` turn a damaged file into a one-line reason, and
`named` lists skipped files in a log line. The folder dataset (`folder.py`)
and the FID tool's image sets (`evaluation/image_sets.py`) both use them.
"""

import math
import os
from typing import Optional

import numpy as np
from PIL import Image
from PIL import ImageOps

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.webp', '.tif', '.tiff')
# Files named in the log when some are skipped (the rest are counted).
NUM_NAMED = 5
# Large images are decoded (JPEG) and reduced by integer factors down to this many
# times the output size before the bicubic resize; PIL's `thumbnail` uses the same.
REDUCING_GAP = 3.0
GRAY_MODES = ('1', 'L', 'LA', 'La', 'I', 'I;16', 'I;16L', 'I;16B', 'I;16N', 'F')
HIGH_DEPTH_MODES = ('I', 'I;16', 'I;16L', 'I;16B', 'I;16N', 'F')
ALPHA_MODES = ('RGBA', 'RGBa', 'LA', 'La', 'PA')


def is_grayscale(image: Image.Image) -> bool:
  """Whether an opened image is gray: a gray mode, or a palette of grays only."""
  if image.mode in GRAY_MODES:
    return True
  if image.mode in ('P', 'PA'):
    palette = np.asarray(image.getpalette('RGB') or [], np.int32).reshape(-1, 3)
    return bool(np.all(palette == palette[:, :1]))
  return False


def _to_8bit_gray(image: Image.Image) -> Image.Image:
  """16-bit, 32-bit integer and float images as 8-bit 'L' (PIL's convert would clip)."""
  values = np.asarray(image).astype(np.float64)
  if image.mode.startswith('I;16'):
    values = values / 257.0
  elif image.mode == 'F' and values.size and values.max() <= 1.0:
    values = values * 255.0
  elif image.mode == 'I' and values.size and values.max() > 255:
    values = values / 257.0  # 16-bit data in a 32-bit mode (some PNG and TIFF readers).
  return Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8), 'L')


def convert(image: Image.Image, channels: int) -> Image.Image:
  """`image` as 'L' (channels 1) or 'RGB' (3); transparent pixels over white."""
  if image.mode in HIGH_DEPTH_MODES:
    image = _to_8bit_gray(image)
  if image.mode in ALPHA_MODES or 'transparency' in image.info:
    white = Image.new('RGBA', image.size, (255, 255, 255, 255))
    image = Image.alpha_composite(white, image.convert('RGBA'))
  return image.convert('L' if channels == 1 else 'RGB')


def _draft(image: Image.Image, image_size: int):
  """Lets the JPEG decoder scale a large image down by 1/2, 1/4 or 1/8 while decoding."""
  if image.format != 'JPEG':
    return
  width, height = image.size
  scale = image_size * REDUCING_GAP / min(width, height)
  if scale < 0.5:
    image.draft(None, (math.ceil(width * scale), math.ceil(height * scale)))


def decode(path: str, image_size: int, channels: int) -> np.ndarray:
  """uint8 [image_size, image_size, channels]: converted, centre-cropped and resized.

  Raises:
    Exception: whatever PIL raises for a file that is not a readable image.
  """
  with Image.open(path) as image:
    _draft(image, image_size)
    image.load()  # Raises for a truncated file.
    ImageOps.exif_transpose(image, in_place=True)
    image = convert(image, channels)
  width, height = image.size
  side = min(width, height)
  left, top = (width - side) // 2, (height - side) // 2
  image = image.crop((left, top, left + side, top + side))
  image = image.resize((image_size, image_size), Image.BICUBIC, reducing_gap=REDUCING_GAP)
  return np.asarray(image, np.uint8).reshape(image_size, image_size, channels)


def read_error(error: Exception, path: str) -> str:
  """'<type>: <message>' of a file PIL could not read, on one short line, without its path."""
  message = str(error).replace(repr(path), '').replace(path, '').strip(' :')
  return f'{type(error).__name__}: {message}'.splitlines()[0][:120]


def try_decode(path, image_size, channels):
  try:
    return decode(path, image_size, channels), None
  except Exception as e:  # pylint: disable=broad-except
    # PIL raises OSError, SyntaxError, ValueError, EOFError, zlib and struct errors
    # for damaged files: all mean "skip this file".
    return None, read_error(e, path)


def is_gray_file(path) -> Optional[bool]:
  try:
    with Image.open(path) as image:
      return is_grayscale(image)
  except Exception:  # pylint: disable=broad-except  (counted when the folder is decoded)
    return None


def named(skipped, total):
  """'a (why), b (why) and 3 more': the first NUM_NAMED of (name, why) pairs, then a count."""
  names = ', '.join(f'{name} ({why})' for name, why in skipped[:NUM_NAMED])
  more = total - min(total, NUM_NAMED)
  return names + (f' and {more} more' if more else '')


def num_threads():
  """Decoding threads: PIL releases the GIL while it decodes and resizes."""
  try:
    cores = len(os.sched_getaffinity(0))
  except AttributeError:  # Not on Linux.
    cores = os.cpu_count() or 1
  return min(16, cores + 1)
