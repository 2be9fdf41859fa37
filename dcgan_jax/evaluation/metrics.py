"""FID, KID and Inception Score from features, in float64 on the host.

Conventions (those of the reference implementations, so numbers compare):
* FID (Heusel et al. 2017): |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) with
  unbiased (n - 1) covariances. The matrix square root is scipy.linalg.sqrtm as
  in TTUR/pytorch-fid; where that fails (non-finite result, or a large
  imaginary part from a near-singular product) we fall back to the exact
  symmetric form tr((S1^(1/2) S2 S1^(1/2))^(1/2)) from eigendecompositions,
  instead of raising.
* KID (Binkowski et al. 2018): unbiased MMD^2 with the kernel
  k(x, y) = (x.y / d + 1)^3, averaged over random subsets.
* IS (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))) over 10 contiguous
  splits, mean and (population) std of the splits. Like the original code we
  take the softmax over all 1008 outputs of the FID Inception's classifier,
  with the logits computed without the bias (pool @ W, what the original
  `softmax/logits/MatMul` tensor is); see `inception_score`.
"""

import logging
import warnings

import numpy as np
import scipy.linalg
import scipy.special


class StatsAccumulator:
  """Streams features into float64 sum and sum of outer products.

  Holds O(d^2) memory whatever the sample count. To keep the float64
  cancellation in sigma = E[xx^T] - mu mu^T small, features are shifted by the
  mean of the first batch (covariance is shift invariant).
  """

  def __init__(self, dim):
    self.dim = dim
    self.n = 0
    self._shift = None
    self._sum = np.zeros(dim, np.float64)
    self._outer = np.zeros((dim, dim), np.float64)

  def add(self, features):
    f = np.asarray(features, np.float64).reshape(-1, self.dim)
    if not len(f):
      return
    if self._shift is None:
      self._shift = f.mean(axis=0)
    f = f - self._shift
    self.n += len(f)
    self._sum += f.sum(axis=0)
    self._outer += f.T @ f

  def mu_sigma(self):
    """Returns (mu [d], sigma [d, d]) like np.mean and np.cov(rowvar=False)."""
    if self.n < 2:
      raise ValueError(f'Need at least 2 samples for a covariance, got {self.n}.')
    mean = self._sum / self.n
    sigma = (self._outer - self.n * np.outer(mean, mean)) / (self.n - 1)
    return mean + self._shift, (sigma + sigma.T) / 2


def _sqrt_psd(matrix):
  """Square root of a symmetric positive semi-definite matrix (eigh, clipped)."""
  w, v = np.linalg.eigh((matrix + matrix.T) / 2)
  return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def trace_sqrt_product(sigma1, sigma2):
  """tr((S1 S2)^(1/2)) for PSD S1, S2, exactly, via the symmetric S1^½ S2 S1^½."""
  root1 = _sqrt_psd(sigma1)
  w = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
  return np.sum(np.sqrt(np.clip(w, 0, None)))


def frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6, imag_tol=1e-3):
  """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

  Args:
    mu1, mu2: [d] means.
    sigma1, sigma2: [d, d] covariances.
    eps: diagonal offset added to both covariances when sqrtm of their product
      is not finite (singular product), as TTUR/pytorch-fid do.
    imag_tol: largest |imaginary part| on the diagonal of sqrtm's result taken
      as rounding noise; beyond it we use the exact symmetric form.

  Returns:
    The distance as a Python float.
  """
  mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
  sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
  sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
  if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
    raise ValueError(f'Shapes do not match: mu {mu1.shape} vs {mu2.shape}, '
                     f'sigma {sigma1.shape} vs {sigma2.shape}.')
  diff = mu1 - mu2
  with warnings.catch_warnings():
    # With fewer samples than dimensions the product is singular and scipy
    # warns on every call; the checks below catch the cases that matter.
    warnings.simplefilter('ignore', scipy.linalg.LinAlgWarning)
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
      logging.warning('FID: sqrtm of the covariance product is not finite; adding '
                      '%g to the diagonals.', eps)
      offset = np.eye(len(mu1)) * eps
      covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
  if not np.isfinite(covmean).all() or (
      np.iscomplexobj(covmean) and np.abs(np.diagonal(covmean).imag).max() > imag_tol):
    logging.warning('FID: sqrtm is inaccurate (near-singular covariances); using '
                    'the symmetric eigendecomposition instead.')
    tr_covmean = trace_sqrt_product(sigma1, sigma2)
  else:
    tr_covmean = np.trace(covmean.real)
  return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def polynomial_kernel(x, y, degree=3, gamma=None, coef0=1.0):
  """k(x, y) = (gamma x.y + coef0)^degree with gamma = 1 / d by default."""
  gamma = 1.0 / x.shape[1] if gamma is None else gamma
  base = x @ y.T
  base *= gamma
  base += coef0
  if degree != int(degree) or degree < 1:
    return base ** degree
  # An integer power as products, in place: numpy's ** takes pow() per element,
  # and KID's 300 kernels of 1000 x 1000 were most of an evaluation's time.
  out = base.copy()
  for _ in range(int(degree) - 1):
    out *= base
  return out


def mmd2_unbiased(x, y, kernel=polynomial_kernel):
  """Unbiased MMD^2 estimate between samples x [m, d] and y [n, d]."""
  m, n = len(x), len(y)
  kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
  # Diagonals are k(x_i, x_i): dropped for the U-statistic.
  xx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
  yy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
  return xx + yy - 2 * kxy.mean()


def kernel_inception_distance(features1, features2, num_subsets=100, subset_size=1000,
                              seed=0):
  """KID: mean and std of the unbiased polynomial-kernel MMD^2 over subsets.

  Args:
    features1, features2: [n1, d] and [n2, d] features.
    num_subsets: number of random subset pairs.
    subset_size: samples per subset (without replacement), capped at min(n1, n2).
    seed: numpy seed for the subsets (the estimate is then deterministic).

  Returns:
    (mean, std) as Python floats (std over subsets, ddof=0).
  """
  f1 = np.asarray(features1, np.float64)
  f2 = np.asarray(features2, np.float64)
  if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
    raise ValueError(f'Want [n, d] features of equal d, got {f1.shape} and {f2.shape}.')
  m = min(subset_size, len(f1), len(f2))
  if m < 2:
    raise ValueError('KID needs at least 2 samples in each set.')
  rng = np.random.default_rng(seed)
  values = np.array([
      mmd2_unbiased(f1[rng.choice(len(f1), m, replace=False)],
                    f2[rng.choice(len(f2), m, replace=False)])
      for _ in range(num_subsets)])
  return float(values.mean()), float(values.std())


def inception_score(logits, splits=10):
  """Inception Score from classifier logits.

  Args:
    logits: [n, k] logits; the softmax is over all k (for the FID Inception,
      pass the 1008 'logits_unbiased', as the original code did).
    splits: number of contiguous splits.

  Returns:
    (mean, std) over splits, as Python floats.
  """
  logits = np.asarray(logits, np.float64)
  if len(logits) < splits:
    raise ValueError(f'Need at least {splits} samples for {splits} splits.')
  log_p = scipy.special.log_softmax(logits, axis=1)
  scores = []
  n = len(log_p)
  for i in range(splits):
    # Split boundaries i * n // splits, as in the original code.
    part = log_p[i * n // splits:(i + 1) * n // splits]
    log_marginal = scipy.special.logsumexp(part, axis=0) - np.log(len(part))
    kl = np.sum(np.exp(part) * (part - log_marginal), axis=1)
    scores.append(np.exp(kl.mean()))
  return float(np.mean(scores)), float(np.std(scores))

