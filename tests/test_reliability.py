"""Careless-user inputs to the kernels, converters, models and Monte Carlo: a clear
``ValueError`` naming the argument, or a finite exact answer; never NaN, never a
number 2-6x off. Each test failed on the main before the reliability work."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

from crossjax import crossbar, layers, models, montecarlo, presets
from crossjax.circuit import Parasitics
from crossjax.converters import ADCConfig, adc_quantize, max_bits
from crossjax.hardware import HardwareConfig
from crossjax.mapping import MappingConfig


# ----------------------------------------------------------------------------- bit counts
@pytest.mark.parametrize(
    "bits",
    [
        1,
        True,
        False,
        0,
        -3,
        8.5,
        "8",
        b"8",
        np.bool_(True),
        np.array([8, 1]),
        np.array(["8"]),
        120,
        129,
        max_bits() + 1,
        np.nan,
    ],
)
def test_adc_bits_outside_the_exact_range_are_refused(bits):
    with pytest.raises(ValueError, match="adc.bits"):
        ADCConfig(bits=bits)
    with pytest.raises(ValueError, match="adc.bits"):
        HardwareConfig().set({"adc.bits": bits})


@pytest.mark.parametrize(
    "field,value",
    [
        ("dac.bits", 1),
        ("dac.bits", max_bits() + 1),
        ("dac.bits", True),
        ("dac.bits", "8"),
        ("device.levels", 1),
        ("device.levels", 2**60),
        ("dac.slice_bits", max_bits() + 1),
    ],
)
def test_other_bit_counts_are_bounded(field, value):
    base = HardwareConfig().set({"dac.bits": 8}) if field == "dac.slice_bits" else HardwareConfig()
    with pytest.raises(ValueError, match=field.split(".")[1]):
        base.set({field: value})
    with pytest.raises(ValueError, match="slice_bits"):
        MappingConfig(slice_bits=max_bits(), slices=2)


def test_float32_inputs_refuse_bits_beyond_float32():
    cfg = HardwareConfig().set({"adc.bits": 30})  # fine for float64 (x64 is on in the tests)
    W = jnp.ones((4, 3))
    with pytest.raises(ValueError, match="adc.bits"):
        crossbar.analog_matmul(jnp.ones((2, 4), jnp.float32), W.astype(jnp.float32), cfg)
    assert np.all(np.isfinite(crossbar.analog_matmul(jnp.ones((2, 4)), W, cfg)))


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 24), st.floats(1e-9, 1e-3), st.sampled_from(["float32", "float64"]))
def test_property_adc_has_at_most_2_to_b_levels_and_never_nan(bits, full_scale, dtype):
    i = jnp.linspace(-2 * full_scale, 2 * full_scale, 513, dtype=dtype)
    q = np.asarray(adc_quantize(i, jnp.asarray(full_scale, dtype), bits))
    assert np.all(np.isfinite(q))
    assert len(np.unique(q)) <= 2**bits
    assert 0.0 in q  # mid-tread: zero is a code


def test_calibrated_adc_on_zero_data_reads_zero_not_nan():
    cfg = HardwareConfig().set({"adc.bits": 8, "adc.range": "calibrated"})
    W = jax.random.normal(jax.random.key(0), (16, 5))
    state = crossbar.program(W, cfg)
    state = crossbar.calibrate_adc(jnp.zeros((10, 16)), state, cfg)
    y = crossbar.matmul(jnp.zeros((3, 16)), state, cfg)
    assert np.all(np.isfinite(np.asarray(state.adc_range))) and np.all(np.asarray(y) == 0)
    y = crossbar.matmul(jnp.ones((3, 16)), state, cfg)
    assert np.all(np.isfinite(np.asarray(y)))


@pytest.mark.parametrize("percentile", [np.nan, 0, 0.0, 1000, -5, True, "99"])
def test_calibrate_adc_checks_percentile_like_the_config(percentile):
    cfg = HardwareConfig().set({"adc.bits": 8, "adc.range": "calibrated"})
    state = crossbar.program(jnp.ones((8, 3)), cfg)
    with pytest.raises(ValueError, match="percentile"):
        crossbar.calibrate_adc(jnp.ones((4, 8)), state, cfg, percentile=percentile)


# ----------------------------------------------------------------------------- state vs config
@pytest.mark.parametrize(
    "other",
    [
        lambda c: c.set({"mapping.scheme": "offset"}),
        lambda c: c.set({"device.g_max": 2e-4}),
        lambda c: c.set({"array.rows": 32}),
        lambda c: c.set({"array.parasitics": Parasitics(1.0, 1.0)}),
        lambda c: presets.get("rram"),
        lambda c: presets.get("pcm"),
    ],
)
def test_state_refuses_a_config_it_was_not_programmed_with(other):
    cfg = HardwareConfig()
    W = jax.random.normal(jax.random.key(1), (40, 7))
    state = crossbar.program(W, cfg)
    with pytest.raises(ValueError, match="programmed with"):
        crossbar.matmul(jnp.ones((2, 40)), state, other(cfg), jax.random.key(0))


def test_state_accepts_read_time_changes():
    cfg = HardwareConfig().set({"adc.bits": 8})
    W = jax.random.normal(jax.random.key(1), (40, 7))
    state = crossbar.program(W, cfg)
    x = jnp.ones((2, 40))
    crossbar.matmul(x, state, cfg.set({"adc.bits": 6}))  # another ADC resolution
    crossbar.matmul(x, state, cfg.set({"adc.bits": None}))  # no ADC
    crossbar.matmul(x, state, cfg.set({"device.read_noise.sigma": 0.01}), jax.random.key(0))
    with pytest.raises(ValueError, match="without one"):  # ADC on a state without a full scale
        crossbar.matmul(x, crossbar.program(W, HardwareConfig()), cfg)
    with pytest.raises(ValueError, match="CrossbarState"):
        crossbar.matmul(x, {"g": 1}, cfg)


# ----------------------------------------------------------------------------- zero sizes, dtypes
@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (0, 0)])
def test_zero_size_weights_are_refused(shape):
    with pytest.raises(ValueError, match="W has shape .* zero-size axis"):
        crossbar.program(jnp.ones(shape), HardwareConfig())
    with pytest.raises(ValueError, match=r"Ws\[0\] has shape .* zero-size axis"):
        crossbar.program_many([jnp.ones(shape)], HardwareConfig(), [None])


def test_empty_program_many_batch_and_samples_are_refused():
    with pytest.raises(ValueError, match="Ws is empty"):
        crossbar.program_many([], HardwareConfig(), [])
    state = crossbar.program(jnp.ones((5, 3)), HardwareConfig())
    with pytest.raises(ValueError, match="x has shape .* zero-size axis"):
        crossbar.matmul(jnp.ones((0, 5)), state, HardwareConfig())
    mlp = models.MLP(4, (5,), 3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="keys is empty"):
        montecarlo.evaluate(
            mlp,
            HardwareConfig(),
            jax.random.split(jax.random.key(0), 0),
            np.ones((4, 4)),
            np.zeros(4, int),
            progress=False,
        )
    with pytest.raises(ValueError, match="non-zero number of examples"):
        montecarlo.evaluate(
            mlp,
            HardwareConfig(),
            jax.random.split(jax.random.key(0), 2),
            np.ones((0, 4)),
            np.zeros(0, int),
            progress=False,
        )


def test_half_complex_and_bool_inputs():
    W = jax.random.normal(jax.random.key(0), (6, 4))
    cfg = HardwareConfig().set({"array.parasitics": Parasitics(1.0, 1.0)})
    y16 = crossbar.analog_matmul(jnp.ones((2, 6), jnp.float16), W.astype(jnp.float16), cfg)
    assert y16.dtype == jnp.float32  # converted explicitly, not run in half precision
    np.testing.assert_allclose(
        y16,
        crossbar.analog_matmul(jnp.ones((2, 6), jnp.float32), W.astype(jnp.float16).astype(jnp.float32), cfg),
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match="real"):
        crossbar.program(W + 1j, cfg)
    with pytest.raises(ValueError, match="real"):
        crossbar.program(W > 0, cfg)


@pytest.mark.parametrize(
    "build,size",
    [
        (lambda r: models.vgg11(10, width=1 / 16, rngs=r), 8),
        (lambda r: models.vgg11(10, width=1 / 16, rngs=r), 16),
        (lambda r: models.resnet18(10, width=1 / 16, rngs=r), 1),
        (lambda r: models.resnet18(10, width=1 / 16, rngs=r), 4),
    ],
)
@pytest.mark.slow
def test_too_small_images_are_refused(build, size):
    m = build(nnx.Rngs(0))
    with pytest.raises(ValueError, match="needs at least"):
        m(jnp.ones((2, size, size, 3)))


# ----------------------------------------------------------------------------- NaN never becomes an accuracy
def test_nan_logits_raise_instead_of_becoming_an_accuracy():
    mlp = models.MLP(4, (5,), 3, param_dtype=jnp.float64, rngs=nnx.Rngs(0))
    x, y = np.ones((6, 4)), np.zeros(6, int)
    bad = nnx.clone(mlp)
    layer = layers.crossbar_layers(bad)[0][1]
    layer.kernel[...] = layer.kernel[...].at[0, 0].set(jnp.inf)
    with pytest.raises(montecarlo.NonFiniteLogits, match="NaN or infinite"):
        montecarlo.digital_accuracy(bad, x, y)
    with pytest.raises(ValueError, match="NaN or infinite"):
        montecarlo.evaluate(bad, HardwareConfig(), jax.random.split(jax.random.key(0), 2), x, y, progress=False)


def test_crossbar_refuses_wires_beyond_the_dtype_and_shortens_the_sweep():
    W = jax.random.normal(jax.random.key(0), (40, 8))
    strong = HardwareConfig().set({"array.parasitics": Parasitics(2e4, 2e4)})  # kappa = 2 g_max r = 4
    with pytest.raises(ValueError, match="stiffness"):
        crossbar.program(W.astype(jnp.float32), strong.set({"array.parasitics": Parasitics(1e6, 1e6)}))
    # inside float64's range: equals the circuit solve of the programmed cells at a short interval
    from crossjax.circuit import effective_conductance

    state = crossbar.program(W, strong)
    ref = effective_conductance(state.g, strong.array.parasitics, interval=1)
    np.testing.assert_allclose(state.g_eff, ref, rtol=1e-9, atol=1e-20)


@settings(max_examples=20, deadline=None)
@given(
    st.integers(1, 70),
    st.integers(1, 40),
    st.integers(1, 5),
    st.sampled_from([(8, 8), (16, 12), (64, 64)]),
    st.sampled_from(["float32", "float64"]),
    st.integers(0, 2**16),
)
@pytest.mark.slow
def test_property_ideal_crossbar_is_x_at_W_for_any_shape(K, N, B, tile, dtype, seed):
    rng = np.random.default_rng(seed)
    W, x = rng.normal(size=(K, N)).astype(dtype), rng.uniform(-1, 1, (B, K)).astype(dtype)
    cfg = HardwareConfig().set({"array.rows": tile[0], "array.cols": tile[1]})
    y = np.asarray(crossbar.matmul(jnp.asarray(x), crossbar.program(jnp.asarray(W), cfg), cfg))
    tol = 1e-4 if dtype == "float32" else 1e-10
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, x.astype(np.float64) @ W.astype(np.float64), rtol=tol, atol=tol * np.abs(W).max() * K)
    # with wires the answer stays finite and close to x @ W (mild IR drop)
    wired = cfg.set({"array.parasitics": Parasitics(0.5, 0.5)})
    yw = np.asarray(crossbar.analog_matmul(jnp.asarray(x), jnp.asarray(W), wired))
    assert np.all(np.isfinite(yw))
    np.testing.assert_allclose(
        yw, x.astype(np.float64) @ W.astype(np.float64), rtol=0.05, atol=0.05 * np.abs(W).max() * K
    )


def test_state_accepts_the_same_config_moved_to_the_device():
    cfg = presets.get("rram")
    state = crossbar.program(jax.random.normal(jax.random.key(1), (40, 7)), cfg, jax.random.key(0))
    y = crossbar.matmul(jnp.ones((2, 40)), state, jax.device_put(cfg), jax.random.key(1))
    assert np.all(np.isfinite(np.asarray(y)))
