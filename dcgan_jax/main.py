"""Command-line entry point: train (resuming from the workdir) or evaluate a run.

  python -m dcgan_jax.main --config=configs/quickstart.py --workdir=/tmp/quickstart
  python -m dcgan_jax.main --config=configs/cifar10.py --workdir=DIR --config.num_train_steps=100
"""

import logging as py_logging
import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

# TensorFlow serves only tf.data here; its C++ start-up chatter is noise.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Folder for checkpoints, samples and TensorBoard logs.')
flags.DEFINE_enum('mode', 'train', ['train', 'evaluate'],
                  'train: train (resuming from workdir); evaluate: evaluate its checkpoints.')
config_flags.DEFINE_config_file('config', None, 'Path to a config file (configs/*.py).',
                                lock_config=True)
flags.mark_flags_as_required(['config', 'workdir'])


class _QuietLibraries(py_logging.Filter):
  """Drops the INFO lines orbax and TFDS write on every save and read (warnings stay)."""

  def filter(self, record):
    noisy = ('/orbax/', '/tensorflow_datasets/')
    return record.levelno >= py_logging.WARNING or not any(n in record.pathname for n in noisy)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  logging.get_absl_handler().addFilter(_QuietLibraries())
  # Import jax and tf only now, so that --help is fast.
  import jax  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from dcgan_jax import train  # pylint: disable=g-import-not-at-top

  # tf.data only: keep TensorFlow off the accelerators JAX uses.
  tf.config.experimental.set_visible_devices([], 'GPU')
  tf.config.experimental.set_visible_devices([], 'TPU')
  logging.info('JAX process %d / %d, local devices: %s', jax.process_index(),
               jax.process_count(), jax.local_devices())
  if FLAGS.mode == 'train':
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == '__main__':
  app.run(main)
