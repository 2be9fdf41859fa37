"""Runs one seed study's grid, resuming, and writes its tables, figures and reports.

  python -m experiments.run --study=001 --scale=cpu --outdir=experiments/results/cpu
  python -m experiments.run --study=003 --scale=full --outdir=/data/studies --only=lr_1e-4
  python -m experiments.run --study=002 --scale=cpu --outdir=/tmp/s --dry_run
  python -m experiments.run --study=003 --scale=cpu --outdir=experiments/results/cpu --collect_only

Each run trains in DIR/study_NNN/runs/NAME (`train.train_and_evaluate`, which
resumes from the run's latest checkpoint, so an interrupted study continues);
a finished run is marked by run_info.json and is not trained again. After the
per-run analysis its checkpoints are deleted unless --keep_checkpoints; a run
that kept them goes on from its last one when its budget (num_train_steps) grows.
"""

import contextlib
import csv
import importlib
import json
import logging as py_logging
import math
import os
import shutil
import sys
import threading
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

from experiments import common
from experiments import verdicts

STUDIES = ('000', '001', '002', '003', '004')

FLAGS = flags.FLAGS
flags.DEFINE_enum('study', None, STUDIES, 'Which study to run.')
flags.DEFINE_enum('scale', 'cpu', common.SCALES,
                  'cpu: the grid on the offline digits in minutes; full: the study\'s data and budget.')
flags.DEFINE_string('outdir', None, 'Results go to OUTDIR/study_NNN/.')
flags.DEFINE_list('only', [], 'Run only these runs of the grid (names); the tables still list '
                  'every finished run.')
flags.DEFINE_bool('dry_run', False, 'Build and check every config, print the plan, train nothing.')
flags.DEFINE_bool('collect_only', False, 'Train nothing: rebuild the tables, verdicts and '
                  'figures from the finished runs under OUTDIR (an error if there are none).')
flags.DEFINE_multi_string('override', [], 'key=value applied to every run after the grid, '
                          'e.g. --override=num_train_steps=10 --override=data_dir=/data/tfds.')
flags.DEFINE_bool('keep_checkpoints', False, 'Keep checkpoints/ and best_checkpoint/ of finished runs.')
flags.DEFINE_integer('seeds', None, 'Seeds (replicas, config.num_seeds) per run; default the '
                     "scale's (common.SEEDS).")

# Columns of results.csv after the run name and the switches that vary.
METRIC_COLUMNS = ('dataset', 'steps', 'd_loss', 'g_loss', 'd_acc_real', 'd_acc_fake', 'fid',
                  'kid', 'is', 'best_fid', 'best_fid_step', 'fid_change_last_quarter',
                  'fid_converged_at', 'wall_time_s', 'steps_per_s')
RUN_INFO = 'run_info.json'
CHECKPOINT_DIRS = ('checkpoints', 'best_checkpoint')


def get_study(study_id):
  return importlib.import_module(f'experiments.study_{study_id}')


def parse_overrides(items):
  """['a.b=1e-4', 'c=(1, 2)'] -> {'a.b': 1e-4, 'c': (1, 2)}; values as Python literals."""
  import ast  # pylint: disable=g-import-not-at-top
  out = {}
  for item in items:
    key, sep, text = item.partition('=')
    if not sep:
      raise ValueError(f'--override wants key=value, got {item!r}.')
    try:
      out[key.strip()] = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      out[key.strip()] = text  # A bare string, e.g. data_dir=/data.
  return out


def build_grid(study, scale, extra_overrides=None):
  """[(name, config, overrides)] of a study at a scale, every config checked.

  `extra_overrides` apply on top of every run's (e.g. a smaller step count).
  """
  base = study.base_config(scale)
  runs = []
  for name, overrides in study.grid(scale):
    config = common.apply_overrides(base, overrides)
    if extra_overrides:
      config = common.apply_overrides(config, extra_overrides)
    validate(config)
    runs.append((name, config, overrides))
  names = [name for name, _, _ in runs]
  if len(set(names)) != len(names):
    raise ValueError(f'Duplicate run names in study grid: {names}.')
  return runs


def validate(config):
  """The library's config check, when this checkout has it (fails on the first bad field)."""
  try:
    from dcgan_jax import config_validation  # pylint: disable=g-import-not-at-top
  except ImportError:
    return
  config_validation.validate(config, num_devices=1)


def _get(config, path):
  node = config
  for part in path.split('.'):
    node = node[part]
  return node


