"""The analysis commands behind `python -m dcgan_jax.analysis`, one function each."""

import json
import os

import jax
import numpy as np

from dcgan_jax.analysis import latent
from dcgan_jax.analysis import plots
from dcgan_jax.analysis import probes
from dcgan_jax.analysis import report as report_lib

SHEET_NAME = 'sheet'  # outdir/sheet.png + sheet.npz, shared by `sheet` and `arithmetic`.


def restore_models(config, workdir, which='latest'):
  """Restores a run's checkpoint and builds its modules.

  Returns:
    (generator, g_variables, discriminator, d_variables, step).
  """
  # Imported here so the plotting commands work without the training stack.
  from dcgan_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  from dcgan_jax.models import networks  # pylint: disable=g-import-not-at-top
  from dcgan_jax.training import train  # pylint: disable=g-import-not-at-top
  g_variables, d_variables, step = train.restore_generator_and_discriminator(
      config, workdir, which)
  generator, discriminator = networks.create_models(config, input_pipeline.num_channels(config))
  return generator, g_variables, discriminator, d_variables, step


def _generate_fn(config, workdir, which):
  generator, g_variables, _, _, step = restore_models(config, workdir, which)
  return latent.make_generate_fn(generator, g_variables), step


def _latents(config, num, salt):
  # A fixed key per command, so re-running a command redraws the same z.
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), salt)
  return latent.sample_latents(key, num, config.model.latent_dim, config.model.latent_dist)


def _write_json(path, data):
  with open(path, 'w') as f:
    json.dump(data, f, indent=2, default=float)
  return path


def report(config, workdir, outdir=None, which='latest', **kwargs):
  """Writes workdir/report/report.md; with a checkpoint it has an interpolation strip."""
  del outdir  # The report always lives in workdir/report.
  generate_fn = None
  if config is not None:
    try:
      generate_fn, _ = _generate_fn(config, workdir, which)
    except FileNotFoundError:
      pass  # No checkpoint yet: a report of the curves and samples only.
  return report_lib.write_report(workdir, config, generate_fn, **kwargs)


def plot(workdir, outdir, runs=(), tags=('fid',), smoothing=0.0):
  """Training curves of one run; with `runs`, also a comparison plot and table."""
  paths = plots.plot_training_curves(workdir, outdir, smoothing)
  if runs:
    all_runs = [workdir] + [r for r in runs if r != workdir]
    paths['comparison'] = plots.compare_runs(all_runs, os.path.join(outdir, 'comparison.png'),
                                             tags, smoothing)
    table = os.path.join(outdir, 'comparison.md')
    with open(table, 'w') as f:
      f.write(plots.runs_table(all_runs))
    paths['table'] = table
  return paths


def interpolate(config, workdir, outdir, which='latest', num_rows=4, num_steps=8,
                method='slerp'):
  """Writes interpolation strips between random z pairs (both methods if 'both')."""
  generate_fn, _ = _generate_fn(config, workdir, which)
  z = _latents(config, 2 * num_rows, 1)
  methods = ('slerp', 'lerp') if method == 'both' else (method,)
  paths = {}
  for m in methods:
    paths[m] = os.path.join(outdir, f'interpolation_{m}.png')
    latent.interpolation_strip(generate_fn, z[:num_rows], z[num_rows:], num_steps, m, paths[m])
  return paths


def sheet(config, workdir, outdir, which='latest', num_samples=64):
  """Writes a numbered sample sheet and its z, for picking arithmetic groups."""
  generate_fn, _ = _generate_fn(config, workdir, which)
  path = os.path.join(outdir, f'{SHEET_NAME}.png')
  latent.sample_sheet(generate_fn, _latents(config, num_samples, 2), path)
  return path


def arithmetic(config, workdir, outdir, a, b, c, which='latest', sheet_path=None,
               num_variations=8, noise_scale=0.25):
  """mean(A) - mean(B) + mean(C) with indices into a sheet written by `sheet`."""
  sheet_path = sheet_path or os.path.join(outdir, f'{SHEET_NAME}.npz')
  if not os.path.exists(sheet_path):
    raise FileNotFoundError(f'No sample sheet at {sheet_path}: run --what=sheet first and pick '
                            'the indices of groups A, B and C on its PNG.')
  z = latent.load_latents(sheet_path)
  generate_fn, _ = _generate_fn(config, workdir, which)
  name = 'arithmetic_' + '_'.join('-'.join(map(str, g)) for g in (a, b, c))
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 3)
  out = latent.arithmetic_grid(generate_fn, z, a, b, c, key, num_variations, noise_scale,
                               os.path.join(outdir, f'{name}.png'))
  np.savez(os.path.join(outdir, f'{name}.npz'), result_z=out['result_z'], a=a, b=b, c=c)
  return os.path.join(outdir, f'{name}.png')


def probe(config, workdir, outdir, which='latest', dataset=None, num_train=None,
          num_test=None, layers=None, c=0.01):
  """Linear SVM on D features vs. pixels; writes probe_confusion.png and probe.json."""
  _, _, discriminator, d_variables, step = restore_models(config, workdir, which)
  dataset = dataset or config.dataset
  results = probes.run_probes(discriminator, d_variables, dataset, config.image_size, outdir,
                              num_train, num_test, config.get('data_dir'), layers=layers,
                              c=c)
  summary = {'step': step, 'dataset': dataset,
             **{name: r.summary() for name, r in results.items()}}
  _write_json(os.path.join(outdir, 'probe.json'), summary)
  return summary


def cluster(config, workdir, outdir, which='latest', source='real', num_clusters=10,
            num_components=50, num_samples=2000, layers=None):
  """PCA + k-means on D features of real test digits or of G samples."""
  generator, g_variables, discriminator, d_variables, step = restore_models(
      config, workdir, which)
  true_labels = None
  if source == 'real':
    images, true_labels = probes.load_labelled_images(
        config.dataset, 'test', config.image_size, num_samples, config.get('data_dir'))
  elif source == 'generated':
    generate_fn = latent.make_generate_fn(generator, g_variables)
    images = latent.generate(generate_fn, _latents(config, num_samples, 4))
  else:
    raise ValueError(f'Unknown cluster source {source!r}; expected real or generated.')
  result = probes.run_clustering(discriminator, d_variables, images, true_labels, outdir,
                                 num_clusters, num_components, layers=layers, seed=config.seed)
  summary = {'step': step, 'source': source, 'num_examples': len(images), **result.summary()}
  _write_json(os.path.join(outdir, 'clusters.json'), summary)
  return summary
