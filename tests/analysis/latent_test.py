"""Tests of latent interpolation, numbered sheets and latent arithmetic."""

import os

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from tests.support.tiny_models import LATENT_DIM
from dcgan_jax.data import images as images_lib
from dcgan_jax.analysis import latent


def _angle(u, v):
  """Angle between vectors, computed independently in float64 numpy."""
  u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
  return np.arccos(np.clip(u @ v / np.linalg.norm(u) / np.linalg.norm(v), -1, 1))


@pytest.fixture
def endpoints():
  rng = np.random.default_rng(0)
  return rng.normal(size=32).astype(np.float32), rng.normal(size=32).astype(np.float32)


def test_slerp_endpoints_are_exact(endpoints):
  z0, z1 = endpoints
  out = np.asarray(latent.slerp(z0, z1, jnp.array([0.0, 1.0])))
  np.testing.assert_array_equal(out[0], z0)
  np.testing.assert_array_equal(out[1], z1)


def test_slerp_keeps_the_norm_of_equal_norm_endpoints(endpoints):
  z0, z1 = endpoints
  z1 = z1 / np.linalg.norm(z1) * np.linalg.norm(z0)
  t = np.linspace(0, 1, 11)
  norms = np.linalg.norm(np.asarray(latent.slerp(z0, z1, t), np.float64), axis=-1)
  np.testing.assert_allclose(norms, np.linalg.norm(z0), rtol=1e-5)
  # lerp, by contrast, cuts the chord: shorter in the middle.
  assert np.linalg.norm(np.asarray(latent.lerp(z0, z1, 0.5))) < 0.9 * np.linalg.norm(z0)


def test_slerp_norm_is_linear_in_t_for_unequal_norms(endpoints):
  z0, z1 = endpoints[0], 3 * endpoints[1]
  t = np.linspace(0, 1, 7)
  norms = np.linalg.norm(np.asarray(latent.slerp(z0, z1, t), np.float64), axis=-1)
  expected = (1 - t) * np.linalg.norm(z0) + t * np.linalg.norm(z1)
  np.testing.assert_allclose(norms, expected, rtol=1e-5)


def test_slerp_angle_is_linear_in_t(endpoints):
  z0, z1 = endpoints
  omega = _angle(z0, z1)
  t = np.linspace(0, 1, 9)
  path = np.asarray(latent.slerp(z0, z1, t))
  np.testing.assert_allclose([_angle(z0, p) for p in path], t * omega, atol=1e-5)
  np.testing.assert_allclose([_angle(p, z1) for p in path], (1 - t) * omega, atol=1e-5)