# Schedules that follow a run's budget: not switches of the study.
BOOKKEEPING = ('eval_every_steps', 'sample_every_steps', 'checkpoint_every_steps',
               'log_every_steps', 'instance_noise_decay_steps')


def varied_switches(runs):
  """The override paths whose value differs between the grid's runs (in first-seen order)."""
  paths = []
  for _, _, overrides in runs:
    paths += [p for p in overrides if p not in paths and p not in BOOKKEEPING]
  varied = []
  for path in paths:
    values = {repr(_get(config, path)) for _, config, _ in runs}
    if len(values) > 1:
      varied.append(path)
  return varied


def dataset_label(study, name, config, scale):
  """The run's dataset; at cpu scale also what it stands in for."""
  if scale == 'cpu':
    stands_for = getattr(study, 'STANDS_IN_FOR', {}).get(name)
    label = f'{config.dataset} {config.image_size}px'
    return f'{label} (for {stands_for})' if stands_for else label
  return f'{config.dataset} {config.image_size}px'


# ---------------------------------------------------------------------------
# Collecting metrics.
# ---------------------------------------------------------------------------


def load_run_info(workdir):
  path = os.path.join(workdir, RUN_INFO)
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def save_run_info(workdir, info):
  """Writes run_info.json atomically: a kill mid-write leaves the old file whole."""
  path = os.path.join(workdir, RUN_INFO)
  with open(path + '.tmp', 'w') as f:
    json.dump(info, f, indent=2, default=float)
  os.replace(path + '.tmp', path)


def collect_metrics(workdir, info=None):
  """Final and best metrics of a run from its TensorBoard logs (analysis.plots).

  Returns:
    {'steps', 'd_loss', 'g_loss', 'd_acc_real', 'd_acc_fake', 'fid', 'kid', 'is',
     'best_fid', 'best_fid_step', 'fid_change_last_quarter', 'fid_converged_at',
     'wall_time_s', 'steps_per_s'}; absent values are None.
    fid_change_last_quarter is the relative change of the FID over the last
    quarter of the run (`common.last_quarter_change`), the measure of the
    plateau rule; fid_converged_at the earliest budget at which its reading
    holds (`common.converged_at`; None: none yet).

    With replicas (config.num_seeds > 1) each metric is the mean over seeds,
    `<metric>_ci95` the half-width of its 95% t interval and `<metric>_seeds`
    the per-seed values.
  """
  from dcgan_jax.analysis import plots  # pylint: disable=g-import-not-at-top
  info = info if info is not None else load_run_info(workdir)
  scalars = plots.read_scalars(workdir)
  summary = plots.summarize_scalars(scalars)
  row = {}
  for tag in ('d_loss', 'g_loss', 'd_acc_real', 'd_acc_fake', 'fid', 'kid', 'is'):
    row.update(_over_seeds(tag, [s['final'] for s in plots.per_seed(summary, tag)]))
  row['steps'] = max((e['final_step'] for e in summary.values()), default=None)
  fid = summary.get('fid', {})
  row['best_fid'] = fid.get('best')
  row['best_fid_step'] = fid.get('best_step')
  fid_seeds = plots.per_seed(scalars, 'fid')
  row.update(_over_seeds('fid_change_last_quarter', [
      common.last_quarter_change(*curve) for curve in fid_seeds]))
  row['fid_converged_at'] = (common.converged_at(common.plateau_readings(fid_seeds))
                             if fid_seeds else None)
  row['wall_time_s'] = info.get('wall_time_s')
  # Training speed as the loop measured it (ReportProgress), evaluation excluded.
  if 'steps_per_sec' in scalars:
    row['steps_per_s'] = float(np.mean(scalars['steps_per_sec'][1]))
  elif row['wall_time_s'] and row['steps']:
    row['steps_per_s'] = row['steps'] / row['wall_time_s']
  else:
    row['steps_per_s'] = None
  return row


def _over_seeds(name, values):
  """{name: mean, name_ci95: half-width, name_seeds: values} (just {name: v} for one seed)."""
  from dcgan_jax.training import replicas  # pylint: disable=g-import-not-at-top
  if not values:
    return {name: None}
  if len(values) == 1 or not all(isinstance(v, (int, float)) for v in values):
    return {name: values[0]}
  mean, half_width = replicas.mean_and_ci(values)
  return {name: mean, f'{name}_ci95': half_width, f'{name}_seeds': list(values)}


