"""Command-line entry point: train (resuming from the workdir) or evaluate a run.

  python -m dcgan_jax.main --config=configs/quickstart.py --workdir=/tmp/quickstart
  python -m dcgan_jax.main --config=configs/cifar10.py --workdir=DIR --config.num_train_steps=100

Several processes (README, "Many hosts"): pass --coordinator_address,
--num_processes and --process_id to each, or nothing on a TPU VM / SLURM /
Open MPI job, where JAX finds them itself.
"""

import glob
import logging as py_logging
import os
import signal
import sys

import numpy as np
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from dcgan_jax import cli

# TensorFlow serves only tf.data here; its C++ start-up chatter is noise.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Folder for checkpoints, samples and TensorBoard logs.')
flags.DEFINE_enum('mode', 'train', ['train', 'evaluate'],
                  'train: train (resuming from workdir); evaluate: evaluate its checkpoints.')
config_flags.DEFINE_config_file('config', None, 'Path to a config file (configs/*.py).',
                                lock_config=True)
flags.DEFINE_string('coordinator_address', None,
                    'host:port of process 0, for runs over several processes.')
flags.DEFINE_integer('num_processes', None, 'Number of processes of a multi-process run.')
flags.DEFINE_integer('process_id', None, 'Index of this process, 0 .. num_processes - 1.')
flags.mark_flags_as_required(['config', 'workdir'])

# Environment variables of the clusters where jax.distributed.initialize() finds
# the coordinator by itself (TPU VMs and pods, SLURM, Open MPI).
CLUSTER_ENV_VARS = ('TPU_WORKER_HOSTNAMES', 'TPU_PROCESS_ADDRESSES', 'MEGASCALE_COORDINATOR_ADDRESS',
                    'SLURM_STEP_NUM_TASKS', 'OMPI_MCA_orte_hnp_uri')


class _QuietLibraries(py_logging.Filter):
  """Drops the INFO lines orbax and TFDS write on every save and read (warnings stay)."""

  def filter(self, record):
    noisy = ('/orbax/', '/tensorflow_datasets/')
    return record.levelno >= py_logging.WARNING or not any(n in record.pathname for n in noisy)


def _on_tpu_vm():
  return bool(glob.glob('/dev/accel*') or glob.glob('/dev/vfio/[0-9]*'))


def initialize_distributed(jax):
  """Joins a multi-process run when one is asked for or the environment is a cluster."""
  given = [FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id]
  if any(v is not None for v in given):
    if any(v is None for v in given):
      raise app.UsageError('--coordinator_address, --num_processes and --process_id go together.')
    # CPU processes need a collectives library to talk to each other (GPU/TPU ignore this).
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(coordinator_address=FLAGS.coordinator_address,
                               num_processes=FLAGS.num_processes, process_id=FLAGS.process_id)
  elif _on_tpu_vm() or any(os.environ.get(v) for v in CLUSTER_ENV_VARS):
    jax.distributed.initialize()
  # A plain single-process run starts no coordinator.


def run(argv):
  """The command: flags parsed, errors printed by cli.run."""
  # First thing: a SIGTERM during the minutes of start-up is reported, not silent.
  signal.signal(signal.SIGTERM, cli.stopped_outside_training)
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  logging.get_absl_handler().addFilter(_QuietLibraries())
  # Import jax and tf only now, so that --help is fast.
  import jax  # pylint: disable=g-import-not-at-top
  from dcgan_jax import config_validation  # pylint: disable=g-import-not-at-top

  initialize_distributed(jax)
  # Before anything is built or compiled, and before TensorFlow is even imported
  # (after initialize: the batch must split over every process's devices).
  config_validation.validate(FLAGS.config)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from dcgan_jax.training import train  # pylint: disable=g-import-not-at-top

  # tf.data only: keep TensorFlow off the accelerators JAX uses.
  tf.config.experimental.set_visible_devices([], 'GPU')
  tf.config.experimental.set_visible_devices([], 'TPU')
  logging.info('JAX process %d / %d, local devices: %s', jax.process_index(),
               jax.process_count(), jax.local_devices())
  if FLAGS.mode == 'train':
    g_state, _ = train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    if int(np.min(g_state.step)) < FLAGS.config.num_train_steps:  # Stopped by a signal, saved.
      from dcgan_jax.training import preemption  # pylint: disable=g-import-not-at-top
      sys.exit(preemption.EXIT_STOPPED)
  else:
    train.evaluate_checkpoints(FLAGS.config, FLAGS.workdir)


if __name__ == '__main__':
  cli.run(run)
