"""DAC and ADC quantizers, bit-serial inputs, ADC ranges and calibration."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crossjax import converters, crossbar, tiling
from crossjax.converters import ADCConfig, DACConfig
from crossjax.hardware import HardwareConfig


def test_adc_codes_per_column_at_most_2_pow_bits():
    rng = np.random.default_rng(0)
    bits = np.array([1, 2, 3, 4, 6, 8])
    i = jnp.asarray(rng.normal(scale=2e-5, size=(5000, bits.size)))
    fs = 3e-5
    q = np.asarray(converters.adc_quantize(i, fs, jnp.asarray(bits)))
    for j, b in enumerate(bits):
        codes = q[:, j] / (fs / 2 ** (b - 1))
        np.testing.assert_allclose(codes, np.round(codes), atol=1e-9)  # on the code grid
        assert len(np.unique(np.round(codes))) <= 2**b
        assert len(np.unique(np.round(codes))) == 2**b  # the data spans the full range
    assert np.all(np.abs(q) <= fs)


def test_adc_error_bound_and_ste():
    i = jnp.linspace(-1e-5, 1e-5, 101)
    q = converters.adc_quantize(i, 2e-5, 8)
    assert float(jnp.max(jnp.abs(q - i))) <= 2e-5 / 2**7 / 2 + 1e-20
    g = jax.grad(lambda i: jnp.sum(converters.adc_quantize(i, 2e-5, 8)))(i)
    np.testing.assert_allclose(g, np.ones(101), rtol=1e-15)


def _adc_by_autodiff(i, fs, bits):
    """The straight-through ADC written for autodiff: identity gradient where the
    rounded code is in range, the clipped code (no gradient to ``i``) outside."""
    half = 2.0 ** (jnp.asarray(bits, dtype=i.dtype) - 1)
    step = fs / half
    u = i / step
    r = jax.lax.stop_gradient(jnp.round(u))
    inside = (r >= -half) & (r <= half - 1)
    code = jnp.where(inside, u + jax.lax.stop_gradient(r - u), jax.lax.stop_gradient(jnp.clip(r, -half, half - 1)))
    return code * step


@pytest.mark.parametrize(
    "fs_shape,bits", [((), 4), ((1, 6), 3), ((5, 1, 6), np.array([2, 3, 4, 5, 6, 8])), ((5, 7, 1), 5)]
)
def test_adc_gradients_equal_the_straight_through_reference(fs_shape, bits):
    """Custom VJP of ``adc_quantize`` (the full-scale cotangent as one einsum) against
    autodiff of the same straight-through definition, including clipped currents and
    a broadcast full scale."""
    rng = np.random.default_rng(4)
    i = jnp.asarray(rng.normal(scale=2e-5, size=(5, 7, 6)))
    fs = jnp.asarray(rng.uniform(1e-5, 3e-5, size=fs_shape))
    w = jnp.asarray(rng.normal(size=i.shape))
    loss = lambda f: lambda i, fs: jnp.sum(w * f(i, fs, bits))
    np.testing.assert_array_equal(converters.adc_quantize(i, fs, bits), _adc_by_autodiff(i, fs, bits))
    got = jax.grad(loss(converters.adc_quantize), argnums=(0, 1))(i, fs)
    ref = jax.grad(loss(_adc_by_autodiff), argnums=(0, 1))(i, fs)
    assert got[1].shape == fs.shape
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * float(jnp.max(jnp.abs(b))))
    clipped = np.abs(np.asarray(i)) > np.asarray(jnp.broadcast_to(fs, i.shape)) * 1.3  # past half a step
    assert clipped.any() and np.all(np.asarray(got[0])[clipped] == 0)  # no gradient where the ADC saturates


def test_adc_gradient_of_a_current_broadcast_against_the_full_scale():
    i = jnp.linspace(-3e-5, 3e-5, 7)
    fs = jnp.asarray([[1e-5], [2e-5], [4e-5]])  # three full scales for the same currents
    got = jax.grad(lambda i, fs: jnp.sum(converters.adc_quantize(i, fs, 4)), argnums=(0, 1))(i, fs)
    ref = jax.grad(lambda i, fs: jnp.sum(_adc_by_autodiff(i, fs, 4)), argnums=(0, 1))(i, fs)
    assert got[0].shape == i.shape and got[1].shape == fs.shape
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * float(jnp.max(jnp.abs(b))))


def test_adc_gradients_keep_each_operands_dtype():
    i = jnp.linspace(-3e-5, 3e-5, 7, dtype=jnp.float32)
    fs = jnp.asarray([[1e-5], [2e-5]], jnp.float64)
    gi, gfs = jax.grad(lambda i, fs: jnp.sum(converters.adc_quantize(i, fs, 4)), argnums=(0, 1))(i, fs)
    assert gi.dtype == jnp.float32 and gfs.dtype == jnp.float64
    ri, rfs = jax.grad(lambda i, fs: jnp.sum(_adc_by_autodiff(i, fs, 4)), argnums=(0, 1))(i, fs)
    np.testing.assert_allclose(gi, ri, rtol=1e-6)
    np.testing.assert_allclose(gfs, rfs, rtol=1e-6)


def test_dac_levels_and_clipping():
    x = jnp.linspace(-2, 2, 2001)
    v, coef, rng = converters.apply_dac(x, DACConfig(bits=4, v_read=0.3, x_max=1.5))
    assert v.shape == (1, 2001) and coef == (1.0,)
    vals = np.unique(np.asarray(v[0]))
    assert len(vals) == 2**4 - 1 and np.isclose(vals.max(), 0.3) and np.isclose(vals.min(), -0.3)


def test_dac_max_range_scales_each_vector():
    x = jnp.array([[1.0, -4.0, 2.0], [0.5, 0.25, 0.0]])
    v, _, rng = converters.apply_dac(x, DACConfig(range="max", v_read=0.2))
    np.testing.assert_allclose(rng[:, 0], [4.0, 0.5])
    np.testing.assert_allclose(v[0], x / rng * 0.2)


@pytest.mark.parametrize("bits,slice_bits", [(8, 1), (8, 3), (5, 2)])
def test_bit_serial_recombines_exactly(bits, slice_bits):
    x = jnp.asarray(np.random.default_rng(1).uniform(-1.2, 1.2, size=(6, 30)))
    whole, _, _ = converters.apply_dac(x, DACConfig(bits=bits))
    v, coef, _ = converters.apply_dac(x, DACConfig(bits=bits, slice_bits=slice_bits))
    assert v.shape[0] == -(-(bits - 1) // slice_bits)
    np.testing.assert_allclose(jnp.tensordot(jnp.asarray(coef), v, axes=1), whole[0], atol=1e-15)
    # each slice is a digit in base 2**slice_bits
    d = np.abs(np.asarray(v)) / 0.2 * (2**slice_bits - 1)
    np.testing.assert_allclose(d, np.round(d), atol=1e-9)
    # through the crossbar (ideal devices, fine ADC) bit-serial equals whole-word input
    W = jnp.asarray(np.random.default_rng(2).normal(size=(30, 5)))
    cfg = HardwareConfig().set({"dac.bits": bits, "array.rows": 16, "array.cols": 4})
    y_whole = crossbar.analog_matmul(x, W, cfg)
    y_serial = crossbar.analog_matmul(x, W, cfg.set({"dac.slice_bits": slice_bits, "adc.bits": 40}))
    np.testing.assert_allclose(y_serial, y_whole, rtol=1e-7, atol=1e-9)


def test_per_column_adc_bits_and_calibration():
    rng = np.random.default_rng(3)
    W = jnp.asarray(rng.normal(size=(40, 8)))
    x = jnp.asarray(rng.normal(size=(200, 40)))
    bits = jnp.array([[12, 12, 2, 2], [12, 12, 12, 2]])  # (Nt, C): per tile column
    cfg = HardwareConfig().set(
        {"array.rows": 16, "array.cols": 4, "adc.bits": bits, "adc.range": "calibrated", "adc.percentile": 100.0}
    )
    state = crossbar.program(W, cfg)
    state = crossbar.calibrate_adc(x, state, cfg)
    err = np.abs(np.asarray(crossbar.matmul(x, state, cfg)) - np.asarray(x @ W)).mean(axis=0)
    coarse = np.array([2, 3, 7])
    fine = np.setdiff1d(np.arange(8), coarse)
    assert err[fine].max() < 0.01 * np.abs(x @ W).mean()
    assert err[coarse].min() > 10 * err[fine].max()
    # percentile 100 calibration: each tile column's full scale is the largest current it carried
    # (so none is clipped); the currents computed here from the programmed conductances (ideal
    # wires: V_tile @ G_tile per array, row tile and column tile)
    v, _, _ = converters.apply_dac(x, cfg.dac)
    vt = tiling.tile_inputs(v[0], W.shape[0], cfg.array.rows)  # (B, Kt, R)
    peak = np.abs(np.asarray(jnp.einsum("bkr,pknrc->bpknc", vt, state.g))).max(0)  # (P, Kt, Nt, C)
    assert state.adc_range.shape == peak.shape
    np.testing.assert_allclose(np.asarray(state.adc_range), peak, rtol=1e-12)


def test_bad_converter_config():
    with pytest.raises(ValueError, match="adc.bits"):
        ADCConfig(bits=0)
    with pytest.raises(ValueError, match="dac.bits"):
        DACConfig(bits=1)
    with pytest.raises(ValueError, match="adc.range"):
        ADCConfig(range="auto")
    with pytest.raises(ValueError, match="dac.v_read"):
        DACConfig(v_read=0.0)
    with pytest.raises(ValueError, match="dac.slice_bits"):
        DACConfig(slice_bits=2)
    with pytest.raises(ValueError, match="adc.kind"):
        ADCConfig(bits=8, kind="flash")
    with pytest.raises(ValueError, match="kind must be a non-empty string"):
        converters.register_adc("", converters.adc_quantize)
    with pytest.raises(ValueError, match="law must be callable"):
        converters.register_adc("flash", 3)


def test_a_registered_adc_kind_is_what_the_read_out_applies(monkeypatch):
    """A new ADC type is one law and one ``register_adc`` call: a config naming it converts
    every tile column with it (here a midrise quantizer: no code at zero, codes at half
    steps), in the programmed read and in training's fresh-sample read."""

    def midrise(current, full_scale, bits):
        step = full_scale / 2.0 ** (jnp.asarray(bits, current.dtype) - 1)
        half = 2.0 ** (jnp.asarray(bits, current.dtype) - 1)
        return (jnp.clip(jnp.floor(current / step), -half, half - 1) + 0.5) * step

    monkeypatch.setitem(converters.ADC_KINDS, "midrise", midrise)
    rng = np.random.default_rng(4)
    W, x = jnp.asarray(rng.normal(size=(6, 3))), jnp.asarray(rng.uniform(-1, 1, (5, 6)))
    uniform = HardwareConfig().set({"adc.bits": 3})
    mid = uniform.set({"adc.kind": "midrise"})
    state = crossbar.program(W, mid)
    y_mid, y_uni = crossbar.matmul(x, state, mid), crossbar.matmul(x, state, uniform)
    assert float(jnp.max(jnp.abs(y_mid - y_uni))) > 1e-3  # the law is applied
    # a zero input reads code 0 of the uniform ADC but half a step of the midrise one on each
    # array of the pair: 0 against half the difference of the two arrays' steps
    zero = jnp.zeros((1, 6))
    assert float(jnp.max(jnp.abs(crossbar.matmul(zero, state, uniform)))) == 0.0
    assert float(jnp.min(jnp.abs(crossbar.matmul(zero, state, mid)))) > 0.0
    np.testing.assert_allclose(crossbar.analog_matmul(x, W, mid), y_mid, rtol=1e-12)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=10, deadline=None)
