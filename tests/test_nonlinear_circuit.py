"""Nonlinear cells (``circuit.Cell``): the exact Newton solve against independent references.

References: (1) a damped Newton on the full modified-nodal system with a
sparse LU per step (``circuit_reference.nonlinear_mna_currents``, sharing no
code with crossjax), (2) ngspice on ``to_spice(..., cell=)`` (marked by the
``needs_spice`` skip), (3) closed forms: without wires the elementwise sum,
linear cells the linear solver, (4) central differences for every gradient.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from circuit_reference import nonlinear_mna_currents
from hypothesis import given, settings
from hypothesis import strategies as st

from crossjax.circuit import Cell, Parasitics, node_voltages, solve, solve_nonlinear, to_spice
from crossjax.circuit.spice import ngspice_available, run_ngspice

needs_spice = pytest.mark.skipif(not ngspice_available(), reason="ngspice binary not found on PATH")
WIRES = Parasitics(r_wire_row=2.0, r_wire_col=3.0, r_source=5.0, r_sink=1.0)


def _case(shape, seed=0, batch=None):
    rng = np.random.default_rng(seed)
    G = rng.uniform(1e-6, 1e-4, shape)
    V = rng.uniform(-0.5, 0.5, (shape[0],) if batch is None else (batch, shape[0]))
    return G, V


def _cells(G):
    rng = np.random.default_rng(7)
    c3 = -0.25 * G / G.max() * rng.uniform(0.5, 1.0, G.shape)  # conductance-dependent fit
    return {
        "sinh0.1": Cell(iv="sinh", v0=0.1),
        "sinh0.25-1T1R": Cell(iv="sinh", v0=0.25, r_series=5e3),
        "sinh1": Cell(iv="sinh", v0=1.0, r_series=1e3),
        "poly-1T1R": Cell(iv="poly", c2=0.05, c3=c3, r_series=10e3),
    }


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (13, 7), pytest.param((32, 32), marks=pytest.mark.slow)])
@pytest.mark.parametrize("wires", ["zero", "nonzero"])
def test_matches_dense_newton_reference(shape, wires):
    G, V = _case(shape)
    p = Parasitics() if wires == "zero" else WIRES
    for name, cell in _cells(G).items():
        ref = nonlinear_mna_currents(G, V, p, cell)
        got = solve(G, V, p, cell=cell)
        assert _rel(got, ref) <= 1e-11, name


@needs_spice
@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (13, 7)])
def test_matches_ngspice(shape):
    G, V = _case(shape, seed=3)
    for name, cell in _cells(G).items():
        ref = run_ngspice(to_spice(G, V, WIRES, cell=cell), shape[1])
        assert _rel(solve(G, V, WIRES, cell=cell), ref) <= 1e-9, name


@needs_spice
@pytest.mark.slow
@pytest.mark.parametrize("shape", [(32, 32), (64, 64)])
def test_matches_ngspice_large(shape):
    G, V = _case(shape, seed=4)
    for name, cell in _cells(G).items():
        ref = run_ngspice(to_spice(G, V, WIRES, cell=cell), shape[1], timeout=600)
        assert _rel(solve(G, V, WIRES, cell=cell), ref) <= 1e-9, name


def test_without_wires_is_the_elementwise_sum():
    G, V = _case((6, 5), batch=3)
    cell = Cell(iv="sinh", v0=0.2)
    want = np.einsum("brc->bc", G[None] * 0.2 * np.sinh(V[:, :, None] / 0.2))
    np.testing.assert_allclose(solve(G, V, Parasitics(), cell=cell), want, rtol=1e-13, atol=1e-18)


def test_linear_cells_agree_with_the_linear_solver_and_fold_the_series_resistance():
    G, V = _case((8, 6), batch=3)
    cell = Cell(r_series=2e3)
    linear = solve(G, V, WIRES, cell=cell)
    np.testing.assert_allclose(linear, solve(G / (1 + 2e3 * G), V, WIRES), rtol=1e-14)
    np.testing.assert_allclose(solve_nonlinear(G, V, WIRES, cell).currents, linear, rtol=1e-11)
    assert _rel(linear[0], nonlinear_mna_currents(G, V[0], WIRES, cell)) <= 1e-12


def test_zero_conductances_and_batches():
    G, V = _case((9, 7), batch=4)
    G[2, :] = 0
    G[:, 3] = 0
    cell = Cell(iv="sinh", v0=0.15, r_series=3e3)
    got = solve(G, V, WIRES, cell=cell)
    for b in range(4):
        assert _rel(got[b], nonlinear_mna_currents(G, V[b], WIRES, cell)) <= 1e-11
    assert np.all(got[:, 3] == 0)
    v_row, v_col = node_voltages(G, V, WIRES, cell=cell)
    assert v_row.shape == (4, 9, 7) and np.all(np.abs(v_row) <= 0.5)


@pytest.mark.slow
def test_gradients_match_central_differences():
    G, V = _case((5, 4), seed=1, batch=3)
    w = np.random.default_rng(2).normal(size=(3, 4))

    def loss(G, V, rw, rc, rsrc, rsnk, v0, c2, c3, rs, iv):
        cell = Cell(iv=iv, v0=v0, c2=c2, c3=c3, r_series=rs)
        return jnp.sum(w * solve(G, V, Parasitics(rw, rc, rsrc, rsnk), cell=cell)) * 1e4

    for iv in ("sinh", "poly"):
        args = [jnp.asarray(a) for a in (G, V, 2.0, 3.0, 4.0, 1.0, 0.2, 0.05, -0.2 * G / G.max(), 3e3)]
        grads = jax.grad(lambda *a: loss(*a, iv=iv), argnums=tuple(range(10)))(*args)
        for k, (a, g) in enumerate(zip(args, grads)):
            flat = np.asarray(a).reshape(-1)
            for i in range(min(flat.size, 3)):
                h = 1e-6 * max(abs(flat[i]), 1e-3)
                plus, minus = flat.copy(), flat.copy()
                plus[i] += h
                minus[i] -= h
                lp = loss(*args[:k], jnp.asarray(plus.reshape(a.shape)), *args[k + 1 :], iv=iv)
                lm = loss(*args[:k], jnp.asarray(minus.reshape(a.shape)), *args[k + 1 :], iv=iv)
                fd = float(lp - lm) / (2 * h)
                gi = float(np.asarray(g).reshape(-1)[i])
                assert abs(gi - fd) <= 1e-6 * max(abs(fd), 1e-2), (iv, k, i, gi, fd)


@pytest.mark.slow
def test_float32_and_jit_vmap():
    G, V = _case((16, 12), batch=2)
    cell = Cell(iv="sinh", v0=0.25, r_series=2e3)
    ref = np.stack([nonlinear_mna_currents(G, v, WIRES, cell) for v in V])
    got32 = solve(G.astype(np.float32), V.astype(np.float32), WIRES, cell=cell)
    assert got32.dtype == jnp.float32 and _rel(got32, ref) <= 1e-4
    f = jax.jit(jax.vmap(lambda g, v0: solve(g, V, WIRES, cell=Cell(iv="sinh", v0=v0))))
    out = f(jnp.stack([G, G]), jnp.array([0.25, 0.5]))
    np.testing.assert_allclose(out[1], solve(G, V, WIRES, cell=Cell(iv="sinh", v0=0.5)), rtol=1e-12)


@pytest.mark.slow
def test_non_convergence_is_reported_never_silent():
    G = np.full((32, 32), 1e-3)
    V = np.full((2, 32), 0.5)
    strong = Parasitics(5.0, 5.0, 5.0, 5.0)
    cell = Cell(iv="sinh", v0=0.1)
    sol = solve_nonlinear(G, V, strong, cell, maxiter=1)
    assert sol.converged.shape == (2,) and not np.any(sol.converged)
    assert np.all(sol.residual > 1e-13) and int(sol.newton_steps) == 1
    full = solve_nonlinear(G, V, strong, cell)
    assert np.all(full.converged) and np.all(full.residual <= 1e-13)


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(cell="sinh"), "cell must be a crossjax.circuit.Cell"),
        (dict(cell=Cell(iv="cubic")), "cell.iv"),
        (dict(cell=Cell(iv="sinh")), "cell.v0"),
        (dict(cell=Cell(iv="sinh", v0=-0.1)), "cell.v0"),
        (dict(cell=Cell(iv="sinh", v0=0.2, r_series=-1.0)), "cell.r_series"),
        (dict(cell=Cell(iv="poly", c3=np.zeros((3, 3)))), "does not broadcast"),
        (dict(cell=Cell(iv="poly", c3=-2.0)), "not increasing"),
        (dict(cell=Cell(iv="sinh", v0=0.2), method="direct"), "method='direct'"),
    ],
)
def test_bad_cells_raise_value_error(bad, match):
    G, V = _case((4, 5))
    kw = dict(bad)
    with pytest.raises(ValueError, match=match):
        solve(G, V, WIRES, **kw)


@pytest.mark.slow
@pytest.mark.parametrize("n", [128, 256])
def test_converges_on_the_extreme_case(n):
    """1 mS cells, 5 ohm wires, v0 = 0.1 V at +-0.5 V inputs (float64 and float32)."""
    rng = np.random.default_rng(n)
    G = np.full((n, n), 1e-3)
    V = np.concatenate([rng.uniform(-0.5, 0.5, (2, n)), np.full((1, n), 0.5)])
    p = Parasitics(5.0, 5.0, 5.0, 5.0)
    for dtype in (np.float64, np.float32):
        sol = solve_nonlinear(G.astype(dtype), V.astype(dtype), p, Cell(iv="sinh", v0=0.1))
        assert bool(np.all(sol.converged)), (dtype, sol.residual)
        assert int(sol.newton_steps) <= 20


@settings(max_examples=10, deadline=None)
@given(
    v0=st.floats(0.05, 2.0),
    r=st.one_of(st.just(0.0), st.floats(1e-3, 20.0)),
    rs=st.one_of(st.just(0.0), st.floats(1.0, 1e4)),
    seed=st.integers(0, 2**16),
)
def test_property_matches_reference_and_is_odd(v0, r, rs, seed):
    # one shape, so the examples share a compilation; values (not shapes) are what vary
    R, C = 4, 5
    rng = np.random.default_rng(seed)
    G = rng.uniform(0, 1e-3, (R, C))
    V = rng.uniform(-0.5, 0.5, R)
    p = Parasitics(r, r, r, r)
    cell = Cell(iv="sinh", v0=v0, r_series=rs)
    got = np.asarray(solve(G, V, p, cell=cell))
    ref = nonlinear_mna_currents(G, V, p, cell)
    assert np.max(np.abs(got - ref)) <= 1e-10 * max(np.max(np.abs(ref)), 1e-12)
    # sinh is odd: reversing every input reverses every current
    np.testing.assert_allclose(np.asarray(solve(G, -V, p, cell=cell)), -got, rtol=1e-10, atol=1e-18)
