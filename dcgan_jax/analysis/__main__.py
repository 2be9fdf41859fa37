"""Command-line entry point of the analysis tools, run on a trained run's workdir.

  python -m dcgan_jax.analysis --workdir=DIR --what=plots [--runs=DIR2,DIR3 --tags=fid]
  python -m dcgan_jax.analysis --workdir=DIR --config=configs/default.py --what=report
  python -m dcgan_jax.analysis --workdir=DIR --config=... --what=interpolate --method=both
  python -m dcgan_jax.analysis --workdir=DIR --config=... --what=sheet
  python -m dcgan_jax.analysis --workdir=DIR --config=... --what=arithmetic --a=3,17 --b=5 --c=9,40
  python -m dcgan_jax.analysis --workdir=DIR --config=... --what=probe [--dataset=cifar10]
  python -m dcgan_jax.analysis --workdir=DIR --config=... --what=cluster [--source=generated]

Outputs go to --outdir (default DIR/analysis); the report goes to DIR/report.
Pass the run's own config (and its overrides) so the restored models match.
"""

import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

COMMANDS = ('report', 'plots', 'interpolate', 'sheet', 'arithmetic', 'probe', 'cluster')

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'The run to analyse (event files, samples/, checkpoints/).')
config_flags.DEFINE_config_file('config', None, 'The run\'s config file; needed by every '
                                'command but plots.', lock_config=True)
flags.DEFINE_enum('what', 'report', COMMANDS, 'What to produce.')
flags.DEFINE_string('outdir', None, 'Output folder; default WORKDIR/analysis.')
flags.DEFINE_enum('checkpoint', 'latest', ['latest', 'best'], 'Which checkpoint to restore.')
# plots
flags.DEFINE_list('runs', [], 'plots: other workdirs to compare with this one.')
flags.DEFINE_list('tags', ['fid'], 'plots: scalars to compare across runs.')
flags.DEFINE_float('smoothing', 0.0, 'plots: EMA weight, as TensorBoard\'s slider.')
# interpolate / report
flags.DEFINE_enum('method', 'slerp', ['slerp', 'lerp', 'both'], 'Interpolation method.')
flags.DEFINE_integer('num_rows', 4, 'Interpolation paths.')
flags.DEFINE_integer('num_steps', 8, 'Images per interpolation path.')
# sheet / arithmetic
flags.DEFINE_integer('num_samples', 64, 'sheet: tiles; cluster: examples.')
flags.DEFINE_list('a', [], 'arithmetic: sheet indices of group A (mean(A) - mean(B) + mean(C)).')
flags.DEFINE_list('b', [], 'arithmetic: sheet indices of group B.')
flags.DEFINE_list('c', [], 'arithmetic: sheet indices of group C.')
flags.DEFINE_string('sheet', None, 'arithmetic: the .npz of a sheet; default OUTDIR/sheet.npz.')
# probe / cluster
flags.DEFINE_string('dataset', None, 'probe: labelled dataset; default the run\'s dataset.')
flags.DEFINE_integer('num_train', None, 'probe: cap on SVM training examples.')
flags.DEFINE_integer('num_test', None, 'probe: cap on SVM test examples.')
flags.DEFINE_list('svm_c', ['0.01'], 'probe: the SVM\'s C; several values = pick by 3-fold CV.')
flags.DEFINE_enum('source', 'real', ['real', 'generated'], 'cluster: D features of what.')
flags.DEFINE_integer('num_clusters', 10, 'cluster: k of k-means.')
flags.DEFINE_integer('num_components', 50, 'cluster: PCA dimension.')
flags.DEFINE_list('layers', None, 'probe/cluster: D blocks to use (e.g. -1); default all.')
flags.mark_flags_as_required(['workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  # Imported now so --help is fast.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from dcgan_jax.analysis import commands  # pylint: disable=g-import-not-at-top

  tf.config.experimental.set_visible_devices([], 'GPU')  # TF reads data only.
  config, workdir, what = FLAGS.config, FLAGS.workdir, FLAGS.what
  if config is None and what != 'plots':
    raise app.UsageError(f'--what={what} restores the models: pass the run\'s --config.')
  outdir = FLAGS.outdir or os.path.join(workdir, 'analysis')
  if what != 'report':  # The report has its own folder, WORKDIR/report.
    os.makedirs(outdir, exist_ok=True)
  layers = [int(i) for i in FLAGS.layers] if FLAGS.layers else None
  svm_c = [float(c) for c in FLAGS.svm_c]
  common = dict(config=config, workdir=workdir, outdir=outdir, which=FLAGS.checkpoint)
  if what == 'report':
    result = commands.report(**common, num_rows=FLAGS.num_rows, num_steps=FLAGS.num_steps,
                             method='slerp' if FLAGS.method == 'both' else FLAGS.method)
  elif what == 'plots':
    result = commands.plot(workdir, outdir, FLAGS.runs, tuple(FLAGS.tags), FLAGS.smoothing)
  elif what == 'interpolate':
    result = commands.interpolate(**common, num_rows=FLAGS.num_rows, num_steps=FLAGS.num_steps,
                                  method=FLAGS.method)
  elif what == 'sheet' or (what == 'arithmetic' and not FLAGS.a):
    result = commands.sheet(**common, num_samples=FLAGS.num_samples)
    logging.info('Pick groups on %s, then run --what=arithmetic --a=... --b=... --c=...', result)
  elif what == 'arithmetic':
    groups = [[int(i) for i in g] for g in (FLAGS.a, FLAGS.b, FLAGS.c)]
    if not all(groups):
      raise app.UsageError('--what=arithmetic needs --a, --b and --c.')
    result = commands.arithmetic(**common, a=groups[0], b=groups[1], c=groups[2],
                                 sheet_path=FLAGS.sheet)
  elif what == 'probe':
    result = commands.probe(**common, dataset=FLAGS.dataset, num_train=FLAGS.num_train,
                            num_test=FLAGS.num_test, layers=layers,
                            c=svm_c[0] if len(svm_c) == 1 else svm_c)
  else:
    result = commands.cluster(**common, source=FLAGS.source, num_clusters=FLAGS.num_clusters,
                              num_components=FLAGS.num_components, num_samples=FLAGS.num_samples,
                              layers=layers)
  logging.info('%s: %s', what, result)
  print(result)


if __name__ == '__main__':
  app.run(main)
