"""Study 004: a fully connected GAN vs. a DCGAN on MNIST and EMNIST."""

from experiments import common

TITLE = '004: MLP GAN vs. DCGAN on (E)MNIST'
# The DCGAN's: 30,000 steps of batch 64 are 1,920,000 images, 32 of the study's 50
# MNIST epochs (what fits a session); the MLP GAN gets twice as many, as in the study
# (100 vs 50). At 5,000, 10,000 and 15,000 steps the DCGAN's FID was still falling
# (experiments/README.md).
CPU_STEPS = 30_000

# Goodfellow's cross-entropy loss with G maximising log D(G(z)), the form the
# paper trains with (the saturating minimax form left D at 100% accuracy and G
# without gradient at cpu scale: experiments/README.md); Radford's uniform z;
# Adam 2e-4 / 0.5 (not stated).
COMMON = {'loss.type': 'non_saturating', 'model.latent_dist': 'uniform',
          'optim.g_lr': 2e-4, 'optim.d_lr': 2e-4, 'optim.g_b1': 0.5, 'optim.d_b1': 0.5}
# The MLP GAN without normalisation, as Goodfellow et al.; the DCGAN by Radford's rules.
MLP = {'model.arch': 'mlp', 'model.g_norm': 'none', 'model.d_norm': 'none'}
DCGAN = {'model.arch': 'dcgan', 'model.g_norm': 'batch', 'model.d_norm': 'batch'}


# The DCGAN against the MLP GAN at both budgets, and the MLP GAN's two budgets.
COMPARISONS = (('dcgan', 'mlp_gan'), ('dcgan', 'mlp_gan_same_steps'),
               ('mlp_gan', 'mlp_gan_same_steps'))

def base_config(scale):
  if scale == 'cpu':
    # An evaluation every 1,250 steps, a sample grid every 5,000.
    config = common.cpu_config(CPU_STEPS, num_evals=24, num_samples=6)
  else:
    config = common.full_config('mnist', 28, 128, common.epochs_to_steps('mnist', 50, 128))
  return common.apply_overrides(config, COMMON)


def grid(scale):
  """MLP GAN (2x the epochs) vs. DCGAN, and at cpu scale the MLP at the DCGAN's budget too."""
  if scale == 'cpu':
    # The MLP GAN at the DCGAN's budget keeps an evaluation every 2,500 steps (the
    # run was first trained as the 15,000-step grid's `mlp_gan`).
    return [('mlp_gan', dict(MLP, **common.budget_overrides(2 * CPU_STEPS, num_evals=24,
                                                            num_samples=4))),
            ('dcgan', dict(DCGAN)),
            ('mlp_gan_same_steps', dict(MLP, **common.budget_overrides(CPU_STEPS, num_evals=12)))]
  runs = []
  for dataset in ('mnist', 'emnist'):
    for name, arch, epochs in (('mlp_gan', MLP, 100), ('dcgan', DCGAN, 50)):
      steps = common.epochs_to_steps(dataset, epochs, 128)
      runs.append((f'{dataset}_{name}', dict(arch, dataset=dataset, image_size=28,
                                             **common.budget_overrides(steps, 10, 20, 500))))
  return runs


STANDS_IN_FOR = {'mlp_gan': 'mnist', 'dcgan': 'mnist', 'mlp_gan_same_steps': 'mnist'}


def analyses(name, scale):
  del name, scale
  return ()
