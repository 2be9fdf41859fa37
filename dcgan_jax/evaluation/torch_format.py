"""Reads PyTorch checkpoints (torch.save files and TorchScript archives) without torch.

Three on-disk layouts are supported:

* zip (torch.save since PyTorch 1.6, and every TorchScript archive): one zip
  with `<root>/data.pkl` (the object graph) and `<root>/data/<key>` (one raw
  little-endian record per storage). TorchScript archives also hold code, which
  is not needed: the modules in `data.pkl` unpickle to `TorchObject`s carrying
  their attributes.
* legacy (torch.save before 1.6, `_use_new_zipfile_serialization=False`): a
  stream of pickles (magic number, protocol, system info, the object graph, the
  list of storage keys) followed by each storage as an int64 element count and
  its raw bytes.

Tensors come back as numpy arrays (`np.ndarray`, C-contiguous copies).
"""

import collections
import io
import pickle
import struct
import zipfile

import numpy as np

_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_LEGACY_PROTOCOL = 1001

# Storage class names as they appear in pickles -> numpy dtypes.
_STORAGE_DTYPES = {
    'DoubleStorage': np.float64,
    'FloatStorage': np.float32,
    'HalfStorage': np.float16,
    'LongStorage': np.int64,
    'IntStorage': np.int32,
    'ShortStorage': np.int16,
    'CharStorage': np.int8,
    'ByteStorage': np.uint8,
    'BoolStorage': np.bool_,
}
# torch dtype names (newer pickles may name a dtype instead of a storage class).
_DTYPE_NAMES = {
    'float64': np.float64, 'double': np.float64, 'float32': np.float32,
    'float': np.float32, 'float16': np.float16, 'half': np.float16,
    'int64': np.int64, 'long': np.int64, 'int32': np.int32, 'int': np.int32,
    'int16': np.int16, 'int8': np.int8, 'uint8': np.uint8, 'bool': np.bool_,
}


class TorchFormatError(ValueError):
  """The file is not a PyTorch checkpoint this reader understands."""


class _StorageType:
  """Stands for `torch.FloatStorage` & co. in the pickle stream."""

  def __init__(self, dtype):
    self.dtype = np.dtype(dtype)


class _DType:
  """Stands for a `torch.float32` & co. pickled as a global."""

  def __init__(self, dtype):
    self.dtype = np.dtype(dtype)


class TorchObject:
  """A pickled object of a class we do not import (e.g. a TorchScript module).

  Attributes set by the pickle's BUILD op (the module's `__getstate__` dict)
  land in `state` and as attributes.
  """

  def __init__(self, *args, **kwargs):
    self.type_name = type(self).__qualname__
    self.args = args
    self.state = {}

  def __setstate__(self, state):
    if isinstance(state, dict):
      self.state = state
      self.__dict__.update(state)
    else:
      self.state = {'_state': state}

  def __repr__(self):
    return f'<{self.type_name} {sorted(self.state)}>'


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
  """Mirrors torch._utils._rebuild_tensor_v2 on a flat numpy storage."""
  del unused  # requires_grad, backward hooks, metadata.
  size, stride = tuple(size), tuple(stride)
  if not size:
    return np.array(storage[storage_offset])
  itemsize = storage.dtype.itemsize
  view = np.lib.stride_tricks.as_strided(
      storage[storage_offset:], shape=size, strides=[s * itemsize for s in stride],
      writeable=False)
  return np.ascontiguousarray(view)


class _LazyStorage:
  """A legacy storage whose bytes have not been read yet."""

  def __init__(self, key, dtype):
    self.key, self.dtype = key, np.dtype(dtype)
    self.ops = []  # Slices applied before the data is known.

  def __getitem__(self, index):
    lazy = _LazyStorage(self.key, self.dtype)
    lazy.ops = self.ops + [index]
    return lazy


