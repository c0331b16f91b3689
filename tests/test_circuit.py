"""Tests of crossjax.circuit against independent references.

References: (1) a scipy sparse modified-nodal-analysis solve of the full
resistor network written here from the topology in docs/circuit.md,
(2) ngspice operating point of ``to_spice`` (marked ``spice``), (3) closed
forms, (4) central finite differences for gradients.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from circuit_reference import FIELDS, mna_currents  # noqa: E402  (tests/ is on sys.path)

from crossjax.circuit import Parasitics, effective_conductance, node_voltages, solve, to_spice
from crossjax.circuit.spice import ngspice_available, run_ngspice

try:  # OpenBLAS threads spin badly on a shared 2-core machine; one thread per process is faster.
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None


@pytest.fixture(autouse=True, scope="module")
def _single_blas_thread():
    if threadpool_limits is None:
        yield
    else:
        with threadpool_limits(1):
            yield


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b).max() / np.abs(b).max()


def random_case(seed, R, C, zero=()):
    rng = np.random.default_rng(seed)
    G = 10.0 ** rng.uniform(-7, -3, (R, C))
    V = rng.uniform(-0.5, 0.5, R)
    vals = dict(
        r_wire_row=rng.uniform(0.1, 10),
        r_wire_col=rng.uniform(0.1, 10),
        r_source=rng.uniform(0, 1000),
        r_sink=rng.uniform(0, 1000),
    )
    for k in zero:
        vals[k] = 0.0
    return G, V, Parasitics(**vals)


CASES = [
    ((1, 1), ()),
    ((7, 13), ()),
    ((7, 13), ("r_wire_row",)),
    ((7, 13), ("r_wire_col",)),
    ((13, 7), ("r_source",)),
    ((13, 7), ("r_sink",)),
    ((13, 7), ("r_source", "r_sink")),
    ((24, 24), ()),
]


# --------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("method", ["direct", "iterative"])
@pytest.mark.parametrize("k", range(len(CASES)))
def test_matches_scipy_nodal_solve(k, method):
    (R, C), zero = CASES[k]
    G, V, p = random_case(k, R, C, zero)
    ref = mna_currents(G, V, p)
    out = solve(jnp.asarray(G), jnp.asarray(V), p, method=method)
    assert rel_err(out, ref) <= 1e-10
    if method == "direct":
        assert rel_err(V @ effective_conductance(G, p), ref) <= 1e-10


needs_spice = pytest.mark.skipif(not ngspice_available(), reason="ngspice binary not found on PATH")


@pytest.mark.spice
@needs_spice
@pytest.mark.parametrize(
    "shape,zero",
    [
        ((1, 1), ()),
        ((1, 1), FIELDS),
        ((7, 13), ()),
        ((7, 13), ("r_wire_row", "r_sink")),
        ((13, 7), ("r_wire_col", "r_source")),
        pytest.param((64, 64), (), marks=pytest.mark.slow),
    ],
)
def test_matches_ngspice(shape, zero):
    G, V, p = random_case(sum(shape) + len(zero), *shape, zero)
    ref = run_ngspice(to_spice(G, V, p), shape[1])
    for method in ("direct", "iterative"):
        assert rel_err(solve(G, V, p, method=method), ref) <= 1e-9
        out32 = solve(G.astype(np.float32), V.astype(np.float32), p, method=method)
        assert out32.dtype == jnp.float32
        assert rel_err(out32, ref) <= 1e-4


def test_netlist_writes_zero_resistance_as_source():
    G, V, p = random_case(0, 2, 3, ("r_wire_row", "r_sink"))
    net = to_spice(G, V, p)
    assert "VWR0_0 a0 r0_0 0" in net and "VK0 b0 s0 0" in net and ".op" in net
    assert "RS0 d0 a0" in net and "RWC0_0 c0_0 c1_0" in net


def test_all_resistances_zero_is_exactly_V_at_G():
    rng = np.random.default_rng(3)
    G = rng.uniform(0, 1e-4, (2, 9, 5))
    G[0, 2, 3] = 0.0
    V = rng.uniform(-1, 1, (2, 4, 9))
    p = Parasitics()
    ideal = np.asarray(jnp.asarray(V) @ jnp.asarray(G))
    for method in ("direct", "iterative"):
        np.testing.assert_array_equal(np.asarray(solve(G, V, p, method=method)), ideal)
    np.testing.assert_array_equal(np.asarray(effective_conductance(G, p)), G)


def test_single_cell_closed_form():
    p = Parasitics(r_wire_row=1.5, r_wire_col=2.5, r_source=40.0, r_sink=60.0)
    g, v = 2e-3, 0.3
    expected = v / (1 / g + 1.5 + 2.5 + 40.0 + 60.0)
    for method in ("direct", "iterative"):
        np.testing.assert_allclose(solve(np.array([[g]]), np.array([v]), p, method=method), [expected], rtol=1e-14)
    v_row, v_col = node_voltages(np.array([[g]]), np.array([v]), p)
    np.testing.assert_allclose(v_row[0, 0], v - expected * 41.5, rtol=1e-13)
    np.testing.assert_allclose(v_col[0, 0], expected * 62.5, rtol=1e-13)


def test_zero_conductances_and_mixed_zero_resistances():
    G, V, p = random_case(5, 6, 7, ("r_source", "r_sink"))
    G[1] = 0.0
    G[:, 4] = 0.0
    ref = mna_currents(G, V, p)
    out = solve(G, V, p, method="direct")
    assert rel_err(out, ref) <= 1e-10
    assert np.all(np.asarray(out)[4] == 0.0)
    assert rel_err(solve(G, V, p, method="iterative"), ref) <= 1e-10


def test_node_voltages_satisfy_kirchhoff():
    G, V, p = random_case(6, 5, 8)
    v_row, v_col = map(np.asarray, node_voltages(G, V, p))
    I_cell = G * (v_row - v_col)
    # Column current into the sink equals the sum of cell currents and the sink-side drop.
    I_out = I_cell.sum(0)
    np.testing.assert_allclose(I_out, mna_currents(G, V, p), rtol=1e-10)
    np.testing.assert_allclose(v_col[-1], I_out * (p.r_wire_col + p.r_sink), rtol=1e-10)
    np.testing.assert_allclose(V - v_row[:, 0], I_cell.sum(1) * (p.r_source + p.r_wire_row), rtol=1e-9)


def _dense_row_ladder(g, p):
    """Row-node impedance ``Z`` and driver transfer ``t`` of one row by a dense inverse (needs r > 0)."""
    C = len(g)
    M = np.diag(np.asarray(g, np.float64))
    for j in range(C - 1):
        a = 1.0 / p.r_wire_row
        M[j, j] += a
        M[j + 1, j + 1] += a
        M[j, j + 1] -= a
        M[j + 1, j] -= a
    g_drive = 1.0 / (p.r_source + p.r_wire_row)
    M[0, 0] += g_drive
    Z = np.linalg.inv(M)
    return Z, Z[:, 0] * g_drive


@pytest.mark.parametrize(
    "C,r_row,g_range",
    [(1, 2.0, (1e-6, 1e-3)), (13, 2.0, (1e-7, 1e-3)), (40, 3.0, (1e-6, 1e-3)), (150, 100.0, (2e-2, 5e-2))],
)
@pytest.mark.slow
def test_row_ladder_matches_dense_nodal_inverse(C, r_row, g_range):
    """The blocked semiseparable ladder (exp-scaled per block) against a dense inverse; the last
    case decays by ~e^-250 along the row, where unscaled factors exp(+-s) overflow float32."""
    from crossjax.circuit.ladder import port_response, row_ladders

    rng = np.random.default_rng(C)
    g = rng.uniform(*g_range, C)
    p = Parasitics(r_wire_row=r_row, r_source=7.0)
    Z, t = _dense_row_ladder(g, p)
    phi_t = Z * g[None, :] - np.eye(C)  # cell voltages per column-node volt
    c = rng.normal(size=(C, 3))
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 2e-5)):
        lad = row_ladders(jnp.asarray(g[None, :], dtype), p)
        row = jax.tree.map(lambda x: x[0], lad)
        out = np.asarray(port_response(row, jnp.asarray(c, dtype)))
        assert np.all(np.isfinite(out))
        assert rel_err(out, phi_t @ c) <= tol
        assert rel_err(row.t, t) <= tol
        assert rel_err(row.a, g * t) <= tol


@pytest.mark.parametrize("dtype,R", [(np.float64, 37), (np.float32, 37)])
@pytest.mark.slow
def test_multi_block_sweep_and_gradients(dtype, R):
    """Several renormalization blocks with zero-row padding on top: values against the sparse
    reference, gradients of the one-pass adjoint against the independent CG adjoint."""
    rng = np.random.default_rng(R)
    C, B = 6, 4
    G = 10 ** rng.uniform(-5, -2.7, (R, C))
    V = rng.uniform(-0.5, 0.5, (B, R))
    p = Parasitics(r_wire_row=1.5, r_wire_col=2.0, r_source=15.0, r_sink=25.0)
    ref = np.stack([mna_currents(G, v, p) for v in V])
    out = solve(G.astype(dtype), V.astype(dtype), p, method="direct")
    assert rel_err(out, ref) <= (1e-10 if dtype == np.float64 else 1e-4)
    if dtype != np.float64:
        return
    w = jnp.asarray(rng.normal(size=(B, C)))

    def loss(G, V, p, method):
        return jnp.sum(w * solve(G, V, p, method=method))

    gd = jax.grad(loss, argnums=(0, 1, 2))(jnp.asarray(G), jnp.asarray(V), p, "direct")
    gi = jax.grad(loss, argnums=(0, 1, 2))(jnp.asarray(G), jnp.asarray(V), p, "iterative")
    for a, b in zip(jax.tree.leaves(gd), jax.tree.leaves(gi)):
        assert rel_err(a, b) <= 1e-9
    Wg = jnp.asarray(rng.normal(size=(R, C)))
    ge = jax.grad(lambda G, p: jnp.sum(Wg * effective_conductance(G, p)), argnums=(0, 1))(jnp.asarray(G), p)
    eye = jnp.eye(R)
    gc = jax.grad(lambda G, p: jnp.sum(Wg * solve(G, eye, p, method="iterative")), argnums=(0, 1))(jnp.asarray(G), p)
    for a, b in zip(jax.tree.leaves(ge), jax.tree.leaves(gc)):
        assert rel_err(a, b) <= 1e-9


# --------------------------------------------------------------------------- gradients
def _fd(f, x, h):
    return (f(x + h) - f(x - h)) / (2 * h)


@pytest.mark.parametrize("method", ["direct", "iterative"])
def test_gradients_match_finite_differences(method):
    rng = np.random.default_rng(11)
    R, C, B = 5, 4, 3
    G = jnp.asarray(10 ** rng.uniform(-4, -2.5, (R, C)))
    V = jnp.asarray(rng.uniform(-1, 1, (B, R)))
    p = Parasitics(r_wire_row=2.0, r_wire_col=3.0, r_source=20.0, r_sink=7.0)
    w = jnp.asarray(rng.normal(size=(B, C)))

    def loss(G, V, p):
        return jnp.sum(w * solve(G, V, p, method=method))

    gG, gV, gp = jax.grad(loss, argnums=(0, 1, 2))(G, V, p)
    for i, j in [(0, 0), (2, 3), (4, 1)]:
        h = 1e-5 * float(G[i, j])
        fd = _fd(lambda t: loss(G.at[i, j].add(t), V, p), 0.0, h)
        assert abs(gG[i, j] - fd) <= 1e-6 * abs(fd)
    for b, i in [(0, 0), (2, 4)]:
        fd = _fd(lambda t: loss(G, V.at[b, i].add(t), p), 0.0, 1e-5)
        assert abs(gV[b, i] - fd) <= 1e-6 * abs(fd)
    for name in FIELDS:
        fd = _fd(lambda t: loss(G, V, p.replace(**{name: getattr(p, name) + t})), 0.0, 1e-4)
        assert abs(getattr(gp, name) - fd) <= 1e-6 * abs(fd), name


def test_effective_conductance_gradients_including_zero_resistances():
    rng = np.random.default_rng(12)
    R, C = 4, 6
    G = jnp.asarray(10 ** rng.uniform(-4, -2.5, (R, C)))
    W = jnp.asarray(rng.normal(size=(R, C)))
    p = Parasitics(r_wire_row=0.0, r_wire_col=4.0, r_source=0.0, r_sink=30.0)

    def loss(G, p):
        return jnp.sum(W * effective_conductance(G, p) ** 2) * 1e4

    gG, gp = jax.jit(jax.grad(loss, argnums=(0, 1)))(G, p)
    h = 1e-5 * float(G[1, 2])
    fd = _fd(lambda t: loss(G.at[1, 2].add(t), p), 0.0, h)
    assert abs(gG[1, 2] - fd) <= 1e-6 * abs(fd)
    for name in FIELDS:  # one-sided at zero: the circuit is smooth there, use +h / 2h differences
        r0 = float(getattr(p, name))
        if r0 == 0.0:
            f = lambda t: loss(G, p.replace(**{name: t}))
            fd = (-3 * f(0.0) + 4 * f(1e-4) - f(2e-4)) / 2e-4
            assert abs(getattr(gp, name) - fd) <= 1e-5 * abs(fd), name
        else:
            fd = _fd(lambda t: loss(G, p.replace(**{name: r0 + t})), 0.0, 1e-4)
            assert abs(getattr(gp, name) - fd) <= 1e-6 * abs(fd), name


def test_value_and_grad_under_jit_and_vmap_over_samples():
    rng = np.random.default_rng(13)
    G = jnp.asarray(rng.uniform(1e-5, 1e-3, (3, 6, 5)))
    V = jnp.asarray(rng.uniform(-1, 1, (2, 6)))
    p = Parasitics(r_wire_row=1.0, r_wire_col=1.0, r_source=5.0, r_sink=5.0)
    f = lambda g: jnp.sum(solve(g, V, p) ** 2)
    vg = jax.jit(jax.vmap(jax.value_and_grad(f)))(G)
    for s in range(3):
        v, g = jax.value_and_grad(f)(G[s])
        np.testing.assert_allclose(vg[0][s], v, rtol=1e-12)
        np.testing.assert_allclose(vg[1][s], g, rtol=1e-9)


# --------------------------------------------------------------------------- batching, dtypes
@pytest.mark.slow
def test_broadcasting_jit_and_vmap():
    rng = np.random.default_rng(21)
    G = rng.uniform(1e-6, 1e-3, (2, 3, 6, 5))
    p = Parasitics(r_wire_row=2.0, r_wire_col=1.0, r_source=10.0, r_sink=3.0)
    Geff = np.asarray(effective_conductance(G, p))
    assert Geff.shape == G.shape
    for a in range(2):
        for t in range(3):
            np.testing.assert_allclose(Geff[a, t], effective_conductance(G[a, t], p), rtol=1e-12)
    V1 = rng.uniform(-1, 1, 6)
    V2 = rng.uniform(-1, 1, (4, 6))
    V3 = rng.uniform(-1, 1, (3, 4, 6))
    V4 = rng.uniform(-1, 1, (5, 2, 3, 4, 6))  # more batch dims than G
    for V, methods in (
        (V1, ("auto",)),
        (V2, ("direct", "iterative")),
        (V3, ("direct",)),
        (V4, ("direct", "iterative")),
    ):
        ref = np.matmul(V, Geff)
        for method in methods:
            out = solve(G, V, p, method=method)
            assert out.shape == ref.shape
            np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-18)
    jitted = jax.jit(lambda G, V, p: solve(G, V, p, method="iterative"))
    np.testing.assert_allclose(jitted(G, V2, p), np.matmul(V2, Geff), rtol=1e-10)
    # gradients through several batch axes (flattened inside) equal per-array ones
    Wt = rng.normal(size=G.shape)
    grad = jax.grad(lambda g: jnp.sum(effective_conductance(g, p) * Wt))(G)
    for a in range(2):
        for t in range(3):
            ga = jax.grad(lambda g: jnp.sum(effective_conductance(g, p) * Wt[a, t]))(G[a, t])
            np.testing.assert_allclose(grad[a, t], ga, rtol=1e-10)
    vm = jax.vmap(lambda g: effective_conductance(g, p))(G.reshape(6, 6, 5))
    np.testing.assert_allclose(vm, Geff.reshape(6, 6, 5), rtol=1e-12)
    # vmap over parasitics (resistance sweep without recompiling)
    ps = Parasitics(
        r_wire_row=jnp.array([0.0, 1.0, 5.0]),
        r_wire_col=jnp.array([0.0, 2.0, 5.0]),
        r_source=jnp.zeros(3),
        r_sink=jnp.array([1.0, 0.0, 9.0]),
    )
    sweep = jax.vmap(lambda q: effective_conductance(G[0, 0], q))(ps)
    for k in range(3):
        q = Parasitics(**{f: float(getattr(ps, f)[k]) for f in FIELDS})
        np.testing.assert_allclose(sweep[k], effective_conductance(G[0, 0], q), rtol=1e-12)


@pytest.mark.slow
def test_chunked_and_vmapped_sweeps_equal_one_sweep(monkeypatch):
    """Cache-sized chunks (forced small here) and the vmap rule that folds Monte Carlo
    samples into the arrays' axis give the same G_eff and gradients as one sweep."""
    import dataclasses

    from crossjax import backend
    from crossjax.circuit import solver

    rng = np.random.default_rng(22)
    G = jnp.asarray(rng.uniform(1e-6, 1e-3, (3, 5, 6, 5)))  # 3 samples x 5 arrays
    Wt = jnp.asarray(rng.normal(size=G.shape))
    p = Parasitics(r_wire_row=2.0, r_wire_col=1.0, r_source=10.0, r_sink=3.0)

    def loss(g):
        return jnp.sum(effective_conductance(g, p) * Wt)

    ref, ref_grad = effective_conductance(G, p), jax.grad(loss)(G)
    cpu = backend.POLICIES[jax.default_backend()]
    monkeypatch.setitem(
        backend.POLICIES, jax.default_backend(), dataclasses.replace(cpu, geff_chunk_bytes=2 * 6 * 5 * 8 * 2)
    )  # two arrays per chunk
    assert solver.geff_chunks(G.reshape(-1, 6, 5)) == (8, 2)  # 15 arrays + 1 of padding
    jax.clear_caches()
    np.testing.assert_allclose(effective_conductance(G, p), ref, rtol=1e-12)
    np.testing.assert_allclose(jax.grad(loss)(G), ref_grad, rtol=1e-10)
    vm = jax.jit(jax.vmap(lambda g: effective_conductance(g, p)))(G)
    np.testing.assert_allclose(vm, ref, rtol=1e-12)
    vg = jax.vmap(jax.grad(lambda g, w: jnp.sum(effective_conductance(g, p) * w)))(G, Wt)
    np.testing.assert_allclose(vg, ref_grad, rtol=1e-10)
    jax.clear_caches()