def _cell(value, precision=4):
  if value is None:
    return '-'
  if isinstance(value, float):
    if math.isnan(value):
      return 'nan'
    return f'{value:.{precision}g}'
  if isinstance(value, (tuple, list)):
    return '(' + ', '.join(str(v) for v in value) + ')'
  return str(value)


def _md_cell(row, column):
  """'mean ± ci95' where the row has an interval for the column, else the value."""
  half_width = row.get(f'{column}_ci95')
  if half_width is None:
    return _cell(row.get(column))
  return f'{_cell(row.get(column), 3)} ± {_cell(half_width, 2)}'


def _csv_cell(value):
  if value is None:
    return ''
  if isinstance(value, (tuple, list)):
    return _cell(value)
  return value


def write_results(outdir, rows, varied, extra_columns=(), title='', notes=()):
  """Writes results.csv and results.md: one row per run.

  Args:
    outdir: the study's results folder.
    rows: [{'run': name, <varied path>: value, <METRIC_COLUMNS>..., <extra>...}].
    varied: the switch paths that vary between runs (columns after 'run').
    extra_columns: analysis columns (probe accuracy, silhouette, ...).
    title, notes: the Markdown page's heading and paragraphs under it.

  Returns:
    (csv path, md path).
  """
  os.makedirs(outdir, exist_ok=True)
  columns = ['run', *varied, *METRIC_COLUMNS, *extra_columns]
  # The CSV also holds each metric's interval and per-seed values (runs with seeds).
  csv_columns = [c2 for c in columns for c2 in (c, f'{c}_ci95', f'{c}_seeds')
                 if c2 == c or any(c2 in row for row in rows)]
  csv_path = os.path.join(outdir, 'results.csv')
  with open(csv_path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(csv_columns)
    for row in rows:
      # Full precision in the CSV; tuples (e.g. lr_decay_steps) as '(a, b)'.
      writer.writerow([_csv_cell(row.get(c)) for c in csv_columns])
  md_path = os.path.join(outdir, 'results.md')
  lines = [f'# {title}' if title else '# Results', '']
  lines += [n + '\n' for n in notes]
  lines += ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
  for row in rows:
    lines.append('| ' + ' | '.join(_md_cell(row, c) for c in columns) + ' |')
  lines.append('')
  with open(md_path, 'w') as f:
    f.write('\n'.join(lines))
  return csv_path, md_path


# ---------------------------------------------------------------------------
# Per-run analysis (needs the run's checkpoint, so it runs before they go).
# ---------------------------------------------------------------------------


def analyse_run(name, config, workdir, figdir, analyses, scale):
  """The per-run report and the study's analyses; returns their numbers.

  With seeds (config.num_seeds > 1) every seed is analysed on its own (its
  single-seed config and slice of the stacked variables; figures of seed 0
  only) and each number is reported as mean, 95% interval and per-seed values.
  """
  from dcgan_jax.analysis import commands  # pylint: disable=g-import-not-at-top
  from dcgan_jax.analysis import latent  # pylint: disable=g-import-not-at-top
  from dcgan_jax.analysis import report  # pylint: disable=g-import-not-at-top
  from dcgan_jax.training import replicas  # pylint: disable=g-import-not-at-top
  generator, g_variables, discriminator, d_variables, _ = commands.restore_models(
      config, workdir)
  if config.num_seeds == 1:
    results = _analyse_seed(name, config, generator, g_variables, discriminator, d_variables,
                            figdir, analyses, scale)
  else:
    per_seed = [_analyse_seed(name if i == 0 else f'{name}_seed{i}', replicas.replica_config(
        config, i), generator, replicas.take(g_variables, i), discriminator,
                              replicas.take(d_variables, i), figdir, analyses, scale)
                for i in range(config.num_seeds)]
    results = {}
    for key in per_seed[0]:
      results.update(_over_seeds(key, [r[key] for r in per_seed]))
    g_variables = replicas.take(g_variables, 0)
    config = replicas.replica_config(config, 0)
  report.write_report(workdir, config, latent.make_generate_fn(generator, g_variables),
                      metrics=results, title=f'Run report: {name}')
  return results


def _analyse_seed(name, config, generator, g_variables, discriminator, d_variables, figdir,
                  analyses, scale):
  from dcgan_jax.analysis import latent  # pylint: disable=g-import-not-at-top
  generate_fn = latent.make_generate_fn(generator, g_variables)
  results = {}
  if 'latent' in analyses:
    results.update(latent_figures(name, config, generate_fn, figdir))
  if 'probe' in analyses:
    results.update(probe(name, config, discriminator, d_variables, figdir, scale))
  if 'cluster' in analyses:
    results.update(cluster(name, config, generator, g_variables, discriminator, d_variables,
                           figdir))
  return results


def latent_figures(name, config, generate_fn, figdir):
  """Interpolation strips (slerp and lerp) and averaged-z arithmetic on a numbered sheet."""
  import jax  # pylint: disable=g-import-not-at-top
  from dcgan_jax.analysis import latent  # pylint: disable=g-import-not-at-top
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 1)
  z = latent.sample_latents(key, 8, config.model.latent_dim, config.model.latent_dist)
  for method in ('slerp', 'lerp'):
    latent.interpolation_strip(generate_fn, z[:4], z[4:], 8, method,
                               os.path.join(figdir, f'{name}_interpolation_{method}.png'))
  sheet_z = latent.sample_latents(jax.random.fold_in(key, 2), 64, config.model.latent_dim,
                                  config.model.latent_dist)
  latent.sample_sheet(generate_fn, sheet_z, os.path.join(figdir, f'{name}_sheet.png'))
  groups = arithmetic_groups(config, generate_fn, sheet_z)
  if groups is None:
    return {}
  a, b, c, classes = groups
  out = latent.arithmetic_grid(generate_fn, sheet_z, a, b, c, jax.random.fold_in(key, 3),
                               path=os.path.join(figdir, f'{name}_arithmetic.png'))
  results = {'arithmetic': f'mean({classes[0]}) - mean({classes[1]}) + mean({classes[2]})'}
  if config.dataset == 'offline_mnist':
    predicted = classify_digits(out['result_images'])
    results['arithmetic_result_classes'] = ' '.join(str(p) for p in predicted)
  return results


