"""Study 001: one-change modifications of a DCGAN, clustering on MNIST, FID on CelebA."""

from experiments import common

TITLE = '001: small DCGAN modifications (MNIST clustering, CelebA FID)'
# 28,200 steps of batch 64 (1,804,800 images): six times the study's 5 MNIST
# epochs (4,700 steps); at 5 epochs no cell had plateaued, at four times the
# baseline had not (experiments/README.md).
CPU_STEPS = 28_200
MNIST_STEPS = common.epochs_to_steps('mnist', 5, 128)  # 5 epochs, batch 128 assumed: 2,344.
CELEBA_STEPS = common.epochs_to_steps('celeb_a', 5, 128)  # 5 epochs of the train split: 6,360.

# The study's baseline: a PyTorch-style DCGAN (ReLU G, LeakyReLU D, batch norm,
# BCE with the non-saturating G loss), Adam beta1 0.5, lr 1e-4.
BASELINE = {'loss.type': 'non_saturating', 'optim.g_lr': 1e-4, 'optim.d_lr': 1e-4,
            'optim.g_b1': 0.5, 'optim.d_b1': 0.5}
MNIST_VARIANTS = (
    ('baseline', {}),
    ('beta1_0.3', {'optim.g_b1': 0.3, 'optim.d_b1': 0.3}),
    ('lr_2e-4', {'optim.g_lr': 2e-4, 'optim.d_lr': 2e-4}),
    ('hinge', {'loss.type': 'hinge'}),
)


def face_variants(attention_res):
  return (
      ('self_attention', {'model.g_attention_res': attention_res}),  # SAGAN block in G.
      ('silu', {'model.g_activation': 'silu'}),
      ('layernorm', {'model.g_norm': 'layer', 'model.d_norm': 'layer'}),
  )


# Each change against the baseline (experiments/verdicts.py).
COMPARISONS = tuple(('baseline', name) for name in (
    'beta1_0.3', 'lr_2e-4', 'hinge', 'self_attention', 'silu', 'layernorm'))

def base_config(scale):
  if scale == 'cpu':
    config = common.cpu_config(CPU_STEPS, num_evals=60, num_samples=12)  # Every 470, 2,350.
  else:
    config = common.full_config('mnist', 28, 128, MNIST_STEPS)
  config.model.arch = 'dcgan'
  return config


def grid(scale):
  """Baseline, beta1 0.3, lr 2e-4, hinge (MNIST); baseline, attention, SiLU, LayerNorm (CelebA)."""
  if scale == 'cpu':
    # All seven on the digits; the attention block sits on G's 14x14 maps.
    return [(name, dict(BASELINE, **o))
            for name, o in MNIST_VARIANTS + face_variants(14)]
  mnist = dict(BASELINE, dataset='mnist', image_size=28)
  celeba = dict(BASELINE, dataset='celeb_a', image_size=64,
                **common.budget_overrides(CELEBA_STEPS, 10, 20, 500))
  return ([(f'mnist_{name}', dict(mnist, **o)) for name, o in MNIST_VARIANTS] +
          [(f'celeba_{name}', dict(celeba, **o))
           for name, o in (('baseline', {}),) + face_variants(32)])


STANDS_IN_FOR = {'self_attention': 'celeb_a', 'silu': 'celeb_a', 'layernorm': 'celeb_a'}


def analyses(name, scale):
  # The study clusters intermediate features of its MNIST runs.
  if scale == 'cpu' or name.startswith('mnist_'):
    return ('cluster',)
  return ()
