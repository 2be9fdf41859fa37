"""The verdicts of a study: each of its comparisons under the rule of experiments/README.md.

  python -m experiments.verdicts --study=001 --outdir=experiments/results/cpu

Reads the study's `results.csv` (per-seed values in `<metric>_seeds`), runs
Welch's t-test (`common.welch_verdict`) on every pair of runs the study lists
in `COMPARISONS` and every metric that has per-seed values in both, applies
the plateau rule (`common.PLATEAU_CHANGE`) to every run's FID curve, and writes
`verdicts.md` next to it. `experiments.run` calls it after each study.
"""

import ast
import csv
import os

from absl import app
from absl import flags

from experiments import common

# Which way is better, for the verdict's wording; metrics absent here are
# compared as 'higher' / 'lower' without a judgement (losses, D accuracy).
BETTER = {'fid': 'lower', 'kid': 'lower', 'is': 'higher', 'best_fid': 'lower',
          'silhouette_real': 'higher', 'silhouette_gen': 'higher', 'nmi_real': 'higher',
          'probe_d_features_acc': 'higher'}
# The metrics a verdict table shows, in this order (others with seeds follow).
FIRST = ('fid', 'kid', 'is', 'd_acc_real', 'd_acc_fake')
# Per-seed values that describe a run's own curve, not a quality to compare.
NOT_COMPARED = ('fid_change_last_quarter',)


def _rows(csv_path):
  with open(csv_path, newline='') as f:
    return list(csv.DictReader(f))


def per_seed_values(rows):
  """{run: {metric: [per-seed floats]}} from the rows of a results.csv of runs with seeds."""
  return {row['run']: {column[:-len('_seeds')]: [float(v) for v in ast.literal_eval(text)]
                       for column, text in row.items() if column.endswith('_seeds') and text}
          for row in rows}


def _mean(xs):
  return sum(xs) / len(xs)


def compare(a_name, a, b_name, b, metric):
  """One table row: the means, p and the verdict for `metric` of runs a and b."""
  direction = BETTER.get(metric)
  winner, p = common.welch_verdict(a, b, lower_is_better=direction != 'higher')
  if winner == 'not resolved':
    verdict = 'not resolved'
  elif direction is None:
    lower = a_name if _mean(a) < _mean(b) else b_name
    verdict = f'{lower} lower'
  else:
    verdict = f'**{a_name if winner == "a" else b_name}** better'
  return (f'| {a_name} vs {b_name} | {metric} | {_mean(a):.4g} | {_mean(b):.4g} | '
          f'{p:.2g} | {verdict} |')


def verdict_lines(values, comparisons):
  """The Markdown table of every comparison and metric with seeds in both runs."""
  lines = ['| comparison | metric | mean a | mean b | Welch p | verdict (p < '
           f'{common.VERDICT_ALPHA}) |', '|---|---|---|---|---|---|']
  for a_name, b_name in comparisons:
    if a_name not in values or b_name not in values:
      continue  # A run that has not finished (--only).
    a, b = values[a_name], values[b_name]
    shared = [m for m in a if m in b and len(a[m]) > 1 and len(b[m]) > 1
              and m not in NOT_COMPARED]
    for metric in [m for m in FIRST if m in shared] + [m for m in shared if m not in FIRST]:
      lines.append(compare(a_name, a[metric], b_name, b[metric], metric))
  return lines


def convergence_lines(values, converged):
  """The plateau rule applied to every run's seeds, and where its reading holds: a Markdown table.

  `converged`: {run: the budget from which the reading holds, '' for none}.
  """
  lines = ['| run | fitted FID change over the last quarter, mean | per seed | verdict | '
           f'converged at (the reading holds to {common.PLATEAU_HOLD} x) |',
           '|---|---|---|---|---|']
  for name, metrics in values.items():
    changes = metrics.get('fid_change_last_quarter')
    if not changes:
      continue
    verdict = common.plateau_verdict(changes)
    at = converged.get(name)
    lines.append(f'| {name} | {_mean(changes):+.1%} | '
                 f'{", ".join(f"{c:+.1%}" for c in changes)} | {verdict} | '
                 f'{f"{int(float(at)):,}" if at else "not yet"} |')
  return lines if len(lines) > 2 else []


def write_verdicts(study_dir, study):
  """Writes study_dir/verdicts.md from study_dir/results.csv; returns its path (None: no seeds)."""
  comparisons = getattr(study, 'COMPARISONS', ())
  rows = _rows(os.path.join(study_dir, 'results.csv'))
  values = per_seed_values(rows)
  converged = {row['run']: row.get('fid_converged_at') for row in rows}
  if not comparisons or not any(values.values()):
    return None
  lines = [f'# Verdicts: study {study.TITLE}', '',
           "Welch's unequal-variance t-test on the per-seed values of `results.csv` "
           f'(experiments/README.md): p < {common.VERDICT_ALPHA} decides, otherwise the '
           'difference is *not resolved*, whatever the means say.', '',
           *verdict_lines(values, comparisons), '']
  convergence = convergence_lines(values, converged)
  if convergence:
    lines += ['## Convergence', '',
              "A seed's FID has plateaued when its fitted change over the last quarter of "
              f'the run is less than {common.PLATEAU_CHANGE:.0%} (the Theil-Sen line, the median '
              'slope between pairs of evaluations, through log FID at the evaluations from 3/4 '
              'of the last step on, at least '
              f'{common.PLATEAU_MIN_EVALS}; experiments/README.md); '
              'a run has when no seed is still falling. A budget B is converged when the rule '
              'reads plateaued at every evaluation from B to '
              f'{common.PLATEAU_HOLD} B (the reading holds), the earliest such B shown.', '',
              *convergence, '']
  path = os.path.join(study_dir, 'verdicts.md')
  with open(path, 'w') as f:
    f.write('\n'.join(lines))
  return path


def _define_flags():
  # Only when run as a command: experiments.run imports this module and has flags of these names.
  flags.DEFINE_string('study', None, 'Which study (000 ... 004).', required=True)
  flags.DEFINE_string('outdir', None, 'The --outdir of experiments.run (holds study_NNN/).',
                      required=True)


def main(argv):
  del argv
  import importlib  # pylint: disable=g-import-not-at-top
  study = importlib.import_module(f'experiments.study_{flags.FLAGS.study}')
  path = write_verdicts(os.path.join(flags.FLAGS.outdir, f'study_{flags.FLAGS.study}'), study)
  print(path or 'No per-seed values or comparisons: nothing to write.')


if __name__ == '__main__':
  _define_flags()
  app.run(main)
