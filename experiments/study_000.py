"""Study 000: G activation ReLU vs. ELU x symmetric vs. asymmetric learning rates (Khorsand)."""

from experiments import common

TITLE = '000: ReLU vs. ELU and learning-rate asymmetry (CIFAR-10, CelebA)'
# 576,000 images at batch 32. At 6,000 steps the FIDs were still falling by
# about 10% per 1,000 steps, and at 12,000 one relu_sym seed by 11.5% a quarter;
# an evaluation every 1,000 steps shows the curve.
CPU_STEPS = 18_000
CPU_EVALS = 18
# Full-scale budgets: the study states none; about 77 (CIFAR-10) and 16 (CelebA) epochs.
CIFAR_STEPS = 30_000
CELEBA_STEPS = 20_000


def stabilisers(num_steps, ema_decay):
  """The study's tricks: EMA of G, decaying instance noise, label smoothing.

  The report's "minimax GAN loss" is trained, as Goodfellow et al. do in
  practice, with G maximising log D(G(z)) (non_saturating). With the literal
  saturating form D reached 100% accuracy within 100 steps and G got no
  gradient in our first cpu-scale runs (experiments/README.md).
  """
  return {
      'loss.type': 'non_saturating',
      'ema_decay': ema_decay,
      'instance_noise': 0.1,  # Not stated; a common starting std, decayed to 0 by mid-run.
      'instance_noise_decay_steps': num_steps // 2,
      'loss.label_smoothing': 'one_sided',  # Not stated which; one-sided 0.9 (Salimans et al.).
  }


# Pairs of runs the verdicts compare (experiments/verdicts.py).
COMPARISONS = (('relu_sym', 'elu_sym'), ('relu_asym', 'elu_asym'),
               ('relu_sym', 'relu_asym'), ('elu_sym', 'elu_asym'))

def base_config(scale):
  if scale == 'cpu':
    config = common.cpu_config(CPU_STEPS, batch_size=32, num_evals=CPU_EVALS)
  else:
    config = common.full_config('cifar10', 32, 128, CIFAR_STEPS)
  config.model.arch = 'dcgan'
  return config


def _lrs(g_lr, d_lr):
  return {'optim.g_lr': g_lr, 'optim.d_lr': d_lr}


def grid(scale):
  """activation {relu, elu} x lr {symmetric, asymmetric (D faster)}."""
  runs = []
  if scale == 'cpu':
    # The CIFAR-10 recipe on the digits: spectral norm and small rotations (no
    # flips: a mirrored digit is another glyph); EMA 0.99, since 0.999 would
    # average over more steps than the run has.
    tricks = dict(stabilisers(CPU_STEPS, 0.99), **{'model.spectral_norm': True,
                                                  'augment.rotate_degrees': 10.0})
    for act in ('relu', 'elu'):
      for lr_name, lrs in (('sym', _lrs(1e-4, 1e-4)), ('asym', _lrs(1e-4, 2e-4))):
        runs.append((f'{act}_{lr_name}', dict(tricks, **lrs, **{'model.g_activation': act})))
    return runs
  cifar = dict(stabilisers(CIFAR_STEPS, 0.999), **{
      'dataset': 'cifar10', 'image_size': 32, 'model.spectral_norm': True,
      'augment.flip': True, 'augment.rotate_degrees': 10.0,
      'model.dtype': 'bfloat16'})  # "Mixed precision" (CIFAR-10 only in the study).
  celeba = dict(stabilisers(CELEBA_STEPS, 0.999), **{
      'dataset': 'celeb_a', 'image_size': 64},
                **common.budget_overrides(CELEBA_STEPS, 10, 20, 500))
  for act in ('relu', 'elu'):
    # CIFAR-10: the study's G 1e-4 with D 1e-4 (G stagnates) or 2e-4 (its best run).
    for lr_name, lrs in (('sym', _lrs(1e-4, 1e-4)), ('asym', _lrs(1e-4, 2e-4))):
      runs.append((f'cifar10_{act}_{lr_name}', dict(cifar, **lrs, **{'model.g_activation': act})))
    # CelebA: the study's tuned best run used G 2e-4 / D 3e-4.
    for lr_name, lrs in (('sym', _lrs(2e-4, 2e-4)), ('asym', _lrs(2e-4, 3e-4))):
      runs.append((f'celeba_{act}_{lr_name}', dict(celeba, **lrs, **{'model.g_activation': act})))
  return runs


STANDS_IN_FOR = {name: 'cifar10 (the CIFAR-10 recipe)' for name in
                 ('relu_sym', 'relu_asym', 'elu_sym', 'elu_asym')}


def analyses(name, scale):
  del name, scale
  return ()
