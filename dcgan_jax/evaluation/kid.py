"""KID between two image sets: `python -m dcgan_jax.evaluation.kid PATH_A PATH_B`.

Each path is a folder of images, an .npz with uint8 `images`, or a statistics
.npz written by `fid --save_stats` (which keeps a feature sample). Prints
`KID: <mean> ± <std>` last (unbiased MMD^2, cubic polynomial kernel, over
random subsets). `--preprocess tf|pytorch_fid` as for `fid` (default tf).
"""

import sys

from dcgan_jax.evaluation import cli
from dcgan_jax.evaluation import image_sets
from dcgan_jax.evaluation import metrics

_NO_FEATURES = ('{path} has no features for KID (a pytorch-fid statistics file only has '
                'mu/sigma); pass the images.')


def main(argv=None):
  parser = cli.parser('python -m dcgan_jax.evaluation.kid', __doc__)
  parser.add_argument('paths', nargs=2, metavar='PATH', help='two image sets')
  parser.add_argument('--subsets', type=int, default=100, help='number of subsets')
  parser.add_argument('--subset_size', type=int, default=1000,
                      help='images per subset (capped at the smaller set)')
  parser.add_argument('--max_samples', type=int, default=10_000,
                      help='features kept per set (uniform sample)')
  args = parser.parse_args(argv)
  sets = cli.check_inputs(args.paths, args)
  for s in sets:
    if s.kind == image_sets.STATS and s.kid_samples < 2:
      raise image_sets.ImageSetError(_NO_FEATURES.format(path=s.path))
  evaluator = cli.make_evaluator(args, kid_max_samples=args.max_samples)
  a, b = (cli.summarize(evaluator, s, args) for s in sets)
  for path, s in zip(args.paths, (a, b)):
    if len(s.kid_features) < 2:
      raise ValueError(_NO_FEATURES.format(path=path))
  mean, std = metrics.kernel_inception_distance(
      a.kid_features, b.kid_features, args.subsets, args.subset_size, args.seed)
  print(f'KID: {mean} ± {std}')
  return 0


if __name__ == '__main__':
  sys.exit(cli.run(main, sys.argv[1:]))
