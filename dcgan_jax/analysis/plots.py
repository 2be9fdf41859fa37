"""Training curves read back from a run's TensorBoard event files, as PNGs and tables."""

import collections
import glob
import math
import os

import matplotlib
matplotlib.use('Agg')  # Files only; never open a window.
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=wrong-import-position
from tensorboard.util import tensor_util  # pylint: disable=wrong-import-position

# Which way is better for the metrics that have a "best"; other scalars
# (losses, D outputs) only have a final value worth reporting.
LOWER_IS_BETTER = ('fid', 'kid')
HIGHER_IS_BETTER = ('is',)
LOSS_TAGS = ('d_loss', 'g_loss')
D_PROB_TAGS = ('d_real', 'd_fake')
D_ACC_TAGS = ('d_acc_real', 'd_acc_fake')
QUALITY_TAGS = ('fid', 'kid', 'is')
# The run's feature extractor decides the space: Inception, or the digit
# classifier (eval_feature_extractor='digits'), whose numbers compare only
# with each other.
TITLES = {'fid': 'FID, in the extractor\'s feature space (lower is better)',
          'kid': 'KID, in the extractor\'s feature space (lower is better)',
          'is': 'IS, Inception or digit-classifier logits (higher is better)'}


def _event_dirs(workdir, recursive):
  pattern = os.path.join(workdir, '**' if recursive else '', 'events.out.tfevents.*')
  return sorted({os.path.dirname(p) for p in glob.glob(pattern, recursive=recursive)})


def read_scalars(workdir, tags=None, recursive=False):
  """Reads every scalar of a run, however it was written.

  clu's writer (tf.summary) stores scalars as tensor summaries of the 'scalars'
  plugin; older tf.compat.v1 / tensorboardX writers store simple values. Both
  are read. A resumed run rewrites the steps after its last checkpoint; for a
  step written more than once the last write (by wall time) wins, which is the
  curve of the run that continued.

  Args:
    workdir: the run's directory (clu writes its event files there).
    tags: names to keep (default all).
    recursive: also read event files in subdirectories (merged by tag).

  Returns:
    {tag: (steps int64 [T], values float64 [T])}, sorted by step.
  """
  records = collections.defaultdict(list)  # tag -> [(wall_time, step, value)]
  for directory in _event_dirs(workdir, recursive):
    accumulator = event_accumulator.EventAccumulator(
        directory, size_guidance={event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0},
        purge_orphaned_data=False)  # We resolve rewritten steps ourselves, below.
    accumulator.Reload()
    available = accumulator.Tags()
    for tag in available['scalars']:
      if tags is None or tag in tags:
        records[tag].extend((e.wall_time, e.step, e.value) for e in accumulator.Scalars(tag))
    for tag in available['tensors']:
      if tags is not None and tag not in tags:
        continue
      plugin = accumulator.SummaryMetadata(tag).plugin_data.plugin_name
      if plugin != 'scalars':  # Images, histograms, text are tensors too.
        continue
      for e in accumulator.Tensors(tag):
        value = tensor_util.make_ndarray(e.tensor_proto)
        if value.size == 1:
          records[tag].append((e.wall_time, e.step, float(value.reshape(()))))
  scalars = {}
  for tag, rows in records.items():
    latest = {}
    for _, step, value in sorted(rows, key=lambda r: r[0]):
      latest[step] = value
    steps = np.array(sorted(latest), np.int64)
    scalars[tag] = (steps, np.array([latest[s] for s in steps], np.float64))
  return scalars


def smooth(values, weight):
  """TensorBoard's debiased exponential moving average (weight 0 = raw)."""
  if not weight:
    return np.asarray(values, np.float64)
  smoothed, last, debias = [], 0.0, 1.0
  for v in values:
    last = weight * last + (1 - weight) * v
    debias *= weight
    smoothed.append(last / (1 - debias))
  return np.array(smoothed)


def summarize_scalars(scalars):
  """Final and (for FID/KID/IS) best value of each scalar.

  Returns:
    {tag: {'final_step', 'final', and for quality metrics 'best_step', 'best'}}.
  """
  summary = {}
  for tag, (steps, values) in scalars.items():
    if not len(steps):
      continue
    entry = {'final_step': int(steps[-1]), 'final': float(values[-1])}
    finite = np.isfinite(values)
    if tag in LOWER_IS_BETTER + HIGHER_IS_BETTER and finite.any():
      pick = np.nanargmin if tag in LOWER_IS_BETTER else np.nanargmax
      i = int(pick(np.where(finite, values, np.nan)))
      entry.update(best_step=int(steps[i]), best=float(values[i]))
    summary[tag] = entry
  return summary