def classify_digits(images):
  """The digit classifier's labels for images in [-1, 1] (the FID extractor's classifier)."""
  from dcgan_jax.evaluation import digits  # pylint: disable=g-import-not-at-top
  variables, _ = digits.load()
  logits = digits.DigitsCNN().apply(variables, digits.preprocess(np.asarray(images)))['logits']
  return np.argmax(np.asarray(logits), -1)


def arithmetic_groups(config, generate_fn, z):
  """Groups A, B, C of three z each, picked automatically.

  Faces would be picked by eye on the numbered sheet (`--what=sheet`); digits
  have no attributes to pick, so the classifier labels the sheet and A, B, C
  are three samples each of the three most frequent classes: the result shows
  whether averaged-z arithmetic lands on a coherent digit.
  """
  if config.dataset != 'offline_mnist':
    return None
  from dcgan_jax.analysis import latent  # pylint: disable=g-import-not-at-top
  labels = classify_digits(latent.generate(generate_fn, z))
  classes = [int(c) for c in np.argsort(-np.bincount(labels, minlength=10), kind='stable')]
  groups = [np.flatnonzero(labels == c)[:3] for c in classes[:3]]
  if any(len(g) == 0 for g in groups):
    return None
  return [g.tolist() for g in groups] + [classes[:3]]


# The pixel probe and the labelled images are the same for every run of a
# study: computed once per process (a study runs in one).
_LABELLED = {}
_PIXEL_PROBES = {}


def _labelled_images(dataset, image_size, data_dir):
  from dcgan_jax.analysis import probes  # pylint: disable=g-import-not-at-top
  key = (dataset, image_size, data_dir)
  if key not in _LABELLED:
    _LABELLED[key] = tuple(probes.load_labelled_images(dataset, split, image_size, None, data_dir)
                           for split in ('train', 'test'))
  return _LABELLED[key]


def probe(name, config, discriminator, d_variables, figdir, scale):
  """Linear SVM on D features vs. raw pixels (offline digits at cpu scale, else CIFAR-10).

  The steps of `probes.run_probes`, with the pixel probe computed once per study.
  """
  from dcgan_jax.analysis import probes  # pylint: disable=g-import-not-at-top
  dataset = 'offline_mnist' if scale == 'cpu' else 'cifar10'
  data_dir = config.get('data_dir')
  (train_x, train_y), (test_x, test_y) = _labelled_images(dataset, config.image_size, data_dir)
  # As run_probes: the exact solver up to 20,000 examples, SGD (as Beltran) above.
  solver = 'liblinear' if len(train_x) <= 20_000 else 'sgd'
  feature_fn = probes.make_feature_fn(discriminator, d_variables, pool='max')
  results = {'discriminator': probes.linear_svm_probe(
      probes.extract_features(feature_fn, train_x), train_y,
      probes.extract_features(feature_fn, test_x), test_y, name='discriminator', solver=solver)}
  key = (dataset, config.image_size, data_dir)
  if key not in _PIXEL_PROBES:
    _PIXEL_PROBES[key] = probes.linear_svm_probe(train_x, train_y, test_x, test_y, name='pixels',
                                                 solver=solver)
  results['pixels'] = _PIXEL_PROBES[key]
  probes.plot_confusion_matrices(
      results, os.path.join(figdir, f'{name}_probe_confusion.png'),
      probes.CIFAR10_CLASSES if dataset == 'cifar10' else None)
  return {'probe_d_features_acc': results['discriminator'].accuracy,
          'probe_pixels_acc': results['pixels'].accuracy,
          'probe_num_features': results['discriminator'].num_features}


