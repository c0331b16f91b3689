"""The crossbar kernels: exactness, wires vs an independent tile sum, gradients, bad input."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crossjax import circuit, converters, crossbar, presets
from crossjax.devices import Drift, RangeVariation, ReadNoise, StuckAt, WriteNoise
from crossjax.hardware import HardwareConfig

WIRES = circuit.Parasitics(r_wire_row=2.0, r_wire_col=3.0, r_source=50.0, r_sink=20.0)


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))


@pytest.mark.parametrize(
    "K,N,R,C", [(1, 1, 64, 64), (7, 13, 4, 5), (64, 64, 64, 64), (130, 70, 64, 64), (33, 65, 16, 32)]
)
@pytest.mark.parametrize("scheme", ["differential", "offset"])
def test_ideal_is_exact_matmul(K, N, R, C, scheme):
    rng = np.random.default_rng(K * 1000 + N)
    W, x = jnp.asarray(rng.normal(size=(K, N))), jnp.asarray(rng.normal(size=(3, 5, K)))
    cfg = HardwareConfig().set({"array.rows": R, "array.cols": C, "mapping.scheme": scheme})
    y = crossbar.matmul(x, crossbar.program(W, cfg), cfg)
    assert y.shape == (3, 5, N)
    assert _rel(y, x @ W) < 1e-10
    assert _rel(crossbar.analog_matmul(x, W, cfg), x @ W) < 1e-10
    np.testing.assert_allclose(crossbar.effective_weights(crossbar.program(W, cfg), cfg), W, rtol=0, atol=1e-12)


def test_effective_weights_refuse_a_config_the_state_was_not_programmed_with():
    W = jnp.asarray(np.random.default_rng(1).normal(size=(8, 4)))
    cfg = HardwareConfig().set({"array.parasitics": WIRES})
    state = crossbar.program(W, cfg)
    assert _rel(crossbar.effective_weights(state, cfg), crossbar.effective_weights(state)) == 0
    with pytest.raises(ValueError, match="programmed with another hardware config"):
        crossbar.effective_weights(state, HardwareConfig())


def test_default_config_exact_and_float32():
    rng = np.random.default_rng(0)
    W, x = rng.normal(size=(100, 30)), rng.normal(size=(8, 100))
    cfg = HardwareConfig()
    assert _rel(crossbar.analog_matmul(jnp.asarray(x), jnp.asarray(W), cfg), x @ W) < 1e-10
    y32 = crossbar.analog_matmul(jnp.asarray(x, jnp.float32), jnp.asarray(W, jnp.float32), cfg)
    assert y32.dtype == jnp.float32 and _rel(y32, x @ W) < 1e-5
    cw = cfg.set({"mapping.weight_scale": "column"})
    assert _rel(crossbar.analog_matmul(jnp.asarray(x), jnp.asarray(W), cw), x @ W) < 1e-10


@pytest.mark.slow
def test_wires_equal_independent_tile_sum():
    """y == sum over tiles of V_t @ G_eff(G+) - V_t @ G_eff(G-), rescaled (docs/circuit.md formula)."""
    rng = np.random.default_rng(1)
    K, N, R, C = 20, 11, 8, 4
    W, x = rng.normal(size=(K, N)), rng.normal(size=(6, K))
    g_min, g_max, v_read, x_max = 2e-6, 1e-4, 0.3, 2.5
    cfg = HardwareConfig().set(
        {
            "array.rows": R,
            "array.cols": C,
            "array.parasitics": WIRES,
            "device.g_min": g_min,
            "device.g_max": g_max,
            "dac.v_read": v_read,
            "dac.x_max": x_max,
        }
    )
    w_max = np.abs(W).max()
    Wp = np.zeros((3 * R, 3 * C))
    Wp[:K, :N] = W
    Vp = np.zeros((6, 3 * R))
    Vp[:, :K] = x * v_read / x_max
    y = np.zeros((6, 3 * C))
    for a in range(3):
        for b in range(3):
            w = Wp[a * R : (a + 1) * R, b * C : (b + 1) * C]
            gp = g_min + (g_max - g_min) * np.maximum(w, 0) / w_max
            gm = g_min + (g_max - g_min) * np.maximum(-w, 0) / w_max
            v = Vp[:, a * R : (a + 1) * R]
            ge_p = np.asarray(circuit.effective_conductance(jnp.asarray(gp), WIRES))
            ge_m = np.asarray(circuit.effective_conductance(jnp.asarray(gm), WIRES))
            y[:, b * C : (b + 1) * C] += v @ ge_p - v @ ge_m
    y = y[:, :N] * w_max * x_max / ((g_max - g_min) * v_read)
    state = crossbar.program(jnp.asarray(W), cfg)
    got = crossbar.matmul(jnp.asarray(x), state, cfg)
    assert _rel(got, y) < 1e-10
    assert _rel(got, x @ W) > 1e-3  # the wires do matter here
    for method in ("iterative", "direct", "auto"):
        assert _rel(crossbar.analog_matmul(jnp.asarray(x), jnp.asarray(W), cfg.replace(method=method)), y) < 1e-9


def _all_on(adc_bits=None, dac_bits=None):
    return HardwareConfig().set(
        {
            "array.rows": 4,
            "array.cols": 3,
            "array.parasitics": WIRES,
            "device.write_noise": WriteNoise(0.05, "proportional"),
            "device.range_variation": RangeVariation(0.05, 0.05),
            "device.stuck": StuckAt(0.1, 0.1),
            "device.drift": Drift(t=100.0, nu=0.05, nu_std=0.01),
            "device.read_noise": ReadNoise(0.02),
            "adc.bits": adc_bits,
            "dac.bits": dac_bits,
        }
    )


def test_gradients_match_finite_differences():
    """Every non-ideality on (wires, write noise, D2D, stuck, drift, read noise), quantizers off."""
    rng = np.random.default_rng(2)
    W, x, r = rng.normal(size=(6, 5)), rng.normal(size=(2, 6)), rng.normal(size=(2, 5))
    cfg = _all_on()
    key = jax.random.key(3)
    loss = lambda W, x: jnp.sum(jnp.asarray(r) * crossbar.analog_matmul(x, W, cfg, key))
    value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))  # one compile for both
    _, (gW, gx) = value_and_grad(jnp.asarray(W), jnp.asarray(x))
    f = lambda W, x: float(value_and_grad(jnp.asarray(W), jnp.asarray(x))[0])
    eps = 1e-6
    for i in [(0, 0), (2, 3), (5, 4), (4, 1)]:
        d = np.zeros_like(W)
        d[i] = eps
        fd = (f(W + d, x) - f(W - d, x)) / (2 * eps)
        assert abs(float(gW[i]) - fd) <= 1e-6 * max(1.0, abs(fd)), (i, float(gW[i]), fd)
    for i in [(0, 1), (1, 5)]:
        d = np.zeros_like(x)
        d[i] = eps
        fd = (f(W, x + d) - f(W, x - d)) / (2 * eps)
        assert abs(float(gx[i]) - fd) <= 1e-6 * max(1.0, abs(fd)), (i, float(gx[i]), fd)


def test_gradients_finite_with_quantizers():
    rng = np.random.default_rng(4)
    W, x = jnp.asarray(rng.normal(size=(6, 5))), jnp.asarray(rng.normal(size=(2, 6)))
    cfg = _all_on(adc_bits=6, dac_bits=6).set({"device.levels": 16, "adc.range": "calibrated"})
    gW, gx = jax.grad(lambda W, x: jnp.sum(crossbar.analog_matmul(x, W, cfg, jax.random.key(0)) ** 2), argnums=(0, 1))(
        W, x
    )
    assert np.all(np.isfinite(gW)) and np.all(np.isfinite(gx)) and np.any(gW != 0) and np.any(gx != 0)


def test_monte_carlo_vmap_over_keys():
    rng = np.random.default_rng(5)
    W, x = jnp.asarray(rng.normal(size=(10, 7))), jnp.asarray(rng.normal(size=(4, 10)))
    cfg = _all_on().set({"device.read_noise": None, "array.parasitics": None})
    keys = jax.random.split(jax.random.key(1), 5)
    states = jax.vmap(crossbar.program, in_axes=(None, None, 0))(W, cfg, keys)
    assert states.g.shape[0] == 5
    ys = jax.vmap(lambda s: crossbar.matmul(x, s, cfg))(states)
    for k in (0, 3):  # each vmapped sample equals the un-vmapped one with its key
        np.testing.assert_allclose(ys[k], crossbar.matmul(x, crossbar.program(W, cfg, keys[k]), cfg), rtol=1e-12)
    assert not np.allclose(ys[0], ys[1])


def test_bad_input_raises_named_errors():
    W = jnp.ones((5, 3))
    cfg = HardwareConfig()
    with pytest.raises(ValueError, match="W"):
        crossbar.program(W.at[0, 0].set(jnp.nan), cfg)
    state = crossbar.program(W, cfg)
    with pytest.raises(ValueError, match="K=5"):
        crossbar.matmul(jnp.ones((2, 4)), state, cfg)
    with pytest.raises(ValueError, match="g_min"):
        cfg.set({"device.g_min": 1e-3, "device.g_max": 1e-4})
    with pytest.raises(ValueError, match="adc.bits"):
        cfg.set({"adc.bits": 0})
    with pytest.raises(ValueError, match="write_noise.sigma"):
        cfg.set({"device.write_noise.sigma": -0.1})
    with pytest.raises(ValueError, match="key"):
        crossbar.program(W, cfg.set({"device.write_noise.sigma": 0.1}), None)
    with pytest.raises(ValueError, match="key"):
        crossbar.matmul(jnp.ones(5), state, cfg.set({"device.read_noise.sigma": 0.1}))
    with pytest.raises(ValueError, match="array.rows"):
        cfg.set({"array.rows": 0})
    with pytest.raises(ValueError, match="unknown config field"):
        cfg.set({"device.gmax": 1.0})
    # values arriving as JAX arrays are checked when the kernels receive the config
    bad = cfg.set({"device.g_min": jnp.asarray(1e-3)})
    with pytest.raises(ValueError, match="device.g_min"):
        crossbar.program(W, bad)


def test_presets_and_serialization():
    assert {"ideal", "rram", "pcm"} <= set(presets.names()) and len(presets.names()) >= 6
    for name in presets.names():
        cfg = presets.get(name)
        again = HardwareConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert jax.tree_util.tree_structure(again) == jax.tree_util.tree_structure(cfg)
        np.testing.assert_allclose(jax.tree_util.tree_leaves(again), jax.tree_util.tree_leaves(cfg))
        assert len(presets.describe(name)) > 40  # each preset documents its source/assumption
    with pytest.raises(ValueError, match="unknown preset"):
        presets.get("nope")
    rng = np.random.default_rng(6)
    W, x = jnp.asarray(rng.normal(size=(70, 20))), jnp.asarray(rng.normal(size=(3, 70)))
    assert _rel(crossbar.analog_matmul(x, W, presets.get("ideal")), x @ W) < 1e-10
    y = crossbar.analog_matmul(x, W, presets.get("rram"), jax.random.key(0))
    assert np.all(np.isfinite(y)) and 1e-3 < _rel(y, x @ W) < 2.0


@pytest.mark.parametrize("adc_bits", [None, 8])
def test_read_noise_gradient_finite_with_zero_input_tile(adc_bits):
    """A tile whose inputs are all zero (ReLU, padding) has zero read-noise variance;
    the gradient through the noise amplitude must stay finite there (per-tile noise with
    an ADC; without one the summed noise, where a silent output has zero variance)."""
    from crossjax.hardware import HardwareConfig

    cfg = HardwareConfig().set(device__read_noise__sigma=0.05, adc__bits=adc_bits)
    W = jax.random.normal(jax.random.key(0), (8, 4)) * 0.1
    x = jnp.concatenate([jnp.zeros((3, 4)), jnp.ones((3, 4)) * 0.5], axis=1)  # first 4 rows silent
    cfg = cfg.replace(array=cfg.array.replace(rows=4, cols=4))
    g = jax.grad(lambda W: crossbar.analog_matmul(x, W, cfg, jax.random.key(1)).sum())(W)
    assert bool(jnp.all(jnp.isfinite(g)))
    assert float(jnp.abs(g).sum()) > 0
    g = jax.grad(lambda x: crossbar.analog_matmul(x, W, cfg, jax.random.key(1)).sum())(jnp.zeros((2, 8)))
    assert bool(jnp.all(jnp.isfinite(g)))  # no input at all: zero variance everywhere


# --------------------------------------------------------------------------- sparse layout, many matrices
def _column_pruned(seed, K, N, R, C, sparsity=0.6):
    from crossjax import pruning

    rng = np.random.default_rng(seed)
    W = jnp.asarray(rng.normal(size=(K, N)))
    return W * pruning.crossbar_column_mask(W, R, C, sparsity), jnp.asarray(rng.uniform(-1, 1, (5, K)))


@pytest.mark.parametrize("scheme", ["differential", "offset"])
@pytest.mark.slow
def test_sparse_layout_is_exact_and_packs_columns(scheme):
    from crossjax import pruning

    K, N, R, C = 40, 37, 16, 8
    W, x = _column_pruned(0, K, N, R, C)
    cfg = HardwareConfig().set({"array.rows": R, "array.cols": C, "mapping.layout": "sparse", "mapping.scheme": scheme})
    state = crossbar.program(W, cfg)
    comp = pruning.compact_columns(W, R, C)
    np.testing.assert_array_equal(state.column_index, comp.column_index)
    assert _rel(state.w_eff, W) < 1e-12
    assert _rel(crossbar.matmul(x, state, cfg), x @ W) < 1e-10
    adc = cfg.set({"adc.bits": 40})  # the per-column path: per-tile currents scattered back
    assert _rel(crossbar.matmul(x, crossbar.program(W, adc), adc), x @ W) < 1e-10
    assert _rel(crossbar.analog_matmul(x, W, adc), x @ W) < 1e-10
    # Only ceil(nnz/C) crossbars per row block are read: rewriting the unused tiles changes nothing.
    used = np.asarray(comp.tiles_used)
    assert used.sum() == int(pruning.crossbar_report(W, R, C).tiles_sparse) < state.g.shape[1] * state.g.shape[2]
    unused = np.arange(state.g.shape[2])[None, :] >= used[:, None]  # (Kt, Nt)
    fixed = adc.set({"adc.range": "fixed", "adc.i_max": 1.0})
    state = crossbar.program(W, fixed)
    junk = jnp.where(unused[None, :, :, None, None], 7e-5, state.g_eff)
    np.testing.assert_allclose(
        crossbar.matmul(x, state.replace(g_eff=junk), fixed), crossbar.matmul(x, state, fixed), rtol=1e-12
    )


@pytest.mark.slow
def test_sparse_layout_changes_ir_drop():
    K, N, R, C = 64, 48, 32, 16
    W, x = _column_pruned(1, K, N, R, C, 0.5)
    wires = HardwareConfig().set({"array.rows": R, "array.cols": C, "array.parasitics": WIRES})
    y_dense = crossbar.analog_matmul(x, W, wires)
    y_sparse = crossbar.analog_matmul(x, W, wires.set({"mapping.layout": "sparse"}))
    # packing the non-empty columns next to each other moves them along the wires
    assert 1e-6 < _rel(y_sparse, y_dense) < 0.2 and _rel(y_sparse, x @ W) < 0.2


@pytest.mark.slow
def test_program_many_equals_program_per_matrix():
    rng = np.random.default_rng(5)
    cfg = HardwareConfig().set(
        {
            "array.rows": 8,
            "array.cols": 4,
            "array.parasitics": WIRES,
            "device.write_noise": WriteNoise(0.05),
            "adc.bits": 6,
        }
    )
    Ws = [
        jnp.asarray(rng.normal(size=(13, 6))),
        jnp.asarray(rng.normal(size=(2, 9, 5))),
        jnp.asarray(rng.normal(size=(4, 4))),
    ]
    keys = list(jax.random.split(jax.random.key(2), 3))
    many = crossbar.program_many(Ws, cfg, keys)
    one = [
        crossbar.program(Ws[0], cfg, keys[0]),
        jax.vmap(crossbar.program, in_axes=(0, None, 0))(Ws[1], cfg, jax.random.split(keys[1], 2)),
        crossbar.program(Ws[2], cfg, keys[2]),
    ]
    for a, b in zip(many, one):
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_allclose(u, v, rtol=1e-12)
    with pytest.raises(ValueError, match="same length"):
        crossbar.program_many(Ws, cfg, keys[:2])
    with pytest.raises(ValueError, match=r"Ws\[1\]"):
        crossbar.program_many([Ws[0], jnp.ones((2, 2, 3, 3))], cfg, keys[:2])
    with pytest.raises(ValueError, match="key is None"):
        crossbar.program_many(Ws[:1], cfg, [None])


def test_sparse_layout_needs_layer_scale():
    with pytest.raises(ValueError, match="mapping.weight_scale='layer'"):
        HardwareConfig().set({"mapping.layout": "sparse", "mapping.weight_scale": "column"})
    with pytest.raises(ValueError, match="mapping.layout"):
        HardwareConfig().set({"mapping.layout": "packed"})


@pytest.mark.parametrize("slices", [1, 2])
def test_analog_pair_subtraction_equals_independent_reference(slices):
    """mapping.subtract="analog": one ADC per pair column converts I+ - I- (full scale
    v_read * sum |G+_eff - G-_eff|), computed here tile by tile from the state's G_eff."""
    rng = np.random.default_rng(3)
    K, N, R, C, bits = 20, 11, 8, 4, 5
    W, x = rng.normal(size=(K, N)), rng.normal(size=(6, K))
    cfg = HardwareConfig().set(
        {
            "array.rows": R,
            "array.cols": C,
            "array.parasitics": WIRES,
            "adc.bits": bits,
            "mapping.subtract": "analog",
            "dac.x_max": 2.5,
        }
    )
    if slices > 1:
        cfg = cfg.set({"mapping.slice_bits": 2, "mapping.slices": slices})
    state = crossbar.program(jnp.asarray(W), cfg)
    assert state.adc_range.shape == (slices, 3, 3, C)  # one ADC per pair column, not 2 * slices
    d = cfg.device
    ge = np.asarray(state.g_eff)  # (2 slices, Kt, Nt, R, C): [G+ slices, G- slices]
    coef = cfg.mapping.coefficients()[:slices]
    Vp = np.zeros((6, 3 * R))
    Vp[:, :K] = x / 2.5 * cfg.dac.v_read  # ideal DAC: linear, unclipped
    half = 2 ** (bits - 1)
    y = np.zeros((6, 3 * C))
    for k in range(slices):
        for a in range(3):
            for b in range(3):
                g = ge[k, a, b] - ge[slices + k, a, b]
                step = cfg.dac.v_read * np.abs(g).sum(axis=0) / half
                i = Vp[:, a * R : (a + 1) * R] @ g
                y[:, b * C : (b + 1) * C] += coef[k] * np.clip(np.round(i / step), -half, half - 1) * step
    y = y[:, :N] * float(state.w_max) * 2.5 / ((d.g_max - d.g_min) * cfg.dac.v_read)
    got = crossbar.matmul(jnp.asarray(x), state, cfg)
    assert _rel(got, y) < 1e-10
    # the ideal-converter limit is the same hardware: without the ADC both readouts agree
    no_adc = cfg.set({"adc.bits": None})
    np.testing.assert_allclose(
        crossbar.matmul(jnp.asarray(x), state, no_adc),
        crossbar.matmul(jnp.asarray(x), state, no_adc.set({"mapping.subtract": "digital"})),
        rtol=1e-10,
        atol=1e-12,
    )
    assert _rel(crossbar.analog_matmul(jnp.asarray(x), jnp.asarray(W), cfg), y) < 1e-10


