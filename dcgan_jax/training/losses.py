"""GAN losses on discriminator logits: minimax, non-saturating and hinge.

Each loss is a pair of functions of the logits: `d_loss(real_logits, fake_logits,
real_targets, fake_targets)` and `g_loss(fake_logits)`. The targets are the
labels the discriminator is trained towards (1 and 0, or smoothed values); the
hinge loss has no targets and ignores them.
"""

import jax.numpy as jnp
import optax

def bce_d_loss(real_logits, fake_logits, real_targets=1.0, fake_targets=0.0):
  """Binary cross-entropy of D: -[t log D(x) + (1-t) log(1-D(x))] on both batches."""
  real_targets = jnp.broadcast_to(real_targets, real_logits.shape)
  fake_targets = jnp.broadcast_to(fake_targets, fake_logits.shape)
  return (optax.sigmoid_binary_cross_entropy(real_logits, real_targets).mean() +
          optax.sigmoid_binary_cross_entropy(fake_logits, fake_targets).mean())


def minimax_g_loss(fake_logits):
  """The saturating loss of the original minimax game: mean log(1 - D(G(z)))."""
  # log(1 - sigmoid(l)) = -softplus(l), stable for large logits.
  return -jnp.mean(jnp.logaddexp(0.0, fake_logits))


def non_saturating_g_loss(fake_logits):
  """-mean log D(G(z)) (Goodfellow et al.'s practical generator loss)."""
  return optax.sigmoid_binary_cross_entropy(fake_logits, jnp.ones_like(fake_logits)).mean()


def hinge_d_loss(real_logits, fake_logits, real_targets=None, fake_targets=None):
  """mean relu(1 - D(x)) + mean relu(1 + D(G(z))) (Lim & Ye; Miyato et al.)."""
  del real_targets, fake_targets  # The hinge loss has no labels to smooth.
  return jnp.mean(jnp.maximum(0.0, 1.0 - real_logits)) + jnp.mean(
      jnp.maximum(0.0, 1.0 + fake_logits))


def hinge_g_loss(fake_logits):
  """-mean D(G(z))."""
  return -jnp.mean(fake_logits)


def d_loss_parts(name):
  """(real_part, fake_part) of D's loss, each f(logits, targets), for separate D updates."""
  if name in ('minimax', 'non_saturating'):
    bce = lambda logits, targets: optax.sigmoid_binary_cross_entropy(
        logits, jnp.broadcast_to(targets, logits.shape)).mean()
    return bce, bce
  if name == 'hinge':
    return (lambda logits, _: jnp.mean(jnp.maximum(0.0, 1.0 - logits)),
            lambda logits, _: jnp.mean(jnp.maximum(0.0, 1.0 + logits)))
  raise ValueError(f'Unknown loss.type {name!r}; choose one of {tuple(LOSSES)}.')


# loss.type -> (d_loss_fn, g_loss_fn).
LOSSES = {
    'minimax': (bce_d_loss, minimax_g_loss),
    'non_saturating': (bce_d_loss, non_saturating_g_loss),
    'hinge': (hinge_d_loss, hinge_g_loss),
}


def get_losses(name):
  """Returns (d_loss_fn, g_loss_fn) for a loss name."""
  if name not in LOSSES:
    raise ValueError(f'Unknown loss.type {name!r}; choose one of {tuple(LOSSES)}.')
  return LOSSES[name]
