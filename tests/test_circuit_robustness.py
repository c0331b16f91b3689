"""The circuit never crashes the interpreter, never returns NaN, and is exact for any shape.

* Awkward shapes (1xN, Nx1, widths 100-1000 that are not multiples of 16,
  batches) in both dtypes, each sweep in its own subprocess (an XLA crash
  fails the test instead of killing pytest), against the scipy nodal solve.
  jaxlib 0.10's YNNPACK reduce fusion segfaulted on float32 widths 200, 300,
  1000 before the sweep padded its columns (``solver._pad_columns``).
* Property-based (Hypothesis): random shapes, dtypes, parasitics and values
  give either a ``ValueError`` or a finite answer equal to the reference.
* The range check: a stiffness the dtype cannot resolve raises instead of
  returning NaN; inside the range the answer meets the tolerance.
* ``crossjax.checked`` turns traced negative/NaN inputs into errors under jit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from circuit_reference import mna_currents
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossjax import checked
from crossjax.circuit import Parasitics, effective_conductance, node_voltages, solve, sweep_interval, to_spice

HERE = os.path.dirname(os.path.abspath(__file__))
TOL = {"float32": 1e-4, "float64": 1e-9}

# 44 awkward cases: rows x columns [x batch]
AWKWARD = [
    "1,1",
    "1,2",
    "2,1",
    "1,17",
    "17,1",
    "1,100",
    "100,1",
    "1,200",
    "1,300",
    "1,1000",
    "200,1",
    "2,1000",
    "3,333",
    "5,17,3",
    "7,130",
    "9,150,2",
    "16,200",
    "31,240",
    "33,17",
    "40,100",
    "64,200",
    "64,100",
    "64,150,2",
    "65,65",
    "96,210",
    "100,100",
    "100,120",
    "128,130",
    "130,128",
    "150,150",
    "160,250",
    "190,190",
    "200,200",
    "2,500",
    "4,700",
    "1,999",
    "8,1000",
    "10,1000,2",
    "47,53",
    "63,65",
    "17,17,4",
    "33,129",
    "120,300",
    "3,900",
]
QUICK = ["1,200", "1,300", "2,1000", "5,17,3", "33,129"]  # widths that crashed, a batch, two row blocks


def _sweep_subprocess(dtype, cases):
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "circuit_cases.py"), dtype, *cases],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    started = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("start ")]
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0, (
        f"{dtype} sweep died (exit {proc.returncode}) at case {started[-1:]}:\n{proc.stderr[-3000:]}"
    )
    assert [r["case"] for r in results] == list(cases)
    for r in results:
        assert r["geff"] <= TOL[dtype] and r["direct"] <= TOL[dtype], r
        assert r["node_voltages_finite"], r
    return results


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.slow
def test_awkward_shapes_do_not_crash_and_match_scipy(dtype):
    _sweep_subprocess(dtype, QUICK)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_awkward_shapes_full_sweep(dtype):
    assert len(AWKWARD) >= 40
    _sweep_subprocess(dtype, AWKWARD)


# ----------------------------------------------------------------------------- Hypothesis
resistance = st.one_of(st.just(0.0), st.floats(1e-3, 1e3))


@st.composite
def circuits(draw):
    R, C = draw(st.integers(1, 24)), draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**31 - 1))
    log_g = draw(st.floats(-9, -2))
    p = Parasitics(*(draw(resistance) for _ in range(4)))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    rng = np.random.default_rng(seed)
    G = 10.0 ** rng.uniform(log_g - 2, log_g, (R, C)) * (rng.uniform(size=(R, C)) > 0.1)
    V = rng.uniform(-1, 1, (2, R))
    return G, V, p, dtype


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(circuits())
@pytest.mark.slow
def test_property_error_or_exact_never_nan(case):
    G, V, p, dtype = case
    Gj, Vj = jnp.asarray(G, dtype), jnp.asarray(V, dtype)
    try:
        out = np.asarray(solve(Gj, Vj, p, method="direct"), np.float64)
        geff = np.asarray(effective_conductance(Gj, p), np.float64)
        it = np.asarray(solve(Gj, Vj, p, method="iterative"), np.float64)
    except ValueError as e:  # only the documented range refusal
        assert "stiffness" in str(e)
        kappa = G.max() * max(p.r_wire_row, p.r_wire_col)
        assert kappa > (83 if dtype == "float32" else 4e5)
        return
    ref = np.stack([mna_currents(G, v, p) for v in V])
    scale = max(np.abs(ref).max(), 1e-300)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(geff))
    assert np.abs(out - ref).max() / scale <= TOL[dtype] * 10
    assert np.abs(V @ geff - ref).max() / scale <= TOL[dtype] * 10
    assert np.abs(it - ref).max() / scale <= TOL[dtype] * 10


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["float16", "bfloat16", "complex64", "bool"]), st.integers(1, 5))
def test_property_unsupported_dtypes_are_rejected(dtype, n):
    G = jnp.ones((n, n), dtype)
    p = Parasitics(1.0, 1.0)
    with pytest.raises(ValueError, match="G must be"):
        effective_conductance(G, p)
    with pytest.raises(ValueError, match="V must be"):
        solve(jnp.ones((n, n)) * 1e-4, jnp.ones(n, dtype), p)


# ----------------------------------------------------------------------------- range
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_extreme_values_raise_instead_of_nan(dtype):
    # 1e3 S cells behind 1e9 ohm wires: float32 returned NaN, float64 a wrong number
    G = jnp.full((8, 8), 1e3, dtype)
    p = Parasitics(1e9, 1e9, 1e9, 1e9)
    for call in (
        lambda: effective_conductance(G, p),
        lambda: solve(G, jnp.ones((5, 8), dtype), p, method="direct"),
        lambda: node_voltages(G, jnp.ones(8, dtype), p),
    ):
        with pytest.raises(ValueError, match="stiffness.*float64" if dtype == "float32" else "stiffness"):
            call()


@pytest.mark.parametrize(
    "dtype,rg",
    [("float32", 0.3), ("float32", 3.0), ("float32", 30.0), ("float64", 10.0), ("float64", 1e3), ("float64", 1e5)],
)
def test_strong_parasitics_inside_the_range_are_exact(dtype, rg):
    # 40x40 with all four resistances at r: at rg = 10 the fixed 32-row sweep was
    # 30 % off in float64; the interval now shortens with the stiffness.
    rng = np.random.default_rng(3)
    G = rng.uniform(1e-5, 1e-4, (40, 40))
    V = rng.uniform(0, 1, 40)
    r = rg / 1e-4
    p = Parasitics(r, r, r, r)
    ref = mna_currents(G, V, p)
    out = np.asarray(V @ np.asarray(effective_conductance(jnp.asarray(G, dtype), p), np.float64))
    assert np.abs(out - ref).max() / np.abs(ref).max() <= TOL[dtype]
    assert sweep_interval(jnp.asarray(G, dtype), p) < 32


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_wide_arrays_past_the_fused_cross_block_sums_are_exact(dtype):
    # 150 columns (padded to 160: ten 16-column ladder blocks, past FUSED_CROSS_BLOCKS) take the
    # product form of the cross-block sums; forward and the adjoint's upward pass (node voltages)
    rng = np.random.default_rng(150)
    G = rng.uniform(1e-5, 1e-4, (12, 150))
    V = rng.uniform(0, 1, (3, 12))
    p = Parasitics(2.0, 3.0, 20.0, 10.0)
    ref = np.stack([mna_currents(G, v, p) for v in V])
    out = np.asarray(solve(jnp.asarray(G, dtype), jnp.asarray(V, dtype), p, method="direct"), np.float64)
    assert np.abs(out - ref).max() / np.abs(ref).max() <= TOL[dtype]
    v_row, v_col = node_voltages(jnp.asarray(G, dtype), jnp.asarray(V[0], dtype), p)
    cells = np.asarray(G * (np.asarray(v_row, np.float64) - np.asarray(v_col, np.float64))).sum(0)
    assert np.abs(cells - ref[0]).max() / np.abs(ref[0]).max() <= TOL[dtype]


def test_gradient_through_one_long_block_matches_finite_differences():
    # 256 rows in one block: the upward pass walks all of them from one anchor
    rng = np.random.default_rng(256)
    G = jnp.asarray(rng.uniform(1e-5, 1e-4, (256, 16)))
    p = Parasitics(2.0, 2.0, 10.0, 5.0)
    assert sweep_interval(G, p) >= 256  # the default is one block too
    W = jnp.asarray(rng.normal(size=G.shape))
    loss = jax.jit(lambda g: jnp.sum(W * effective_conductance(g, p, interval=256)))
    d = jnp.asarray(rng.normal(size=G.shape)) * G
    h = 1e-4
    fd = (loss(G + h * d) - loss(G - h * d)) / (2 * h)
    np.testing.assert_allclose(float(jnp.sum(jax.grad(loss)(G) * d)), float(fd), rtol=1e-7)


def test_physical_arrays_keep_the_long_interval():
    G = jnp.full((64, 64), 1e-4, jnp.float32)
    assert sweep_interval(G, Parasitics(10.0, 10.0, 1e3, 1e3)) == 256  # kappa 1e-3: one LU per 256 rows


@pytest.mark.parametrize(
    "dtype,R,kappa,k",
    [
        ("float32", 512, 3.4e-4, 512),
        ("float64", 1024, 4.8e-4, 1024),
        ("float32", 256, 1.4e-3, 256),
        ("float32", 128, 5.5e-3, 128),
        ("float32", 100, 0.02, 64),
        ("float64", 256, 8e-3, 256),
        ("float64", 128, 0.034, 128),
        ("float64", 64, 0.15, 64),
    ],
)
def test_long_blocks_are_exact_at_the_edge_of_their_range(dtype, R, kappa, k):
    # just inside the stiffness where the error model still allows k-row blocks (100 rows: two balanced
    # blocks of 50), against the independent nodal solve
    rng = np.random.default_rng(R)
    G = rng.uniform(1e-5, 1e-4, (R, 48))
    r = kappa / G.max()
    p = Parasitics(r, r, r, r)
    V = rng.uniform(0, 1, R)
    assert sweep_interval(jnp.asarray(G, dtype), p) == k
    ref = mna_currents(G, V, p)
    out = np.asarray(V @ np.asarray(effective_conductance(jnp.asarray(G, dtype), p), np.float64))
    assert np.abs(out - ref).max() / np.abs(ref).max() <= TOL[dtype]


# ----------------------------------------------------------------------------- checked mode
@pytest.mark.slow
def test_checked_mode_catches_traced_bad_values_under_jit():
    p = Parasitics(r_wire_row=1.0, r_wire_col=1.0)
    f = checked(jax.jit(lambda G: solve(G, jnp.ones((4, 3)), p, method="direct")))
    good = jnp.full((3, 2), 1e-4)
    np.testing.assert_allclose(f(good), solve(good, jnp.ones((4, 3)), p, method="direct"))
    for bad in (good.at[0, 0].set(-1e-4), good.at[1, 1].set(jnp.nan)):
        with pytest.raises(ValueError, match="G must be >= 0 siemens and finite"):
            f(bad)
    g = checked(jax.jit(lambda r: effective_conductance(good, Parasitics(r_wire_row=r, r_wire_col=1.0))))
    for bad in (-1.0, jnp.nan, jnp.inf):
        with pytest.raises(ValueError, match="parasitics.r_wire_row"):
            g(bad)
    h = checked(jax.jit(lambda V: solve(good, V, p)))
    with pytest.raises(ValueError, match="V must be finite"):
        h(jnp.array([1.0, jnp.nan, 0.0]))
    # unchecked, the same jitted call returns silently
    assert not np.all(
        np.isfinite(np.asarray(jax.jit(lambda G: effective_conductance(G, p))(good.at[1, 1].set(jnp.nan))))
    )


def test_checked_mode_range_under_jit():
    p = Parasitics(1e9, 1e9)
    f = checked(jax.jit(lambda G: effective_conductance(G, p)))
    with pytest.raises(ValueError, match="stiffness"):
        f(jnp.full((4, 4), 1e3, jnp.float32))


# ----------------------------------------------------------------------------- to_spice
@pytest.mark.parametrize(
    "G,V,p,match",
    [
        (np.full((2, 2), np.nan), np.ones(2), Parasitics(1.0, 1.0), "G must be finite"),
        (-np.ones((2, 2)), np.ones(2), Parasitics(1.0, 1.0), "G must be >= 0"),
        (np.ones((2, 2)), np.array([np.inf, 0.0]), Parasitics(1.0, 1.0), "V must be finite"),
        (np.ones((2, 2)), np.ones(2), Parasitics(-1.0, 1.0), "r_wire_row must be >= 0"),
        (np.ones((2, 2)), np.ones(2), Parasitics(np.inf, 1.0), "r_wire_row must be finite"),
        (np.ones((2, 2)), np.ones(3), Parasitics(1.0, 1.0), "V must have shape"),
        (np.ones((2, 2, 2)), np.ones(2), Parasitics(1.0, 1.0), "single array"),
        (np.ones((2, 2)) + 1j, np.ones(2), Parasitics(1.0, 1.0), "G must be real"),
    ],
)
def test_to_spice_validates_like_solve(G, V, p, match):
    with pytest.raises(ValueError, match=match):
        to_spice(G, V, p)
