r"""Where the plateau rule reads a run flat, and how two runs' FID curves relate in steps.

  python -m experiments.tools.plateau_readings \
      experiments/results/cpu_next/study_001/runs/baseline \
      experiments/results/cpu_next/study_001/runs/lr_2e-4 --from_step=20000

1. For each run, the rule's reading (`common.plateau_verdict` of each seed's
   `common.last_quarter_change`) at every evaluation from --readings_from on,
   as if the run had stopped there: the budgets that would read plateaued, and
   the earliest whose reading holds to `common.PLATEAU_HOLD` times it.
2. The step stretch of run A against run B: if A's FID at step t is B's at
   t / a (say, A has a lower learning rate), the RMS difference of the two
   smoothed mean curves in log FID, for each stretch a, over A's steps from
   --from_step on that B covers. The rule reads a relative change over the
   last quarter, which a stretch leaves unchanged, so B's reading at T / a is
   what the mean curve says of A at T (per seed it is not: seeds differ).
3. For each run, the exponent e of its mean FID curve read as a power law,
   FID ∝ step^-e, over windows of a factor 1.5 in steps back from its last
   evaluation. A power law falls by 1 - 0.75^e over the last quarter of every
   budget, so the rule never reads its mean plateaued while e stays above
   `rule_exponent()` (0.37): such a curve converges only where it bends.
"""

import argparse
import math
import os

import matplotlib.pyplot as plt
import numpy as np

from dcgan_jax.analysis import plots
from experiments import common


def smoothed(steps, values, width):
  """The centred moving average of `values` over `width` evaluations (the ends dropped).

  Centred, not `plots.smooth`'s running average: that lags the curve, which
  would read as a stretch in steps.
  """
  steps, values = np.asarray(steps, np.float64), np.asarray(values, np.float64)
  half = width // 2
  return steps[half:len(steps) - half], np.convolve(values, np.ones(width) / width, 'valid')


def stretch_misfit(a_curve, b_curve, stretch, from_step, width=9):
  """(RMS of log A(t) - log B(t / stretch), evaluations compared).

  Over A's steps >= from_step at which B, stretched, has been evaluated.
  """
  a_steps, a_values = smoothed(*a_curve, width)
  b_steps, b_values = smoothed(*b_curve, width)
  t = a_steps / stretch
  keep = (a_steps >= from_step) & (t >= b_steps[0]) & (t <= b_steps[-1])
  if not keep.any():
    return float('nan'), 0
  predicted = np.interp(t[keep], b_steps, b_values)
  return float(np.sqrt(np.mean((np.log(a_values[keep]) - np.log(predicted)) ** 2))), int(keep.sum())


def power_law_exponent(steps, values):
  """e of the least-squares line log FID = c - e log step: 0 on a plateau."""
  return float(-np.polyfit(np.log(steps), np.log(values), 1)[0])


def rule_exponent():
  """The exponent above which a power law falls by more than the rule's change a quarter."""
  return math.log(1 - common.PLATEAU_CHANGE) / math.log(common.PLATEAU_WINDOW)


def local_exponents(curve, from_step, factor=1.5):
  """[(lo, hi, e)]: `power_law_exponent` over [hi / factor, hi], hi stepping back from the end."""
  steps, values = np.asarray(curve[0], np.float64), np.asarray(curve[1], np.float64)
  out, hi = [], steps[-1]
  while hi / factor >= max(from_step, steps[0]):
    keep = (steps >= hi / factor) & (steps <= hi)
    if keep.sum() >= common.PLATEAU_MIN_EVALS:
      out.append((float(hi / factor), float(hi), power_law_exponent(steps[keep], values[keep])))
    hi /= factor
  return out[::-1]


def _spans(readings):
  """'a-b, c-d' of the runs of consecutive plateaued budgets."""
  spans, start, prev = [], None, None
  for budget, flat in readings + [(None, False)]:
    if flat and start is None:
      start = budget
    if not flat and start is not None:
      spans.append(f'{start:,}' + (f'-{prev:,}' if prev != start else ''))
      start = None
    prev = budget
  return ', '.join(spans) or 'none'


def run_labels(paths):
  """A title per run: its folder name or, where names repeat, its path below their common folder."""
  paths = [os.path.abspath(p) for p in paths]
  names = [os.path.basename(p) for p in paths]
  if len(set(names)) == len(names) or len(set(paths)) == 1:
    return names
  common_dir = os.path.commonpath(paths)
  return [os.path.relpath(p, common_dir) for p in paths]