class _LazyTensor:
  """A legacy tensor waiting for its storage."""

  def __init__(self, storage, args):
    self.storage, self.args = storage, args


def _rebuild_any(storage, *args):
  """Tensor now (zip files), or once its bytes are read (legacy files)."""
  if isinstance(storage, _LazyStorage):
    return _LazyTensor(storage, args)
  return _rebuild_tensor(storage, *args)


def _rebuild_parameter(data, requires_grad=None, backward_hooks=None, *unused):
  del requires_grad, backward_hooks, unused
  return data


class _Unpickler(pickle.Unpickler):
  """Resolves torch globals to numpy stand-ins; everything else to TorchObject."""

  _SAFE = {
      ('collections', 'OrderedDict'): collections.OrderedDict,
      ('builtins', 'set'): set,
      ('builtins', 'frozenset'): frozenset,
      ('builtins', 'slice'): slice,
      ('torch._utils', '_rebuild_tensor_v2'): _rebuild_any,
      ('torch._utils', '_rebuild_tensor'): _rebuild_any,
      ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
      ('torch._utils', '_rebuild_parameter_with_state'): _rebuild_parameter,
  }

  def __init__(self, file, load_storage):
    super().__init__(file)
    self._load_storage = load_storage
    self._classes = {}

  def find_class(self, module, name):
    if (module, name) in self._SAFE:
      return self._SAFE[(module, name)]
    if module == 'torch' and name in _STORAGE_DTYPES:
      return _StorageType(_STORAGE_DTYPES[name])
    if module == 'torch' and name in _DTYPE_NAMES:
      return _DType(_DTYPE_NAMES[name])
    if module == 'torch' and name == 'UntypedStorage':
      return _StorageType(np.uint8)
    # Never import arbitrary code: any other class becomes a plain record.
    key = f'{module}.{name}'
    if key not in self._classes:
      self._classes[key] = type(name, (TorchObject,), {'__qualname__': key})
    return self._classes[key]

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and pid and pid[0] == 'storage'):
      raise TorchFormatError(f'Unknown persistent id in pickle: {pid!r:.200}')
    storage_type, key, location = pid[1], pid[2], pid[3]
    numel = pid[4] if len(pid) > 4 else None
    del location
    if isinstance(storage_type, (_StorageType, _DType)):
      dtype = storage_type.dtype
    else:
      raise TorchFormatError(f'Unknown storage type {storage_type!r}.')
    storage = self._load_storage(str(key), dtype, numel)
    if len(pid) > 5 and pid[5] is not None:
      # Legacy view of a larger storage: (view_key, offset, view_size).
      _, offset, view_size = pid[5]
      storage = storage[offset:offset + view_size]
    return storage


def _load_zip(path_or_file):
  """Loads a zip-format torch.save file or TorchScript archive."""
  with zipfile.ZipFile(path_or_file) as archive:
    names = archive.namelist()
    pkl = [n for n in names if n.endswith('/data.pkl') and n.count('/') == 1]
    if not pkl:
      pkl = [n for n in names if n == 'data.pkl']
    if not pkl:
      raise TorchFormatError('zip archive has no data.pkl, so it is not a torch file.')
    root = pkl[0][:-len('data.pkl')]

    def load_storage(key, dtype, numel):
      raw = archive.read(f'{root}data/{key}')
      # Untyped (byte) storages are reinterpreted by the tensor that uses them.
      array = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder('<'))
      if numel is not None and array.size < numel and dtype != np.uint8:
        raise TorchFormatError(f'storage {key} holds {array.size} < {numel} elements.')
      return array.astype(np.dtype(dtype), copy=False)

    return _Unpickler(io.BytesIO(archive.read(pkl[0])), load_storage).load()


