"""The counter-based read-noise generator against N(0, 1) and for independence."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from crossjax import counter_rng

N = 1 << 18


def _z(key=0, n=N, dtype=jnp.float32):
    return np.asarray(counter_rng.normal(jax.random.key(key), (n,), dtype), np.float64)


def test_moments_and_distribution():
    z = _z()
    assert abs(z.mean()) < 5 / np.sqrt(N)
    assert abs(z.std() - 1) < 5 / np.sqrt(2 * N)
    assert abs(stats.skew(z)) < 5 * np.sqrt(6 / N)
    assert abs(stats.kurtosis(z)) < 5 * np.sqrt(24 / N)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    # tails: the fraction beyond 3 sigma (0.27 %) within sampling error
    p = 2 * stats.norm.sf(3)
    assert abs(np.mean(np.abs(z) > 3) - p) < 5 * np.sqrt(p / N)


def test_bits_are_a_keyed_bijection_with_balanced_bits():
    b = np.asarray(counter_rng.bits(jax.random.key(1), (1 << 20,)))
    assert np.unique(b).size == b.size  # distinct counters give distinct words
    frac = np.unpackbits(b.view(np.uint8)).reshape(-1, 32).mean(axis=0)
    np.testing.assert_array_less(np.abs(frac - 0.5), 5 * 0.5 / np.sqrt(b.size))


def test_independent_neighbours_and_keys():
    z, w = _z(2), _z(3)
    bound = 5 / np.sqrt(N)
    for lag in (1, 2, 64):
        assert abs(np.corrcoef(z[lag:], z[:-lag])[0, 1]) < bound
    assert abs(np.corrcoef(z, w)[0, 1]) < bound
    # no key is a shifted copy of another: cross-correlation at small shifts stays at noise level
    assert max(abs(np.corrcoef(z[s:], w[: N - s])[0, 1]) for s in range(1, 17)) < bound
    # split keys (as Monte Carlo samples use) are independent too
    keys = jax.random.split(jax.random.key(4), 2)
    a, b = (np.asarray(counter_rng.normal(k, (N,))) for k in keys)
    assert abs(np.corrcoef(a, b)[0, 1]) < bound


def test_reproducible_shape_dtype_and_vmap():
    k = jax.random.key(5)
    a = counter_rng.normal(k, (3, 4, 5))
    assert a.shape == (3, 4, 5) and a.dtype == jnp.float32
    np.testing.assert_array_equal(a, counter_rng.normal(k, (3, 4, 5)))
    # the flat index is the counter: a reshaped draw holds the same numbers
    np.testing.assert_array_equal(np.asarray(a).ravel(), counter_rng.normal(k, (60,)))
    keys = jax.random.split(k, 3)
    v = jax.jit(jax.vmap(lambda kk: counter_rng.normal(kk, (7,))))(keys)
    np.testing.assert_array_equal(v, np.stack([counter_rng.normal(kk, (7,)) for kk in keys]))


def test_float64_sees_the_same_noise():
    with jax.enable_x64(True):
        z64 = counter_rng.normal(jax.random.key(6), (1000,), jnp.float64)
        assert z64.dtype == jnp.float64
    np.testing.assert_array_equal(np.asarray(z64, np.float32), counter_rng.normal(jax.random.key(6), (1000,)))


def test_too_many_elements_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        counter_rng.bits(jax.random.key(0), (1 << 16, 1 << 16, 2))
