"""Device non-idealities match their configured distributions (>= 1e5 devices)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crossjax import crossbar, devices
from crossjax.devices import DeviceConfig, Drift, RangeVariation, ReadNoise, StuckAt, WriteNoise
from crossjax.hardware import HardwareConfig

N_DEV = 200_000
G_MIN, G_MAX = 1e-6, 1e-4


def _u(value=0.5):
    return jnp.full((N_DEV,), value)


def _z(sample_std, n=N_DEV, k=5.0):
    """k standard errors of a sample mean."""
    return k * sample_std / np.sqrt(n)


@pytest.mark.parametrize("kind", ["gaussian", "proportional", "lognormal"])
def test_write_noise_distribution(kind):
    sigma = 0.05
    dev = DeviceConfig(g_min=G_MIN, g_max=G_MAX, write_noise=WriteNoise(sigma=sigma, kind=kind))
    g = np.asarray(devices.program_conductances(_u(0.5), dev, jax.random.key(0)))
    g0 = G_MIN + (G_MAX - G_MIN) * 0.5
    if kind == "gaussian":
        mean, std = g0, sigma * (G_MAX - G_MIN)
        assert abs(g.mean() - mean) < _z(std)
        assert abs(g.std() - std) < 5 * std / np.sqrt(2 * N_DEV)
    elif kind == "proportional":
        mean, std = g0, sigma * g0
        assert abs(g.mean() - mean) < _z(std)
        assert abs(g.std() - std) < 5 * std / np.sqrt(2 * N_DEV)
    else:
        logs = np.log(g / g0)
        assert abs(logs.mean()) < _z(sigma)
        assert abs(logs.std() - sigma) < 5 * sigma / np.sqrt(2 * N_DEV)


def test_range_variation_distribution():
    dev = DeviceConfig(g_min=G_MIN, g_max=G_MAX, range_variation=RangeVariation(sigma_g_min=0.1, sigma_g_max=0.05))
    lo = np.asarray(devices.program_conductances(_u(0.0), dev, jax.random.key(1)))
    hi = np.asarray(devices.program_conductances(_u(1.0), dev, jax.random.key(1)))
    for g, nominal, s in ((lo, G_MIN, 0.1), (hi, G_MAX, 0.05)):
        assert abs(g.mean() - nominal) < _z(s * nominal)
        assert abs(g.std() / nominal - s) < 5 * s / np.sqrt(2 * N_DEV)


def test_stuck_at_fractions():
    dev = DeviceConfig(g_min=G_MIN, g_max=G_MAX, stuck=StuckAt(p_min=0.03, p_max=0.07))
    g = np.asarray(devices.program_conductances(_u(0.37), dev, jax.random.key(2)))
    for value, p in ((G_MIN, 0.03), (G_MAX, 0.07)):
        frac = np.mean(g == value)
        assert abs(frac - p) < 5 * np.sqrt(p * (1 - p) / N_DEV)
    g0 = G_MIN + (G_MAX - G_MIN) * 0.37
    assert abs(np.mean(np.isclose(g, g0, rtol=1e-12)) - 0.9) < 5 * np.sqrt(0.09 / N_DEV)


def test_drift_power_law():
    t, t0, nu, nu_std = 1000.0, 1.0, 0.06, 0.02
    dev = DeviceConfig(g_min=G_MIN, g_max=G_MAX, drift=Drift(t=t, t0=t0, nu=nu, nu_std=nu_std))
    g = np.asarray(devices.program_conductances(_u(1.0), dev, jax.random.key(3)))
    nu_d = -np.log(g / G_MAX) / np.log(t / t0)  # recovered per-device exponents
    assert abs(nu_d.mean() - nu) < _z(nu_std)
    assert abs(nu_d.std() - nu_std) < 5 * nu_std / np.sqrt(2 * N_DEV)


@pytest.mark.parametrize(
    "kind,generator", [("proportional", "counter"), ("gaussian", "counter"), ("proportional", "threefry")]
)
def test_read_noise_per_read(kind, generator):
    """One input row at v_read reads each device of a column: I = v_read * (G + delta)."""
    sigma = 0.04
    cfg = HardwareConfig().set(
        {"device.read_noise": ReadNoise(sigma=sigma, kind=kind, generator=generator), "array.rows": 1, "array.cols": 64}
    )
    K, N = 1, 64
    W = jnp.full((K, N), 0.5)  # w_max = 0.5: u+ = 1 (G+ = g_max), u- = 0 (G- = g_min)
    state = crossbar.program(W, cfg)
    keys = jax.random.split(jax.random.key(4), N_DEV // N)
    y = jax.vmap(lambda k: crossbar.matmul(jnp.ones((K,)), state, cfg, k))(keys)
    y = np.asarray(y).ravel()
    # digital units: y = (dI+ - dI-) / (v_read (g_max - g_min)) * w_max (w_max = 0.5)
    g_plus = G_MAX
    s_plus, s_minus = (sigma * g_plus, sigma * G_MIN) if kind == "proportional" else (sigma * (G_MAX - G_MIN),) * 2
    std = np.hypot(s_plus, s_minus) / (G_MAX - G_MIN) * 0.5
    assert abs(y.mean() - 0.5) < _z(std, y.size)
    assert abs(y.std() - std) < 5 * std / np.sqrt(2 * y.size)
    # resampled per read: two reads with different keys differ, the same key repeats
    a, b = (crossbar.matmul(jnp.ones((K,)), state, cfg, jax.random.key(i)) for i in (5, 6))
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, crossbar.matmul(jnp.ones((K,)), state, cfg, jax.random.key(5)))


def test_levels_are_finite_states():
    dev = DeviceConfig(g_min=G_MIN, g_max=G_MAX, levels=5)
    u = jnp.linspace(0, 1, 1001)
    g = np.asarray(devices.program_conductances(u, dev, jax.random.key(0)))
    np.testing.assert_allclose(np.unique(g), G_MIN + (G_MAX - G_MIN) * np.linspace(0, 1, 5), rtol=1e-12)


def test_keys_reproduce_and_differ():
    dev = DeviceConfig(
        write_noise=WriteNoise(0.1),
        range_variation=RangeVariation(0.1, 0.1),
        stuck=StuckAt(0.01, 0.01),
        drift=Drift(t=10.0, nu_std=0.01),
    )
    u = jnp.linspace(0, 1, 4096)
    a = devices.program_conductances(u, dev, jax.random.key(7))
    np.testing.assert_array_equal(a, devices.program_conductances(u, dev, jax.random.key(7)))
    assert np.mean(np.asarray(a) != np.asarray(devices.program_conductances(u, dev, jax.random.key(8)))) > 0.95


def test_bad_device_config():
    with pytest.raises(ValueError, match="device.g_min"):
        DeviceConfig(g_min=1e-4, g_max=1e-5)
    with pytest.raises(ValueError, match="device.write_noise.sigma"):
        WriteNoise(sigma=-0.1)
    with pytest.raises(ValueError, match="device.read_noise.sigma"):
        ReadNoise(sigma=float("nan"))
    with pytest.raises(ValueError, match="device.read_noise.generator"):
        ReadNoise(sigma=0.01, generator="philox")
    with pytest.raises(ValueError, match="device.stuck"):
        StuckAt(p_min=0.6, p_max=0.6)
    with pytest.raises(ValueError, match="device.levels"):
        DeviceConfig(levels=1)
    d = DeviceConfig.from_resistance(1e4, 1e5)
    np.testing.assert_allclose([d.g_min, d.g_max], [1e-5, 1e-4])


def test_read_noise_draws_without_a_read_noise_model_name_the_fix():
    g = jnp.full((2, 2), 1e-5)
    for fn, args in ((devices.read_noise_std, (g,)), (devices.read_noise_normal, (jax.random.key(0), (2,), g.dtype))):
        with pytest.raises(ValueError, match="device.read_noise is None"):
            fn(*args, devices.DeviceConfig())
