"""Inception Score of an image set: `python -m dcgan_jax.evaluation.inception_score PATH`.

PATH is a folder of images or an .npz with uint8 `images`. Prints
`IS: <mean> ± <std>` last (10 splits). Needs Inception weights with the
classifier layer (pytorch-fid's .pth; see `python -m dcgan_jax.evaluation.weights
--help`), or `--extractor digits` for the digit classifier's score.
`--preprocess tf` (default; the TF graph's inputs, as the original Inception
Score code fed them) or `pytorch_fid`.
"""

import sys

from dcgan_jax.evaluation import cli
from dcgan_jax.evaluation import metrics
from dcgan_jax.evaluation import weights as weights_lib


def main(argv=None):
  parser = cli.parser('python -m dcgan_jax.evaluation.inception_score', __doc__)
  parser.add_argument('path', help='image set')
  parser.add_argument('--splits', type=int, default=10, help='number of splits')
  args = parser.parse_args(argv)
  (image_set,) = cli.check_inputs([args.path], args, allow_stats=False)
  evaluator = cli.make_evaluator(args)
  if not evaluator.has_logits:
    raise weights_lib.WeightsError(
        'The Inception weights in use have no classifier layer, so there is no '
        'Inception Score: the fid-helper TorchScript file only has pool features. '
        'Put pytorch-fid\'s ' + weights_lib.PTH_NAME + ' (its fid_weights '
        'release, or ~/.cache/torch/hub/checkpoints after running pytorch-fid '
        'once) on this machine and run `python -m dcgan_jax.evaluation.weights '
        '--source /path/to/' + weights_lib.PTH_NAME + '`, or pass it with --weights.')
  summary = cli.summarize(evaluator, image_set, args)
  mean, std = metrics.inception_score(summary.logits, args.splits)
  print(f'IS: {mean} ± {std}')
  return 0


if __name__ == '__main__':
  sys.exit(cli.run(main, sys.argv[1:]))
