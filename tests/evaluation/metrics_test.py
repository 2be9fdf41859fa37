"""Tests of the Frechet distance, KID, IS and the streaming statistics."""

import numpy as np
import pytest
import scipy.linalg

from dcgan_jax.evaluation import metrics


def _random_cov(rng, d, rank=None):
  a = rng.normal(size=(d, rank or 2 * d))
  return a @ a.T / a.shape[1]


def _fid_by_eigenvalues(mu1, s1, mu2, s2):
  # Independent route: the eigenvalues of S1 S2 are those of the PSD matrix
  # sqrt(S1) S2 sqrt(S1), so tr sqrt(S1 S2) = sum sqrt(eig(S1 S2)).
  eig = np.linalg.eigvals(s1 @ s2)
  tr = np.sum(np.sqrt(np.clip(eig.real, 0, None)))
  return np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr


def _fid_by_symmetric_root(mu1, s1, mu2, s2):
  root = scipy.linalg.sqrtm(s1).real
  inner = scipy.linalg.eigh(root @ s2 @ root, eigvals_only=True)
  return (np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
          - 2 * np.sum(np.sqrt(np.clip(inner, 0, None))))


@pytest.mark.parametrize('d', [1, 5, 64])
def test_frechet_matches_independent_computation(d):
  rng = np.random.default_rng(d)
  mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
  s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
  got = metrics.frechet_distance(mu1, s1, mu2, s2)
  np.testing.assert_allclose(got, _fid_by_eigenvalues(mu1, s1, mu2, s2), rtol=1e-8)
  np.testing.assert_allclose(got, _fid_by_symmetric_root(mu1, s1, mu2, s2), rtol=1e-8)


def test_frechet_one_dimensional_closed_form():
  # (m1 - m2)^2 + s1 + s2 - 2 sqrt(s1 s2) for variances s1, s2.
  got = metrics.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]])
  assert got == pytest.approx(4 + 4 + 9 - 2 * 6, abs=1e-12)


def test_frechet_near_singular_covariance():
  rng = np.random.default_rng(0)
  d = 64
  # Rank 10 and rank 20 covariances: sqrtm of the (singular) product is poorly
  # conditioned; the result must still agree with the eigenvalue route.
  s1, s2 = _random_cov(rng, d, rank=10), _random_cov(rng, d, rank=20)
  s1 += 1e-12 * np.eye(d)
  mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
  got = metrics.frechet_distance(mu1, s1, mu2, s2)
  want = _fid_by_eigenvalues(mu1, s1, mu2, s2)
  assert np.isfinite(got)
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_trace_sqrt_product_matches_eigenvalues_for_singular_inputs():
  rng = np.random.default_rng(1)
  s1, s2 = _random_cov(rng, 32, rank=5), _random_cov(rng, 32, rank=7)
  eig = np.linalg.eigvals(s1 @ s2)
  np.testing.assert_allclose(metrics.trace_sqrt_product(s1, s2),
                             np.sum(np.sqrt(np.clip(eig.real, 0, None))), rtol=1e-6)


def test_frechet_of_set_with_itself_is_zero():
  rng = np.random.default_rng(2)
  f = rng.normal(size=(500, 64)) @ rng.normal(size=(64, 64))
  mu, sigma = f.mean(0), np.cov(f, rowvar=False)
  assert abs(metrics.frechet_distance(mu, sigma, mu, sigma)) < 1e-6


def test_frechet_mean_shift_adds_squared_norm():
  rng = np.random.default_rng(3)
  d = 32
  mu, sigma = rng.normal(size=d), _random_cov(rng, d)
  shift = rng.normal(size=d)
  got = metrics.frechet_distance(mu + shift, sigma, mu, sigma)
  np.testing.assert_allclose(got, shift @ shift, rtol=1e-7)


def test_frechet_rejects_mismatched_shapes():
  with pytest.raises(ValueError):
    metrics.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_accumulator_matches_numpy_mean_and_cov():
  rng = np.random.default_rng(4)
  # A large common offset: the naive E[xx] - mu mu^T loses digits without the shift.
  f = rng.normal(size=(1000, 16)).astype(np.float32) + 1000.0
  acc = metrics.StatsAccumulator(16)
  for chunk in np.array_split(f, 7):
    acc.add(chunk)
  mu, sigma = acc.mu_sigma()
  f64 = f.astype(np.float64)
  np.testing.assert_allclose(mu, f64.mean(0), rtol=1e-12)
  np.testing.assert_allclose(sigma, np.cov(f64, rowvar=False), rtol=1e-9, atol=1e-9)
  assert acc.n == 1000


