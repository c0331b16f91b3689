"""The D.U.B. datapath: a unit-step ("granular") ADC is lossless at ceil(log2 T) + 2 bits on a
dense column and at k fewer bits on a column of at most T 2^-k non-zeros; per-tile and
per-layer ADC bits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

from crossjax import converters, crossbar, energy, layers, models, montecarlo, presets
from crossjax.hardware import HardwareConfig

T, C = 16, 8
B0 = energy.dense_column_bits(T)  # 6


def _datapath(**over):
    """``dub_adc_2024`` on T x C tiles (float64 tests run it on small tiles)."""
    return presets.get("dub_adc_2024").set({"array.rows": T, "array.cols": C, **over})


def _run(W, x, cfg):
    return np.asarray(crossbar.matmul(x, crossbar.program(W, cfg), cfg))


def _sparse(rng, K, N, nonzeros):
    """``W (K, N)``: every column of every T-row tile holds ``nonzeros`` non-zero weights."""
    W = rng.normal(size=(K, N))
    for t in range(0, K, T):
        for j in range(N):
            rows = rng.permutation(min(T, K - t))[nonzeros:]
            W[t + rows, j] = 0.0
    return W


def test_dense_column_bits_equal_the_datapath_without_adc():
    rng = np.random.default_rng(0)
    W, x = jnp.asarray(rng.normal(size=(40, 20))), jnp.asarray(rng.normal(size=(7, 40)))
    ref = _run(W, x, _datapath(**{"adc.bits": None}))
    np.testing.assert_allclose(_run(W, x, _datapath()), _run(W, x, _datapath(**{"adc.bits": B0})), atol=0)
    np.testing.assert_allclose(_run(W, x, _datapath(**{"adc.bits": B0})), ref, rtol=0, atol=1e-12)
    # the datapath quantizes: 4-bit weights and 9-bit inputs differ from x @ W
    assert np.max(np.abs(ref - np.asarray(x @ W))) > 1e-3
    # and jit does not change it
    cfg = _datapath(**{"adc.bits": B0})
    state = crossbar.program(W, cfg)
    np.testing.assert_allclose(jax.jit(lambda x: crossbar.matmul(x, state, cfg))(x), ref, rtol=0, atol=1e-12)


def test_worst_case_column_is_exact_at_b0_and_clips_one_bit_lower():
    # every weight +w_max and every input +x_max: the column sum is T units in every slice
    W, x = jnp.ones((T, 1)), jnp.ones((1, T))
    ref = _run(W, x, _datapath(**{"adc.bits": None}))
    np.testing.assert_allclose(_run(W, x, _datapath(**{"adc.bits": B0})), ref, rtol=0, atol=1e-12)
    low = _run(W, x, _datapath(**{"adc.bits": B0 - 1}))
    assert low[0, 0] < ref[0, 0] * (1 - 1e-3)  # (2^(B0-2) - 1) units < T units: clipped


@pytest.mark.parametrize("k", [1, 2, 3])
def test_sparse_columns_are_exact_at_k_fewer_bits_per_tile(k):
    rng = np.random.default_rng(k)
    K, N = 2 * T, 12  # two row tiles, two column tiles (the second half empty)
    W = _sparse(rng, K, N, T >> k)
    W[T:, :] = 0.0  # the second row tile is empty: its tiles get 2 bits
    x = jnp.asarray(rng.normal(size=(5, K)))
    bits = energy.column_bits(W, T, C, per="tile")  # (Kt, Nt, C)
    assert bits.shape == (2, 2, C)
    assert set(np.asarray(bits[0]).ravel()) == {B0 - k} and set(np.asarray(bits[1]).ravel()) == {2}
    ref = _run(W, x, _datapath(**{"adc.bits": None}))
    np.testing.assert_allclose(_run(W, x, _datapath(**{"adc.bits": bits})), ref, rtol=0, atol=1e-12)
    # float32: the same codes (the currents are integers of units to float32 precision)
    cfg32 = _datapath(**{"adc.bits": bits})
    y32 = crossbar.matmul(jnp.asarray(x, jnp.float32), crossbar.program(jnp.asarray(W, jnp.float32), cfg32), cfg32)
    assert y32.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(y32), ref, rtol=0, atol=1e-5 * np.max(np.abs(ref)))


@settings(max_examples=12, deadline=None)
@given(k=st.integers(0, 3), n=st.sampled_from([1, 5, 8]), seed=st.integers(0, 2**31 - 1))  # few shapes: few compiles
def test_property_granular_adc_is_lossless_within_its_bound(k, n, seed):
    rng = np.random.default_rng(seed)
    W = _sparse(rng, T, n, T >> k)
    x = jnp.asarray(rng.normal(size=(3, T)))
    ref = _run(W, x, _datapath(**{"adc.bits": None}))
    np.testing.assert_allclose(_run(W, x, _datapath(**{"adc.bits": B0 - k})), ref, rtol=0, atol=1e-12)


def test_granular_step_is_one_input_level_through_one_cell_level():
    cfg = _datapath()
    assert cfg.dac.input_levels == 1 and cfg.mapping.cell_levels == 1
    assert float(crossbar.granular_step(cfg)) == pytest.approx((cfg.device.g_max - cfg.device.g_min) * cfg.dac.v_read)
    two = cfg.set({"dac.slice_bits": 2, "mapping.slice_bits": 2, "mapping.slices": 2})
    assert float(crossbar.granular_step(two)) == pytest.approx(float(crossbar.granular_step(cfg)) / 9)


def test_tile_column_bits_shapes_and_errors():
    assert converters.tile_column_bits(7, (2, 3, 4)).shape == (3, 4)
    assert converters.tile_column_bits(np.full((3, 4), 7), (2, 3, 4)).shape == (3, 4)
    assert converters.tile_column_bits(np.full((2, 1, 1), 7), (2, 3, 4)).shape == (2, 3, 4)
    with pytest.raises(ValueError, match="adc.bits"):
        converters.tile_column_bits(np.full((3, 3, 4), 7), (2, 3, 4))
    W = jnp.ones((2 * T, C))
    cfg = _datapath(**{"adc.bits": np.full((3, 1, C), 6)})  # three row tiles for a two-tile layer
    with pytest.raises(ValueError, match="adc.bits"):
        crossbar.matmul(jnp.ones((1, 2 * T)), crossbar.program(W, cfg), cfg)


def _mlp():
    return models.MLP(T, (24,), 5, rngs=nnx.Rngs(0))


def test_set_layer_hardware_gives_layers_their_own_per_tile_bits():
    model = _mlp()
    x = jnp.asarray(np.random.default_rng(0).normal(size=(9, T)))
    y = jnp.arange(9) % 5
    names = layers.layer_names(model)
    assert names == ["layers.0", "layers.1"]
    ref_hw = _datapath(**{"adc.bits": None})
    keys = jax.random.split(jax.random.key(0), 1)
    ref = montecarlo.evaluate(model, ref_hw, keys, x, y, return_logits=True, progress=False)
    bits = {
        n: np.asarray(energy.column_bits(l.crossbar_weights(), T, C, per="tile"))
        for n, (_, l) in zip(names, layers.crossbar_layers(model))
    }
    assert bits["layers.0"].shape == (1, 3, C) and bits["layers.1"].shape == (2, 1, C)
    own = nnx.clone(model)
    layers.set_layer_hardware(own, {n: _datapath(**{"adc.bits": b}) for n, b in bits.items()})
    # the model-wide config has 2-bit ADCs; each layer's own config wins
    got = montecarlo.evaluate(own, _datapath(**{"adc.bits": 2}), keys, x, y, return_logits=True, progress=False)
    np.testing.assert_allclose(got["logits"], ref["logits"], rtol=0, atol=1e-5)  # float32 model
    assert "MLP" in repr(own)  # array bits in a layer's config do not break the model's repr
    # in a model's own forward too; dropping the own configs brings the model-wide 2-bit ADC back
    layers.set_mode(own, "train", _datapath(**{"adc.bits": 2}))
    with_own = np.asarray(own(x))
    layers.set_layer_hardware(own, {n: None for n in names})
    np.testing.assert_allclose(with_own, got["logits"][0], rtol=0, atol=1e-5)
    assert np.max(np.abs(np.asarray(own(x)) - with_own)) > 1e-3


def test_set_layer_hardware_bad_input():
    model = _mlp()
    with pytest.raises(ValueError, match=r"layers\.0"):
        layers.set_layer_hardware(model, {"layers.7": HardwareConfig()})
    with pytest.raises(ValueError, match="dict"):
        layers.set_layer_hardware(model, [HardwareConfig()])
    with pytest.raises(ValueError):
        layers.set_layer_hardware(model, {"layers.0": {"adc.bits": 6}})


def test_montecarlo_checks_every_layers_own_config():
    model = _mlp()
    x = np.random.default_rng(1).normal(size=(6, T)).astype(np.float32)
    y = np.arange(6) % 5
    keys = jax.random.split(jax.random.key(0), 2)
    base = presets.get("rram").set({"array.rows": T, "array.cols": C, "adc.range": "max"})
    layers.set_layer_hardware(model, {"layers.1": base.set({"adc.range": "calibrated"})})
    assert [c.adc.range for c in layers.layer_configs(model, base)] == ["max", "calibrated"]
    with pytest.raises(ValueError, match="calibration_x"):  # only the layer's own config calibrates
        montecarlo.evaluate(model, base, keys, x, y, progress=False)
    got = montecarlo.evaluate(model, base, keys, x, y, progress=False, calibration_x=x)
    assert got["accuracy"].shape == (2,)


def test_calibrating_a_granular_adc_is_refused():
    # its full scale is 2**(bits-1) unit currents at every read: a calibrated one would be ignored
    cfg = _datapath()
    W = jnp.ones((T, C))
    with pytest.raises(ValueError, match="granular"):
        crossbar.calibrate_adc(jnp.ones((2, T)), crossbar.program(W, cfg), cfg)