@pytest.mark.parametrize("method", ["direct", "iterative"])
def test_float32_accuracy(method):
    rng = np.random.default_rng(31)
    G = rng.uniform(1e-6, 1e-4, (64, 64))
    V = rng.uniform(-0.2, 0.2, (8, 64))
    p = Parasitics(r_wire_row=2.5, r_wire_col=2.5, r_source=100.0, r_sink=100.0)
    ref = solve(G, V, p, method="direct")
    out = solve(G.astype(np.float32), V.astype(np.float32), p, method=method)
    assert out.dtype == jnp.float32
    assert rel_err(out, ref) <= 1e-4
    geff32 = effective_conductance(G.astype(np.float32), p)
    assert geff32.dtype == jnp.float32
    assert rel_err(geff32, effective_conductance(G, p)) <= 1e-4


# --------------------------------------------------------------------------- robustness
def _uniform_grid_case(n, g=1e-3, r=5.0):
    return np.full((n, n), g), Parasitics(r_wire_row=r, r_wire_col=r)


def test_strong_ir_drop_64x64_matches_scipy():
    G, p = _uniform_grid_case(64, 1e-3, 5.0)
    V = np.linspace(0.1, 0.3, 64)
    ref = mna_currents(G, V, p)
    out = solve(G, V, p, method="direct")
    assert rel_err(out, ref) <= 1e-9
    assert 1 - np.sum(out) / np.sum(V @ G) > 0.5  # deviation from ideal > 50 %
    assert rel_err(solve(G, V, p, method="iterative"), ref) <= 1e-9


