"""Tests of the torch-free reader of PyTorch files and of the weight conversion."""

import collections
import os

from flax import traverse_util
import jax
import numpy as np
import pytest

from tests.support import torch_files
from dcgan_jax.evaluation import inception
from dcgan_jax.evaluation import torch_format
from dcgan_jax.evaluation import weights


def _random_state(rng):
  return collections.OrderedDict([
      ('a.weight', rng.normal(size=(4, 3, 3, 3)).astype(np.float32)),
      ('a.bias', rng.normal(size=(4,)).astype(np.float32)),
      ('b.running_var', rng.random(size=(5,)).astype(np.float64)),
      ('b.num_batches_tracked', np.array(7, np.int64)),
  ])


@pytest.mark.parametrize('writer', [torch_files.write_zip, torch_files.write_legacy])
def test_reads_hand_written_state_dict(tmp_path, writer):
  state = _random_state(np.random.default_rng(0))
  path = str(tmp_path / 'state.pth')
  writer(state, path)
  loaded = torch_format.load(path)
  assert list(loaded) == list(state)
  for k, v in state.items():
    assert loaded[k].dtype == v.dtype and loaded[k].shape == v.shape
    np.testing.assert_array_equal(loaded[k], v)


def test_reads_torchscript_like_module_tree(tmp_path):
  rng = np.random.default_rng(1)
  w = rng.normal(size=(2, 3)).astype(np.float32)
  tree = torch_files.Module('__torch__.m', 'Outer', training=False,
                            inner=torch_files.Module('__torch__.m', 'Inner', weight=w,
                                                     stride=2, padding=[0, 1]))
  path = str(tmp_path / 'module.pt')
  torch_files.write_zip(tree, path, root='out_jit_module')
  loaded = torch_format.load(path)
  assert isinstance(loaded, torch_format.TorchObject)
  np.testing.assert_array_equal(torch_format.module_state_dict(loaded)['inner.weight'], w)
  attrs = torch_format.module_attributes(loaded)
  assert attrs['inner.stride'] == 2 and attrs['inner.padding'] == [0, 1]


def test_rejects_non_torch_files(tmp_path):
  path = tmp_path / 'junk.pth'
  path.write_bytes(b'not a checkpoint at all')
  with pytest.raises(torch_format.TorchFormatError):
    torch_format.load(str(path))


@pytest.mark.parametrize('legacy', [False, True])
def test_reads_files_written_by_torch(tmp_path, legacy):
  torch = pytest.importorskip('torch')
  gen = torch.Generator().manual_seed(0)
  base = torch.randn(6, 5, generator=gen)
  state = {
      'plain': torch.randn(3, 4, 2, generator=gen),
      'transposed': base.t(),  # Non-contiguous view.
      'offset': base[2:, 1:3],  # View with a storage offset.
      'double': torch.randn(4, generator=gen, dtype=torch.float64),
      'long': torch.arange(5),
      'param': torch.nn.Parameter(torch.randn(2, 2, generator=gen)),
  }
  path = str(tmp_path / 'torch.pth')
  torch.save(state, path, _use_new_zipfile_serialization=not legacy)
  loaded = torch_format.load(path)
  for k, v in state.items():
    np.testing.assert_array_equal(loaded[k], v.detach().numpy(), err_msg=k)


def _random_pytorch_fid_state(rng, with_logits):
  """A pytorch-fid-named state_dict with random values, from our model's shapes."""
  shapes = traverse_util.flatten_dict(jax.tree_util.tree_map(
      lambda s: s.shape, inception.variable_shapes(with_logits)))
  state = collections.OrderedDict()
  for (_, *layer, mod, name), shape in shapes.items():
    prefix = '.'.join(layer)
    if mod == 'fc':
      continue
    if name == 'kernel':
      h, w, i, o = shape
      state[f'{prefix}.conv.weight'] = rng.normal(size=(o, i, h, w)).astype(np.float32)
    elif name == 'bias':
      n = shape[0]
      state[f'{prefix}.bn.weight'] = np.ones(n, np.float32)
      state[f'{prefix}.bn.bias'] = rng.normal(size=n).astype(np.float32)
      state[f'{prefix}.bn.running_mean'] = rng.normal(size=n).astype(np.float32)
      state[f'{prefix}.bn.running_var'] = rng.random(size=n).astype(np.float32)
      state[f'{prefix}.bn.num_batches_tracked'] = np.array(0, np.int64)
  if with_logits:
    state['fc.weight'] = rng.normal(size=(1008, 2048)).astype(np.float32)
    state['fc.bias'] = rng.normal(size=1008).astype(np.float32)
  return state