def test_analog_pair_subtraction_read_noise_and_calibration():
    """Read noise of both devices in one converted current: var = v_read^2 (s+^2 + s-^2)."""
    sigma, n = 0.04, 4096
    cfg = HardwareConfig().set(
        {"device.read_noise": ReadNoise(sigma=sigma), "array.rows": 1, "array.cols": 64, "mapping.subtract": "analog"}
    )
    d = cfg.device
    state = crossbar.program(jnp.full((1, 64), 0.5), cfg)  # G+ = g_max, G- = g_min
    y = jax.vmap(lambda k: crossbar.matmul(jnp.ones((1,)), state, cfg, k))(jax.random.split(jax.random.key(4), n))
    y = np.asarray(y).ravel()
    std = np.hypot(sigma * d.g_max, sigma * d.g_min) / (d.g_max - d.g_min) * 0.5
    assert abs(y.mean() - 0.5) < 5 * std / np.sqrt(y.size)
    assert abs(y.std() - std) < 5 * std / np.sqrt(2 * y.size)
    cal = cfg.set({"adc.bits": 6, "adc.range": "calibrated"})
    st = crossbar.calibrate_adc(jnp.ones((8, 1)), crossbar.program(jnp.full((1, 64), 0.5), cal), cal, jax.random.key(5))
    assert st.adc_range.shape == (1, 1, 1, 64)
    assert np.all(np.asarray(st.adc_range) > 0)