def readings_figure(runs, path, from_step):
  """Per run, a column: each seed's FID and their mean, and under it the rule read at every budget.

  The lower panel draws each seed's last-quarter change had the run stopped at
  that budget, the -10% line, the budgets that read plateaued shaded, and the
  converged budget (if one holds) with its hold window.
  """
  fig, axes = plt.subplots(2, len(runs), figsize=(5.0 * len(runs), 6.0), squeeze=False,
                           sharex='col', gridspec_kw={'height_ratios': (3, 2)})
  for (label, scalars), (top, bottom) in zip(runs.items(), axes.T):
    seeds, mean = plots.per_seed(scalars, 'fid'), scalars['fid']
    budgets = np.asarray(seeds[0][0])[np.asarray(seeds[0][0]) >= from_step]
    changes = np.array([common.changes_at(seeds, b) for b in budgets])  # [budget, seed]
    for i, (steps, values) in enumerate(seeds):
      line, = top.plot(steps, values, lw=0.8, alpha=0.7, label=f'seed {i}')
      bottom.plot(budgets, 100 * changes[:, i], lw=0.8, color=line.get_color())
    top.plot(*mean, color='black', lw=1.6, label='mean')
    top.set(yscale='log', title=label, ylabel='FID')
    readings = [(int(b), common.reads_plateaued(c)) for b, c in zip(budgets, changes)]
    gap = np.median(np.diff([b for b, _ in readings])) if len(readings) > 1 else 1
    for budget, flat in readings:
      if flat:
        bottom.axvspan(budget - gap / 2, budget + gap / 2, color='tab:green', alpha=0.25, lw=0)
    if (held := common.converged_at(readings)) is not None:
      for ax in (top, bottom):
        ax.axvspan(held, common.PLATEAU_HOLD * held, color='tab:green', alpha=0.15, lw=0)
        ax.axvline(held, color='tab:green', lw=1.5)
    bottom.axhline(-100 * common.PLATEAU_CHANGE, color='grey', ls='--', lw=1)
    bottom.set(xlabel='budget (step)', ylabel='last-quarter change (%)')
    for ax in (top, bottom):
      ax.grid(alpha=0.3)
      ax.xaxis.set_major_formatter(lambda x, _: f'{x / 1000:g}k')
  axes[0, 0].legend(fontsize='x-small')
  fig.suptitle('FID, and the plateau rule read at every budget (green: reads plateaued)',
               fontsize='medium')
  return plots.save_figure(fig, path)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('run_a', help='workdir of the slower run')
  parser.add_argument('run_b', help='workdir of the faster run')
  parser.add_argument('--from_step', type=float, default=0, help='A\'s steps compared from')
  parser.add_argument('--readings_from', type=float, default=10_000,
                      help='first budget at which the rule is read')
  parser.add_argument('--stretches', default='3,3.5,4,4.25,4.5,4.55,4.6,4.65,4.75,5,5.5,6')
  parser.add_argument('--budgets', default='47000,70500,94000,141000,188000,282000')
  parser.add_argument('--figure', help='PNG of both runs\' curves and readings (optional)')
  args = parser.parse_args(argv)
  a, b = plots.read_scalars(args.run_a), plots.read_scalars(args.run_b)
  if args.figure:
    readings_figure(dict(zip(run_labels((args.run_a, args.run_b)), (a, b))), args.figure,
                    args.readings_from)
  for name, run in ((args.run_a, a), (args.run_b, b)):
    readings = common.plateau_readings(plots.per_seed(run, 'fid'), args.readings_from)
    held = common.converged_at(readings)
    print(f'{name}: reads plateaued at {sum(f for _, f in readings)} of {len(readings)} '
          f'budgets from {args.readings_from:,.0f}: {_spans(readings)}; '
          + (f'converged at {held:,} (its reading holds to {common.PLATEAU_HOLD} x)' if held
             else 'no reading holds yet'))
    print(f'  mean FID as step^-e (the rule reads a power law falling while e > '
          f'{rule_exponent():.2f}): ' + '; '.join(
              f'{lo:,.0f}-{hi:,.0f} e = {e:.2f} ({100 * (common.PLATEAU_WINDOW ** e - 1):+.1f}% a quarter)'
              for lo, hi, e in local_exponents(run['fid'], args.readings_from)))
  fits = []
  for stretch in map(float, args.stretches.split(',')):
    misfit, points = stretch_misfit(a['fid'], b['fid'], stretch, args.from_step)
    fits.append((misfit, stretch))
    print(f'stretch {stretch:5.2f}: RMS log-FID difference {misfit:.4f} over {points} evaluations')
  best = min(fits)[1]
  print(f'best stretch {best}; A\'s predicted last-quarter FID change per seed (B at T / {best}):')
  for budget in map(float, args.budgets.split(',')):
    changes = common.changes_at(plots.per_seed(b, 'fid'), budget / best)
    print(f'  T = {budget:,.0f} (B at {budget / best:,.0f}): ' +
          ', '.join(f'{c * 100:+.1f}%' for c in changes) +
          f' -> {common.plateau_verdict(changes)}')


if __name__ == '__main__':
  main()