def cluster(name, config, generator, g_variables, discriminator, d_variables, figdir):
  """PCA + k-means (k = 10) on D features of real test digits and of G's samples."""
  import jax  # pylint: disable=g-import-not-at-top
  from dcgan_jax.analysis import latent  # pylint: disable=g-import-not-at-top
  from dcgan_jax.analysis import probes  # pylint: disable=g-import-not-at-top
  dataset = config.dataset
  images, labels = probes.load_labelled_images(dataset, 'test', config.image_size, 2_000,
                                               config.get('data_dir'))
  real = probes.run_clustering(discriminator, d_variables, images, labels, seed=config.seed)
  probes.plot_clusters(real, os.path.join(figdir, f'{name}_clusters_real.png'), labels,
                       title=f'{name}, real test digits:')
  z = latent.sample_latents(jax.random.fold_in(jax.random.PRNGKey(config.seed), 4), 1_000,
                            config.model.latent_dim, config.model.latent_dist)
  samples = latent.generate(latent.make_generate_fn(generator, g_variables), z)
  fake = probes.run_clustering(discriminator, d_variables, samples, seed=config.seed)
  return {'silhouette_real': real.silhouette, 'compactness_real': real.compactness,
          'nmi_real': real.nmi, 'silhouette_gen': fake.silhouette,
          'compactness_gen': fake.compactness}


# ---------------------------------------------------------------------------
# Study-level figures.
# ---------------------------------------------------------------------------


