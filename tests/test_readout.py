"""The read-out plan (``crossjax.readout``) and nonlinear cells / input encodings through the stack.

The physics references are independent of the kernels: per-array column
currents from the dense modified-nodal Newton solve of ``circuit_reference``
(sparse LU, no crossjax code), the documented encodings written out here
(amplitude levels, bit-serial digits, pulse width as an on/off schedule over
a time grid four times finer than the DAC's steps), and central differences.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from circuit_reference import nonlinear_mna_currents
from flax import nnx

from crossjax import converters, crossbar, layers, models, montecarlo, readout
from crossjax.circuit import Cell, Parasitics
from crossjax.hardware import HardwareConfig

WIRES = Parasitics(r_wire_row=2.0, r_wire_col=3.0, r_source=5.0, r_sink=1.0)
TILE = HardwareConfig().set({"array.rows": 8, "array.cols": 5})
SINH = Cell(iv="sinh", v0=0.15)
SINH_1T1R = Cell(iv="sinh", v0=0.15, r_series=5e3)


# ----------------------------------------------------------------------------- the plan
@pytest.mark.parametrize(
    "updates, physics, noise, adc",
    [
        ({}, "folded", None, None),
        ({"adc.bits": 8}, "products", None, "max"),
        ({"device.read_noise.sigma": 0.01}, "folded", "summed", None),
        ({"device.read_noise.sigma": 0.01, "mapping.scheme": "offset"}, "products", "per_tile", None),
        (
            {"device.read_noise.sigma": 0.01, "adc.bits": 6, "adc.range": "calibrated"},
            "products",
            "per_tile",
            "calibrated",
        ),
        ({"array.parasitics": WIRES}, "folded", None, None),
        ({"array.cell": SINH}, "nonlinear_solve", None, None),
        ({"array.cell": Cell(r_series=1e3)}, "folded", None, None),  # linear cells fold r_series into G_eff
    ],
)
def test_plan_decides_each_stage_once(updates, physics, noise, adc):
    cfg = TILE.set(updates)
    p = readout.plan(cfg)
    assert p.physics.kind == physics
    assert (p.noise and p.noise.kind) == noise
    assert (p.adc and p.adc.range) == adc
    assert p.needs_calibration == (adc == "calibrated") == montecarlo.needs_calibration(cfg)
    assert crossbar.is_linear(cfg) == (physics == "folded" and noise is None)
    assert hash(p) == hash(readout.plan(cfg))  # a static jit argument


def test_plan_for_fresh_samples_follows_the_method_rule():
    cfg = TILE.set({"array.parasitics": WIRES})
    assert readout.plan(cfg, programmed=False, inputs=2).physics.kind == "linear_solve"
    assert readout.plan(cfg, programmed=False, inputs=10_000).physics.kind == "folded"
    assert readout.plan(cfg.replace(method="iterative"), programmed=False, inputs=10_000).physics.kind == "linear_solve"
    assert readout.plan(TILE, programmed=False, inputs=2).physics.kind == "folded"  # no wires: nothing to solve


def test_plan_encodings():
    pw = TILE.set({"dac.bits": 4, "dac.encoding": "pulse_width"})
    assert readout.plan(pw).encoding.kind == "amplitude"  # linear cells: the same product
    nl = readout.plan(pw.set({"array.cell": SINH}))
    assert (nl.encoding.kind, nl.encoding.integrates) == ("pulse_width", True)
    assert nl.physics.method == "elementwise"  # no wires, no series: exact sum
    assert readout.plan(pw.set({"array.cell": SINH_1T1R})).physics.method == "iterative"
    bs = readout.plan(TILE.set({"dac.bits": 5, "dac.slice_bits": 2}))
    assert (
        bs.encoding.kind == "bit_serial" and not readout.plan(TILE.set({"dac.bits": 4, "dac.range": "max"})).is_linear
    )


def test_plan_survives_traced_leaves():
    cfg = TILE.set({"array.cell": SINH, "array.parasitics": WIRES, "adc.bits": 6})
    plans = []
    jax.jit(lambda c: plans.append(readout.plan(c)) or 0.0)(cfg)
    assert plans[0] == readout.plan(cfg)


@pytest.mark.parametrize(
    "updates, match",
    [
        ({"array.cell": Cell(iv="poly", c3=-10.0)}, "array.cell: the poly law"),
        ({"array.cell": Cell(iv="sinh", v0=-1.0)}, "array.cell.v0"),
        ({"array.cell": Cell(iv="sinh", v0=0.2, r_series=-5.0)}, "array.cell.r_series"),
        ({"dac.encoding": "pulse_width"}, "dac.encoding='pulse_width'"),
        ({"dac.encoding": "thermometer"}, "dac.encoding"),
    ],
)
def test_bad_cells_and_encodings_name_the_field(updates, match):
    with pytest.raises(ValueError, match=match):
        TILE.set(updates).check()


def test_config_with_a_cell_round_trips_through_a_dict():
    cfg = TILE.set({"array.cell": SINH_1T1R, "dac.bits": 4, "dac.encoding": "pulse_width"})
    d = cfg.to_dict()
    assert d["array"]["cell"] == {"iv": "sinh", "v0": 0.15, "c2": 0.0, "c3": 0.0, "r_series": 5e3}
    assert HardwareConfig.from_dict(d) == cfg
    poly = TILE.set({"array.cell": Cell(iv="poly", c3=-0.25)}).to_dict()
    assert "v0" not in poly["array"]["cell"]  # inf is not JSON
    assert TILE.to_dict()["array"]["cell"] is None


# ----------------------------------------------------------------------------- references
def _pairs(state):
    """The programmed pair ``(G+, G-)`` of the single tile, (R, C) each."""
    g = np.asarray(state.g)
    assert g.shape[:3] == (2, 1, 1)
    return g[0, 0, 0], g[1, 0, 0]


def _array_currents(G, V, wires, cell):
    return np.stack([nonlinear_mna_currents(G, v, wires, cell) for v in np.atleast_2d(V)])


def _levels(x, dac):
    n = 2 ** (dac.bits - 1) - 1
    return np.round(np.clip(x / dac.x_max, -1, 1) * n), n


def _reference(x, state, cfg, wires, cell, encoding):
    """Outputs of the single-tile crossbar, each encoding written out from its definition."""
    dac, dev = cfg.dac, cfg.device
    Gp, Gm = _pairs(state)

    def diff(V):  # I+ - I- of the pair, (B, C)
        return _array_currents(Gp, V, wires, cell) - _array_currents(Gm, V, wires, cell)

    if dac.bits is None:
        i = diff(x / dac.x_max * dac.v_read)
    else:
        q, n = _levels(x, dac)
        if encoding == "amplitude":
            i = diff(q / n * dac.v_read)
        elif encoding == "bit_serial":
            s = dac.slice_bits
            base = 2**s
            mag, i = np.abs(q), 0.0
            for k in range(-(-(dac.bits - 1) // s)):
                digit = np.mod(np.floor(mag / base**k), base)
                i = i + base**k * (base - 1) / n * diff(np.sign(q) * digit / (base - 1) * dac.v_read)
        else:  # pulse width: row i at sign(q_i) v_read while t < |q_i| / n T; mean current over T
            sub = 4 * n
            t = (np.arange(sub) + 0.5) / sub
            i = sum(diff(np.sign(q) * (t[m] < np.abs(q) / n) * dac.v_read) for m in range(sub)) / sub
    return i * float(state.w_max) * 1.0 / ((dev.g_max - dev.g_min) * dac.v_read)


def _case(seed=0, batch=3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(8, 5)), rng.uniform(-1, 1, (batch, 8))


ENCODINGS = {
    "ideal": ({}, "amplitude"),
    "amplitude": ({"dac.bits": 4}, "amplitude"),
    "bit_serial": ({"dac.bits": 5, "dac.slice_bits": 2}, "bit_serial"),
    "pulse_width": ({"dac.bits": 4, "dac.encoding": "pulse_width"}, "pulse_width"),
}


def _reference_cases():
    """Every encoding x cell x wires; by default each encoding through 1T1R cells with wires and
    each cell once (the rest slow-marked: each case compiles its own solves)."""
    fast = {(e, "sinh_1t1r", True) for e in ENCODINGS} | {("amplitude", "sinh", False), ("pulse_width", "poly", False)}
    for e in ENCODINGS:
        for c in ("sinh", "sinh_1t1r", "poly"):
            for w in (False, True):
                marks = () if (e, c, w) in fast else (pytest.mark.slow,)
                yield pytest.param(e, c, WIRES if w else None, marks=marks, id=f"{e}-{c}-{'wires' if w else 'ideal'}")


@pytest.mark.parametrize("encoding, cell, wires", list(_reference_cases()))
def test_nonlinear_read_matches_the_independent_reference(encoding, cell, wires):
    cell = {"sinh": SINH, "sinh_1t1r": SINH_1T1R, "poly": Cell(iv="poly", c2=0.1, c3=-0.5, r_series=2e3)}[cell]
    updates, kind = ENCODINGS[encoding]
    cfg = TILE.set({**updates, "array.cell": cell, "array.parasitics": wires})
    W, x = _case()
    state = crossbar.program(W, cfg)
    want = _reference(x, state, cfg, wires or Parasitics(), cell, kind)
    got = crossbar.matmul(jnp.asarray(x), state, cfg)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12 * np.abs(want).max())
    fresh = crossbar.analog_matmul(jnp.asarray(x), jnp.asarray(W), cfg)  # the training path, same physics
    np.testing.assert_allclose(fresh, want, rtol=1e-10, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("encoding", ["amplitude", "bit_serial", "pulse_width"])
def test_linear_cells_give_the_same_product_in_every_encoding(encoding):
    """Pulse width and bit-serial, integrated from their definitions through linear cells with
    wires, equal the amplitude read (and with ideal wires ``q(x) @ W``)."""
    W, x = _case(1)
    updates = {**ENCODINGS[encoding][0], "dac.bits": 5}
    cfg = TILE.set({**updates, "array.parasitics": WIRES})
    state = crossbar.program(W, cfg)
    amplitude = crossbar.matmul(jnp.asarray(x), state, cfg.set({"dac.encoding": "amplitude", "dac.slice_bits": None}))
    want = _reference(x, state, cfg, WIRES, None, encoding)
    np.testing.assert_allclose(amplitude, want, rtol=1e-11, atol=1e-13 * np.abs(want).max())
    np.testing.assert_allclose(
        crossbar.matmul(jnp.asarray(x), state, cfg), want, rtol=1e-11, atol=1e-13 * np.abs(want).max()
    )
    ideal = TILE.set(updates)
    q = converters.dac_equivalent(jnp.asarray(x), ideal.dac)
    np.testing.assert_allclose(
        crossbar.matmul(jnp.asarray(x), crossbar.program(W, ideal), ideal), q @ W, rtol=1e-12, atol=1e-12
    )


def test_encodings_differ_through_nonlinear_cells():
    W, x = _case(2)
    outs = {}
    for name in ("amplitude", "bit_serial", "pulse_width"):
        cfg = TILE.set({**ENCODINGS[name][0], "dac.bits": 5, "array.cell": SINH, "array.parasitics": WIRES})
        outs[name] = np.asarray(crossbar.matmul(jnp.asarray(x), crossbar.program(W, cfg), cfg))
    for a, b in [("amplitude", "bit_serial"), ("amplitude", "pulse_width"), ("bit_serial", "pulse_width")]:
        assert np.max(np.abs(outs[a] - outs[b])) > 1e-3 * np.max(np.abs(outs[a])), (a, b)


def test_pulse_width_integrates_before_one_conversion():
    """With an ADC, the pulse-width read converts the integrated (mean) current once per column."""
    W, x = _case(3)
    cfg = TILE.set(
        {
            "dac.bits": 4,
            "dac.encoding": "pulse_width",
            "adc.bits": 6,
            "array.cell": SINH_1T1R,
            "array.parasitics": WIRES,
        }
    )
    state = crossbar.program(W, cfg)
    Gp, Gm = _pairs(state)
    q, n = _levels(x, cfg.dac)
    t = (np.arange(4 * n) + 0.5) / (4 * n)
    fs = np.asarray(state.adc_range)[:, 0, 0]  # (P, C) full scale per column
    conv = []
    for G, f in ((Gp, fs[0]), (Gm, fs[1])):
        mean = sum(
            _array_currents(G, np.sign(q) * (tm < np.abs(q) / n) * cfg.dac.v_read, WIRES, SINH_1T1R) for tm in t
        ) / len(t)
        conv.append(np.asarray(converters.adc_quantize(jnp.asarray(mean), jnp.asarray(f), 6)))
    want = (conv[0] - conv[1]) * float(state.w_max) / ((cfg.device.g_max - cfg.device.g_min) * cfg.dac.v_read)
    np.testing.assert_allclose(
        crossbar.matmul(jnp.asarray(x), state, cfg), want, rtol=1e-9, atol=1e-9 * np.abs(want).max()
    )


def test_max_adc_range_bounds_nonlinear_currents():
    W, x = _case(4, batch=6)
    cfg = TILE.set({"adc.bits": 8, "array.cell": SINH})
    state = crossbar.program(W, cfg)
    Gp, Gm = _pairs(state)
    fs = np.asarray(state.adc_range)[:, 0, 0]
    full = np.ones((1, 8)) * cfg.dac.v_read  # every input at full scale
    assert np.all(np.abs(_array_currents(Gp, full, Parasitics(), SINH)) <= fs[0] * (1 + 1e-12))
    np.testing.assert_allclose(np.abs(_array_currents(Gp, full, Parasitics(), SINH))[0], fs[0], rtol=1e-12)


def test_linear_cell_object_changes_nothing():
    W, x = _case(5)
    cfg = TILE.set({"array.parasitics": WIRES, "adc.bits": 7, "device.read_noise.sigma": 0.02})
    linear = cfg.set({"array.cell": Cell()})
    k = jax.random.key(3)
    a = crossbar.matmul(jnp.asarray(x), crossbar.program(W, cfg), cfg, k)
    b = crossbar.matmul(jnp.asarray(x), crossbar.program(W, linear), linear, k)
    np.testing.assert_array_equal(a, b)


def test_nonlinear_state_has_no_effective_weights():
    state = crossbar.program(np.ones((8, 5)), TILE.set({"array.cell": SINH}))
    with pytest.raises(ValueError, match="nonlinear cells"):
        crossbar.effective_weights(state)


def test_float32_nonlinear_read_is_close_to_float64():
    W, x = _case(6)
    cfg = TILE.set({"array.cell": SINH_1T1R, "array.parasitics": WIRES, "dac.bits": 6})
    want = crossbar.matmul(jnp.asarray(x), crossbar.program(W, cfg), cfg)
    got = crossbar.matmul(jnp.asarray(x, jnp.float32), crossbar.program(jnp.asarray(W, jnp.float32), cfg), cfg)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


# ----------------------------------------------------------------------------- gradients
def test_training_gradients_through_nonlinear_cells_match_central_differences():
    W, x = _case(7, batch=2)
    cfg = TILE.set({"array.cell": SINH_1T1R, "array.parasitics": WIRES})

    def loss(W, x, v0):
        c = cfg.set({"array.cell.v0": v0})
        return jnp.sum(jnp.sin(crossbar.analog_matmul(x, W, c)))

    W, x, v0 = jnp.asarray(W), jnp.asarray(x), jnp.asarray(0.15)
    gW, gx, gv = jax.grad(loss, argnums=(0, 1, 2))(W, x, v0)
    h = 1e-6
    for i, j in [(0, 0), (3, 2), (7, 4)]:
        e = jnp.zeros_like(W).at[i, j].set(h)
        fd = (loss(W + e, x, v0) - loss(W - e, x, v0)) / (2 * h)
        assert abs(gW[i, j] - fd) <= 1e-6 * max(1e-2, abs(fd)), (i, j)
    for b, i in [(0, 1), (1, 6)]:
        e = jnp.zeros_like(x).at[b, i].set(h)
        fd = (loss(W, x + e, v0) - loss(W, x - e, v0)) / (2 * h)
        assert abs(gx[b, i] - fd) <= 1e-6 * max(1e-2, abs(fd)), (b, i)
    fd = (loss(W, x, v0 + h) - loss(W, x, v0 - h)) / (2 * h)
    assert abs(gv - fd) <= 1e-6 * max(1e-2, abs(fd))


# ----------------------------------------------------------------------------- through the stack
@pytest.mark.slow
def test_layers_program_monte_carlo_and_finetune_with_nonlinear_cells():
    from crossjax import data as data_lib
    from crossjax import training

    cfg = HardwareConfig().set(
        {
            "array.rows": 16,
            "array.cols": 16,
            "array.cell": SINH_1T1R,
            "array.parasitics": WIRES,
            "device.write_noise.sigma": 0.02,
            "adc.bits": 8,
        }
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (24, 20))
    mlp = models.MLP(20, (12,), 4, param_dtype=jnp.float64, rngs=nnx.Rngs(0))
    y = np.asarray(jnp.argmax(mlp(x), -1))
    # hardware mode = the crossbar kernels, layer by layer
    model = nnx.clone(mlp)
    program = layers.program_model(model, cfg, jax.random.key(1))
    layers.load_program(model, program)
    layers.set_mode(model, "hardware", cfg)
    out = model(jnp.asarray(x), rngs=nnx.Rngs(hardware=jax.random.key(2)))
    assert out.shape == (24, 4) and bool(jnp.all(jnp.isfinite(out)))
    first = model.layers[0]
    h = crossbar.matmul(jnp.asarray(x), first.crossbar_state.get_value(), cfg) + first.bias[...]
    assert not np.allclose(h, jnp.asarray(x) @ first.kernel[...] + first.bias[...], rtol=1e-3)  # the cells matter
    # Monte Carlo
    res = montecarlo.evaluate(mlp, cfg, jax.random.split(jax.random.key(3), 2), x, y, batch_size=8, progress=False)
    assert np.all(np.isfinite(res["accuracy"])) and np.all((0 <= res["accuracy"]) & (res["accuracy"] <= 1))
    # training with the nonlinear cells in the loop: finite gradients, the loss falls
    tuned = models.MLP(20, (12,), 4, param_dtype=jnp.float64, rngs=nnx.Rngs(params=0, hardware=5))
    ds = data_lib.Dataset(name="toy", split="train", x=x.astype(np.float32), y=y.astype(np.int32), num_classes=4)
    result = training.finetune(tuned, ds, training.TrainConfig(steps=4, batch_size=8, learning_rate=1e-2), cfg)
    losses = np.asarray(result.losses)
    assert losses.shape == (4,) and np.all(np.isfinite(losses))