def per_seed(by_tag, tag):
  """[by_tag['<tag>/replica_i'] for each seed i] of a run with replicas (config.num_seeds).

  `by_tag` is read_scalars' or summarize_scalars' dict; a run of one seed gives
  [by_tag[tag]], and a tag never logged [].
  """
  seeds = sorted((int(t.rsplit('_', 1)[1]), value) for t, value in by_tag.items()
                 if t.startswith(f'{tag}/replica_'))
  if seeds:
    return [value for _, value in seeds]
  return [by_tag[tag]] if tag in by_tag else []


def window_trend(steps, values, start=0.75):
  """The trend of a curve over its last part, robust to one outlying point.

  The Theil-Sen line (scipy: the median of the slopes between every pair of
  points) through log(values) at the points from `start` (a fraction of the
  last step) on: log-linear, so its slope is a relative rate of change.

  Returns:
    (steps in the window, the fitted values there, the fitted relative change
    over the window's length: -0.2 is a fall of 20%), or None when fewer than
    two points are in the window.
  """
  from scipy import stats  # pylint: disable=g-import-not-at-top
  steps = np.asarray(steps, np.float64)
  values = np.asarray(values, np.float64)
  if not len(steps):
    return None
  window = steps >= start * steps[-1]
  if window.sum() < 2:
    return None
  fit = stats.theilslopes(np.log(values[window]), steps[window])
  fitted = np.exp(fit.intercept + fit.slope * steps[window])
  return steps[window], fitted, float(np.expm1(fit.slope * (1.0 - start) * steps[-1]))


