"""Benchmark of crossjax.circuit against scipy's sparse LU of the full nodal system.

Usage: ``python benchmarks/circuit.py [--quick]``. Every ratio is measured in
the same run (median of repeated runs, ``benchmarks.common.timeit``). BLAS is
limited to one thread for both crossjax and scipy (``threadpoolctl``): on a
shared 2-core machine OpenBLAS threads spin and slow small LAPACK calls 10-1000x.
``run(quick) -> dict`` is the entry point for a common benchmark driver.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import scipy.sparse.linalg as spla  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.common import peak_rss_mib, timeit  # noqa: E402
from crossjax.circuit import Cell, Parasitics, effective_conductance, solve, solve_nonlinear  # noqa: E402


def nodal_matrix(G, p):
    """Full nodal system (2RC unknowns: row nodes then column nodes) for non-zero resistances.

    Returns ``(A, g_drive, g_sink)``: a unit input on row ``k`` puts ``g_drive``
    on the right-hand side of row node ``(k, 0)``; column current ``j`` is
    ``g_sink * v_col[R-1, j]``.
    """
    R, C = G.shape
    n = R * C
    idx = np.arange(n).reshape(R, C)
    g_wr, g_wc = 1.0 / p.r_wire_row, 1.0 / p.r_wire_col
    g_drive = 1.0 / (p.r_source + p.r_wire_row)
    g_sink = 1.0 / (p.r_wire_col + p.r_sink)
    rows, cols, vals = [], [], []

    def couple(a, b, g):
        a, b, g = a.ravel(), b.ravel(), np.broadcast_to(g, a.shape).ravel()
        rows.extend([a, b, a, b]), cols.extend([a, b, b, a]), vals.extend([g, g, -g, -g])

    def ground(a, g):
        a = a.ravel()
        rows.append(a), cols.append(a), vals.append(np.broadcast_to(g, a.shape).ravel())

    couple(idx[:, :-1], idx[:, 1:], g_wr)  # row wires
    ground(idx[:, 0], g_drive)  # driver (source in the rhs)
    couple(idx, n + idx, G)  # cells
    couple(n + idx[:-1], n + idx[1:], g_wc)  # column wires
    ground(n + idx[-1], g_sink)  # sink
    A = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(2 * n, 2 * n))
    return A, g_drive, g_sink


def scipy_geff(G, p, system=None):
    """``G_eff`` by sparse LU factorization + R right-hand sides (``system``: a prebuilt ``nodal_matrix``)."""
    R, C = G.shape
    A, g_drive, g_sink = nodal_matrix(G, p) if system is None else system
    lu = spla.splu(A)
    B = np.zeros((2 * R * C, R))
    B[np.arange(R) * C, np.arange(R)] = g_drive
    X = lu.solve(B)
    return g_sink * X[2 * R * C - C :, :].T


def scipy_currents(G, V, p, system=None):
    """Column currents for inputs ``V`` (B, R): sparse LU factorized once, applied to B vectors."""
    R, C = G.shape
    A, g_drive, g_sink = nodal_matrix(G, p) if system is None else system
    lu = spla.splu(A)
    B = np.zeros((2 * R * C, V.shape[0]))
    B[np.arange(R) * C, :] = g_drive * V.T
    return g_sink * lu.solve(B)[2 * R * C - C :, :].T


def _memory_mib(fn, *args):
    try:
        m = jax.jit(fn).lower(*args).compile().memory_analysis()
        return (m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes) / 2**20
    except Exception:  # pragma: no cover - backend without memory analysis
        return float("nan")


def run(quick: bool = False) -> dict:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _run(quick)


def _run(quick: bool) -> dict:
    rng = np.random.default_rng(0)
    reps = 3 if quick else 5
    out = {}

    # 1. G_eff 128x128 float64 vs scipy sparse LU + R rhs.
    n = 128
    G = rng.uniform(1e-6, 1e-4, (n, n))
    p = Parasitics(r_wire_row=1.0, r_wire_col=1.0, r_source=10.0, r_sink=10.0)
    Gj = jnp.asarray(G)
    t_ours = timeit(lambda: effective_conductance(Gj, p), repeats=reps)
    system = nodal_matrix(G, p)  # assembly is not timed: scipy gets factorize + solves only
    t_scipy = timeit(lambda: scipy_geff(G, p, system), repeats=reps, warmup=0)
    err = float(np.abs(np.asarray(effective_conductance(Gj, p)) - scipy_geff(G, p)).max() / np.abs(G).max())
    out["geff_128"] = {
        "crossjax_s": t_ours["median"],
        "scipy_splu_s": t_scipy["median"],
        "speedup": t_scipy["median"] / t_ours["median"],
        "max_rel_diff": err,
    }

    # 2. 256 inputs through 128x128, 1 ohm wires.
    V = rng.uniform(-0.2, 0.2, (256, n))
    Vj = jnp.asarray(V)
    t_ours = timeit(lambda: solve(Gj, Vj, p), repeats=reps)
    t_scipy = timeit(lambda: scipy_currents(G, V, p, system), repeats=reps, warmup=0)
    ref = scipy_currents(G, V, p)
    err = float(np.abs(np.asarray(solve(Gj, Vj, p)) - ref).max() / np.abs(ref).max())
    out["inputs256_128"] = {
        "crossjax_s": t_ours["median"],
        "scipy_splu_s": t_scipy["median"],
        "speedup": t_scipy["median"] / t_ours["median"],
        "max_rel_diff": err,
    }

    # 3. value_and_grad vs forward, both regimes.
    vg = {}
    for name, (m, B, method) in {
        "direct_128_B256": (128, 256, "direct"),
        "iterative_64_B8": (64, 8, "iterative"),
    }.items():
        Gm = jnp.asarray(rng.uniform(1e-6, 1e-4, (m, m)))
        Vm = jnp.asarray(rng.uniform(-0.2, 0.2, (B, m)))
        fwd = jax.jit(lambda G, V: jnp.sum(solve(G, V, p, method=method)))
        both = jax.jit(jax.value_and_grad(lambda G, V: jnp.sum(solve(G, V, p, method=method)), argnums=(0, 1)))
        tf = timeit(lambda: fwd(Gm, Vm), repeats=reps)["median"]
        tb = timeit(lambda: both(Gm, Vm), repeats=reps)["median"]
        vg[name] = {"forward_s": tf, "value_and_grad_s": tb, "ratio": tb / tf}
    out["value_and_grad"] = vg

    # 4. vmap over S conductance samples of 64x64 vs a Python loop.
    S = 16 if quick else 64
    Gs = jnp.asarray(rng.uniform(1e-6, 1e-4, (S, 64, 64)))
    vm = jax.jit(jax.vmap(lambda g: effective_conductance(g, p)))
    one = jax.jit(lambda g: effective_conductance(g, p))
    tv = timeit(lambda: vm(Gs), repeats=reps)["median"]
    tl = timeit(lambda: [one(Gs[s]) for s in range(S)], repeats=reps)["median"]
    out["vmap64_64"] = {"samples": S, "vmap_s": tv, "loop_s": tl, "speedup": tl / tv}

    # 5. time and memory vs size.
    sizes = [32, 64, 128] if quick else [32, 64, 128, 256, 512]
    scaling = []
    for m in sizes:
        Gm = jnp.asarray(rng.uniform(1e-6, 1e-4, (m, m)))
        f = jax.jit(lambda g: effective_conductance(g, p))
        t = timeit(lambda: f(Gm), repeats=1 if m >= 512 else (2 if m >= 256 else reps))
        scaling.append(
            {
                "n": m,
                "seconds": t["median"],
                "xla_mib": _memory_mib(lambda g: effective_conductance(g, p), Gm),
                "peak_rss_mib": peak_rss_mib(),
            }
        )
    ns = np.array([s["n"] for s in scaling if s["n"] >= 64], float)
    ts = np.array([s["seconds"] for s in scaling if s["n"] >= 64])
    out["scaling"] = {"rows": scaling, "exponent": float(np.polyfit(np.log(ns), np.log(ts), 1)[0])}
    # 6. nonlinear cells (sinh, v0 = 0.25 V, 2 kOhm access transistor): Newton vs the linear per-input solve.
    cell = Cell(iv="sinh", v0=0.25, r_series=2e3)
    nl = {}
    for m in [64] if quick else [64, 128]:
        Gm = jnp.asarray(rng.uniform(1e-6, 1e-4, (m, m)))
        Vm = jnp.asarray(rng.uniform(-0.5, 0.5, (256, m)))
        lin = jax.jit(lambda G, V: solve(G, V, p, method="iterative"))
        fwd = jax.jit(lambda G, V: solve_nonlinear(G, V, p, cell))
        vg_nl = jax.jit(
            jax.value_and_grad(lambda G, V: jnp.sum(solve_nonlinear(G, V, p, cell).currents), argnums=(0, 1))
        )
        tl = timeit(lambda: lin(Gm, Vm), repeats=reps)["median"]
        tn = timeit(lambda: fwd(Gm, Vm), repeats=reps)["median"]
        tg = timeit(lambda: vg_nl(Gm, Vm), repeats=reps)["median"]
        sol = fwd(Gm, Vm)
        nl[f"{m}x{m}_B256"] = {
            "linear_cg_s": tl,
            "nonlinear_s": tn,
            "value_and_grad_s": tg,
            "over_linear": tn / tl,
            "grad_over_forward": tg / tn,
            "newton_steps": int(sol.newton_steps),
            "cg_iterations": int(sol.cg_iterations),
            "converged": bool(np.all(np.asarray(sol.converged))),
        }
    out["nonlinear"] = nl
    out["ratios"] = {
        **{f"nonlinear_over_linear_{k}": v["over_linear"] for k, v in nl.items()},
        **{f"nonlinear_grad_over_forward_{k}": v["grad_over_forward"] for k, v in nl.items()},
        "geff_128_speedup_vs_scipy_splu": out["geff_128"]["speedup"],
        "inputs256_128_speedup_vs_scipy_splu": out["inputs256_128"]["speedup"],
        **{f"value_and_grad_over_forward_{k}": v["ratio"] for k, v in vg.items()},
        "vmap_64x64_speedup_vs_loop": out["vmap64_64"]["speedup"],
        "geff_time_exponent": out["scaling"]["exponent"],
    }
    out["checks"] = {  # exact solve vs scipy's sparse direct solve of the full nodal system
        "geff_128_matches_scipy": out["geff_128"]["max_rel_diff"] < 1e-9,
        "inputs256_matches_scipy": out["inputs256_128"]["max_rel_diff"] < 1e-9,
        "nonlinear_converged": all(v["converged"] for v in nl.values()),
    }
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and samples, sizes up to 128")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    res = run(args.quick)
    g, i = res["geff_128"], res["inputs256_128"]
    print(
        f"G_eff 128x128 f64: crossjax {g['crossjax_s'] * 1e3:.1f} ms, scipy splu {g['scipy_splu_s'] * 1e3:.1f} ms "
        f"-> {g['speedup']:.1f}x (max rel diff {g['max_rel_diff']:.1e})"
    )
    print(
        f"256 inputs, 128x128, 1 ohm: crossjax {i['crossjax_s'] * 1e3:.1f} ms, scipy splu {i['scipy_splu_s'] * 1e3:.1f} ms "
        f"-> {i['speedup']:.1f}x (max rel diff {i['max_rel_diff']:.1e})"
    )
    for k, v in res["value_and_grad"].items():
        print(
            f"value_and_grad/forward {k}: {v['value_and_grad_s'] * 1e3:.1f} / {v['forward_s'] * 1e3:.1f} ms "
            f"= {v['ratio']:.2f}x"
        )
    v = res["vmap64_64"]
    print(
        f"{v['samples']} samples of 64x64: vmap {v['vmap_s'] * 1e3:.1f} ms, loop {v['loop_s'] * 1e3:.1f} ms -> {v['speedup']:.1f}x"
    )
    for s in res["scaling"]["rows"]:
        print(
            f"  n={s['n']:4d}: {s['seconds']:.4f} s, XLA buffers {s['xla_mib']:.1f} MiB, peak RSS {s['peak_rss_mib']:.0f} MiB"
        )
    print(f"scaling exponent (time ~ n^k, n>=64): k = {res['scaling']['exponent']:.2f}")
    print(f"total {time.perf_counter() - t0:.1f} s")
    print(json.dumps(res, indent=1, default=float)[:0])


if __name__ == "__main__":
    main()
