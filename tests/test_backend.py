"""crossjax.backend: the per-backend policy table and the memory figure Monte Carlo chunks by."""

import dataclasses

import jax
import pytest

from crossjax import backend, montecarlo


class FakeDevice:
    """Stands in for a jax.Device: a platform and memory_stats() (a dict, None, or raising)."""

    def __init__(self, platform, stats=None, raises=False):
        self.platform, self._stats, self._raises = platform, stats, raises

    def memory_stats(self):
        if self._raises:
            raise RuntimeError("UNIMPLEMENTED: memory_stats")
        return self._stats


def test_cpu_policy_is_todays_code():
    from crossjax import counter_rng  # noqa: F401  (the CPU generator exists)
    from crossjax.devices import ReadNoise

    p = backend.policy("cpu")
    assert (p.row_tile_sum, p.tile_product, p.read_noise_generator, p.openblas_threads) == (
        "pairwise",
        "flat",
        "counter",
        1,
    )
    assert p.geff_chunk_bytes == 4 * 2**20  # about an L2 cache
    assert ReadNoise().generator == p.read_noise_generator
    assert p.memory_fraction == 0.5


@pytest.mark.parametrize("name", ["gpu", "tpu", "cuda", "ROCm", "TPU"])
def test_accelerators_get_the_plain_form(name):
    p = backend.policy(name)
    assert p.backend in ("gpu", "tpu")
    assert (p.row_tile_sum, p.tile_product, p.read_noise_generator) == ("reduce", "einsum", "threefry")
    assert p.geff_chunk_bytes is None and p.openblas_threads is None
    assert p.memory_fraction == 0.6


def test_policy_default_is_jax_backend_and_frozen():
    p = backend.policy()
    assert p is backend.policy(jax.default_backend())
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.memory_fraction = 1.0


@pytest.mark.parametrize("bad", ["metal", "", 3, None.__class__])
def test_unknown_backend_is_refused(bad):
    with pytest.raises(ValueError, match="backend"):
        backend.policy(bad)


def test_memory_bytes_uses_the_device_figure():
    dev = FakeDevice("gpu", {"bytes_limit": 80 << 30, "bytes_in_use": 30 << 30})
    assert backend.memory_bytes(dev) == 50 << 30
    assert backend.memory_bytes(FakeDevice("tpu", {"bytes_limit": 16 << 30})) == 16 << 30
    assert backend.memory_bytes(FakeDevice("gpu", {"bytes_limit": 1, "bytes_in_use": 5})) == 0
    assert montecarlo.memory_budget_bytes(dev) == int(0.6 * (50 << 30))