@pytest.mark.slow
def test_strong_ir_drop_256x256_is_exact():
    G, p = _uniform_grid_case(256, 1e-3, 5.0)
    V = np.linspace(0.1, 0.3, 256)
    t0 = time.perf_counter()
    jax.block_until_ready(effective_conductance(G, p))
    t1 = time.perf_counter()
    Geff = jax.block_until_ready(effective_conductance(G, p))
    t2 = time.perf_counter()
    ref = mna_currents(G, V, p)
    out = V @ np.asarray(Geff)
    print(
        f"256x256 G_eff: {t1 - t0:.2f} s first call (incl. compile), {t2 - t1:.2f} s warm, "
        f"rel err {rel_err(out, ref):.2e}, deviation {1 - out.sum() / (V @ G).sum():.3f}"
    )
    assert rel_err(out, ref) <= 1e-9
    assert 1 - out.sum() / (V @ G).sum() > 0.5


# --------------------------------------------------------------------------- bad input
def test_bad_input_raises_value_error_naming_argument():
    G = np.full((3, 4), 1e-4)
    V = np.ones(3)
    p = Parasitics(r_wire_row=1.0)
    with pytest.raises(ValueError, match="V must have shape"):
        solve(G, np.ones(4), p)
    with pytest.raises(ValueError, match="G must have shape"):
        solve(np.ones(3), V, p)
    with pytest.raises(ValueError, match="G must be >= 0"):
        solve(-G, V, p)
    with pytest.raises(ValueError, match="G must be finite"):
        effective_conductance(np.where(G > 0, np.nan, G), p)
    with pytest.raises(ValueError, match="V must be finite"):
        solve(G, V * np.inf, p)
    for name in FIELDS:
        with pytest.raises(ValueError, match=f"parasitics.{name} must be >= 0"):
            solve(G, V, p.replace(**{name: -1.0}))
        with pytest.raises(ValueError, match=f"parasitics.{name} must be finite"):
            effective_conductance(G, p.replace(**{name: float("inf")}))
    with pytest.raises(ValueError, match="parasitics must be"):
        solve(G, V, {"r_wire_row": 1.0})
    with pytest.raises(ValueError, match="method must be one of"):
        solve(G, V, p, method="spice")
    with pytest.raises(ValueError, match="V must have shape"):
        to_spice(G, np.ones(4), p)
    # Under jit values are traced: no value checks, but shapes are still checked.
    with pytest.raises(ValueError, match="V must have shape"):
        jax.jit(lambda G, V: solve(G, V, p))(G, np.ones(5))