def save_figure(fig, path):
  """Lays out `fig`, writes it to `path` (its folder made), closes it; returns the path."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def _plot_panel(ax, scalars, tags, smoothing, title, ylabel, hline=None):
  for tag in tags:
    if tag in scalars:
      steps, values = scalars[tag]
      line, = ax.plot(steps, smooth(values, smoothing), label=tag, lw=1.2)
      if smoothing:  # The raw curve faintly behind, as TensorBoard does.
        ax.plot(steps, values, color=line.get_color(), alpha=0.25, lw=0.8)
  if hline is not None:
    ax.axhline(hline, color='gray', ls='--', lw=0.8)
  ax.set_title(title)
  ax.set_xlabel('step')
  ax.set_ylabel(ylabel)
  ax.grid(alpha=0.3)
  if ax.lines:
    ax.legend(fontsize='small')


def plot_losses(scalars, path, smoothing=0.0):
  """D and G losses over steps."""
  fig, ax = plt.subplots(figsize=(7, 4))
  _plot_panel(ax, scalars, LOSS_TAGS, smoothing, 'Losses', 'loss')
  return save_figure(fig, path)


def plot_discriminator(scalars, path, smoothing=0.0):
  """D's mean probability of 'real' and its accuracy on real and fake batches.

  The dashed line at 0.5 is where D can no longer tell the two apart.
  """
  fig, axes = plt.subplots(1, 2, figsize=(12, 4))
  _plot_panel(axes[0], scalars, D_PROB_TAGS, smoothing, 'Mean D(x)', 'probability real', 0.5)
  _plot_panel(axes[1], scalars, D_ACC_TAGS, smoothing, 'D accuracy', 'accuracy', 0.5)
  for ax in axes:
    ax.set_ylim(-0.02, 1.02)
  return save_figure(fig, path)


def plot_quality(scalars, path):
  """FID / KID / IS over steps, one panel each; None when none was logged."""
  present = [t for t in QUALITY_TAGS if t in scalars]
  if not present:
    return None
  fig, axes = plt.subplots(1, len(present), figsize=(5 * len(present), 4), squeeze=False)
  for ax, tag in zip(axes[0], present):
    _plot_panel(ax, scalars, [tag], 0.0, TITLES[tag], tag)
    ax.lines[0].set_marker('o')
  return save_figure(fig, path)


def plot_training_curves(workdir, outdir=None, smoothing=0.0):
  """Writes the loss, D and quality plots of a run that has them.

  Returns:
    {'losses' | 'discriminator' | 'quality': png path} for the plots written.
  """
  outdir = outdir or os.path.join(workdir, 'plots')
  scalars = read_scalars(workdir)
  paths = {}
  if any(t in scalars for t in LOSS_TAGS):
    paths['losses'] = plot_losses(scalars, os.path.join(outdir, 'losses.png'), smoothing)
  if any(t in scalars for t in D_PROB_TAGS + D_ACC_TAGS):
    paths['discriminator'] = plot_discriminator(
        scalars, os.path.join(outdir, 'discriminator.png'), smoothing)
  quality = plot_quality(scalars, os.path.join(outdir, 'quality.png'))
  if quality:
    paths['quality'] = quality
  return paths


def _as_runs(runs):
  """{label: workdir} from a dict or a list of workdirs (labelled by basename)."""
  if isinstance(runs, dict):
    return dict(runs)
  return {os.path.basename(os.path.normpath(w)): w for w in runs}


def compare_runs(runs, path, tags=('fid',), smoothing=0.0, logy=False):
  """Plots the same scalar(s) of several runs on shared axes, one panel a tag.

  Args:
    runs: {label: workdir} or a list of workdirs.
    path: output PNG.
    tags: scalar names, e.g. ('fid',) or ('d_loss', 'g_loss').
    smoothing: EMA weight for noisy scalars like losses.
    logy: log-scale y axes (FID spans 10..300 across the studies' runs).

  Runs of several seeds (config.num_seeds) log `<tag>/ci95`: their mean is
  drawn with a band of its 95% interval over the seeds.

  Returns:
    The path.
  """
  runs = _as_runs(runs)
  band_tags = tuple(f'{tag}/ci95' for tag in tags)
  data = {label: read_scalars(workdir, tags + band_tags) for label, workdir in runs.items()}
  ncols = min(len(tags), 3)
  nrows = math.ceil(len(tags) / ncols)
  fig, axes = plt.subplots(nrows, ncols, figsize=(6 * ncols, 4 * nrows), squeeze=False)
  for ax, tag in zip(axes.flat, tags):
    for label, scalars in data.items():
      if tag in scalars:
        steps, values = scalars[tag]
        mean = np.asarray(smooth(values, smoothing))
        line, = ax.plot(steps, mean, label=label, lw=1.2,
                        marker='o' if len(steps) < 30 else None, ms=3)
        band = scalars.get(f'{tag}/ci95')
        if band is not None and len(band[1]) == len(values):
          half = np.asarray(smooth(band[1], smoothing))
          ax.fill_between(steps, mean - half, mean + half, color=line.get_color(), alpha=0.2,
                          lw=0)
    ax.set_title(TITLES.get(tag, tag))
    ax.set_xlabel('step')
    ax.grid(alpha=0.3)
    if logy:
      ax.set_yscale('log')
    if ax.lines:
      ax.legend(fontsize='small')
  for ax in list(axes.flat)[len(tags):]:
    ax.axis('off')
  return save_figure(fig, path)


def seed_curves(runs, path, tag='fid', logy=True, trend_from=None, zoom_from=None, floors=None):
  """One panel per run: the curve of `tag` of each seed, and their mean in bold.

  Where compare_runs draws a band, this shows what the band hides: whether
  seeds differ in kind (one stuck while the others converge) or only in degree.

  Args:
    runs: {label: workdir} or a list of workdirs; runs of one seed draw one line.
    path: output PNG.
    tag: the scalar, e.g. 'fid' (seeds logged as '<tag>/replica_i').
    logy: log-scale y axes, shared by every panel.
    trend_from: if set, a fraction of the last step from which the panels are
      shaded and each seed's `window_trend` is drawn dashed (e.g. 0.75: the
      last quarter, the window of the studies' plateau rule).
    zoom_from: if set, a second row of panels under each row: the curves from
      this fraction of the last step on, each on its own linear y axis, where
      a late plateau (or its absence) is visible; a log axis spanning the
      whole run draws it flat, and so would a range shared with a run whose
      FID is a hundred times higher (the full panels above compare runs).
    floors: {label: value} of runs to mark with a dotted line, e.g. the FID of
      held-out real images (`train.real_data_scores`): the curve's floor.

  Returns:
    The path, or None when no run logged `tag`.
  """
  curves = {}  # {label: (per-seed curves, the mean's curve)}
  for label, workdir in _as_runs(runs).items():
    scalars = read_scalars(workdir)
    if seeds := per_seed(scalars, tag):
      curves[label] = (seeds, scalars.get(tag))
  if not curves:
    return None
  floors = floors or {}
  ncols = min(len(curves), 4)
  nrows = math.ceil(len(curves) / ncols)
  rows_per = 2 if zoom_from is not None else 1
  fig, axes = plt.subplots(rows_per * nrows, ncols, figsize=(3.6 * ncols, 2.8 * rows_per * nrows),
                           squeeze=False)
  full, zoom = axes[::rows_per], axes[1::2] if zoom_from is not None else None
  for i, (label, (seeds, mean)) in enumerate(curves.items()):
    row, col = divmod(i, ncols)
    last = max(int(steps[-1]) for steps, _ in seeds)
    panels = [(full[row, col], 0.0, label)]
    if zoom is not None:
      panels.append((zoom[row, col], zoom_from,
                     f'{label}: from step {int(zoom_from * last)}, linear'))
    for ax, start, title in panels:
      _seed_panel(ax, seeds, mean, start * last, last, trend_from, floors.get(label))
      ax.set_title(title, fontsize='small' if start else 'medium')
    if logy:
      full[row, col].set_yscale('log')
  _share_ylim(full)
  for ax in axes[-1]:
    ax.set_xlabel('step')
  axes.flat[0].legend(fontsize='x-small')
  for ax in axes.flat:
    if not ax.lines:
      ax.axis('off')
  fig.suptitle(f'{TITLES.get(tag, tag)}, per seed', fontsize='medium')
  return save_figure(fig, path)


def _share_ylim(axes):
  """Gives the panels of `axes` that drew something the union of their y ranges.

  So that runs compare at a glance.
  """
  used = [ax for ax in axes.flat if ax.lines]
  if not used:
    return
  lo = min(ax.get_ylim()[0] for ax in used)
  hi = max(ax.get_ylim()[1] for ax in used)
  for ax in used:
    ax.set_ylim(lo, hi)


def _seed_panel(ax, seeds, mean, from_step, last, trend_from, floor):
  """Each seed's curve from `from_step` on (trend dashed), the mean in bold, the floor dotted."""
  if trend_from is not None:
    ax.axvspan(trend_from * last, last, color='grey', alpha=0.12, lw=0)
  ax.grid(alpha=0.3)
  for i, (steps, values) in enumerate(seeds):
    keep = np.asarray(steps) >= from_step
    line, = ax.plot(np.asarray(steps)[keep], np.asarray(values)[keep], lw=0.9, alpha=0.8,
                    label=f'seed {i}' if len(seeds) > 1 else None)
    trend = window_trend(steps, values, trend_from) if trend_from is not None else None
    if trend is not None:
      ax.plot(trend[0], trend[1], color=line.get_color(), ls='--', lw=1.4)
  if mean is not None and len(seeds) > 1:
    keep = np.asarray(mean[0]) >= from_step
    ax.plot(np.asarray(mean[0])[keep], np.asarray(mean[1])[keep], color='black', lw=1.8,
            label='mean')
  if floor is not None:
    ax.axhline(floor, color='grey', ls=':', lw=1.4, label='held-out real images')


def runs_table(runs, tags=('fid', 'kid', 'is', 'd_loss', 'g_loss'), precision=4):
  """A Markdown table with one row per run: best (where defined) and final values.

  Quality metrics show 'best (step) / final'; other scalars show the final
  value. Missing scalars show '-'.
  """
  runs = _as_runs(runs)
  header = '| run | ' + ' | '.join(tags) + ' |'
  lines = [header, '|' + '---|' * (len(tags) + 1)]
  for label, workdir in runs.items():
    summary = summarize_scalars(read_scalars(workdir, tags))
    cells = []
    for tag in tags:
      entry = summary.get(tag)
      if entry is None:
        cells.append('-')
      elif 'best' in entry:
        cells.append(f"{entry['best']:.{precision}g} ({entry['best_step']}) / "
                     f"{entry['final']:.{precision}g}")
      else:
        cells.append(f"{entry['final']:.{precision}g}")
    lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'
