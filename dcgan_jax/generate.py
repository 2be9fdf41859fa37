"""Images out of a trained run: N samples of its generator, as numbered PNGs or one .npz.

  python -m dcgan_jax.generate --config=configs/folder.py --config.data_dir=PATH \
      --workdir=/tmp/my_images --num=10000 --out=/tmp/my_images_10k.npz
  python -m dcgan_jax.evaluation.fid /tmp/my_images_10k.npz PATH

The images come from the EMA generator when the run keeps one (`ema_decay > 0`),
else from G itself, of the `--which` checkpoint ('latest' or 'best'). `--out`
is a folder (images `000000.png`, `000001.png`, ...) or a `.npz` with uint8
`images` [N, H, W, C], which `python -m dcgan_jax.evaluation.fid` reads. The
same --seed gives the same images: z is drawn in fixed chunks of LATENT_CHUNK
from (seed, chunk), so the first n images of a larger N are the same too (up
to the last bit of the arithmetic when the batch size changes).

With replicas (`config.num_seeds` K > 1, every state leaf stacked on a
leading axis), `--replica=I` samples replica I.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags
import numpy as np

from dcgan_jax import errors

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')

FLAGS = flags.FLAGS


def define_flags():
  """Defines the command's flags, only when it runs as a command.

  The functions here are also a library, imported next to other entry points
  (main, benchmark) that define --config of their own.
  """
  config_flags.DEFINE_config_file('config', None, "Path to the run's config file (configs/*.py).",
                                  lock_config=True)
  flags.DEFINE_string('workdir', None, "The run's folder (with checkpoints/).")
  flags.DEFINE_integer('num', 10_000, 'Number of images.')
  flags.DEFINE_string('out', None, 'A folder for numbered PNGs, or FILE.npz.')
  flags.DEFINE_enum('which', 'latest', ['latest', 'best'], 'Which checkpoint to sample.')
  flags.DEFINE_integer('seed', 0, 'Seed of the latents: the same seed gives the same images.')
  flags.DEFINE_integer('replica', 0, 'Replica to sample when config.num_seeds > 1.')
  flags.DEFINE_integer('batch_size', 250, 'Images generated per device call.')
  flags.mark_flags_as_required(['config', 'workdir', 'out'])


# z is drawn in chunks of this many from (seed, chunk index), whatever the batch size.
LATENT_CHUNK = 1_000


class GenerateError(errors.UserError):
  """A bad flag of `python -m dcgan_jax.generate`; the message names it and the fix."""


def output_kind(out: str) -> str:
  """'npz' for FILE.npz, 'folder' for a folder (existing, or a path with no extension)."""
  extension = os.path.splitext(out.rstrip('/'))[1].lower()
  if extension == '.npz':
    return 'npz'
  if os.path.isdir(out) or not extension:
    return 'folder'
  raise GenerateError(f'--out={out}: want a folder (no extension) for PNGs or a FILE.npz, '
                      f'not a {extension} file.')


def check_flags(num: int, out: str, workdir: str, batch_size: int = 1) -> str:
  """Raises GenerateError for unusable flags; returns output_kind(out)."""
  if num <= 0:
    raise GenerateError(f'--num={num}: want a positive number of images.')
  if batch_size <= 0:
    raise GenerateError(f'--batch_size={batch_size}: want a positive batch size.')
  kind = output_kind(out)
  if not os.path.isdir(workdir):
    raise GenerateError(f'--workdir={workdir} is not a folder; pass the workdir of a trained run.')
  return kind


def select_replica(variables, config, replica: int):
  """Replica `replica`'s slice of stacked variables (config.num_seeds > 1), else `variables`."""
  import jax  # pylint: disable=g-import-not-at-top
  num_seeds = config.get('num_seeds', 1) or 1
  if not 0 <= replica < num_seeds:
    raise GenerateError(f'--replica={replica}: the run has config.num_seeds = {num_seeds} '
                        f'replica(s); pick one in 0 .. {num_seeds - 1}.')
  if num_seeds == 1:
    return variables
  return jax.tree.map(lambda x: x[replica], variables)


def latents(config, seed: int, start: int, num: int):
  """z of images start .. start + num - 1 of `seed`: float32 [num, latent_dim]."""
  import jax  # pylint: disable=g-import-not-at-top
  from dcgan_jax.models import networks  # pylint: disable=g-import-not-at-top
  key = jax.random.fold_in(jax.random.PRNGKey(seed), 0x6E4E)
  first, last = start // LATENT_CHUNK, (start + num - 1) // LATENT_CHUNK
  chunks = [np.asarray(networks.sample_latent(jax.random.fold_in(key, c), LATENT_CHUNK,
                                              config.model.latent_dim, config.model.latent_dist))
            for c in range(first, last + 1)]
  offset = start - first * LATENT_CHUNK
  return np.concatenate(chunks)[offset:offset + num]