@given(
    bits=st.integers(2, 6),
    x=st.lists(st.floats(-1.5, 1.5), min_size=4, max_size=4),
    x_range=st.sampled_from(["fixed", "max"]),
)
def test_pulse_width_is_a_prefix_of_full_voltage_steps_whose_mean_is_the_amplitude(bits, x, x_range):
    x = jnp.asarray(x, jnp.float64)
    if x_range == "max" and not np.any(np.asarray(x)):
        x = x.at[0].set(0.5)
    pw = DACConfig(bits=bits, encoding="pulse_width", v_read=0.3, x_max=1.2, range=x_range)
    amp = pw.replace(encoding="amplitude")
    v, coef, r = converters.apply_dac(x, pw)
    n = 2 ** (bits - 1) - 1
    assert v.shape == (n,) + x.shape and coef == (1.0 / n,) * n == tuple(coef)
    on = np.asarray(v) / 0.3
    np.testing.assert_array_equal(np.abs(on) * (np.abs(on) - 1), 0)  # only 0 and +-v_read
    assert np.all(np.diff(np.abs(on), axis=0) <= 0)  # rows switch off, never on again
    (va,), _, ra = converters.apply_dac(x, amp)
    np.testing.assert_allclose(np.abs(on).sum(0), np.abs(np.asarray(va)) / 0.3 * n, atol=1e-9)  # duration = level
    np.testing.assert_allclose(converters.shift_add(v, coef), va, atol=1e-12)
    g_pw = jax.grad(lambda x: jnp.sum(jnp.sin(converters.shift_add(converters.apply_dac(x, pw)[0], coef))))(x)
    g_amp = jax.grad(lambda x: jnp.sum(jnp.sin(converters.apply_dac(x, amp)[0][0])))(x)
    np.testing.assert_allclose(g_pw, g_amp, rtol=1e-12, atol=1e-12)  # the same straight-through gradient
    np.testing.assert_array_equal(converters.dac_equivalent(x, pw), converters.dac_equivalent(x, amp))
