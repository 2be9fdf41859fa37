"""Checks a run's config before anything is built or compiled, with one-line errors.

`validate(config)` raises `ConfigError` naming the first bad field and what it
may be, e.g.

  config.model.arch = 'resnet': must be one of 'dcgan', 'mlp', 'standard_cnn'.

so that a typo costs a second instead of a compilation (or, worse, an hour of
training with a switch that silently does nothing). Fields this module does
not know are not errors: configs grow faster than their checks. Fields it knows
but that are absent are skipped for the same reason.

Decisions worth knowing:
  * `loss.type='hinge'` with `loss.label_smoothing` other than 'none' is an
    error: the hinge loss has margins, not targets, so the smoothing would be
    silently ignored.
  * `model.*_attention_res` must be a side of a feature map where the arch has
    an attention slot (see `attention_sides`); the MLP GAN has none.
"""

import math
import numbers
import os

from dcgan_jax import errors
from dcgan_jax.data import datasets
from dcgan_jax.evaluation import evaluator
from dcgan_jax.models import layers
from dcgan_jax.models import networks
from dcgan_jax.training import divergence
from dcgan_jax.training import gan_step
from dcgan_jax.training import losses
from dcgan_jax.training import replicas
from dcgan_jax.training import stabilizers


class ConfigError(errors.UserError, ValueError):
  """A config field has a value the run cannot use; the message is one line."""


_MISSING = object()


def _get(config, path):
  node = config
  for part in path.split('.'):
    try:
      node = node[part]
    except (KeyError, TypeError, AttributeError):
      return _MISSING
  return node


def _show(value):
  text = repr(value).replace('\n', ' ')
  return text if len(text) <= 60 else text[:57] + '...'


def _fail(path, value, requirement):
  raise ConfigError(f'config.{path} = {_show(value)}: {requirement}')


def _is_int(value):
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value):
  return (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and math.isfinite(float(value)))


def _choices(values):
  return ', '.join(repr(v) for v in sorted(values))


class _Checker:
  """Checks fields of one config; each check is skipped when the field is absent."""

  def __init__(self, config):
    self.config = config

  def get(self, path):
    return _get(self.config, path)

  def choice(self, path, allowed):
    value = self.get(path)
    if value is not _MISSING and (not isinstance(value, str) or value not in allowed):
      _fail(path, value, f'must be one of {_choices(allowed)}.')
    return value

  def boolean(self, path):
    value = self.get(path)
    if value is not _MISSING and not isinstance(value, bool):
      _fail(path, value, 'must be True or False.')
    return value

  def integer(self, path, minimum=None):
    value = self.get(path)
    if value is _MISSING:
      return value
    if not _is_int(value):
      _fail(path, value, 'must be an integer' + (f' >= {minimum}.' if minimum is not None else '.'))
    if minimum is not None and value < minimum:
      _fail(path, value, f'must be an integer >= {minimum}.')
    return int(value)

  def number(self, path, low=None, high=None, low_open=False, high_open=False):
    """A finite real in the interval given by low/high (None = unbounded)."""
    value = self.get(path)
    if value is _MISSING:
      return value
    interval = '{}{}, {}{}'.format('(' if low_open or low is None else '[',
                                   '-inf' if low is None else low,
                                   'inf' if high is None else high,
                                   ')' if high_open or high is None else ']')
    ok = _is_number(value)
    if ok and low is not None:
      ok = value > low if low_open else value >= low
    if ok and high is not None:
      ok = value < high if high_open else value <= high
    if not ok:
      _fail(path, value, f'must be a number in {interval}.')
    return float(value)

  def int_sequence(self, path):
    value = self.get(path)
    if value is _MISSING:
      return value
    if (not isinstance(value, (tuple, list)) or not all(_is_int(v) for v in value)):
      _fail(path, value, 'must be a tuple of integers.')
    return tuple(int(v) for v in value)

  def label_range(self, path):
    value = self.get(path)
    if value is _MISSING:
      return value
    if (not isinstance(value, (tuple, list)) or len(value) != 2
        or not all(_is_number(v) for v in value)):
      _fail(path, value, 'must be a pair (a, b) of numbers with a <= b.')
    if value[0] > value[1]:
      _fail(path, value, 'must be a pair (a, b) of numbers with a <= b.')
    return value


def validate(config, num_devices=None):
  """Raises ConfigError (one line, naming the field) if `config` cannot run.

  The allowed values come from the modules that own them (datasets.DATASETS,
  networks.ARCHS, losses.LOSSES, ...), so a new choice is one change there.

  Args:
    config: a run config (ml_collections.ConfigDict or nested dicts).
    num_devices: devices the global batch is split over; by default
      `jax.device_count()` (all processes).
  """
  c = _Checker(config)
  seed = c.integer('seed', minimum=0)
  if seed is not _MISSING and seed >= 2**32:
    _fail('seed', seed, 'must be an integer in [0, 2**32).')
  _validate_replicas(c)
  _validate_data(c)
  _validate_model(c)
  _validate_loss(c)
  _validate_batches(c, num_devices)
  _validate_loop(c)
  _validate_optim(c)