def sample_panels(workdirs, path, max_cols=4, label_height=14):
  """The latest sample grid of every run side by side, each under its run's name.

  Tiled with PIL at the grids' own resolution (no resampling), so the PNG
  stays small enough to commit.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from PIL import ImageDraw  # pylint: disable=g-import-not-at-top
  from dcgan_jax.data import images as images_lib  # pylint: disable=g-import-not-at-top
  from dcgan_jax.analysis import report  # pylint: disable=g-import-not-at-top
  grids = [(label, report.latest_sample_grid(w)) for label, w in workdirs.items()]
  grids = [(label, Image.open(p).convert('RGB')) for label, p in grids if p]
  if not grids:
    return None
  width = max(g.width for _, g in grids)
  height = max(g.height for _, g in grids) + label_height
  ncols = min(max_cols, len(grids))
  nrows = -(-len(grids) // ncols)
  canvas = Image.new('RGB', (ncols * width, nrows * height), (255, 255, 255))
  draw = ImageDraw.Draw(canvas)
  for i, (label, grid) in enumerate(grids):
    row, col = divmod(i, ncols)
    left, top = col * width, row * height
    draw.text((left + 4, top + 1), label, fill=(0, 0, 0))
    canvas.paste(grid, (left, top + label_height))
  image = np.asarray(canvas)
  if (image == image[..., :1]).all():  # Gray samples: one channel is a third of the bytes.
    image = image[..., :1]
  return images_lib.save_image(image, path)


def real_data_floors(configs):
  """{run: scores of held-out real images} (`train.real_data_scores`), once per data set.

  Runs whose data cannot be read here (say, a full-scale data set not
  downloaded where the tables are rebuilt) have none; a warning says why.
  """
  from dcgan_jax import errors  # pylint: disable=g-import-not-at-top
  from dcgan_jax.training import train  # pylint: disable=g-import-not-at-top
  by_data, floors = {}, {}
  for name, config in configs.items():
    if not config.eval_num_samples:  # Evaluation off: no FID to read against it.
      continue
    key = tuple(str(config.get(k)) for k in (
        'dataset', 'data_dir', 'image_size', 'num_channels', 'eval_feature_extractor',
        'eval_preprocess', 'eval_num_samples'))
    if key not in by_data:
      try:
        evaluator = train.make_evaluator(config)
        by_data[key] = train.real_data_scores(
            evaluator, config, train.reference_stats(evaluator, config))
      except (errors.UserError, ValueError, OSError) as e:
        logging.warning('%s: no held-out real-image scores (%s).', name, errors.one_line(e))
        by_data[key] = None
    if by_data[key] is not None:
      floors[name] = by_data[key]
  return floors


def _floor_note(floors, labels):
  """One sentence on the held-out real images' scores, for the results page.

  labels: {run: its data set's label}; named only when the study has several.
  """
  by_data = {labels[name]: scores for name, scores in floors.items()}
  if not by_data:
    return None
  parts = [', '.join(f'{k.upper()} {v:.3g}' for k, v in sorted(scores.items())
                     if not k.endswith('_std')) + (f' ({label})' if len(by_data) > 1 else '')
           for label, scores in by_data.items()]
  return ('Held-out real images (as many as the reference, not among them) against the '
          'reference: ' + '; '.join(parts) + '. A generator that had learnt the data exactly '
          'would score about this: the floor of the curves (dotted in fid_seeds).')


def study_figures(workdirs, figdir, floors=None):
  """FID, losses and D accuracy of all runs on shared axes, FID per seed, and samples.

  floors: {run: held-out real images' scores} (`real_data_floors`), drawn in fid_seeds.
  """
  from dcgan_jax.analysis import plots  # pylint: disable=g-import-not-at-top
  paths = {
      'fid': plots.compare_runs(workdirs, os.path.join(figdir, 'fid.png'), ('fid',), logy=True),
      'losses': plots.compare_runs(workdirs, os.path.join(figdir, 'losses.png'),
                                   ('d_loss', 'g_loss'), smoothing=0.6),
      'd_accuracy': plots.compare_runs(workdirs, os.path.join(figdir, 'd_accuracy.png'),
                                       ('d_acc_real', 'd_acc_fake'), smoothing=0.6),
      # The window of the plateau rule (common.PLATEAU_WINDOW) shaded, each
      # seed's fitted trend in it dashed.
      # Under each panel its last half on a linear axis, where a plateau shows.
      'fid_seeds': plots.seed_curves(
          workdirs, os.path.join(figdir, 'fid_seeds.png'), 'fid',
          trend_from=common.PLATEAU_WINDOW, zoom_from=2 * common.PLATEAU_WINDOW - 1,
          floors={n: f['fid'] for n, f in (floors or {}).items()}),
  }
  samples = sample_panels(workdirs, os.path.join(figdir, 'samples.png'))
  if samples:
    paths['samples'] = samples
  return paths


# ---------------------------------------------------------------------------
# The study.
# ---------------------------------------------------------------------------


class StoppedEarly(Exception):
  """Training was stopped by a signal before its last step."""


class BudgetChanged(ValueError):
  """A finished run's steps differ from its grid's, and it cannot be extended."""


class NothingToCollect(ValueError):
  """--collect_only found no finished run of the study under the output directory."""


def finished_steps(workdir, info):
  """The step a finished run stopped at: run_info's, or (older runs) its logs'."""
  if 'steps' in info:
    return info['steps']
  from dcgan_jax.analysis import plots  # pylint: disable=g-import-not-at-top
  summary = plots.summarize_scalars(plots.read_scalars(workdir))
  return max((e['final_step'] for e in summary.values()), default=0)


def _has_checkpoint(workdir):
  path = os.path.join(workdir, CHECKPOINT_DIRS[0])
  return os.path.isdir(path) and bool(os.listdir(path))


def _clear_stale_outputs(name, workdir):
  """Deletes the logs of an unfinished run that has no checkpoint to resume from.

  Such a run trains again from step 0 (say, an interrupted run committed without
  its checkpoints, or one stopped before its first checkpoint); its old event
  files and sample grids would otherwise mix with the new ones.
  """
  if not os.path.isdir(workdir):
    return
  stale = [f for f in os.listdir(workdir) if f.startswith('events.out.tfevents.')
           or f in ('samples', 'report', RUN_INFO)]
  if stale:
    logging.warning('%s: not finished and no checkpoint to resume from; deleting its old '
                    'outputs (%s) and training it from step 0.', name, ', '.join(sorted(stale)))
  for f in stale:
    path = os.path.join(workdir, f)
    if os.path.isdir(path):
      shutil.rmtree(path)
    else:
      os.remove(path)


@contextlib.contextmanager
def recording_wall_time(workdir, info, every_s=60.0):
  """Keeps info['wall_time_s'] and run_info.json current while the block runs.

  The wall time of training (with its evaluations) in this invocation is added
  to what earlier, interrupted invocations recorded, and saved every `every_s`
  seconds, so a run killed without a signal it can catch (SIGKILL, the end of
  a machine's session) loses at most that much of its recorded time.
  """
  base, start = info.get('wall_time_s', 0.0), time.time()
  done = threading.Event()

  def save():
    info['wall_time_s'] = base + time.time() - start
    save_run_info(workdir, info)

  def save_until_done():
    while not done.wait(every_s):
      save()

  saver = threading.Thread(target=save_until_done, daemon=True)
  saver.start()
  try:
    yield
  finally:
    done.set()
    saver.join()
    save()


def train_run(name, config, workdir, figdir, analyses, scale, keep_checkpoints):
  """Trains (or resumes) one run, analyses it, marks it finished; returns its run_info."""
  from dcgan_jax.training import train  # pylint: disable=g-import-not-at-top
  info = load_run_info(workdir)
  if info.get('finished'):
    trained = finished_steps(workdir, info)
    if trained == config.num_train_steps:
      logging.info('%s: finished earlier, not trained again.', name)
      return info
    if trained > config.num_train_steps or not os.path.isdir(
        os.path.join(workdir, CHECKPOINT_DIRS[0])):
      raise BudgetChanged(
          f'{name} finished at step {trained} in {workdir}, but the grid now asks for '
          f'{config.num_train_steps} steps, and ' +
          ('a run cannot be shortened' if trained > config.num_train_steps else
           'its checkpoints were deleted (it finished without --keep_checkpoints)') +
          f': delete {workdir} to train it again from step 0, or use another --outdir.')
    # Training depends on num_train_steps only through where it stops, so
    # going on from the last checkpoint trains what a fresh longer run would;
    # only the evaluations before `trained` keep the old budget's spacing.
    logging.info('%s: finished at step %d; extending it from its checkpoint to %d.',
                 name, trained, config.num_train_steps)
    info = {k: v for k, v in info.items() if k in ('wall_time_s',)}
  elif not _has_checkpoint(workdir):
    _clear_stale_outputs(name, workdir)
    info = {}
  os.makedirs(workdir, exist_ok=True)
  with recording_wall_time(workdir, info):
    g_state, _ = train.train_and_evaluate(config, workdir)
  step = int(np.min(g_state.step))  # The same for every seed of the run.
  if step < config.num_train_steps:
    # SIGTERM/SIGINT stopped training with a checkpoint: not finished, and the
    # study stops here too; the same command resumes it.
    raise StoppedEarly(f'{name} stopped at step {step} of '
                       f'{config.num_train_steps}; run the command again to resume.')
  start = time.time()
  info['analysis'] = analyse_run(name, config, workdir, figdir, analyses, scale)
  info['analysis_time_s'] = time.time() - start
  info['finished'] = True
  info['steps'] = step
  save_run_info(workdir, info)
  if not keep_checkpoints:
    for sub in CHECKPOINT_DIRS:
      shutil.rmtree(os.path.join(workdir, sub), ignore_errors=True)
  return info


def run_study(study_id, scale, outdir, only=(), dry_run=False, overrides=None,
              keep_checkpoints=False, collect_only=False):
  """Runs (or plans, or only collects) a study; returns the rows of its results table."""
  study = get_study(study_id)
  runs = build_grid(study, scale, overrides)
  known = {name for name, _, _ in runs}
  unknown = set(only) - known
  if unknown:
    raise ValueError(f'--only names {sorted(unknown)} are not in study {study_id}: {sorted(known)}.')
  varied = varied_switches(runs)
  study_dir = os.path.join(outdir, f'study_{study_id}')
  figdir = os.path.join(study_dir, 'figures')
  if dry_run:
    for name, config, _ in runs:
      if only and name not in only:
        continue
      print(f'{name}: {dataset_label(study, name, config, scale)}, {config.model.arch}, '
            f'{config.num_train_steps} steps, batch {config.batch_size}, ' +
            ', '.join(f'{p}={_cell(_get(config, p))}' for p in varied) +
            f'; analyses: {", ".join(study.analyses(name, scale)) or "-"}')
    return []

  study_start = time.time()
  for name, config, _ in runs:
    if collect_only or (only and name not in only):
      continue
    logging.info('Study %s, run %s: %d steps.', study_id, name, config.num_train_steps)
    train_run(name, config, os.path.join(study_dir, 'runs', name), figdir,
              study.analyses(name, scale), scale, keep_checkpoints)

  rows, workdirs, extra = [], {}, []
  for name, config, _ in runs:
    workdir = os.path.join(study_dir, 'runs', name)
    info = load_run_info(workdir)
    if not info.get('finished'):
      if collect_only:
        logging.warning('%s: not finished in %s; left out of the tables.', name, workdir)
      continue  # Not run yet (--only): left out of the tables.
    workdirs[name] = workdir
    row = {'run': name, **{p: _get(config, p) for p in varied},
           **collect_metrics(workdir, info),
           'dataset': dataset_label(study, name, config, scale)}
    analysis = info.get('analysis', {})
    row.update(analysis)
    # An analysis over seeds stores name, name_ci95 and name_seeds: one column, name.
    extra += [key for key in analysis if key not in extra and not (
        key.endswith(('_ci95', '_seeds')) and key.rsplit('_', 1)[0] in analysis)]
    rows.append(row)
  if not rows:
    if collect_only:
      raise NothingToCollect(
          f'--collect_only: no finished run of study {study_id} under {study_dir}/runs '
          f'(expected {", ".join(sorted(known))}). Check --outdir: it is the folder that '
          f'holds study_{study_id}/.')
    return rows
  configs = {name: config for name, config, _ in runs if name in workdirs}
  floors = real_data_floors(configs)
  study_figures(workdirs, figdir, floors)
  extractor = runs[0][1].eval_feature_extractor
  notes = [f'Scale: **{scale}**. FID, KID and IS are in the feature space of the '
           f'`{extractor}` extractor' +
           (' (a digit classifier: comparable only with each other, never with Inception '
            'numbers).' if extractor == 'digits' else '.'),
           'Final values are those of the last logged step; best_fid is the lowest FID of the '
           'evaluations during training. wall_time_s covers training and its evaluations; '
           'steps_per_s is the training loop\'s own measure.',
           'Verdicts (Welch over seeds): [verdicts.md](verdicts.md). '
           'Figures: ' + ', '.join(f'[{f}](figures/{f}.png)' for f in (
               'fid', 'fid_seeds', 'losses', 'd_accuracy', 'samples')) + '. Per-run reports: ' +
           ', '.join(f'[{n}](runs/{n}/report/report.md)' for n in workdirs) + '.']
  floor_note = _floor_note(floors, {n: f'{c.dataset} {c.image_size}px'
                                    for n, c in configs.items()})
  if floor_note:
    notes.insert(1, floor_note)
  write_results(study_dir, rows, varied, extra, title=f'Study {study.TITLE}', notes=notes)
  verdicts.write_verdicts(study_dir, study)
  logging.info('Study %s (%s scale): %d runs collected in %.0f s; results in %s.', study_id,
               scale, len(rows), time.time() - study_start, study_dir)
  return rows


class _QuietLibraries(py_logging.Filter):
  """Drops the INFO lines orbax and TFDS write on every save and read (warnings stay)."""

  def filter(self, record):
    noisy = ('/orbax/', '/tensorflow_datasets/', '/tensorboard/')
    return record.levelno >= py_logging.WARNING or not any(n in record.pathname for n in noisy)


def main(argv):
  logging.get_absl_handler().addFilter(_QuietLibraries())
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  if not FLAGS.study:
    raise app.UsageError('--study is required.')
  if not FLAGS.outdir and not FLAGS.dry_run:
    raise app.UsageError('--outdir is required (except with --dry_run).')
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')
  if not FLAGS.dry_run:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    # tf.data only: keep TensorFlow off the accelerators JAX uses.
    tf.config.experimental.set_visible_devices([], 'GPU')
    tf.config.experimental.set_visible_devices([], 'TPU')
  try:
    overrides = parse_overrides(FLAGS.override)
    if FLAGS.seeds is not None:
      overrides['num_seeds'] = FLAGS.seeds
    run_study(FLAGS.study, FLAGS.scale, FLAGS.outdir or '', FLAGS.only, FLAGS.dry_run,
              overrides, FLAGS.keep_checkpoints, FLAGS.collect_only)
  except StoppedEarly as e:
    logging.warning('%s', e)
    sys.exit(1)
  except (BudgetChanged, NothingToCollect) as e:
    sys.exit(f'error: {e}')


if __name__ == '__main__':
  app.run(main)
