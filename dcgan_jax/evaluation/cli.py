"""Shared plumbing of the fid, kid and inception_score command-line tools."""

import argparse
import sys

from dcgan_jax import errors
from dcgan_jax.evaluation import evaluator as evaluator_lib
from dcgan_jax.evaluation import image_sets
from dcgan_jax.evaluation import preprocessing

# Besides `errors.UserError`s (image sets, weights): the evaluator's ValueErrors
# (statistics of another extractor or preprocessing, too few images) are bad
# input too, reported as one line with exit code 2.
INPUT_ERRORS = (ValueError, FileNotFoundError)


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


def check_inputs(paths, args, allow_stats=True):
  """Checks every input path; call it before `make_evaluator`.

  The Inception weights take 10-70 s to load: a mistyped path or a bad file
  fails before that, in seconds.

  Returns:
    The `image_sets.ImageSet` of each path.

  Raises:
    image_sets.ImageSetError: for the first unusable path.
  """
  return [image_sets.check(p, allow_stats, args.num_samples) for p in paths]


def summarize(evaluator, image_set, args):
  """Feature summary of a checked image set, or the statistics stored in its .npz.

  Returns:
    A `features.FeatureSummary` or an `evaluator.ReferenceStats`; both have
    mu, sigma, num_samples and kid_features.
  """
  if image_set.kind == image_sets.STATS:
    stats = evaluator_lib.ReferenceStats.load(image_set.path)
    evaluator.check_compatible(stats, image_set.path)  # Extractor and --preprocess.
    return stats
  count = image_set.count
  num = count if args.num_samples is None else min(count, args.num_samples)
  return evaluator.features(image_sets.batches(image_set, evaluator.extractor.batch_size),
                            num, desc=image_set.path)


def run(main_fn, argv):
  """Runs main_fn(argv); a user error is one line on stderr and its exit code.

  As `dcgan_jax.cli.run` does for the absl commands: `errors.UserError`s exit
  with their `exit_code` (2 bad input, 1 a failed environment such as missing
  Inception weights), INPUT_ERRORS with 2; anything else keeps its traceback.
  """
  try:
    return main_fn(argv)
  except errors.UserError as e:
    print(f'Error: {errors.one_line(e)}', file=sys.stderr, flush=True)
    return e.exit_code
  except INPUT_ERRORS as e:
    print(f'Error: {errors.one_line(e)}', file=sys.stderr, flush=True)
    return 2