@pytest.mark.parametrize('writer', [torch_files.write_zip, torch_files.write_legacy])
def test_converts_pytorch_fid_state_dict(tmp_path, writer):
  state = _random_pytorch_fid_state(np.random.default_rng(2), with_logits=True)
  path = str(tmp_path / weights.PTH_NAME)
  writer(state, path)
  flat = weights.convert_file(path)
  layer = ('Mixed_6b', 'branch7x7_2')
  np.testing.assert_array_equal(flat[('params', *layer, 'conv', 'kernel')],
                                state['Mixed_6b.branch7x7_2.conv.weight'].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(flat[('params', *layer, 'bn', 'bias')],
                                state['Mixed_6b.branch7x7_2.bn.bias'])
  np.testing.assert_array_equal(flat[('batch_stats', *layer, 'bn', 'var')],
                                state['Mixed_6b.branch7x7_2.bn.running_var'])
  np.testing.assert_array_equal(flat[('params', 'fc', 'kernel')], state['fc.weight'].T)

  # Through the cache command: converted once, then loadable with logits.
  cache = str(tmp_path / 'cache')
  assert weights.main(['--cache_dir', cache, '--source', path]) == 0
  variables, has_logits = weights.load_variables(cache=cache)
  assert has_logits
  np.testing.assert_array_equal(variables['params']['fc']['bias'], state['fc.bias'])


def test_rejects_scaled_batch_norm(tmp_path):
  state = _random_pytorch_fid_state(np.random.default_rng(3), with_logits=False)
  state['Mixed_5b.branch1x1.bn.weight'] = np.full(64, 2.0, np.float32)
  path = str(tmp_path / 'scaled.pth')
  torch_files.write_zip(state, path)
  with pytest.raises(ValueError, match='not all ones'):
    weights.convert_file(path)


def test_converts_torchscript_archive_layout(tmp_path):
  rng = np.random.default_rng(4)
  # Rebuild the fid-helper archive's module tree (names only) with random values.
  shapes = traverse_util.flatten_dict(jax.tree_util.tree_map(
      lambda s: s.shape, inception.variable_shapes(False)))
  tree, expected = {}, {}
  for ts_name, ours in weights._torchscript_layer_names().items():  # pylint: disable=protected-access
    h, w, i, o = shapes[('params', *ours.split('/'), 'conv', 'kernel')]
    tensors = {'weight': rng.normal(size=(o, i, h, w)).astype(np.float32),
               'beta': rng.normal(size=o).astype(np.float32),
               'mean': rng.normal(size=o).astype(np.float32),
               'var': rng.random(size=o).astype(np.float32)}
    expected[ours] = tensors
    node = tree
    for part in ts_name.split('.'):
      node = node.setdefault(part, {})
    node.update(tensors, stride=1, padding=0)

  def to_module(name, d):
    return torch_files.Module('__torch__.inceptionv3', name, **{
        k: to_module(k, v) if isinstance(v, dict) else v for k, v in d.items()})

  archive = to_module('WrapNet', {'net': {'layers': tree}})
  path = str(tmp_path / 'default_1.pt')
  torch_files.write_zip(archive, path, root='out_jit_module')
  flat = weights.convert_file(path)
  for ours, tensors in expected.items():
    layer = tuple(ours.split('/'))
    np.testing.assert_array_equal(flat[('params', *layer, 'conv', 'kernel')],
                                  tensors['weight'].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(flat[('batch_stats', *layer, 'bn', 'mean')], tensors['mean'])


def test_missing_weights_error_says_how_to_get_them(tmp_path):
  with pytest.raises(weights.WeightsError, match='python -m dcgan_jax.evaluation.weights'):
    weights.load_variables(cache=str(tmp_path))
  bad = tmp_path / 'bad.pt'
  bad.write_bytes(b'PK\x03\x04garbage')
  with pytest.raises(weights.WeightsError, match=weights.PTH_NAME):
    weights.load_variables(str(bad), cache=str(tmp_path))
  assert not os.path.exists(tmp_path / weights.CACHE_FILE)