def test_kid_small_case_by_hand():
  # d = 1, k(x, y) = (x y + 1)^3, X = {0, 1}, Y = {1, 2}:
  # k(0,1) = 1; k(1,2) = 27; cross terms 1, 1, 8, 27 (mean 9.25);
  # MMD^2 = 1 + 27 - 2 * 9.25 = 9.5, the same for every subset of size 2.
  mean, std = metrics.kernel_inception_distance([[0.0], [1.0]], [[1.0], [2.0]],
                                                num_subsets=5, subset_size=2)
  assert mean == pytest.approx(9.5)
  assert std == pytest.approx(0.0)


def test_kid_matches_direct_unbiased_estimate():
  rng = np.random.default_rng(5)
  x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 3)) + 0.5
  k = lambda a, b: (a @ b / 3 + 1) ** 3
  xx = np.mean([k(x[i], x[j]) for i in range(6) for j in range(6) if i != j])
  yy = np.mean([k(y[i], y[j]) for i in range(6) for j in range(6) if i != j])
  xy = np.mean([k(x[i], y[j]) for i in range(6) for j in range(6)])
  mean, _ = metrics.kernel_inception_distance(x, y, num_subsets=3, subset_size=100)
  assert mean == pytest.approx(xx + yy - 2 * xy, rel=1e-10)


def test_kid_near_zero_for_same_distribution_and_grows_with_shift():
  rng = np.random.default_rng(6)
  x, y = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
  same, same_std = metrics.kernel_inception_distance(x, y, num_subsets=20, subset_size=200)
  shifted, _ = metrics.kernel_inception_distance(x, y + 1.0, num_subsets=20, subset_size=200)
  # Unbiased: same-distribution estimates scatter around 0.
  assert abs(same) < 3 * same_std
  assert shifted > 100 * abs(same)


def test_inception_score_small_case_by_hand():
  # p(y|x1) = (1, 0), p(y|x2) = (1/2, 1/2); p(y) = (3/4, 1/4).
  # KL1 = log(4/3), KL2 = (log(2/3) + log 2) / 2; IS = exp(mean KL).
  logits = np.array([[60.0, 0.0], [0.0, 0.0]])
  kl1 = np.log(4 / 3)
  kl2 = 0.5 * (np.log(2 / 3) + np.log(2))
  mean, std = metrics.inception_score(logits, splits=1)
  assert mean == pytest.approx(np.exp((kl1 + kl2) / 2), rel=1e-9)
  assert std == 0.0


def test_inception_score_extremes_and_splits():
  k = 7
  confident = 50.0 * np.tile(np.eye(k), (4, 1))  # Every class equally often.
  mean, std = metrics.inception_score(confident, splits=4)
  assert mean == pytest.approx(k, rel=1e-6) and std == pytest.approx(0, abs=1e-6)
  uniform = np.zeros((40, k))
  assert metrics.inception_score(uniform, splits=10)[0] == pytest.approx(1.0)
  # Split i uses rows [i n / s, (i + 1) n / s): here splits with different IS.
  mixed = np.concatenate([confident[:k], uniform[:k]])
  mean, std = metrics.inception_score(mixed, splits=2)
  assert mean == pytest.approx((k + 1) / 2, rel=1e-6)
  assert std == pytest.approx((k - 1) / 2, rel=1e-6)


def test_frechet_falls_back_when_sqrtm_fails(monkeypatch):
  rng = np.random.default_rng(7)
  d = 16
  mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
  s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
  want = _fid_by_eigenvalues(mu1, s1, mu2, s2)
  real_sqrtm = scipy.linalg.sqrtm
  calls = []

  def nan_then_real(a, *args, **kwargs):
    calls.append(a)
    return np.full_like(a, np.nan) if len(calls) == 1 else real_sqrtm(a, *args, **kwargs)

  # Non-finite result: retried with eps on both diagonals, as pytorch-fid does.
  monkeypatch.setattr(scipy.linalg, 'sqrtm', nan_then_real)
  got = metrics.frechet_distance(mu1, s1, mu2, s2, eps=1e-6)
  assert len(calls) == 2
  offset = np.eye(d) * 1e-6
  np.testing.assert_allclose(calls[1], (s1 + offset) @ (s2 + offset))
  np.testing.assert_allclose(got, want, rtol=1e-5)

  # Large imaginary parts: the exact symmetric route instead of an error.
  monkeypatch.setattr(scipy.linalg, 'sqrtm',
                      lambda a, *args, **kw: real_sqrtm(a) + 0.5j * np.eye(len(a)))
  np.testing.assert_allclose(metrics.frechet_distance(mu1, s1, mu2, s2), want, rtol=1e-8)
  # Small ones are rounding noise and are dropped.
  monkeypatch.setattr(scipy.linalg, 'sqrtm',
                      lambda a, *args, **kw: real_sqrtm(a) + 1e-9j * np.eye(len(a)))
  np.testing.assert_allclose(metrics.frechet_distance(mu1, s1, mu2, s2), want, rtol=1e-8)
