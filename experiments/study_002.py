"""Study 002: Radford et al. replicated: faces, latent arithmetic and walks, D features + SVM."""

from experiments import common

TITLE = '002: replication of Radford et al. (faces, latent arithmetic, SVM probe)'
# 24,000 steps of batch 64 (1,536,000 images): at 4,000, 8,000 and 16,000 one of
# the recipe's seeds was still falling (experiments/README.md). The faces run had
# plateaued by 4,000 and keeps it.
CPU_STEPS = 24_000
CPU_FACES_STEPS = 4_000
# 25 epochs of all 202,599 faces, as the study counted them (39,570 steps).
CELEBA_STEPS = common.epochs_to_steps('celeb_a_all', 25, 128)
CIFAR_STEPS = common.epochs_to_steps('cifar10', 50, 128)  # Reported at 50 epochs.

# Both runs: DCGAN rules with LeakyReLU in G too, N(0, I) z of 100 (64 at cpu
# scale), non-saturating loss, Adam 2e-4 / 0.5, batch 128.
COMMON = {'model.arch': 'dcgan', 'model.g_activation': 'leaky_relu',
          'model.d_activation': 'leaky_relu', 'loss.type': 'non_saturating',
          'optim.g_lr': 2e-4, 'optim.d_lr': 2e-4, 'optim.g_b1': 0.5, 'optim.d_b1': 0.5}
# The CIFAR-10 recipe: ReLU in D, two dropout layers (one inside D, one at its
# end; the rate is not stated), random label ranges, separate real/fake updates.
CIFAR_RECIPE = {'model.d_activation': 'relu', 'model.d_dropout': 0.3,
                'model.d_dropout_layers': (1, 2), 'loss.label_smoothing': 'random',
                'loss.real_label_range': (0.7, 1.2), 'loss.fake_label_range': (0.0, 0.3),
                'd_separate_real_fake': True}
# The study's ablations on CIFAR-10 (shown as figures after 10 epochs there).
ABLATIONS = (
    ('no_dropout', {'model.d_dropout': 0.0, 'model.d_dropout_layers': ()}),
    ('dropout_last', {'model.d_dropout_layers': (2,)}),
    ('no_smoothing', {'loss.label_smoothing': 'none'}),
)


# The recipe against each ablation, and the faces recipe (experiments/verdicts.py).
COMPARISONS = (('recipe', 'no_dropout'), ('recipe', 'dropout_last'), ('recipe', 'no_smoothing'),
               ('faces', 'recipe'))

def base_config(scale):
  if scale == 'cpu':
    # 28 px: D has two blocks (the study's 32 px D three); 32 px runs at a
    # third of the speed on this machine.
    config = common.cpu_config(CPU_STEPS, num_evals=24, num_samples=4)  # Every 1,000.
  else:
    config = common.full_config('cifar10', 32, 128, CIFAR_STEPS)
  return common.apply_overrides(config, COMMON)


def grid(scale):
  """The faces run, the CIFAR-10 recipe and its ablations."""
  if scale == 'cpu':
    # Dropout after D's first block (inside) and its last (the end).
    faces, prefix = common.budget_overrides(CPU_FACES_STEPS, num_evals=6), ''
    cifar = dict(CIFAR_RECIPE, **{'model.d_dropout_layers': (0, 1)})
  else:
    faces = dict(dataset='celeb_a', image_size=64,
                 **common.budget_overrides(CELEBA_STEPS, 10, 20, 500))
    cifar, prefix = dict(CIFAR_RECIPE, dataset='cifar10', image_size=32), 'cifar10_'
  runs = [('celeba_faces' if scale == 'full' else 'faces', faces),
          (f'{prefix}recipe', cifar)]
  last = cifar['model.d_dropout_layers'][-1]
  ablations = [(name, dict(o, **{'model.d_dropout_layers': (last,)}) if name == 'dropout_last'
                else o) for name, o in ABLATIONS]
  runs += [(f'{prefix}{name}', dict(cifar, **o)) for name, o in ablations]
  return runs


STANDS_IN_FOR = {'faces': 'celeb_a 64 px (faces recipe)', 'recipe': 'cifar10',
                 'no_dropout': 'cifar10', 'dropout_last': 'cifar10', 'no_smoothing': 'cifar10'}


def analyses(name, scale):
  if name in ('faces', 'celeba_faces'):
    return ('latent',)
  if scale == 'cpu' or name == 'cifar10_recipe':
    return ('probe',)
  return ()