def _validate_replicas(c):
  num_seeds = c.integer('num_seeds', minimum=1)
  c.choice('replica_loop', gan_step.REPLICA_LOOPS)
  sweep = c.get('sweep')
  if sweep is _MISSING or num_seeds is _MISSING:
    return
  if sweep is not None and not isinstance(sweep, str):
    _fail('sweep', sweep, "must be text like 'optim.g_lr=1e-4,2e-4;optim.d_lr=...'.")
  try:
    values = replicas.parse_sweep(sweep, num_seeds)
  except replicas.SweepError as e:
    _fail('sweep', sweep, f'{e}.')
  for field, field_values in values.items():
    if field in replicas.POSITIVE_ONLY and (min(field_values) <= 0 or not c.get(field) > 0):
      _fail('sweep', sweep, f'{field} can be swept only over positive values, with the base '
            f'config.{field} > 0 too (0 switches it off, which changes the program).')
    if field.startswith('optim.') and not all(
        (0 < v < 1) if '_b' in field else v > 0 for v in field_values):
      _fail('sweep', sweep, f'{field}: learning rates must be > 0 and betas in (0, 1).')


def _validate_data(c):
  dataset = c.get('dataset')
  if dataset is not _MISSING:
    if not isinstance(dataset, str) or dataset.partition('/')[0] not in datasets.DATASETS:
      _fail('dataset', dataset,
            f'must be one of {_choices(datasets.DATASETS)} (optionally with a TFDS '
            "config, e.g. 'emnist/letters').")
    base, _, tfds_config = dataset.partition('/')
    spec = datasets.DATASETS[base]
    if tfds_config and spec.source == 'tfds' and tfds_config not in spec.tfds_configs:
      configs = ', '.join(f'{base}/{name}' for name in spec.tfds_configs)
      _fail('dataset', dataset, f'names no TFDS config of {base!r}; '
            + (f'choose one of {configs}.' if configs else f'use {base!r}.'))
  data_dir = c.get('data_dir')
  if data_dir is not _MISSING and data_dir is not None and not isinstance(data_dir, str):
    _fail('data_dir', data_dir, 'must be a folder (a string) or None.')
  if (isinstance(data_dir, str) and '://' not in data_dir  # gs:// and other remote folders
      and not os.path.isdir(os.path.expanduser(data_dir))):
    # A typo would otherwise make TFDS prepare the dataset in a new folder of that name.
    _fail('data_dir', data_dir, f'is not an existing folder ({os.path.abspath(data_dir)}): '
          'create it first, fix the path, or leave it unset for TFDS\'s default.')
  _validate_folder(c, dataset, data_dir)


def _validate_folder(c, dataset, data_dir):
  """dataset='folder' (dcgan_jax/data/folder.py): a folder of images, 1 or 3 channels."""
  channels = c.get('num_channels')
  if channels is not _MISSING and channels is not None and (
      not _is_int(channels) or channels not in (1, 3)):
    _fail('num_channels', channels, 'must be None (3 unless every image is grayscale), 1 or 3.')
  base = dataset.partition('/')[0] if isinstance(dataset, str) else None
  if base not in datasets.DATASETS or datasets.DATASETS[base].source != 'folder':
    return
  if dataset != base:
    _fail('dataset', dataset, f'takes no TFDS config: use {base!r}.')
  if not isinstance(data_dir, str) or not os.path.isdir(os.path.expanduser(data_dir)):
    _fail('data_dir', None if data_dir is _MISSING else data_dir,
          f"must be an existing folder of images for dataset={base!r} (--config.data_dir=PATH).")


def _validate_model(c):
  arch = c.choice('model.arch', networks.ARCHS)
  image_size = c.integer('image_size', minimum=1)
  if arch is not _MISSING and image_size is not _MISSING:
    sizes = networks.image_sizes(arch)
    if sizes is not None and image_size not in sizes:
      _fail('image_size', image_size, f'must be one of {_choices(sizes)} for model.arch={arch!r}.')
  for path in ('model.latent_dim', 'model.g_features', 'model.d_features'):
    c.integer(path, minimum=1)
  c.choice('model.latent_dist', networks.LATENT_DISTS)
  c.choice('model.g_activation', networks.ACTIVATIONS)
  c.choice('model.d_activation', networks.ACTIVATIONS)
  c.number('model.leaky_relu_slope', low=0.0)
  c.choice('model.g_norm', networks.NORMS)
  c.choice('model.d_norm', networks.NORMS)
  c.boolean('model.spectral_norm')
  c.choice('model.dtype', networks.DTYPES)
  c.choice('model.conv_impl', layers.IMPLS)
  c.choice('model.batch_norm_impl', networks.BATCH_NORM_CHOICES)
  c.number('model.d_dropout', low=0.0, high=1.0, high_open=True)
  if arch is not _MISSING and image_size is not _MISSING:
    _validate_model_slots(c, arch, image_size)


