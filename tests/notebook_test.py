"""The Colab notebook runs as shipped (headless, a few steps), so it cannot rot unseen."""

import os

import nbformat
from nbclient import NotebookClient

from tests import support


def test_colab_quickstart_notebook_runs(tfds_data_dir, tmp_path, monkeypatch):
  # The kernel inherits this environment: a few steps, no pip install (the test venv
  # has the project), the session's prepared digits, a fresh workdir.
  monkeypatch.setenv('DCGAN_JAX_NOTEBOOK_STEPS', '4')
  monkeypatch.setenv('DCGAN_JAX_NOTEBOOK_EVAL_SAMPLES', '64')
  monkeypatch.setenv('DCGAN_JAX_NOTEBOOK_SKIP_INSTALL', '1')
  monkeypatch.setenv('DCGAN_JAX_NOTEBOOK_WORKDIR', str(tmp_path / 'quickstart'))
  monkeypatch.setenv('TFDS_DATA_DIR', tfds_data_dir)
  monkeypatch.setenv('XLA_FLAGS', '--xla_force_host_platform_device_count=1')
  path = os.path.join(support.ROOT, 'experiments', 'colab_quickstart.ipynb')
  notebook = nbformat.read(path, as_version=4)
  # Any cell's error raises here (nbclient's CellExecutionError), naming the cell.
  NotebookClient(notebook, timeout=900, kernel_name='python3',
                 resources={'metadata': {'path': support.ROOT}}).execute()
  outputs = ''.join(out.get('text', '') for cell in notebook.cells if cell.cell_type == 'code'
                    for out in cell.get('outputs', []))
  assert 'fid: final' in outputs
  assert os.path.exists(tmp_path / 'quickstart' / 'samples' / 'step_0000004.png')
