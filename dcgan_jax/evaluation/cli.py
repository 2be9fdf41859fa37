"""Shared plumbing of the fid, kid and inception_score command-line tools."""

import argparse
import sys

from dcgan_jax.evaluation import evaluator as evaluator_lib
from dcgan_jax.evaluation import image_sets
from dcgan_jax.evaluation import preprocessing
from dcgan_jax.evaluation import weights as weights_lib

# Errors a user can fix; reported as one message, not a traceback.
USER_ERRORS = (image_sets.ImageSetError, weights_lib.WeightsError, ValueError,
               FileNotFoundError)


def parser(prog, description):
  p = argparse.ArgumentParser(prog=prog, description=description)
  p.add_argument('--extractor', default='inception', choices=evaluator_lib.EXTRACTORS,
                 help='feature network (digits: the small digit classifier)')
  p.add_argument('--preprocess', default=preprocessing.DEFAULT,
                 choices=evaluator_lib.PREPROCESSINGS,
                 help="Inception's input preprocessing: tf (default; the TF 2015 graph's "
                      'bilinear resize and (x - 128) / 128, the FID of the papers) or '
                      "pytorch_fid (pytorch-fid's values); the digits extractor ignores it")
  p.add_argument('--weights', default=None,
                 help='Inception weights file (default: the converted cache file)')
  p.add_argument('--batch_size', type=int, default=None,
                 help='images per forward pass (default 50 inception, 500 digits)')
  p.add_argument('--num_samples', type=int, default=None,
                 help='use only the first N images of each set')
  p.add_argument('--cache_dir', default=None,
                 help='cache folder (default $DCGAN_JAX_CACHE or ~/.cache/dcgan_jax)')
  p.add_argument('--seed', type=int, default=0, help='KID subset seed')
  p.add_argument('--no_progress', action='store_true', help='hide progress bars')
  return p


def make_evaluator(args, **kwargs):
  return evaluator_lib.Evaluator(
      extractor=args.extractor, batch_size=args.batch_size, cache_dir=args.cache_dir,
      weights=args.weights, seed=args.seed, progress=not args.no_progress,
      preprocess=args.preprocess, **kwargs)


def summarize(evaluator, path, args, allow_stats=True):
  """Feature summary of an image set, or the statistics stored in an .npz.

  Returns:
    A `features.FeatureSummary` or an `evaluator.ReferenceStats`; both have
    mu, sigma, num_samples and kid_features.
  """
  if image_sets.is_stats_file(path):
    if not allow_stats:
      raise image_sets.ImageSetError(f'{path} holds statistics; this needs images.')
    stats = evaluator_lib.ReferenceStats.load(path)
    evaluator.check_compatible(stats, path)  # Extractor and --preprocess.
    return stats
  batches, count = image_sets.open_images(path, evaluator.extractor.batch_size)
  num = count if args.num_samples is None else min(count, args.num_samples)
  return evaluator.features(batches, num, desc=path)


def run(main_fn, argv):
  """Runs main_fn(argv), turning user errors into one line and exit code 1."""
  try:
    return main_fn(argv)
  except USER_ERRORS as e:
    print(f'Error: {e}', file=sys.stderr)
    return 1
