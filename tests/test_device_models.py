"""Fitted device models (PCM: Nandakumar et al. 2019 / Joshi et al. 2020; RRAM: Wan et al. 2022)
against their published formulas, written out here independently of crossjax.devices, over
1e5 devices at five target conductances; time consistency; drift compensation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from crossjax import crossbar, devices, presets
from crossjax.devices import DeviceConfig, DriftCompensation, PCMModel, RRAMModel, WriteNoise
from crossjax.hardware import HardwareConfig
from crossjax.mapping import MappingConfig

N_DEV = 100_000
X = (0.1, 0.3, 0.5, 0.7, 0.9)  # target conductance / g_max
PCM_GMAX = 25e-6
YEAR = 3.1536e7


def _program(dev, x, key=0, **kw):
    u = jnp.full((N_DEV,), x)  # g_min = 0: the target is x * g_max
    return np.asarray(devices.program_conductances(u, dev, jax.random.key(key), **kw), np.float64)


def _standard_normal(z, what):
    """Mean 0 and std 1 within 5 standard errors."""
    n = z.size
    assert abs(z.mean()) <= 5 / math.sqrt(n), f"{what}: mean {z.mean():.4g}"
    assert abs(z.std() - 1) <= 5 / math.sqrt(2 * n), f"{what}: std {z.std():.4g}"


def _pcm(**kw):
    return DeviceConfig(g_min=0.0, g_max=PCM_GMAX, pcm=PCMModel(**kw))


@pytest.mark.parametrize("x", X)
def test_pcm_programming_noise_is_the_published_polynomial(x):
    g_prog = _program(_pcm(), x, reference=True)
    sigma = max(-1.1731 * x * x + 1.9650 * x + 0.26348, 0) * 1e-6  # uS at g_max = 25 uS
    _standard_normal((g_prog - x * PCM_GMAX) / sigma, f"programming noise at x={x}")


def test_pcm_programming_noise_scales_with_g_max():
    dev = DeviceConfig(g_min=0.0, g_max=100e-6, pcm=PCMModel())
    g_prog = _program(dev, 0.5, reference=True)
    sigma = (-1.1731 * 0.25 + 1.9650 * 0.5 + 0.26348) * 1e-6 * 100 / 25
    _standard_normal((g_prog - 50e-6) / sigma, "programming noise at g_max = 100 uS")


@pytest.mark.parametrize("x", X)
def test_pcm_drift_exponent_is_the_published_folded_normal(x):
    t, t0 = 86400.0, 20.0
    dev = _pcm(t=t, q=(0.0, 0.65, 0.2))  # no 1/f noise: the drift alone
    nu = -np.log(_program(dev, x) / _program(dev, x, reference=True)) / math.log((t + t0) / t0)
    mu = min(max(-0.0155 * math.log(x) + 0.0244, 0.049), 0.1)
    s = min(max(-0.0125 * math.log(x) - 0.0059, 0.008), 0.045)
    folded = stats.foldnorm(abs(mu) / s, scale=s)  # |N(mu, s)|
    assert abs(nu.mean() - folded.mean()) <= 5 * folded.std() / math.sqrt(N_DEV)
    assert abs(nu.std() - folded.std()) <= 5 * folded.std() / math.sqrt(2 * N_DEV)
    assert nu.min() >= 0


@pytest.mark.parametrize("t", [1.0, 86400.0, YEAR])
@pytest.mark.parametrize("x", [0.1, 0.5, 0.9])
def test_pcm_accumulated_read_noise_grows_as_published(t, x):
    t0, t_read = 20.0, 250e-9
    g = _program(_pcm(t=t), x)
    g_drift = _program(_pcm(t=t, q=(0.0, 0.65, 0.2)), x)  # same key: same programming and nu
    g_prog = _program(_pcm(t=t), x, reference=True)
    Q = np.minimum(0.0088 / np.maximum(np.abs(g_prog) / PCM_GMAX, 1e-3) ** 0.65, 0.2)
    sigma = np.abs(g_drift) * Q * math.sqrt(math.log((t + t0 + t_read) / (2 * t_read)))
    _standard_normal((g - g_drift) / sigma, f"1/f read noise at x={x}, t={t:g}")


def test_pcm_one_key_is_one_chip_at_every_time():
    a, b = _program(_pcm(t=1.0), 0.4), _program(_pcm(t=1.0), 0.4)
    np.testing.assert_array_equal(a, b)  # fixed key: bit-identical
    assert not np.array_equal(a, _program(_pcm(t=1.0), 0.4, key=1))
    np.testing.assert_array_equal(
        _program(_pcm(t=1.0), 0.4, reference=True), _program(_pcm(t=YEAR), 0.4, reference=True)
    )  # same programming noise
    quiet = dict(q=(0.0, 0.65, 0.2))
    g_prog = _program(_pcm(**quiet), 0.4, reference=True)
    nu = [-np.log(_program(_pcm(t=t, **quiet), 0.4) / g_prog) / math.log((t + 20) / 20) for t in (60.0, YEAR)]
    np.testing.assert_allclose(nu[0], nu[1], rtol=1e-9)  # same nu per device


RRAM_FITS = {
    1.0: (0.348, 16.030, -43.853, 45.393, -16.815),
    86400.0: (0.701, 22.086, -50.773, 47.095, -16.458),
    172800.0: (0.782, 20.274, -43.507, 37.062, -11.934),
}


@pytest.mark.parametrize("t", sorted(RRAM_FITS))
@pytest.mark.parametrize("x", (0.3, 0.45, 0.6, 0.75, 0.9))
def test_rram_deviation_is_the_published_polynomial(t, x):
    dev = DeviceConfig(g_min=0.0, g_max=40e-6, rram=RRAMModel(t=t))
    sigma = max(sum(c * x**k for k, c in enumerate(RRAM_FITS[t])), 0) * 1e-6
    _standard_normal((_program(dev, x) - x * 40e-6) / sigma, f"RRAM deviation at x={x}, t={t:g}")


def test_rram_interpolates_in_log_time_and_holds_outside_the_fits():
    m = RRAMModel()
    s = {t: float(m.replace(t=t).deviation_std(0.5)) for t in (0.1, 1.0, math.sqrt(86400.0), 86400.0, 1e7)}
    assert s[0.1] == pytest.approx(s[1.0]) and s[1e7] == pytest.approx(float(m.replace(t=172800.0).deviation_std(0.5)))
    assert s[math.sqrt(86400.0)] == pytest.approx((s[1.0] + s[86400.0]) / 2, rel=1e-12)


def test_device_models_refuse_what_they_replace_and_bad_values():
    with pytest.raises(ValueError, match="device.write_noise"):
        DeviceConfig(pcm=PCMModel(), write_noise=WriteNoise(0.01))
    with pytest.raises(ValueError, match="device.pcm and device.rram"):
        DeviceConfig(pcm=PCMModel(), rram=RRAMModel())
    with pytest.raises(ValueError, match="device.pcm.t"):
        PCMModel(t=-1.0)
    with pytest.raises(ValueError, match="device.pcm.prog"):
        PCMModel(prog=[1.0, 2.0])
    with pytest.raises(ValueError, match="device.rram.times"):
        RRAMModel(times=(1.0, 1.0, 2.0))
    with pytest.raises(ValueError, match="device.drift_compensation.kind"):
        DriftCompensation("per_row")


def test_presets_round_trip_and_a_time_sweep_does_not_recompile():
    for name in ("pcm_joshi2020", "rram_wan2022"):
        hw = presets.get(name)
        assert HardwareConfig.from_dict(hw.to_dict()) == hw and hw.program_is_stochastic
    W = jax.random.normal(jax.random.key(0), (20, 8))
    f = jax.jit(
        lambda t: crossbar.program(W, presets.get("pcm_joshi2020").set({"device.pcm.t": t}), jax.random.key(1)).w_eff
    )
    ys = [f(t) for t in (1.0, 3600.0, YEAR)]
    assert f._cache_size() == 1 and all(bool(jnp.all(jnp.isfinite(y))) for y in ys)


def _relative_error(config, W, x, key=0):
    state = crossbar.program(W, config, jax.random.key(key))
    y = crossbar.matmul(x, state, config)
    return float(jnp.linalg.norm(y - x @ W) / jnp.linalg.norm(x @ W))


@pytest.mark.parametrize("kind", ["global", "per_column"])
def test_drift_compensation_wins_back_a_year_of_drift(kind):
    W = jax.random.normal(jax.random.key(1), (200, 40))
    x = jax.random.uniform(jax.random.key(2), (16, 200))
    hw = presets.get("pcm_joshi2020").set({"device.pcm.t": YEAR})
    plain = _relative_error(hw, W, x)
    comp = hw.set({"device.drift_compensation": DriftCompensation(kind)})
    assert _relative_error(comp, W, x) < 0.6 * plain
    state = crossbar.program(W, comp, jax.random.key(0))
    assert state.out_scale.shape == (40,) and bool(jnp.all(state.out_scale > 1))
    # the factor is part of the effective weights and of the tile read (with an ADC)
    np.testing.assert_allclose(
        crossbar.effective_weights(state),
        crossbar.program(W, hw, jax.random.key(0)).w_eff * state.out_scale,
        rtol=1e-12,
    )
    adc = comp.set({"adc.bits": 12})
    y = crossbar.matmul(x, crossbar.program(W, adc, jax.random.key(0)), adc)
    assert float(jnp.linalg.norm(y - x @ W) / jnp.linalg.norm(x @ W)) < 0.6 * plain


def test_drift_compensation_is_exactly_one_without_time_dependence():
    W = jax.random.normal(jax.random.key(1), (70, 9))
    for kind in ("global", "per_column"):
        hw = HardwareConfig(
            device=DeviceConfig(write_noise=WriteNoise(0.02), drift_compensation=DriftCompensation(kind)),
            mapping=MappingConfig(layout="sparse"),
        )
        np.testing.assert_array_equal(crossbar.program(W, hw, jax.random.key(0)).out_scale, np.ones(9))


def test_drift_compensation_trains_and_reads_in_float32():
    hw = presets.get("pcm_joshi2020").set(
        {"device.pcm.t": 86400.0, "device.drift_compensation": DriftCompensation("per_column")}
    )
    W = jax.random.normal(jax.random.key(1), (30, 6), jnp.float32)
    x = jax.random.uniform(jax.random.key(2), (4, 30), jnp.float32)
    loss = lambda W: jnp.sum(crossbar.analog_matmul(x, W, hw, jax.random.key(0)) ** 2)  # noqa: E731
    val, grad = jax.value_and_grad(loss)(W)
    assert grad.dtype == jnp.float32 and bool(jnp.isfinite(val)) and bool(jnp.all(jnp.isfinite(grad)))
    assert float(jnp.abs(grad).max()) > 0


@pytest.mark.slow  # ~12 s on 2 cores
def test_a_time_sweep_reads_one_chip_and_the_report_plots_it(tmp_path):
    from crossjax import study

    toml = tmp_path / "drift.toml"
    toml.write_text("""