def load_generator(config, workdir: str, which: str = 'latest', replica: int = 0):
  """(generate(variables, z) -> images in [-1, 1], G's variables, step) of a run's checkpoint.

  The variables are the EMA params when the run keeps them.
  """
  from dcgan_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  from dcgan_jax.models import networks  # pylint: disable=g-import-not-at-top
  from dcgan_jax.training import train  # pylint: disable=g-import-not-at-top
  select_replica({}, config, replica)  # Range check before the (slow) restore.
  try:
    g_variables, _, step = train.restore_generator_and_discriminator(config, workdir, which)
  except FileNotFoundError as e:
    raise GenerateError(f'{e} Fix: pass the --workdir (and --config) of a trained run'
                        + (', or --which=latest.' if which == 'best' else '.')) from e
  generator, _ = networks.create_models(config, input_pipeline.num_channels(config))
  return (networks.jit_generate(generator.apply), select_replica(g_variables, config, replica),
          step)


def generate_batches(generate, variables, config, num: int, seed: int = 0,
                     batch_size: int = 250):
  """Yields uint8 [b, H, W, C] batches of `num` images; every call has `batch_size` rows."""
  from dcgan_jax.data import images as image_utils  # pylint: disable=g-import-not-at-top
  batch_size = min(batch_size, num)
  for start in range(0, num, batch_size):
    count = min(batch_size, num - start)
    z = latents(config, seed, start, count)
    if count < batch_size:  # Padded: one compiled shape for every batch.
      z = np.concatenate([z, np.zeros((batch_size - count, z.shape[1]), z.dtype)])
    yield image_utils.to_uint8(np.asarray(generate(variables, z))[:count])


def _validate(config):
  """config_validation.validate, but sampling a folder run needs no images, only their channels."""
  from dcgan_jax import config_validation  # pylint: disable=g-import-not-at-top
  data_dir = config.get('data_dir')
  if config.get('dataset') == 'folder' and not (data_dir and os.path.isdir(data_dir)):
    if config.get('num_channels') is None:
      raise GenerateError(f'config.data_dir = {data_dir!r} is not here to tell the channels of '
                          'the images; pass --config.num_channels=1 or 3 (as trained).')
    config = config.copy_and_resolve_references()
    config.data_dir = os.getcwd()  # Any folder: the images themselves are not read.
  config_validation.validate(config, num_devices=1)


def _hide_accelerators_from_tensorflow():
  """TensorFlow only reads data here: keep it off the GPU/TPU memory JAX uses."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    tf.config.experimental.set_visible_devices([], 'GPU')
    tf.config.experimental.set_visible_devices([], 'TPU')
  except (RuntimeError, ValueError):  # Already initialised (e.g. by the caller): leave it.
    pass


def write_npz(batches, num: int, path: str):
  """Writes the batches as one uint8 `images` [num, H, W, C] .npz (atomically)."""
  images = None
  start = 0
  for batch in batches:
    if images is None:
      images = np.empty((num, *batch.shape[1:]), np.uint8)
    images[start:start + len(batch)] = batch
    start += len(batch)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f'{path}.tmp-{os.getpid()}'
  with open(tmp, 'wb') as f:
    np.savez(f, images=images)
  os.replace(tmp, path)


def write_pngs(batches, num: int, folder: str):
  """Writes the batches as `folder/000000.png`, ... (grayscale or RGB)."""
  from dcgan_jax.data import images as image_utils  # pylint: disable=g-import-not-at-top
  width = max(6, len(str(num - 1)))
  index = 0
  for batch in batches:
    for image in batch:
      image_utils.save_image(image, os.path.join(folder, f'{index:0{width}d}.png'))
      index += 1


def _counted(batches, progress):
  for batch in batches:
    yield batch
    progress.update(len(batch))


def generate_to(config, workdir: str, num: int, out: str, which: str = 'latest', seed: int = 0,
                replica: int = 0, batch_size: int = 250):
  """Writes `num` images of a run's generator to `out` (a folder or FILE.npz); returns the step."""
  kind = check_flags(num, out, workdir, batch_size)  # Before the slow imports.
  import tqdm  # pylint: disable=g-import-not-at-top
  _validate(config)
  _hide_accelerators_from_tensorflow()
  generate, variables, step = load_generator(config, workdir, which, replica)
  batches = generate_batches(generate, variables, config, num, seed, batch_size)
  with tqdm.tqdm(total=num, unit='img', desc=f'generating ({which} checkpoint, step {step})',
                 file=sys.stderr) as progress:
    (write_npz if kind == 'npz' else write_pngs)(_counted(batches, progress), num, out)
  return step


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  if not FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # The progress bar says enough; --verbosity=0 for more.
  try:
    step = generate_to(FLAGS.config, FLAGS.workdir, FLAGS.num, FLAGS.out, FLAGS.which,
                       FLAGS.seed, FLAGS.replica, FLAGS.batch_size)
  except errors.UserError as e:
    # One line, no traceback: these say what to change.
    print(f'Error: {errors.one_line(e)}', file=sys.stderr, flush=True)
    sys.exit(e.exit_code)
  print(f'Wrote {FLAGS.num} images of the {FLAGS.which} checkpoint (step {step}) to {FLAGS.out}',
        flush=True)


if __name__ == '__main__':
  define_flags()
  app.run(main)
