"""Writes PyTorch-format files by hand (no torch), for the loader tests.

The pure-Python pickler is subclassed so that torch globals
(`torch._utils._rebuild_tensor_v2`, `torch.FloatStorage`, TorchScript module
classes) can be named without importing torch.
"""

import collections
import io
import pickle
import struct
import zipfile

import numpy as np

_STORAGE_NAMES = {np.dtype(np.float32): 'FloatStorage', np.dtype(np.float64): 'DoubleStorage',
                  np.dtype(np.int64): 'LongStorage', np.dtype(np.float16): 'HalfStorage'}


class Global:
  """A reference to module.name written as a pickle GLOBAL."""

  def __init__(self, module, name):
    self.module, self.name = module, name
    self.__name__ = name

  def __call__(self, *args):
    raise NotImplementedError


class Module:
  """A TorchScript-like module: pickled as `cls()` followed by BUILD(state)."""

  def __init__(self, module, name, **state):
    self.cls = Global(module, name)
    self.state = state


class _Writer(pickle._Pickler):  # pylint: disable=protected-access

  def __init__(self, file, storages, legacy):
    super().__init__(file, protocol=2)
    self._storages = storages  # id(array) -> (key, flat array)
    self._legacy = legacy

  def save(self, obj, save_persistent_id=True):
    if isinstance(obj, Global):
      self.write(pickle.GLOBAL + f'{obj.module}\n{obj.name}\n'.encode())
      return
    super().save(obj, save_persistent_id)

  def persistent_id(self, obj):
    if isinstance(obj, _Storage):
      record = ('storage', Global('torch', _STORAGE_NAMES[obj.array.dtype]), obj.key,
                'cpu', obj.array.size)
      return record + (None,) if self._legacy else record
    return None

  def reducer_override(self, obj):
    if isinstance(obj, np.ndarray):
      storage = self._storages.setdefault(id(obj), _Storage(str(len(self._storages)), obj))
      strides = tuple(s // obj.itemsize for s in obj.strides)
      return (Global('torch._utils', '_rebuild_tensor_v2'),
              (storage, 0, obj.shape, strides, False, collections.OrderedDict()))
    if isinstance(obj, Module):
      return (obj.cls, (), obj.state)
    return NotImplemented


class _Storage:

  def __init__(self, key, array):
    self.key = key
    self.array = np.ascontiguousarray(array).reshape(-1)


def write_zip(obj, path, root='archive'):
  """torch.save-style zip of `obj` (dicts/lists of numpy arrays, Modules)."""
  storages = {}
  buf = io.BytesIO()
  _Writer(buf, storages, legacy=False).dump(obj)
  with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as z:
    z.writestr(f'{root}/data.pkl', buf.getvalue())
    for storage in storages.values():
      z.writestr(f'{root}/data/{storage.key}', storage.array.astype('<' + storage.array.dtype.str[1:]).tobytes())
    z.writestr(f'{root}/version', '3\n')


def write_legacy(obj, path):
  """Pre-1.6 torch.save stream of `obj`."""
  storages = {}
  buf = io.BytesIO()
  _Writer(buf, storages, legacy=True).dump(obj)
  with open(path, 'wb') as f:
    pickle.dump(0x1950a86a20f9469cfc6c, f, protocol=2)
    pickle.dump(1001, f, protocol=2)
    pickle.dump({'protocol_version': 1001, 'little_endian': True,
                 'type_sizes': {'short': 2, 'int': 4, 'long': 4}}, f, protocol=2)
    f.write(buf.getvalue())
    pickle.dump([s.key for s in storages.values()], f, protocol=2)
    for storage in storages.values():
      f.write(struct.pack('<q', storage.array.size))
      f.write(storage.array.tobytes())