def test_slerp_matches_the_textbook_formula_for_equal_norms(endpoints):
  z0, z1 = (np.asarray(z, np.float64) for z in endpoints)
  z1 = z1 / np.linalg.norm(z1) * np.linalg.norm(z0)
  omega, t = _angle(z0, z1), 0.3
  expected = (np.sin((1 - t) * omega) * z0 + np.sin(t * omega) * z1) / np.sin(omega)
  np.testing.assert_allclose(latent.slerp(z0.astype(np.float32), z1.astype(np.float32), t),
                             expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('scale', [1.0, -1.0])
def test_slerp_falls_back_to_lerp_for_parallel_vectors(endpoints, scale):
  z0 = endpoints[0]
  z1 = scale * z0 * (1 + 1e-7)
  t = np.linspace(0, 1, 5)
  out = np.asarray(latent.slerp(z0, z1, t))
  assert np.all(np.isfinite(out))
  np.testing.assert_allclose(out, np.asarray(latent.lerp(z0, z1, t)), atol=1e-6)
  grad = jax.grad(lambda a: latent.slerp(a, z1, 0.5).sum())(z0)
  assert np.all(np.isfinite(grad))


def test_slerp_jits_and_batches(endpoints):
  z0, z1 = endpoints
  t = jnp.linspace(0, 1, 4)
  np.testing.assert_allclose(jax.jit(latent.slerp)(z0, z1, t), latent.slerp(z0, z1, t),
                             rtol=1e-6, atol=1e-6)


def test_lerp_midpoint(endpoints):
  z0, z1 = endpoints
  np.testing.assert_allclose(latent.lerp(z0, z1, 0.5), (z0 + z1) / 2, rtol=1e-6)


def test_interpolate_rows_are_independent_paths():
  rng = np.random.default_rng(1)
  z0, z1 = rng.normal(size=(2, 3, 5)).astype(np.float32)
  paths = np.asarray(latent.interpolate(z0, z1, 6))
  assert paths.shape == (3, 6, 5)
  for r in range(3):
    np.testing.assert_allclose(paths[r], latent.interpolate(z0[r], z1[r], 6), rtol=1e-6)
  with pytest.raises(ValueError):
    latent.interpolate(z0, z1, 6, method='cubic')


def test_interpolation_strip_shows_both_endpoints(generate_fn, tmp_path):
  rng = np.random.default_rng(2)
  z0, z1 = rng.normal(size=(2, 2, LATENT_DIM)).astype(np.float32)
  path = str(tmp_path / 'strip.png')
  strip = latent.interpolation_strip(generate_fn, z0, z1, num_steps=5, path=path)
  expected = images_lib.make_grid(
      np.asarray(generate_fn(jnp.asarray(latent.interpolate(z0, z1, 5).reshape(-1, LATENT_DIM)))),
      ncols=5)
  np.testing.assert_array_equal(strip, expected)
  first_tile = strip[2:10, 2:10]
  np.testing.assert_array_equal(first_tile, images_lib.to_uint8(generate_fn(z0[:1]))[0])
  assert Image.open(path).size == (strip.shape[1], strip.shape[0])


def test_batched_apply_pads_and_trims():
  calls = []

  def fn(x):
    calls.append(x.shape)
    return x * 2

  x = np.arange(10, dtype=np.float32).reshape(5, 2)
  np.testing.assert_array_equal(latent.batched_apply(fn, x, batch_size=2), x * 2)
  assert set(calls) == {(2, 2)}  # One shape: a jitted fn compiles once.


def test_numbered_sheet_draws_indices_only_in_tile_corners():
  images = np.zeros((6, 8, 8, 1), np.uint8) + 128
  sheet = latent.numbered_sheet(images, ncols=3, min_tile=64, padding=2)
  plain = images_lib.make_grid(np.repeat(images.repeat(8, 1).repeat(8, 2), 3, -1), ncols=3)
  assert sheet.shape == plain.shape == (2 * 66 + 2, 3 * 66 + 2, 3)
  changed = np.any(sheet != plain, axis=-1)
  for i in range(6):
    row, col = divmod(i, 3)
    top, left = 2 + row * 66, 2 + col * 66
    tile = changed[top:top + 64, left:left + 64]
    assert tile[:24, :32].any(), f'no index drawn on tile {i}'
    assert not tile[32:, :].any() and not tile[:, 40:].any()
  # Different indices draw different marks.
  assert np.any(sheet[2:26, 2:34] != sheet[2:26, 68:100])


def test_sample_sheet_saves_the_latents_it_shows(generate_fn, tmp_path):
  z = np.random.default_rng(3).normal(size=(5, LATENT_DIM)).astype(np.float32)
  path = str(tmp_path / 'sheet.png')
  sheet, returned = latent.sample_sheet(generate_fn, z, path)
  np.testing.assert_array_equal(returned, z)
  np.testing.assert_array_equal(latent.load_latents(str(tmp_path / 'sheet.npz')), z)
  assert os.path.getsize(path) > 0 and sheet.ndim == 3


def test_latent_arithmetic_equals_numpy_mean_combination():
  z = np.random.default_rng(4).normal(size=(20, LATENT_DIM)).astype(np.float32)
  a, b, c = [1, 4, 7], [2, 3], [19, 0, 5]
  expected = z[a].mean(0) - z[b].mean(0) + z[c].mean(0)
  np.testing.assert_allclose(latent.latent_arithmetic(z, a, b, c), expected, rtol=1e-6)


def test_latent_arithmetic_picks_the_given_indices():
  # Row i is filled with i, so the result reveals which rows were averaged.
  z = np.repeat(np.arange(10, dtype=np.float32)[:, None], LATENT_DIM, axis=1)
  out = latent.latent_arithmetic(z, [1, 3], [2], [6, 8, 9])
  np.testing.assert_allclose(out, np.full(LATENT_DIM, 2.0 - 2.0 + 23 / 3), rtol=1e-6)
  with pytest.raises(IndexError):
    latent.latent_arithmetic(z, [10], [2], [3])
  with pytest.raises(ValueError):
    latent.latent_arithmetic(z, [], [2], [3])


def test_arithmetic_grid_generates_the_result(generate_fn, tmp_path):
  z = np.random.default_rng(5).normal(size=(12, LATENT_DIM)).astype(np.float32)
  out = latent.arithmetic_grid(generate_fn, z, [0, 1, 2], [3, 4], [5], num_variations=4,
                               path=str(tmp_path / 'arith.png'))
  np.testing.assert_allclose(out['result_z'], latent.latent_arithmetic(z, [0, 1, 2], [3, 4], [5]))
  np.testing.assert_allclose(out['result_images'][0], generate_fn(out['result_z'][None])[0],
                             atol=1e-6)
  assert out['result_images'].shape == (4, 8, 8, 1)
  # The noisy variations differ from the noise-free result.
  assert not np.allclose(out['result_images'][1], out['result_images'][0])
  # 4 rows (A, B, C, result), 4 columns (|A| + mean).
  assert out['grid'].shape[:2] == (4 * 10 + 2, 4 * 10 + 2)
  assert os.path.exists(tmp_path / 'arith.png')


def test_sample_latents_follow_the_prior():
  key = jax.random.PRNGKey(0)
  normal = np.asarray(latent.sample_latents(key, 4000, 4, 'normal'))
  uniform = np.asarray(latent.sample_latents(key, 4000, 4, 'uniform'))
  assert abs(normal.std() - 1) < 0.05 and uniform.min() >= -1 and uniform.max() <= 1
  assert abs(uniform.std() - 1 / np.sqrt(3)) < 0.02
  with pytest.raises(ValueError):
    latent.sample_latents(key, 1, 4, 'cauchy')
