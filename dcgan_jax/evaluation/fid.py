"""FID between two image sets: `python -m dcgan_jax.evaluation.fid PATH_A PATH_B`.

Each path is a folder of images, an .npz with uint8 `images` [N, H, W, C], or an
.npz of statistics (`mu`, `sigma`, e.g. pytorch-fid's). The last line printed
is `FID: <value>`. `--save_stats PATH OUT.npz` writes the statistics of PATH
(readable by pytorch-fid; ours also keep a feature sample for KID and record
the preprocessing). `--preprocess tf` (default) gives the TF FID of the papers,
`--preprocess pytorch_fid` pytorch-fid's values; statistics files of another
preprocessing are refused, ones that do not record it (pytorch-fid's, TTUR's)
are used with a warning.
"""

import sys

from dcgan_jax.evaluation import cli
from dcgan_jax.evaluation import metrics


def main(argv=None):
  parser = cli.parser('python -m dcgan_jax.evaluation.fid', __doc__)
  parser.add_argument('paths', nargs=2, metavar='PATH',
                      help='two image sets / statistics files; with --save_stats, '
                           'the image set and the output .npz')
  parser.add_argument('--save_stats', '--save-stats', action='store_true',
                      help='save the statistics of the first path to the second')
  args = parser.parse_args(argv)
  if args.save_stats:
    (image_set,) = cli.check_inputs(args.paths[:1], args, allow_stats=False)
    evaluator = cli.make_evaluator(args)
    summary = cli.summarize(evaluator, image_set, args)
    evaluator.to_stats(summary).save(args.paths[1])
    print(f'Saved statistics of {summary.num_samples} images ({evaluator.preprocess} '
          f'preprocessing) to {args.paths[1]}')
    return 0
  sets = cli.check_inputs(args.paths, args)
  evaluator = cli.make_evaluator(args)
  a, b = (cli.summarize(evaluator, s, args) for s in sets)
  print(f'FID: {metrics.frechet_distance(a.mu, a.sigma, b.mu, b.sigma)}')
  return 0


if __name__ == '__main__':
  sys.exit(cli.run(main, sys.argv[1:]))
