"""Time to a good model: this project's training against an ordinary PyTorch loop, end to end.

`python -m dcgan_jax.benchmark --config=configs/quickstart.py --mode=time_to_quality
--torch_reference` trains the quickstart model twice, on the same 5,000
offline digits with the same architecture, initialisation, loss, optimiser and
batch size: once with `training.train.train_and_evaluate` (input pipeline,
pmapped step, logging, sample grids, checkpoints: what a user runs) and once
with `torch_reference.quickstart` (DataLoader, torch.optim.Adam). Both are
scored every `eval_every_steps` with this project's digit-classifier FID on
`eval_num_samples` samples, and both clocks run through their scoring, so each
curve is FID against the wall seconds a user waits. The result: the seconds
each needs to first reach a target FID and their ratio, and the curves as a
PNG; with --runs=N, N seeds of each, and medians.
"""

import os
import tempfile
import time

import numpy as np


def _jax_curve(config, workdir):
  """[(wall seconds since start, step, fid)] of train_and_evaluate, from its event files."""
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  from tensorboard.util import tensor_util  # pylint: disable=g-import-not-at-top
  from dcgan_jax.training import train  # pylint: disable=g-import-not-at-top
  start = time.time()
  train.train_and_evaluate(config, workdir)
  events = event_accumulator.EventAccumulator(workdir, size_guidance={'tensors': 0})
  events.Reload()
  return [(e.wall_time - start, e.step, float(tensor_util.make_ndarray(e.tensor_proto)))
          for e in events.Tensors('fid')]


def _torch_curve(config, evaluator, reference, threads):
  """[(wall seconds since start, step, fid)] of the PyTorch loop, scored by our evaluator."""
  from dcgan_jax.data import offline_mnist  # pylint: disable=g-import-not-at-top
  from dcgan_jax.torch_reference import quickstart  # pylint: disable=g-import-not-at-top
  from dcgan_jax.training import gan_step  # pylint: disable=g-import-not-at-top
  images, labels = offline_mnist.load_digits()
  images = images[offline_mnist.split_indices(labels, 'train')]
  every, last = config.eval_every_steps, config.num_train_steps
  checkpoints = set(range(every, last + 1, every)) | {last}
  curve, start = [], time.time()
  for step, _, generate in quickstart.train(images, config, checkpoints, config.seed, threads):
    scores = evaluator.evaluate(
        gan_step.generated_images(lambda _, z: generate(np.asarray(z)), None, config,
                                  config.eval_num_samples),
        reference, config.eval_num_samples)
    curve.append((time.time() - start, step, float(scores['fid'])))
  return curve


def seconds_to(curve, target):
  """The wall seconds at which a curve first reaches FID <= target (None if never)."""
  return next((seconds for seconds, _, fid in curve if fid <= target), None)


def plot(curves, target, path):
  """FID against wall seconds: a line per run, a colour per implementation, the target dashed."""
  # plots first: importing it selects matplotlib's file-only Agg backend.
  from dcgan_jax.analysis import plots  # pylint: disable=g-import-not-at-top
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 4))
  for color, (label, runs) in zip(('C0', 'C1'), curves.items()):
    for i, curve in enumerate(runs):
      ax.plot([c[0] for c in curve], [c[2] for c in curve], marker='o', ms=3, color=color,
              alpha=0.8, label=label if i == 0 else None)
  ax.axhline(target, color='gray', ls='--', lw=1, label=f'target FID {target:.4g}')
  ax.set_xlabel('wall seconds (training and scoring)')
  ax.set_ylabel('digit-classifier FID')
  ax.set_yscale('log')
  ax.grid(alpha=0.3)
  ax.legend()
  return plots.save_figure(fig, path)


def benchmark_time_to_quality(config, torch_threads=None, target_fid=None, curve_png=None,
                              runs=1):
  """Both implementations' curves, the target and the seconds each needs; see the module docstring.

  Args:
    config: the quickstart config (offline digits, digit-classifier FID).
    torch_threads: torch threads (default: the CPU count).
    target_fid: the FID to reach; default the highest of all runs' best FIDs,
      i.e. the best quality every run reaches.
    curve_png: where to write the curves (default: a temporary folder).
    runs: training runs of each implementation, with seeds config.seed + i,
      interleaved (this project's run i, then PyTorch's run i) so that a
      change in the machine's load falls on both. The seconds reported are
      medians over runs; `speedup` is the ratio of the medians.
  """
  import statistics  # pylint: disable=g-import-not-at-top
  from dcgan_jax.training import train  # pylint: disable=g-import-not-at-top
  workdir = tempfile.mkdtemp(prefix='dcgan_jax_time_to_quality_')
  evaluator = train.make_evaluator(config)
  reference = train.reference_stats(evaluator, config)  # Cached: no run pays for it.
  curves = {'dcgan_jax': [], 'pytorch': []}
  for i in range(runs):
    run_config = config.copy_and_resolve_references()
    run_config.seed = config.seed + i
    curves['dcgan_jax'].append(_jax_curve(run_config, os.path.join(workdir, f'jax_{i}')))
    curves['pytorch'].append(_torch_curve(run_config, evaluator, reference,
                                          torch_threads or os.cpu_count()))
  if target_fid is None:
    target_fid = max(min(fid for _, _, fid in curve)
                     for runs_ in curves.values() for curve in runs_)
  seconds = {name: [seconds_to(curve, target_fid) for curve in runs_]
             for name, runs_ in curves.items()}
  medians = {name: (statistics.median(s) if None not in s else None)
             for name, s in seconds.items()}
  path = plot(curves, target_fid, curve_png or os.path.join(workdir, 'time_to_quality.png'))
  result = {'mode': 'time_to_quality', 'target_fid': round(target_fid, 3), 'runs': runs,
            'jax_seconds': medians['dcgan_jax'], 'torch_seconds': medians['pytorch'],
            'speedup': (round(medians['pytorch'] / medians['dcgan_jax'], 3)
                        if None not in medians.values() else None),
            'jax_seconds_runs': seconds['dcgan_jax'], 'torch_seconds_runs': seconds['pytorch'],
            'curve_png': path, 'num_train_steps': config.num_train_steps,
            'eval_every_steps': config.eval_every_steps,
            'eval_num_samples': config.eval_num_samples}
  for name, runs_ in curves.items():
    result[f'{name}_curves'] = [[[round(s, 2), step, round(fid, 3)] for s, step, fid in curve]
                                for curve in runs_]
  return result
