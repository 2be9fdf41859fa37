"""Config validation: bad fields fail at once with one line naming them; good configs pass."""

import glob
import importlib
import os
import subprocess
import sys

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import ml_collections
import pytest

from configs import default
from dcgan_jax import config_validation
from dcgan_jax.data import datasets
from dcgan_jax.evaluation import evaluator
from dcgan_jax.models import networks
from dcgan_jax.training import divergence
from dcgan_jax.training import losses
from dcgan_jax.config_validation import ConfigError
from tests import support

ROOT = support.ROOT
NUM_DEVICES = 4  # conftest.py's fake CPU devices.


def config_with(**overrides):
  """The default config with dotted-path overrides (type safety off: any value goes)."""
  values = default.get_config().to_dict()
  for path, value in overrides.items():
    node = values
    *parents, leaf = path.split('.')
    for part in parents:
      node = node[part]
    node[leaf] = value
  return ml_collections.ConfigDict(values)


def assert_one_line_error(config, field):
  with pytest.raises(ConfigError) as e:
    config_validation.validate(config, num_devices=NUM_DEVICES)
  message = str(e.value)
  assert '\n' not in message
  assert f'config.{field} =' in message, message
  return message


BAD_CONFIGS = [
    # (field named in the error, overrides)
    ('dataset', {'dataset': 'imagenet'}),
    ('dataset', {'dataset': 'emnist/bogus'}),
    ('dataset', {'dataset': 'mnist/letters'}),
    ('model.arch', {'model.arch': 'resnet'}),
    ('model.g_activation', {'model.g_activation': 'gelu'}),
    ('model.d_activation', {'model.d_activation': 'tanh'}),
    ('model.g_norm', {'model.g_norm': 'instance'}),
    ('model.d_norm', {'model.d_norm': 'group'}),
    ('loss.type', {'loss.type': 'wasserstein'}),
    ('model.latent_dist', {'model.latent_dist': 'cauchy'}),
    ('loss.label_smoothing', {'loss.label_smoothing': 'two_sided'}),
    ('model.dtype', {'model.dtype': 'float16'}),
    ('eval_feature_extractor', {'eval_feature_extractor': 'clip'}),
    ('image_size', {'image_size': 48}),
    ('image_size', {'model.arch': 'standard_cnn', 'image_size': 28}),
    ('image_size', {'model.arch': 'mlp', 'image_size': 0}),
    ('batch_size', {'batch_size': 6}),
    ('batch_size', {'batch_size': 0}),
    ('d_steps', {'d_steps': 0}),
    ('optim.g_lr', {'optim.g_lr': 0.0}),
    ('optim.d_lr', {'optim.d_lr': -1e-4}),
    ('num_train_steps', {'num_train_steps': 0}),
    ('log_every_steps', {'log_every_steps': 0}),
    ('sample_every_steps', {'sample_every_steps': -5}),
    ('checkpoint_every_steps', {'checkpoint_every_steps': 0}),
    ('eval_every_steps', {'eval_every_steps': -1}),
    ('optim.g_b1', {'optim.g_b1': 1.0}),
    ('optim.d_b2', {'optim.d_b2': -0.1}),
    ('ema_decay', {'ema_decay': 1.0}),
    ('model.d_dropout', {'model.d_dropout': 1.5}),
    ('model.g_attention_res', {'model.g_attention_res': 28}),  # 28 px: G's maps are 7 and 14.
    ('model.d_attention_res', {'model.d_attention_res': 4}),  # 28 px: D's maps are 14 and 7.
    ('model.g_attention_res', {'model.arch': 'mlp', 'model.g_attention_res': 8}),
    ('model.d_attention_res', {'model.arch': 'standard_cnn', 'image_size': 32,
                               'model.d_attention_res': 32}),
    ('model.d_dropout_layers', {'model.d_dropout_layers': (0, 2)}),  # 28 px: blocks 0 and 1.
    ('optim.lr_decay_steps', {'optim.lr_decay_steps': (1000, 500)}),
    ('optim.lr_decay_steps', {'optim.lr_decay_steps': (1000, 1000)}),
    ('loss.real_label_range', {'loss.real_label_range': (1.2, 0.7)}),
    ('loss.fake_label_range', {'loss.fake_label_range': (0.3, 0.0)}),
    ('loss.label_smoothing', {'loss.type': 'hinge', 'loss.label_smoothing': 'one_sided'}),
    ('num_sample_images', {'num_sample_images': 10}),
    ('divergence', {'divergence': 'ignore'}),
    ('max_rollbacks', {'max_rollbacks': -1}),
    ('debug_nan_at_step', {'debug_nan_at_step': -2}),
    # Wrong types.
    ('batch_size', {'batch_size': 64.0}),
    ('batch_size', {'batch_size': True}),
    ('optim.g_lr', {'optim.g_lr': '2e-4'}),
    ('optim.g_lr', {'optim.g_lr': float('nan')}),
    ('model.spectral_norm', {'model.spectral_norm': 1}),
    ('model.arch', {'model.arch': None}),
    ('optim.lr_decay_steps', {'optim.lr_decay_steps': 1000}),
    ('loss.real_label_range', {'loss.real_label_range': (0.7,)}),
    # A folder that does not exist (TFDS would prepare the data in a new ./5).
    ('data_dir', {'data_dir': '5'}),
    ('data_dir', {'data_dir': 5}),
]