def _validate_model_slots(c, arch, image_size):
  """Attention sides and dropout block indices, which depend on the architecture."""
  g_res = c.integer('model.g_attention_res', minimum=0)
  d_res = c.integer('model.d_attention_res', minimum=0)
  g_sides, d_sides = networks.attention_sides(arch, image_size)
  for path, res, sides, who in (('model.g_attention_res', g_res, g_sides, 'G'),
                                ('model.d_attention_res', d_res, d_sides, 'D')):
    if res not in (_MISSING, 0) and res not in sides:
      allowed = ', '.join(str(s) for s in (0, *sorted(sides)))
      _fail(path, res, f'must be one of {allowed} (0 = none): the feature-map sides of '
            f'{who} for model.arch={arch!r} at image_size={image_size}.')
  dropout_layers = c.int_sequence('model.d_dropout_layers')
  if dropout_layers is not _MISSING:
    num_blocks = networks.num_d_blocks(arch, image_size)
    if any(not 0 <= i < num_blocks for i in dropout_layers):
      _fail('model.d_dropout_layers', dropout_layers,
            f'must hold D block indices in [0, {num_blocks - 1}] for model.arch={arch!r} '
            f'at image_size={image_size}.')


def _validate_loss(c):
  loss_type = c.choice('loss.type', losses.LOSSES)
  smoothing = c.choice('loss.label_smoothing', stabilizers.LABEL_SMOOTHINGS)
  if loss_type == 'hinge' and smoothing not in (_MISSING, 'none'):
    _fail('loss.label_smoothing', smoothing,
          "must be 'none' with loss.type='hinge' (the hinge loss has margins, not targets).")
  c.number('loss.real_label', low=0.0, low_open=True)
  c.label_range('loss.real_label_range')
  c.label_range('loss.fake_label_range')


def _validate_batches(c, num_devices):
  """Batches, data order and what D sees."""
  batch_size = c.integer('batch_size', minimum=1)
  if batch_size is not _MISSING:
    if num_devices is None:
      import jax  # pylint: disable=g-import-not-at-top
      num_devices = jax.device_count()
    if batch_size % num_devices:
      _fail('batch_size', batch_size,
            f'must be divisible by the number of devices ({num_devices}).')
  c.integer('d_steps', minimum=1)  # Each D update takes its own batch_size images.
  c.boolean('d_separate_real_fake')
  c.integer('shuffle_buffer_size', minimum=1)
  c.integer('prefetch_to_device', minimum=0)
  c.number('instance_noise', low=0.0)
  c.integer('instance_noise_decay_steps', minimum=0)
  c.boolean('augment.flip')
  c.number('augment.rotate_degrees', low=0.0, high=180.0)


def _validate_loop(c):
  for path in ('num_train_steps', 'log_every_steps', 'sample_every_steps',
               'checkpoint_every_steps', 'max_checkpoints_to_keep'):
    c.integer(path, minimum=1)
  c.integer('eval_every_steps', minimum=0)
  c.integer('eval_num_samples', minimum=0)  # 0 = no evaluation.
  c.choice('eval_feature_extractor', evaluator.EXTRACTORS)
  c.choice('eval_preprocess', evaluator.PREPROCESSINGS)
  num_sample_images = c.integer('num_sample_images', minimum=1)
  if num_sample_images is not _MISSING and math.isqrt(num_sample_images) ** 2 != num_sample_images:
    _fail('num_sample_images', num_sample_images, 'must be a square number (4, 9, 16, 64, ...).')
  c.choice('divergence', divergence.POLICIES)
  c.integer('max_rollbacks', minimum=0)
  c.integer('debug_nan_at_step', minimum=-1)
  _validate_steps_per_call(c)


# The steps at which the loop acts: each must fall on the end of a device call.
_EVENT_INTERVALS = ('num_train_steps', 'log_every_steps', 'sample_every_steps',
                    'checkpoint_every_steps', 'eval_every_steps')


def _validate_steps_per_call(c):
  steps_per_call = c.integer('steps_per_call', minimum=1)
  if steps_per_call is _MISSING or steps_per_call == 1:
    return
  for path in _EVENT_INTERVALS:
    every = c.get(path)
    if _is_int(every) and every > 0 and every % steps_per_call:
      _fail('steps_per_call', steps_per_call,
            f'must divide config.{path} = {every}, so that logs, samples, checkpoints and '
            'evaluations land on the same steps as with one step a call.')


def _validate_optim(c):
  for path in ('optim.g_lr', 'optim.d_lr', 'optim.lr_decay_factor'):
    c.number(path, low=0.0, low_open=True)
  for path in ('optim.g_b1', 'optim.d_b1', 'optim.g_b2', 'optim.d_b2'):
    c.number(path, low=0.0, high=1.0, high_open=True)
  decay_steps = c.int_sequence('optim.lr_decay_steps')
  if decay_steps is not _MISSING and (
      any(s < 1 for s in decay_steps) or any(a >= b for a, b in zip(decay_steps, decay_steps[1:]))):
    _fail('optim.lr_decay_steps', decay_steps, 'must be strictly increasing positive steps.')
  c.number('ema_decay', low=0.0, high=1.0, high_open=True)