def _load_legacy(file):
  """Loads a pre-1.6 (non-zip) torch.save stream."""

  def plain_load():
    return _Unpickler(file, _no_storage).load()

  magic = plain_load()
  if magic != _LEGACY_MAGIC:
    raise TorchFormatError('not a torch.save file (bad magic number).')
  if plain_load() != _LEGACY_PROTOCOL:
    raise TorchFormatError('unsupported legacy torch.save protocol version.')
  plain_load()  # System info (endianness, type sizes).

  # The object graph names storages; their bytes follow it in the stream, in the
  # order of the key list, so tensors are built in a second pass.
  pending = {}

  def lazy_storage(key, dtype, numel):
    pending[key] = np.dtype(dtype)
    return _LazyStorage(key, dtype)

  result = _Unpickler(file, lazy_storage).load()
  keys = plain_load()
  storages = {}
  for key in keys:
    dtype = pending.get(str(key), np.dtype(np.uint8))
    (numel,) = struct.unpack('<q', file.read(8))
    raw = file.read(numel * dtype.itemsize)
    if len(raw) != numel * dtype.itemsize:
      raise TorchFormatError('truncated legacy torch.save file.')
    storages[str(key)] = np.frombuffer(raw, dtype.newbyteorder('<')).astype(dtype)
  return _resolve_lazy(result, storages)


def _no_storage(key, dtype, numel):
  raise TorchFormatError('unexpected tensor in a legacy header pickle.')


def _resolve_lazy(obj, storages):
  """Replaces lazy tensors in `obj` (nested dicts/lists/objects) by arrays."""
  if isinstance(obj, _LazyTensor):
    storage = storages[obj.storage.key]
    for op in obj.storage.ops:
      storage = storage[op]
    return _rebuild_tensor(storage, *obj.args)
  if isinstance(obj, dict):
    for k in list(obj):
      obj[k] = _resolve_lazy(obj[k], storages)
    return obj
  if isinstance(obj, list):
    return [_resolve_lazy(v, storages) for v in obj]
  if isinstance(obj, tuple):
    return tuple(_resolve_lazy(v, storages) for v in obj)
  if isinstance(obj, TorchObject):
    obj.__setstate__(_resolve_lazy(obj.state, storages))
    return obj
  return obj


def load(path):
  """Loads a torch.save file or TorchScript archive as numpy-backed objects.

  Args:
    path: file path.

  Returns:
    The unpickled object: dicts of numpy arrays for a state_dict, a
    `TorchObject` tree for a TorchScript module.

  Raises:
    TorchFormatError: if the file is neither format.
    FileNotFoundError: if there is no such file.
  """
  with open(path, 'rb') as f:
    head = f.read(4)
    f.seek(0)
    if head.startswith(b'PK'):
      return _load_zip(f)
    try:
      return _load_legacy(f)
    except (pickle.UnpicklingError, EOFError, struct.error) as e:
      raise TorchFormatError(f'{path} is not a PyTorch file ({e}).') from e


def module_state_dict(obj, prefix=''):
  """Flattens a TorchScript module tree into {'a.b.weight': array}."""
  out = {}
  if isinstance(obj, np.ndarray):
    out[prefix[:-1]] = obj
  elif isinstance(obj, TorchObject):
    for name, value in obj.state.items():
      out.update(module_state_dict(value, f'{prefix}{name}.'))
  elif isinstance(obj, dict):
    for name, value in obj.items():
      out.update(module_state_dict(value, f'{prefix}{name}.'))
  return out


def module_attributes(obj, prefix=''):
  """Flattens a TorchScript module tree's non-tensor attributes (stride, padding)."""
  out = {}
  if isinstance(obj, TorchObject):
    for name, value in obj.state.items():
      if isinstance(value, (TorchObject, dict)):
        out.update(module_attributes(value, f'{prefix}{name}.'))
      elif not isinstance(value, np.ndarray):
        out[f'{prefix}{name}'] = value
  elif isinstance(obj, dict):
    for name, value in obj.items():
      out.update(module_attributes(value, f'{prefix}{name}.'))
  return out
