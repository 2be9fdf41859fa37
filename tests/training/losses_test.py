"""Each loss against values computed by hand in numpy."""

import numpy as np
import pytest

from dcgan_jax.training import losses

REAL = np.array([2.0, -1.0, 0.5, 30.0], np.float32)
FAKE = np.array([-3.0, 0.2, 1.5, -40.0], np.float32)


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def np_bce(logits, target):
  p = sigmoid(logits)
  p = np.clip(p, 1e-300, 1 - 1e-16)
  return -(target * np.log(p) + (1 - target) * np.log1p(-p))


def test_bce_d_loss():
  expected = np_bce(REAL[:3], 1.0).mean() * 3 / 4 + np_bce(FAKE, 0.0).mean()
  # logit 30: -log(sigmoid(30)) ~ 9.4e-14, negligible.
  expected += np_bce(REAL[3:], 1.0).mean() / 4
  assert losses.bce_d_loss(REAL, FAKE) == pytest.approx(expected, rel=1e-5)


def test_bce_d_loss_smoothed_targets():
  expected = np_bce(REAL, 0.9).mean() + np_bce(FAKE, 0.1).mean()
  assert losses.bce_d_loss(REAL, FAKE, 0.9, 0.1) == pytest.approx(expected, rel=1e-5)


def test_minimax_g_loss_is_log_one_minus_d():
  # log(1 - D) for the finite logits by hand; logit -40 gives log(1) = 0.
  expected = np.mean(np.log1p(-sigmoid(FAKE)))
  assert losses.minimax_g_loss(FAKE) == pytest.approx(expected, rel=1e-5)


def test_non_saturating_g_loss():
  expected = np.mean(list(-np.log(sigmoid(FAKE[:3]))) + [40.0])
  assert losses.non_saturating_g_loss(FAKE) == pytest.approx(expected, rel=1e-5)


def test_hinge():
  expected_d = np.mean(np.maximum(0, 1 - REAL)) + np.mean(np.maximum(0, 1 + FAKE))
  assert losses.hinge_d_loss(REAL, FAKE) == pytest.approx(expected_d, rel=1e-6)
  assert losses.hinge_g_loss(FAKE) == pytest.approx(-FAKE.mean(), rel=1e-6)


def test_saturation_gradients_differ():
  # At a confident D (D(G(z)) ~ 0) the minimax G loss has a vanishing gradient, the
  # non-saturating one does not: the reason the latter exists.
  import jax  # pylint: disable=g-import-not-at-top
  x = np.array([-8.0], np.float32)
  g_minimax = abs(float(jax.grad(losses.minimax_g_loss)(x)[0]))
  g_ns = abs(float(jax.grad(losses.non_saturating_g_loss)(x)[0]))
  assert g_minimax == pytest.approx(sigmoid(-8.0), rel=1e-4)
  assert g_ns == pytest.approx(1 - sigmoid(-8.0), rel=1e-4)


def test_unknown_loss():
  with pytest.raises(ValueError, match='loss.type'):
    losses.get_losses('wasserstein')