@pytest.mark.parametrize(
    "dev",
    [
        FakeDevice("cpu", None),
        FakeDevice("cpu", {}),
        FakeDevice("cpu", raises=True),
        FakeDevice("cpu", {"bytes_in_use": 7}),
    ],
)
def test_memory_bytes_falls_back_to_host_memory_shared_by_local_devices(dev, monkeypatch):
    monkeypatch.setattr(backend, "host_memory_bytes", lambda: 12 << 30)
    local = [FakeDevice("cpu"), FakeDevice("cpu"), FakeDevice("cpu"), FakeDevice("gpu")]
    assert backend.memory_bytes(dev, local) == 4 << 30  # three CPU devices share the host
    assert backend.memory_bytes(dev, []) == 12 << 30
    if jax.devices()[0].memory_stats() is None:  # XLA CPU: the host figure
        assert montecarlo.memory_budget_bytes(jax.devices()[0]) == int(
            0.5 * ((12 << 30) // max(1, sum(d.platform == "cpu" for d in jax.local_devices())))
        )


def test_host_memory_is_positive():
    assert backend.host_memory_bytes() > 0


@pytest.mark.parametrize(
    "lead,K",
    [
        ((5,), 29),
        pytest.param((2, 3), 6, marks=pytest.mark.slow),
        pytest.param((2, 1, 3), 40, marks=pytest.mark.slow),
        pytest.param((4,), 64, marks=pytest.mark.slow),
    ],
)
def test_plain_forms_compute_what_the_cpu_forms_compute(monkeypatch, lead, K):
    """Under the GPU/TPU policy (forced here on the CPU) the plain kernels give the CPU
    kernels' currents and gradients (inputs and weights), for 1, 4, 5 and 8 row tiles of 8
    rows (the flat tile product is a plain matmul for one, the pairwise row-tile sum halves
    odd and even counts; all but the first case slow-marked) and one to three batch axes,
    with IR drop (one G_eff sweep instead of cache-sized chunks), 8-bit converters and read
    noise; and, on the CPU forms, a vmap over the examples equals a loop."""
    import jax.numpy as jnp
    import numpy as np

    from crossjax import crossbar
    from crossjax.hardware import HardwareConfig

    hw = HardwareConfig().set(
        {
            "array.rows": 8,
            "array.cols": 8,
            "array.parasitics.r_wire_row": 2.0,
            "array.parasitics.r_wire_col": 2.0,
            "device.read_noise.sigma": 0.02,
            "dac.bits": 8,
            "adc.bits": 8,
        }
    )
    rng = np.random.default_rng(K)
    W, x = jnp.asarray(rng.normal(size=(K, 11))), jnp.asarray(rng.uniform(-1, 1, lead + (K,)))
    state = crossbar.program(W, hw, jax.random.key(0))

    def loss(x, W):
        return jnp.sum(crossbar.matmul(x, crossbar.program(W, hw, jax.random.key(0)), hw, jax.random.key(1)) ** 2)

    def run():
        jax.clear_caches()
        y = crossbar.matmul(x, state, hw, jax.random.key(1))
        gx, gW = jax.grad(loss, argnums=(0, 1))(x, W)
        return np.asarray(y), np.asarray(gx), np.asarray(gW)

    cpu = run()
    flat = x.reshape((-1, K))
    stacked = jax.vmap(lambda v: crossbar.matmul(v, state, hw, jax.random.key(1)))(flat[:, None, :])
    loop = np.stack([np.asarray(crossbar.matmul(v[None], state, hw, jax.random.key(1))) for v in flat])
    plain = backend.plain(jax.default_backend())
    monkeypatch.setitem(backend.POLICIES, jax.default_backend(), plain)
    assert backend.policy().tile_product == "einsum"
    y_plain, gx_plain, gW_plain = run()
    jax.clear_caches()
    np.testing.assert_allclose(y_plain, cpu[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx_plain, cpu[1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gW_plain, cpu[2], rtol=1e-9, atol=1e-12)
    assert np.abs(cpu[0]).max() > 0.1
    np.testing.assert_allclose(np.asarray(stacked), loop, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "platforms, expected", [("cpu", False), ("cuda", True), ("tpu,cpu", True), (" CPU ,cuda", False)]
)
def test_accelerator_installed_follows_jax_platforms(platforms, expected, monkeypatch):
    monkeypatch.setenv("JAX_PLATFORMS", platforms)
    assert backend.accelerator_installed() is expected


def test_openblas_limit_is_skipped_for_an_accelerator():
    """The CPU row's OpenBLAS limit is applied at import unless JAX will run on an accelerator."""
    import os
    import subprocess
    import sys

    code = "import os, crossjax; print(os.environ.get('OPENBLAS_NUM_THREADS'))"
    for platforms, expected in (("cpu", "1"), ("cuda", "None")):
        env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
        env["JAX_PLATFORMS"] = platforms
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        assert out.stdout.strip() == expected, out.stderr[-2000:]


def test_accelerator_extras_pull_jax_own_extras():
    """``pip install "crossjax[cuda12]"`` (and cuda13, tpu) installs JAX's own accelerator extra."""
    import pathlib
    import tomllib

    project = tomllib.loads((pathlib.Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    for name in ("cuda12", "cuda13", "tpu"):
        assert extras[name] == [f"jax[{name}]"], name


def test_column_chunked_sweep_of_a_wide_array_equals_one_sweep(monkeypatch):
    """A 256-wide array's sweep state (forward, and the upward pass of its gradient) is split by
    excitation column on the CPU policy (``circuit.sweep``); the plain policy sweeps it whole:
    the same ``G_eff`` and gradient."""
    import jax.numpy as jnp
    import numpy as np

    from crossjax import circuit

    G = jax.random.uniform(jax.random.key(0), (64, 256), jnp.float64, 1e-5, 1e-4)
    W = jax.random.normal(jax.random.key(1), G.shape, jnp.float64)
    p = circuit.Parasitics(r_wire_row=2.0, r_wire_col=3.0, r_source=10.0, r_sink=5.0)

    def run():
        jax.clear_caches()
        value, grad = jax.value_and_grad(lambda g: jnp.sum(W * circuit.effective_conductance(g, p)))(G)
        return np.asarray(circuit.effective_conductance(G, p)), float(value), np.asarray(grad)

    assert circuit.sweep.column_chunks(G) > 1 and circuit.sweep.column_chunks(G, 2 * 64) > 1  # forward and upward pass
    chunked = run()
    monkeypatch.setitem(backend.POLICIES, jax.default_backend(), backend.plain(jax.default_backend()))
    whole = run()
    jax.clear_caches()
    np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-12, atol=0)
    np.testing.assert_allclose(chunked[1], whole[1], rtol=1e-12)
    np.testing.assert_allclose(chunked[2], whole[2], rtol=1e-10, atol=1e-14 * np.abs(whole[2]).max())
