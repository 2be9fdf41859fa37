"""One run per workdir; a resume with another model names the fields that differ."""

import errno
import fcntl
import os

import pytest

from dcgan_jax.training import train
from dcgan_jax.training import workdir


def test_a_second_run_on_a_held_workdir_stops_at_once(config, tmp_path):
  # Another process's lock, as flock sees it: a separate open file description.
  os.makedirs(tmp_path, exist_ok=True)
  with open(tmp_path / '.lock', 'w') as holder:
    holder.write('pid 12345')
    holder.flush()
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with pytest.raises(workdir.WorkdirError, match='in use by a run still going .pid 12345.'):
      train.train_and_evaluate(config, str(tmp_path))
  assert not os.path.exists(tmp_path / 'checkpoints')  # Stopped before anything was written.


def test_the_lock_is_released_after_a_run(config, tmp_path):
  config.num_train_steps = 1
  train.train_and_evaluate(config, str(tmp_path))
  with open(tmp_path / '.lock') as f:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # Free again: no BlockingIOError.


@pytest.mark.parametrize('field, value', [('model.g_features', 16), ('model.latent_dim', 8),
                                          ('image_size', 32), ('model.spectral_norm', True),
                                          ('ema_decay', 0.99), ('num_seeds', 2)])
def test_resuming_with_another_model_names_the_field(config, tmp_path, field, value):
  config.num_train_steps = 1
  train.train_and_evaluate(config, str(tmp_path))
  node = config
  *parents, leaf = field.split('.')
  for part in parents:
    node = node[part]
  node[leaf] = value
  expected = 'ema_on' if field == 'ema_decay' else field
  with pytest.raises(workdir.WorkdirError, match=f'another model .*{expected}: saved'):
    train.train_and_evaluate(config, str(tmp_path))


def test_a_workdir_that_is_a_file_is_a_one_line_error(config, tmp_path):
  path = tmp_path / 'not_a_folder'
  path.write_text('x')
  with pytest.raises(workdir.WorkdirError, match='cannot be used') as e:
    train.train_and_evaluate(config, str(path))
  assert '\n' not in str(e.value) and e.value.exit_code == 2


def test_a_read_only_workdir_is_a_one_line_environment_error(config, tmp_path, monkeypatch):
  def read_only(*unused_args, **unused_kwargs):
    raise OSError(errno.EROFS, os.strerror(errno.EROFS))

  monkeypatch.setattr(workdir.os, 'makedirs', read_only)
  with pytest.raises(workdir.WorkdirError, match='Read-only file system') as e:
    train.train_and_evaluate(config, str(tmp_path / 'w'))
  assert '\n' not in str(e.value) and e.value.exit_code == 1