def test_analog_pair_subtraction_needs_differential_pair():
    with pytest.raises(ValueError, match="mapping.subtract"):
        HardwareConfig().set({"mapping.scheme": "offset", "mapping.subtract": "analog"})
    with pytest.raises(ValueError, match="mapping.subtract"):
        HardwareConfig().set({"mapping.subtract": "current"})


@pytest.mark.parametrize("layout,subtract", [("dense", "digital"), ("sparse", "analog")])
@pytest.mark.slow
def test_read_noise_without_adc_is_one_gaussian_per_output(layout, subtract):
    """No ADC: the per-cell read noise of all tiles, arrays and input slices sums to one
    Gaussian per output. Mean and std per output match the cell-by-cell formula
    std(y_m) = sqrt(sum_s coef_s^2 sum_p c_p^2 sum_k v_sk^2 s_pkm^2) * w_max x_max / ((g_max - g_min) v_read),
    computed here from the programmed cells."""
    rng = np.random.default_rng(5)
    K, N, R, C = 20, 6, 8, 4
    W = rng.normal(size=(K, N))
    W[:, 2] = 0.0  # an empty column (packed away in the sparse layout)
    x = rng.uniform(-1, 1, size=(K,))
    cfg = HardwareConfig().set(
        {
            "array.rows": R,
            "array.cols": C,
            "array.parasitics": WIRES,
            "device.read_noise": ReadNoise(0.05),
            "device.write_noise": WriteNoise(0.05),
            "mapping.slice_bits": 2,
            "mapping.slices": 2,
            "mapping.layout": layout,
            "mapping.subtract": subtract,
            "dac.bits": 6,
            "dac.slice_bits": 3,
        }
    )
    state = crossbar.program(jnp.asarray(W), cfg, jax.random.key(0))
    n = 20000
    y = np.asarray(
        jax.vmap(lambda k: crossbar.matmul(jnp.asarray(x), state, cfg, k))(jax.random.split(jax.random.key(1), n))
    )
    # the independent per-cell formula
    d, m = cfg.device, cfg.mapping
    v, coef, x_range = converters.apply_dac(jnp.asarray(x), cfg.dac)
    v = np.asarray(v)
    s2 = (0.05 * np.asarray(state.g)) ** 2  # (P, Kt, Nt, R, C), proportional read noise
    var_cells = sum(c * c * s2[p] for p, c in enumerate(m.coefficients()))  # (Kt, Nt, R, C)
    kt, nt = var_cells.shape[:2]
    cells = var_cells.transpose(0, 2, 1, 3).reshape(kt * R, nt * C)  # packed / tiled layout
    if layout == "sparse":
        idx = np.asarray(state.column_index)
        full = np.zeros((kt * R, N))
        for a in range(kt):
            for j in range(nt * C):
                if idx[a, j] >= 0:
                    full[a * R : (a + 1) * R, idx[a, j]] += cells[a * R : (a + 1) * R, j]
        cells = full
    cells = cells[:K, :N]
    var = sum(c * c * (v[s] ** 2) @ cells for s, c in enumerate(coef))
    std = np.sqrt(var) * float(state.w_max) * float(x_range) / ((d.g_max - d.g_min) * cfg.dac.v_read)
    mean = np.asarray(crossbar.matmul(jnp.asarray(x), state, cfg.set({"device.read_noise": None})))
    if layout == "sparse":  # the empty column has no cells to read (dense: its g_min cells are noisy)
        assert std[2] == 0 and np.all(y[:, 2] == mean[2])
    live = std > 0
    std, mean, y = std[live], mean[live], y[:, live]
    np.testing.assert_array_less(np.abs(y.mean(0) - mean), 5 * std / np.sqrt(n))
    np.testing.assert_array_less(np.abs(y.std(0) / std - 1), 5 / np.sqrt(2 * n))
    # and the same distribution as the per-tile path (forced by a 24-bit ADC, ~exact)
    fine = cfg.set({"adc.bits": 24})
    fstate = crossbar.program(jnp.asarray(W), fine, jax.random.key(0))
    yt = np.asarray(
        jax.vmap(lambda k: crossbar.matmul(jnp.asarray(x), fstate, fine, k))(jax.random.split(jax.random.key(2), n))
    )
    np.testing.assert_array_less(np.abs(yt[:, live].std(0) / std - 1), 5 / np.sqrt(2 * n) + 1e-3)
