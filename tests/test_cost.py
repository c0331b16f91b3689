"""crossjax.cost: energy, latency and area against a published design, independent
references (the scipy MNA solve of the circuit, hand-counted conversions) and finite
differences."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from circuit_reference import mna_driver_power
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

from crossjax import cost, crossbar, energy, layers, models
from crossjax.circuit import Cell, Parasitics
from crossjax.hardware import HardwareConfig


# ---------------------------------------------------------------------------
# 1. a published design from its component figures
# ---------------------------------------------------------------------------
def test_isaac_tile_and_chip_from_component_figures():
    """ISAAC (Shafiee et al., ISCA 2016), its table of the ISAAC-CE design at 32 nm (per
    component: count, power, area): the IMA and tile from the figures, with the ADC, DAC,
    shift-add and buffer figures from crossjax.cost's own laws set to ISAAC's components.
    Published totals: tile 330 mW and 0.372 mm^2; chip (168 tiles + HyperTransport, 10.4 W,
    22.88 mm^2) 65.8 W and 85.4 mm^2."""
    adc = cost.ADCCost(law="walden", fom_walden=2e-3 / 1.28e9 / 2**8, rate=1.28e9, area=0.0012)
    array = cost.ArrayCost(t_read=100e-9)
    dac = cost.DACCost(energy=4e-3 * array.t_read / 1024, area=0.00017 / 1024)  # 8 x 128 1-bit DACs: 4 mW
    digital = cost.DigitalCost(shift_add_area=0.00024 / 4, buffer_area=0.0021 / 2048)
    C = cost.Component
    ima = cost.budget(
        [
            C("adc", 8, float(cost.adc_energy(8, adc)) * adc.rate, float(cost.adc_area(8, adc))),  # 8 bits, 1.28 GS/s
            C("dac", 8 * 128, dac.energy * 1 / array.t_read, dac.area),  # 1-bit, one conversion per read
            C("sample_hold", 8 * 128, 10e-6 / 1024, 0.00004 / 1024),
            C("crossbar", 8, 2.4e-3 / 8, 0.0002 / 8),  # 128 x 128, 2-bit cells
            C("shift_add", 4, 0.2e-3 / 4, digital.shift_add_area),
            C("input_register", 1, 1.24e-3, 2048 * digital.buffer_area),  # 2 KB
            C("output_register", 1, 0.23e-3, 0.00077),  # 256 B
        ]
    )
    ima["name"] = "ima"
    np.testing.assert_allclose(
        [ima["breakdown"]["adc"]["power"], ima["breakdown"]["dac"]["power"]], [16e-3, 4e-3], rtol=1e-12
    )
    tile = cost.budget(
        [
            (ima, 12),
            C("edram", 1, 20.7e-3, 0.083),  # 64 KB
            C("bus", 1, 7e-3, 0.090),  # eDRAM-IMA bus, 384 wires
            C("router", 1 / 4, 42e-3, 0.151),  # shared by 4 tiles
            C("sigmoid", 2, 0.26e-3, 0.0003),
            C("shift_add", 1, 0.05e-3, 0.00006),
            C("max_pool", 1, 0.4e-3, 0.00024),
            C("output_register", 1, 1.68e-3, 0.0032),  # 3 KB
        ]
    )
    assert tile["power"] == pytest.approx(0.330, rel=2e-3)
    assert tile["area"] == pytest.approx(0.372, rel=2e-3)
    tile["name"] = "tile"
    chip = cost.budget([(tile, 168), C("hypertransport", 1, 10.4, 22.88)])
    assert chip["power"] == pytest.approx(65.8, rel=2e-3)
    assert chip["area"] == pytest.approx(85.4, rel=2e-3)
    # where ISAAC's power goes: the ADCs are 58 % of the tile's (16 mW of each IMA's 24 mW, x 12)
    assert 12 * 16e-3 / tile["power"] == pytest.approx(0.58, abs=0.01)


# ---------------------------------------------------------------------------
# 2. one layer against independent counts and the MNA solve
# ---------------------------------------------------------------------------
def _layer(K=70, N=20, rows=32, cols=8, seed=0, **overrides):
    hw = HardwareConfig().set({"array.rows": rows, "array.cols": cols, "adc.bits": 6, "dac.bits": 5, **overrides})
    rng = np.random.default_rng(seed)
    W = jnp.asarray(rng.normal(size=(K, N)) * 0.3)
    x = jnp.asarray(rng.uniform(-1, 1, (6, K)))
    return hw, W, x, crossbar.program(W, hw, jax.random.key(seed))


def _dac_levels(x, bits, x_max=1.0):
    n = 2 ** (bits - 1) - 1
    return np.round(np.clip(np.asarray(x) / x_max, -1, 1) * n) / n


def test_layer_cost_matches_hand_counts_and_the_ideal_wire_power():
    hw, W, x, state = _layer()
    c = cost.layer_cost(x, state, hw)
    P, kt, nt, rows, cp = state.g.shape
    assert (P, kt, nt) == (2, 3, 3)
    K, N = W.shape
    # read energy: t_read * mean over inputs of sum_arrays sum_i V_i^2 sum_j g_ij over connected columns
    v = 0.2 * _dac_levels(x, 5)  # (B, K) volts
    vt = np.pad(v, ((0, 0), (0, kt * rows - K))).reshape(len(x), kt, rows)
    g = np.asarray(state.g)
    real = (np.arange(nt * cp) < N).reshape(nt, cp)
    rowsum = np.sum(g * real[None, None, :, None, :], axis=-1)  # (P, Kt, Nt, R)
    e_ref = 100e-9 * np.einsum("bkr,pknr->", vt**2, rowsum) / len(x)
    np.testing.assert_allclose(c["energy"]["array"], e_ref, rtol=1e-12)
    # ADC: one conversion per real column per array of the differential pair per row tile
    assert float(c["conversions"]) == kt * N * 2
    e_adc = cost.ADCCost().fom_walden * 2.0**6 * kt * N * 2
    np.testing.assert_allclose(c["energy"]["adc"], e_adc, rtol=1e-12)
    # DAC: every real row of every array, 5 bits at 0.39 pJ per bit
    np.testing.assert_allclose(c["energy"]["dac"], 2 * nt * K * 5 * 0.39e-12, rtol=1e-12)
    # digital: differential subtraction per conversion pair, row-tile accumulation, buffer bytes
    adds = kt * N * 1 + (kt - 1) * N
    np.testing.assert_allclose(c["energy"]["digital"], adds * 0.1e-12 + (K * 5 / 8 + N * 2) * 1.25e-12, rtol=1e-12)
    # latency: one read and the 8-column ADC pass, plus draining one pass
    np.testing.assert_allclose(c["latency"], max(100e-9, 8 / 1.28e9) + 8 / 1.28e9, rtol=1e-12)
    # area: 18 arrays of 32 x 8 1R cells (4 F^2 at 32 nm), 32 DACs and one ADC (8 columns) each
    assert float(c["arrays"]) == 18
    np.testing.assert_allclose(c["area"]["cells"], 18 * 32 * 8 * 4 * (32e-6) ** 2, rtol=1e-12)
    np.testing.assert_allclose(c["area"]["adc"], 18 * 0.0012 * 2.0 ** (6 - 8), rtol=1e-12)


@pytest.mark.parametrize(
    "p",
    [
        Parasitics(r_wire_row=2.0, r_wire_col=3.0),
        pytest.param(Parasitics(r_wire_row=1.0, r_wire_col=1.0, r_source=20.0, r_sink=5.0), marks=pytest.mark.slow),
    ],
)
def test_read_energy_with_wires_equals_the_mna_driver_power(p):
    """With wire resistance the drivers' power is that of the exact circuit: scipy MNA per array
    and input (tests/circuit_reference.py, no shared code), an access transistor folded in."""
    hw, W, x, state = _layer(K=12, N=5, rows=8, cols=4, **{"array.parasitics": p, "array.cell": Cell(r_series=500.0)})
    x = x[:3]
    c = cost.layer_cost(x, state, hw)
    P, kt, nt, rows, cp = state.g.shape
    v = np.pad(0.2 * _dac_levels(x, 5), ((0, 0), (0, kt * rows - 12))).reshape(3, kt, rows)
    real = (np.arange(nt * cp) < 5).reshape(nt, cp)
    g = np.asarray(state.g)
    power = sum(
        mna_driver_power(np.where(real[n], g[a, k, n], 0.0), v[b, k], p, hw.array.cell)
        for a in range(P)
        for k in range(kt)
        for n in range(nt)
        for b in range(3)
    )
    np.testing.assert_allclose(c["energy"]["array"], 100e-9 * power / 3, rtol=1e-9)
    ideal = cost.layer_cost(x, state, hw.set({"array.parasitics": None}))
    assert float(c["energy"]["array"]) < float(ideal["energy"]["array"])  # wires drop voltage: less power
    one_r = cost.layer_cost(x, state, hw, cost.CostConfig(array=cost.ArrayCost(cell_type="1R")))
    assert float(c["area"]["cells"]) == pytest.approx(3 * float(one_r["area"]["cells"]))  # 1T1R: 12 F^2, not 4


def test_bit_serial_and_pulse_width_slices():
    hw, W, x, state = _layer(**{"dac.bits": 7, "dac.slice_bits": 2})
    c = cost.layer_cost(x, state, hw)
    assert float(c["slices"]) == 3
    amp = cost.layer_cost(x, state, hw.set({"dac.slice_bits": None}))
    assert float(c["conversions"]) == 3 * float(amp["conversions"])
    assert float(c["latency"]) > 2.5 * float(amp["latency"])
    pw = cost.layer_cost(x, state, hw.set({"dac.slice_bits": None, "dac.encoding": "pulse_width"}))
    assert float(pw["conversions"]) == float(amp["conversions"])  # the column integrates the pulse
    # a level-l pulse is on for l/n of t_read at +-v_read: energy = t_read v_read |q| / n ... per row
    np.testing.assert_allclose(
        pw["energy"]["array"] / amp["energy"]["array"], _energy_ratio_pulse_vs_amplitude(x, state, 7), rtol=1e-10
    )


def _energy_ratio_pulse_vs_amplitude(x, state, bits):
    q = _dac_levels(x, bits)
    P, kt, nt, rows, cp = state.g.shape
    pad = lambda a: np.pad(a, ((0, 0), (0, kt * rows - a.shape[1]))).reshape(len(a), kt, rows)  # noqa: E731
    rowsum = np.sum(
        np.asarray(state.g) * (np.arange(nt * cp) < state.out_features).reshape(nt, cp)[None, None, :, None], axis=-1
    )
    return np.einsum("bkr,pknr->", pad(np.abs(q)), rowsum) / np.einsum("bkr,pknr->", pad(q**2), rowsum)


def test_pruned_columns_and_tiles_cost_nothing():
    hw, W, x, _ = _layer(K=64, N=16, rows=32, cols=8)
    W = W.at[:, 8:].set(0.0)  # the second column tile holds only zeros
    W = W.at[32:, :4].set(0.0)  # and half the columns of the first are empty in row tile 1
    state = crossbar.program(W, hw, jax.random.key(0))
    full = cost.layer_cost(x, state, hw, cost.CostConfig(skip_empty=False))
    skip = cost.layer_cost(x, state, hw, weights=W)
    assert float(full["conversions"]) == 2 * 2 * 16
    assert float(skip["conversions"]) == 2 * (8 + 4)
    assert float(skip["arrays"]) == 2 * 2 and float(full["arrays"]) == 2 * 4
    for k in ("array", "dac", "adc"):
        assert float(skip["energy"][k]) < float(full["energy"][k])
    # the sparse layout packs the non-empty columns: the same conversions without the weights
    sparse_hw = hw.set({"mapping.layout": "sparse"})
    sparse = cost.layer_cost(x, crossbar.program(W, sparse_hw, jax.random.key(0)), sparse_hw)
    assert float(sparse["conversions"]) == float(skip["conversions"])


def test_dub_bits_per_tile_lower_the_adc_energy_by_the_law():
    hw, W, x, _ = _layer(K=64, N=8, rows=64, cols=8)
    W = W.at[16:].set(0.0)  # 16 of 64 rows used: D.U.B. drops 2 bits
    state = crossbar.program(W, hw, jax.random.key(0))
    dense_bits = energy.column_bits(W, 64, 8, per="dense")
    dub_bits = energy.column_bits(W, 64, 8, per="tile")
    assert int(dense_bits.max()) == 8 and int(dub_bits.max()) == 6
    e8 = cost.layer_cost(x, state, hw, adc_bits=dense_bits)["energy"]["adc"]
    e6 = cost.layer_cost(x, state, hw, adc_bits=dub_bits)["energy"]["adc"]
    np.testing.assert_allclose(e8 / e6, 4.0, rtol=1e-12)
    with pytest.raises(ValueError, match="adc_bits: expected per-column bits"):
        cost.layer_cost(x, state, hw, adc_bits=dub_bits[0])


# ---------------------------------------------------------------------------
# 3. converters' laws
# ---------------------------------------------------------------------------
def test_adc_laws():
    np.testing.assert_allclose(cost.adc_energy(8), 20e-15 * 256, rtol=1e-12)
    # Schreier: SNDR 6.02 b + 1.76 dB at FoM_S; 8 bits at 165 dB is ISAAC's 1.56 pJ converter
    np.testing.assert_allclose(cost.adc_energy(8, cost.ADCCost(law="schreier")), 1.55e-12, rtol=0.01)
    s = cost.ADCCost(law="schreier")
    np.testing.assert_allclose(cost.adc_energy(9, s) / cost.adc_energy(8, s), 10**0.602, rtol=1e-12)
    t = cost.ADCCost(law="table", table_bits=(4, 6, 8), table_energy=(0.1e-12, 0.4e-12, 3.2e-12))
    np.testing.assert_allclose(
        cost.adc_energy(jnp.array([4, 6, 7, 8]), t), [0.1e-12, 0.4e-12, 0.4e-12 * 8**0.5, 3.2e-12], rtol=1e-12
    )
    with pytest.raises(ValueError, match="outside adc.table_bits"):
        cost.adc_energy(9, t)


@settings(max_examples=25, deadline=None)
@given(law=st.sampled_from(["walden", "schreier", "table"]), b=st.integers(2, 11))
def test_property_adc_energy_grows_with_bits(law, b):
    a = cost.ADCCost(law=law, table_bits=(1, 6, 12), table_energy=(1e-14, 1e-13, 1e-11))
    e = np.asarray(cost.adc_energy(jnp.array([b, b + 1]), a))
    assert np.all(np.isfinite(e)) and e[1] > e[0] > 0


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda: cost.ADCCost(law="flash"), "adc.law"),
        (lambda: cost.ADCCost(share=0), "adc.share"),
        (lambda: cost.ADCCost(rate=-1.0), "adc.rate"),
        (lambda: cost.ADCCost(law="table", table_bits=(4,), table_energy=(1e-12,)), "table_bits"),
        (lambda: cost.ADCCost(law="table", table_bits=(4, 8), table_energy=(1e-12,)), "table_energy"),
        (lambda: cost.ArrayCost(cell_type="2T2R"), "array.cell_type"),
        (lambda: cost.DACCost(energy=0.0), "dac.energy"),
        (lambda: cost.DigitalCost(output_bits=0), "digital.output_bits"),
    ],
)
def test_bad_figures_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()


def test_bad_inputs_are_refused():
    hw, W, x, state = _layer()
    with pytest.raises(ValueError, match=r"x: expected \(\.\.\., 70\)"):
        cost.layer_cost(x[:, :10], state, hw)
    nl = hw.set({"array.cell": Cell(iv="sinh", v0=0.25)})
    with pytest.raises(ValueError, match="needs linear cells"):
        cost.layer_cost(x, crossbar.program(W, nl, jax.random.key(0)), nl)
    m = models.MLP(8, (4,), 2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="'digital' mode"):
        cost.model_cost(m, jnp.ones((2, 8)))


# ---------------------------------------------------------------------------
# 4. a model: differentiable, jitted, same numbers as its layers
# ---------------------------------------------------------------------------
HW = HardwareConfig().set(
    {"array.rows": 16, "array.cols": 16, "adc.bits": 6, "dac.bits": 6, "device.write_noise.sigma": 0.02}
)


@pytest.mark.slow  # ~11 s on 2 cores
def test_model_energy_gradient_matches_finite_differences():
    """d E_read / d kernel (train mode: the layers programmed from the weights) against
    central differences, float64; the read energy depends on the conductances the weights map
    to and on the next layers' inputs. Ideal converters here: a quantizer's gradient is
    straight-through (crossjax's convention), which differences do not see."""
    smooth = HW.set({"adc.bits": None, "dac.bits": None})
    m = layers.set_mode(models.MLP(20, (12,), 5, param_dtype=jnp.float64, rngs=nnx.Rngs(1)), "train", smooth)
    x = jax.random.uniform(jax.random.key(2), (4, 20), minval=-1, maxval=1)

    def read_energy(model):
        return cost.model_cost(model, x)["energy"]["array"]

    grads = nnx.grad(read_energy)(m)
    rng = np.random.default_rng(0)
    for li in (0, 1):
        g = np.asarray(grads["layers"][li]["kernel"].get_value())
        assert np.abs(g).max() > 0
        for _ in range(3):
            idx = tuple(int(rng.integers(s)) for s in g.shape)
            h = 1e-6
            out = []
            for d in (h, -h):
                mm = nnx.clone(m)
                k = mm.layers[li].kernel
                k.set_value(k.get_value().at[idx].add(d))
                out.append(float(read_energy(mm)))
            np.testing.assert_allclose(g[idx], (out[0] - out[1]) / (2 * h), rtol=1e-5, atol=1e-24)


def test_model_cost_in_hardware_mode_sums_its_layers_and_jits():
    m = models.MLP(20, (12,), 5, rngs=nnx.Rngs(1))
    layers.set_mode(m, "hardware", HW)
    layers.load_program(m, layers.program_model(m, HW, jax.random.key(3)))
    x = jax.random.uniform(jax.random.key(2), (4, 20), minval=-1, maxval=1)
    c = cost.model_cost(m, x)
    assert list(c["layers"]) == ["layers.0", "layers.1"]
    parts = [layer for _, layer in layers.crossbar_layers(m)]
    first = cost.layer_cost(x, parts[0].crossbar_state.get_value(), HW, weights=parts[0].crossbar_weights())
    np.testing.assert_allclose(c["layers"]["layers.0"]["energy"]["adc"], first["energy"]["adc"], rtol=1e-12)
    np.testing.assert_allclose(
        c["energy_total"], sum(float(cost.total(v["energy"])) for v in c["layers"].values()), rtol=1e-12
    )
    np.testing.assert_allclose(c["latency"], sum(float(v["latency"]) for v in c["layers"].values()), rtol=1e-12)
    assert float(c["interval"]) == max(float(v["latency"]) for v in c["layers"].values())
    with pytest.raises(ValueError, match="adc_bits names layers the model does not have"):
        cost.model_cost(m, x, adc_bits={"layers.7": jnp.zeros((1, 1, 16))})
    jitted = jax.jit(lambda mm, x: cost.model_cost(mm, x)["energy_total"])(m, x)
    np.testing.assert_allclose(jitted, c["energy_total"], rtol=1e-12)


@pytest.mark.slow  # ~15 s on 2 cores
def test_conv_model_counts_output_positions_and_groups():
    class Net(nnx.Module):
        def __init__(self, rngs):
            self.a = nnx.Conv(3, 8, (3, 3), rngs=rngs)
            self.b = nnx.Conv(8, 8, (3, 3), strides=2, feature_group_count=4, rngs=rngs)

        def __call__(self, x):
            return self.b(jax.nn.relu(self.a(x))).mean((1, 2))

    from crossjax import conversion

    m = conversion.convert(Net(nnx.Rngs(0)), HW)
    layers.set_mode(m, "train", HW)
    c = cost.model_cost(m, jnp.ones((2, 6, 6, 3)) * 0.3)
    assert float(c["layers"]["a"]["vectors"]) == 36  # 6 x 6 outputs ("SAME")
    assert float(c["layers"]["b"]["vectors"]) == 9  # 3 x 3 outputs, one vector per group's read
    assert float(c["layers"]["b"]["arrays"]) == 4 * 2 * 2  # 4 groups of 18 x 2: 2 row tiles, differential
    assert all(math.isfinite(float(v)) and float(v) > 0 for v in c["energy"].values())


@pytest.mark.slow  # ~1 min on 2 cores: two short fine-tunings of a digits MLP
def test_energy_aware_finetuning_trades_accuracy_for_read_energy():
    """CE + lambda E_array / E0 lowers the read energy against the same fine-tuning at lambda = 0
    (same steps, data order and noise); the energy is measured on the programmed network."""
    from crossjax import data, training

    train = data.load_dataset("digits", split="train", flatten=True)
    hw = HardwareConfig().set({"adc.bits": 8, "dac.bits": 8, "device.write_noise.sigma": 0.02})
    base = models.MLP(64, (32,), 10, rngs=nnx.Rngs(0))
    training.train(base, train, training.TrainConfig(steps=300), progress=False)
    x = jnp.asarray(train.x[:64])

    def read_energy(m):
        return cost.programmed_cost(m, hw, x, jax.random.key(5))["energy_breakdown_J"]["array"]

    e0 = read_energy(base)
    out = {}
    for lam in (0.0, 20.0):
        m = nnx.clone(base)
        training.finetune(
            m,
            train,
            training.TrainConfig(steps=60, learning_rate=2e-3),
            hw,
            progress=False,
            loss_fn=cost.energy_aware_loss(lam, e0, component="array"),
        )
        out[lam] = read_energy(m)
    assert out[20.0] < 0.9 * out[0.0]
    with pytest.raises(ValueError, match="weight"):
        cost.energy_aware_loss(-1.0, 1.0)
    with pytest.raises(ValueError, match="component"):
        cost.energy_aware_loss(1.0, 1.0, component="cells")


def test_pareto_front_examples_and_bad_input():
    f = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [2.5, 2.5], [1.0, 3.0]])
    assert cost.pareto_front(f).tolist() == [True, True, True, False, True]  # ties both kept
    assert cost.pareto_front(np.zeros((0, 2))).tolist() == []
    with pytest.raises(ValueError, match="2-D"):
        cost.pareto_front([1.0, 2.0])
    with pytest.raises(ValueError, match="NaN"):
        cost.pareto_front([[1.0, np.nan]])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=12))