def test_direct_gradient_with_more_inputs_than_rows():
    rng = np.random.default_rng(41)
    G = jnp.asarray(10 ** rng.uniform(-4, -2.5, (3, 4)))
    V = jnp.asarray(rng.uniform(-1, 1, (6, 3)))  # B = 6 > R = 3: G_eff adjoint branch
    p = Parasitics(r_wire_row=2.0, r_wire_col=3.0, r_source=20.0, r_sink=0.0)
    w = jnp.asarray(rng.normal(size=(6, 4)))
    loss = lambda G, V, p, m: jnp.sum(w * solve(G, V, p, method=m))
    gd = jax.grad(loss, argnums=(0, 1, 2))(G, V, p, "direct")
    gi = jax.grad(loss, argnums=(0, 1, 2))(G, V, p, "iterative")
    for a, b in zip(jax.tree.leaves(gd), jax.tree.leaves(gi)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-14)
    h = 1e-5 * float(G[2, 1])
    fd = _fd(lambda t: loss(G.at[2, 1].add(t), V, p, "direct"), 0.0, h)
    assert abs(gd[0][2, 1] - fd) <= 1e-6 * abs(fd)


def test_plot_ir_drop_shows_the_drop_or_the_cell_voltages():
    import matplotlib

    matplotlib.use("Agg")
    from crossjax.circuit import plot_ir_drop

    G, V, p = random_case(7, 5, 6)
    v_row, v_col = node_voltages(G, V, p)
    U = np.asarray(v_row - v_col)
    drop = plot_ir_drop(G, V, p).images[0].get_array()
    np.testing.assert_allclose(drop, 1e3 * (np.asarray(V)[:, None] - U), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(plot_ir_drop(G, V, p, quantity="voltage").images[0].get_array(), U, rtol=1e-12)
    with pytest.raises(ValueError, match="plot_ir_drop needs"):
        plot_ir_drop(G, V[:2], p)
    with pytest.raises(ValueError, match="quantity"):
        plot_ir_drop(G, V, p, quantity="current")


def test_demo_runs(capsys):
    from crossjax.circuit import demo

    demo.main()
    assert "loss vs ideal" in capsys.readouterr().out
