"""The datasets a run can train on, by name: what to read and how (no TensorFlow here).

`config.dataset` is a key of DATASETS, optionally with a TFDS config
('emnist/letters'). This registry is the one list of datasets: the input
pipeline reads it, and config validation checks names against it without
importing TensorFlow. Adding a dataset is one entry here (plus its test).
'folder' is not a TFDS dataset: every image under config.data_dir
(dcgan_jax/data/folder.py).
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """How to read one dataset from TFDS."""
  tfds_name: str
  native_size: int  # Side of the (cropped) source images.
  num_channels: int
  train_split: str = 'train'
  eval_split: str = 'test'
  transpose: bool = False  # EMNIST stores its images transposed.
  center_crop: bool = False  # Crop the central square before resizing (celeb_a).
  local: bool = False  # Built on this machine from local files: no download, no network.
  # Where the images come from: 'tfds' (the builder `tfds_name`) or 'folder' (every image
  # under config.data_dir, dcgan_jax/data/folder.py; num_channels is then only a default:
  # config.num_channels or the images decide, see folder.num_channels).
  source: str = 'tfds'
  # The TFDS builder configs a run may name ('emnist/letters'); () = the builder has none.
  tfds_configs: tuple = ()


DATASETS = {
    'offline_mnist': DatasetSpec('offline_mnist', 28, 1, local=True),
    'mnist': DatasetSpec('mnist', 28, 1),
    'emnist': DatasetSpec('emnist/balanced', 28, 1, transpose=True,
                          tfds_configs=('balanced', 'byclass', 'bymerge', 'digits', 'letters',
                                        'mnist')),
    'fashion_mnist': DatasetSpec('fashion_mnist', 28, 1),
    'cifar10': DatasetSpec('cifar10', 32, 3),
    'celeb_a': DatasetSpec('celeb_a', 178, 3, center_crop=True),
    # Your own images: any size (native_size 0), centre-cropped; see dcgan_jax/data/folder.py.
    'folder': DatasetSpec('folder', 0, 3, train_split='all', eval_split='all', center_crop=True,
                          local=True, source='folder'),
}


def get_spec(dataset: str) -> DatasetSpec:
  """The spec of `dataset`: a key of DATASETS, or one with a TFDS config ('emnist/letters')."""
  base, _, tfds_config = dataset.partition('/')
  if base not in DATASETS:
    raise ValueError(f'Unknown dataset {dataset!r}; choose one of {sorted(DATASETS)}.')
  spec = DATASETS[base]
  if tfds_config and spec.source != 'tfds':
    raise ValueError(f'Dataset {base!r} takes no TFDS config; got {dataset!r}.')
  if tfds_config:
    spec = dataclasses.replace(spec, tfds_name=f'{spec.tfds_name.split("/")[0]}/{tfds_config}')
  return spec