def test_property_pareto_front_is_exactly_the_undominated(points):
    f = np.array(points, dtype=float)
    front = cost.pareto_front(f)

    def dominates(a, b):
        return bool(np.all(a <= b) and np.any(a < b))

    for i in range(len(f)):  # an independent O(n^2) loop over pairs
        dominated = any(dominates(f[j], f[i]) for j in range(len(f)))
        assert front[i] == (not dominated)
    assert front.any()


def test_budget_breakdown_sums_components_of_one_name():
    """Two components (or two unnamed blocks) of one name are one line of the breakdown, and the
    breakdown adds up to the totals."""
    C = cost.Component
    b = cost.budget(
        [
            C("adc", 1, 1.0, 0.5),
            C("adc", 2, 1.0, 0.25),
            ({"power": 3.0, "area": 1.0}, 1),
            ({"power": 1.0, "area": 1.0}, 2),
        ]
    )
    assert b["power"] == 1.0 + 2.0 + 3.0 + 2.0 and b["area"] == 0.5 + 0.5 + 1.0 + 2.0
    assert b["breakdown"] == {"adc": {"power": 3.0, "area": 1.0}, "block": {"power": 5.0, "area": 3.0}}
    assert sum(v["power"] for v in b["breakdown"].values()) == b["power"]
