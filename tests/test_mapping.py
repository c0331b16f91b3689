"""Tile layout and weight <-> conductance mapping."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crossjax import mapping
from crossjax.mapping import MappingConfig


@pytest.mark.parametrize("K,N,R,C", [(1, 1, 4, 4), (7, 13, 4, 5), (64, 64, 64, 64), (65, 3, 8, 2)])
def test_tile_layout_matches_architecture(K, N, R, C):
    W = np.random.default_rng(0).normal(size=(K, N))
    t = np.asarray(mapping.tile_weights(jnp.asarray(W), R, C))
    kt, nt = -(-K // R), -(-N // C)
    assert t.shape == (kt, nt, R, C)
    padded = np.zeros((kt * R, nt * C))
    padded[:K, :N] = W
    for a in range(kt):
        for b in range(nt):
            np.testing.assert_array_equal(t[a, b], padded[a * R : (a + 1) * R, b * C : (b + 1) * C])
    np.testing.assert_array_equal(np.asarray(mapping.untile_weights(jnp.asarray(t), K, N)), W)


@pytest.mark.parametrize(
    "cfg",
    [MappingConfig(), MappingConfig(scheme="offset"), MappingConfig(weight_scale="column"), MappingConfig(w_max=10.0)],
)
def test_map_unmap_round_trip(cfg):
    W = jnp.asarray(np.random.default_rng(1).normal(size=(37, 21)))
    u, w_max = mapping.map_weights(W, cfg, 8, 8)
    assert float(u.min()) >= 0.0 and float(u.max()) <= 1.0
    assert u.shape == (cfg.n_arrays, 5, 3, 8, 8 + cfg.reference_columns)
    np.testing.assert_allclose(mapping.unmap_tiles(u, w_max, cfg, 37, 21), W, rtol=0, atol=1e-14)


def test_differential_formula():
    W = jnp.array([[0.5, -1.0], [0.0, 0.25]])
    u, w_max = mapping.map_weights(W, MappingConfig(), 2, 2)
    assert float(w_max) == 1.0
    np.testing.assert_array_equal(u[0, 0, 0], [[0.5, 0.0], [0.0, 0.25]])
    np.testing.assert_array_equal(u[1, 0, 0], [[0.0, 1.0], [0.0, 0.0]])


@pytest.mark.parametrize("bits,slices", [(1, 4), (2, 3), (3, 1)])
def test_bit_slices_reconstruct_quantized_weight_exactly(bits, slices):
    W = jnp.asarray(np.random.default_rng(2).normal(size=(30, 10)))
    cfg = MappingConfig(slice_bits=bits, slices=slices)
    u, w_max = mapping.map_weights(W, cfg, 8, 4)
    assert u.shape[0] == 2 * slices
    q = 2 ** (bits * slices) - 1
    levels = np.asarray(u) * (2**bits - 1)
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-12)  # each cell holds a digit
    w_q = np.sign(W) * np.round(np.abs(W) / w_max * q) / q * w_max  # independent quantizer
    np.testing.assert_allclose(mapping.unmap_tiles(u, w_max, cfg, 30, 10), w_q, rtol=0, atol=1e-13)


@pytest.mark.slow
def test_bit_slice_gradient_is_straight_through():
    cfg = MappingConfig(slice_bits=2, slices=2, w_max=2.0)
    W = jnp.asarray(np.random.default_rng(3).uniform(-1.5, 1.5, size=(4, 3)))
    f = lambda W: jnp.sum(mapping.unmap_tiles(*mapping.map_weights(W, cfg, 4, 4), cfg, 4, 3))
    np.testing.assert_allclose(jax.grad(f)(W), np.ones((4, 3)), atol=1e-12)


def test_bad_mapping_config():
    with pytest.raises(ValueError, match="mapping.scheme"):
        MappingConfig(scheme="triple")
    with pytest.raises(ValueError, match="mapping.slice_bits"):
        MappingConfig(slices=2)
    with pytest.raises(ValueError, match="mapping.w_max"):
        MappingConfig(w_max=-1.0)