samples = 3
hidden = [16]
max_test = 120
finetune = false
[train]
steps = 80
batch_size = 32
learning_rate = 0.01
[[configs]]
name = "ideal"
[[configs]]
name = "pcm_t1s"
keys = "pcm"
hardware = { preset = "pcm_joshi2020", device = { pcm = { t = 1.0 } } }
[[configs]]
name = "pcm_t1y"
keys = "pcm"
hardware = { preset = "pcm_joshi2020", device = { pcm = { t = 3.1536e7 } } }
[[configs]]
name = "pcm_comp_t1s"
keys = "pcm"
hardware = { preset = "pcm_joshi2020", device = { pcm = { t = 1.0 }, drift_compensation = { kind = "global" } } }
[[configs]]
name = "pcm_comp_t1y"
keys = "pcm"
hardware = { preset = "pcm_joshi2020", device = { pcm = { t = 3.1536e7 }, drift_compensation = { kind = "global" } } }
""")
    spec = study.spec_from_toml(toml, study.get_preset("quick"))
    assert [c.key_name for c in spec.configs] == ["ideal"] + ["pcm"] * 4
    res = study.run_study(spec, tmp_path / "out", seed=0, progress=False, plots=True)
    by = {c["name"]: c for c in res["configs"]}
    assert by["pcm_t1y"]["accuracy"]["mean"] <= by["pcm_t1s"]["accuracy"]["mean"]  # a year of drift, same chips
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## Accuracy vs time after programming" in text
    assert "| pcm |" in text and "| pcm_comp |" in text and "1 y" in text
    assert (tmp_path / "out" / "accuracy_vs_time.png").read_bytes()[:4] == b"\x89PNG"
    assert study.get_preset("pcm_drift").configs[-1].key_name == "pcm"

    bad = tmp_path / "bad.toml"
    bad.write_text('[[configs]]\nname = "ideal"\nkey = "pcm"\n')
    with pytest.raises(ValueError, match="unknown keys \\['key'\\]"):
        study.spec_from_toml(bad, study.get_preset("quick"))
    with pytest.raises(ValueError, match="keys must be a non-empty string"):
        study.HardwareCase("x", HardwareConfig(), keys="")


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(st.floats(0.0, 1.0), st.floats(1e-3, 1e9))
def test_fitted_laws_stay_within_their_fits_and_bounds(x, t):
    m = RRAMModel(t=t)
    fits = [float(RRAMModel(t=tf).deviation_std(x)) for tf in devices.RRAM_FIT_TIMES]
    s = float(m.deviation_std(x))
    assert min(fits) - 1e-12 <= s <= max(fits) + 1e-12 and s >= 0  # between the fits it brackets
    p = PCMModel(t=t)
    mu, sd = (float(v) for v in p.drift_exponent_stats(x))
    assert 0.049 <= mu <= 0.1 and 0.008 <= sd <= 0.045
    assert float(p.programming_std(x)) >= 0
    assert (
        float(p.read_noise_std(x * PCM_GMAX, x * PCM_GMAX, PCM_GMAX))
        <= 0.2 * x * PCM_GMAX * math.sqrt(math.log((t + 20 + 250e-9) / 500e-9)) + 1e-18
    )