@pytest.mark.parametrize('field,overrides', BAD_CONFIGS,
                         ids=[f'{f}-{i}' for i, (f, _) in enumerate(BAD_CONFIGS)])
def test_bad_config_is_one_line_naming_the_field(field, overrides):
  assert_one_line_error(config_with(**overrides), field)


def test_messages_list_the_allowed_values():
  message = assert_one_line_error(config_with(**{'model.arch': 'resnet'}), 'model.arch')
  assert all(arch in message for arch in ('dcgan', 'standard_cnn', 'mlp'))
  message = assert_one_line_error(config_with(**{'model.g_attention_res': 28}),
                                  'model.g_attention_res')
  assert '7, 14' in message


@pytest.mark.parametrize('path', sorted(glob.glob(os.path.join(ROOT, 'configs', '*.py'))))
def test_every_shipped_config_validates(path, tmp_path):
  name = os.path.splitext(os.path.basename(path))[0]
  if name == '__init__':
    return
  config = importlib.import_module(f'configs.{name}').get_config()
  if config.dataset == 'folder':  # Needs a folder of images (--config.data_dir=PATH).
    config.data_dir = str(tmp_path)
  config_validation.validate(config, num_devices=NUM_DEVICES)


def test_good_variants_validate():
  for overrides in (
      {'model.arch': 'standard_cnn', 'image_size': 32, 'model.g_attention_res': 16,
       'model.d_attention_res': 8},
      {'model.arch': 'mlp', 'image_size': 20},
      {'image_size': 64, 'model.g_attention_res': 32, 'model.d_attention_res': 4},
      {'eval_every_steps': 0, 'optim.lr_decay_steps': (100, 200), 'ema_decay': 0.999},
      {'dataset': 'emnist/letters', 'loss.label_smoothing': 'random',
       'loss.real_label_range': (0.9, 0.9)},
      {'some_field_a_later_change_adds': 'anything'},
  ):
    config_validation.validate(config_with(**overrides), num_devices=NUM_DEVICES)
  # Fields that are absent are skipped, not errors.
  config = default.get_config().to_dict()
  del config['optim']
  config_validation.validate(ml_collections.ConfigDict(config), num_devices=NUM_DEVICES)


def _leaf_paths(values, prefix=''):
  for key, value in values.items():
    if isinstance(value, dict):
      yield from _leaf_paths(value, f'{prefix}{key}.')
    else:
      yield f'{prefix}{key}'


FIELDS = sorted(_leaf_paths(default.get_config().to_dict()))
ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(['dcgan', 'mlp', 'standard_cnn', 'hinge', 'random', 'relu', 'batch',
                     'float32', 'cifar10', 'rollback', 'digits']),
    st.sampled_from([28, 32, 64, 16, 9, 0, -1, 0.5, 1.0]),
    st.lists(st.integers(-5, 100), max_size=4).map(tuple),
    st.lists(st.floats(-2, 2), max_size=3).map(tuple),
    st.dictionaries(st.text(alphabet='abc', max_size=3), st.integers(), max_size=2))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(FIELDS), ANY_VALUE), min_size=1, max_size=4))
def test_fuzzed_overrides_are_valid_or_one_line_errors(overrides):
  try:
    config_validation.validate(config_with(**dict(overrides)), num_devices=NUM_DEVICES)
  except ConfigError as e:
    assert '\n' not in str(e) and str(e).startswith('config.')


def test_cli_rejects_a_bad_config_at_once(tmp_path):
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=1')
  result = subprocess.run(
      [sys.executable, '-m', 'dcgan_jax.main', '--config=configs/test.py',
       f'--workdir={tmp_path}', '--config.model.arch=resnet'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode != 0
  errors = [line for line in result.stderr.splitlines() if line.startswith('Error:')]
  assert errors == ["Error: config.model.arch = 'resnet': must be one of 'dcgan', 'mlp', "
                    "'standard_cnn'."], result.stderr[-2000:]
  assert 'Traceback' not in result.stderr
  assert not os.path.exists(tmp_path / 'checkpoints')  # Stopped before anything was built.


@pytest.mark.parametrize('path, registry', [
    ('dataset', datasets.DATASETS), ('loss.type', losses.LOSSES),
    ('model.arch', networks.ARCHS), ('model.latent_dist', networks.LATENT_DISTS),
    ('eval_feature_extractor', evaluator.EXTRACTORS), ('divergence', divergence.POLICIES)])
def test_allowed_values_are_read_from_their_registries(path, registry, tmp_path):
  """Validation has no list of its own: every registry entry passes, the error names them all."""
  for name in registry:
    if path == 'model.arch' and name == 'standard_cnn':
      config_validation.validate(config_with(**{path: name, 'image_size': 32}), NUM_DEVICES)
    elif path == 'dataset' and name == 'folder':  # Needs a folder of images.
      config_validation.validate(config_with(**{path: name, 'data_dir': str(tmp_path)}),
                                 NUM_DEVICES)
    else:
      config_validation.validate(config_with(**{path: name}), NUM_DEVICES)
  with pytest.raises(ConfigError) as e:
    config_validation.validate(config_with(**{path: 'not_registered'}), NUM_DEVICES)
  assert all(repr(name) in str(e.value) for name in registry)


def test_a_new_loss_is_one_registry_entry(monkeypatch):
  monkeypatch.setitem(losses.LOSSES, 'least_squares', losses.LOSSES['minimax'])
  config_validation.validate(config_with(**{'loss.type': 'least_squares'}), NUM_DEVICES)
