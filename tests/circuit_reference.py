"""An independent reference for the crossbar circuit: scipy sparse modified nodal analysis.

Written from the topology in docs/circuit.md, sharing no code with
crossjax.circuit. Used by the circuit tests and by the subprocess robustness
sweep (``circuit_cases.py``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

FIELDS = ("r_wire_row", "r_wire_col", "r_source", "r_sink")


def mna_currents(G, V, p):
    """Column currents of the crossbar by modified nodal analysis (scipy sparse LU).

    Nodes: row node (i,j) -> i*C+j, column node (i,j) -> R*C + i*C+j, driver i,
    row-start a_i, column bottom b_j, sink s_j. Zero resistances and the sink
    meters are 0 V sources with their own current unknowns.
    """
    return nonlinear_mna_currents(G, V, p, None)


def mna_driver_power(G, V, p, cell=None):
    """Watts the row drivers deliver to the crossbar: ``sum_i V_i I_i`` with ``I_i`` the
    current out of driver ``i``'s terminal (the MNA current unknown of its source, negated)."""
    _, drivers = nonlinear_mna_currents(G, V, p, cell, drivers=True)
    return float(np.sum(np.asarray(V, np.float64) * drivers))


def _law(iv, v0, c2, c3):
    """``(h, h')`` of the element law ``f = G h(u)`` written from docs/circuit.md."""
    if iv == "sinh":
        return (lambda u: v0 * np.sinh(u / v0)), (lambda u: np.cosh(u / v0))
    if iv == "poly":
        return (lambda u: u + c2 * u**2 + c3 * u**3), (lambda u: 1 + 2 * c2 * u + 3 * c3 * u**2)
    return (lambda u: u), (lambda u: np.ones_like(u))


def nonlinear_mna_currents(G, V, p, cell, *, tol=1e-14, maxiter=200, drivers=False):
    """Column currents with nonlinear cells: damped Newton on the full MNA system (sparse LU per step).

    ``cell`` is ``None`` (linear) or an object with ``iv``, ``v0``, ``c2``,
    ``c3``, ``r_series`` (c2/c3/r_series scalars or (R, C)). A series
    resistance gets its own node between the row node and the element.
    """
    G = np.asarray(G, np.float64)
    V = np.asarray(V, np.float64)
    R, C = G.shape
    p = {k: float(getattr(p, k)) for k in FIELDS}
    iv = "linear" if cell is None else cell.iv
    c2, c3, rs = (
        np.broadcast_to(np.asarray(0.0 if cell is None else getattr(cell, n), np.float64), G.shape)
        for n in ("c2", "c3", "r_series")
    )
    v0 = np.inf if cell is None else float(np.asarray(cell.v0))
    names = {}
    elements = []  # nonlinear (a, b, G, c2, c3)

    def node(name):
        return names.setdefault(name, len(names))

    resistors, sources = [], []  # (a, b, g), (a, b, volts); -1 is ground

    def branch(a, b, r):
        if r == 0.0:
            sources.append((a, b, 0.0))
        else:
            resistors.append((a, b, 1.0 / r))

    driver_sources = []
    for i in range(R):
        driver_sources.append(len(sources))
        sources.append((node(("d", i)), -1, V[i]))
        branch(node(("d", i)), node(("a", i)), p["r_source"])
        prev = node(("a", i))
        for j in range(C):
            branch(prev, node(("r", i, j)), p["r_wire_row"])
            prev = node(("r", i, j))
            if G[i, j] > 0:
                top = node(("r", i, j))
                if rs[i, j] > 0:
                    top = node(("m", i, j))
                    resistors.append((node(("r", i, j)), top, 1.0 / rs[i, j]))
                if iv == "linear":
                    resistors.append((top, node(("c", i, j)), G[i, j]))
                else:
                    elements.append((top, node(("c", i, j)), G[i, j], c2[i, j], c3[i, j]))
    meters = []
    for j in range(C):
        for i in range(R):
            nxt = node(("c", i + 1, j)) if i < R - 1 else node(("b", j))
            branch(node(("c", i, j)), nxt, p["r_wire_col"])
        branch(node(("b", j)), node(("s", j)), p["r_sink"])
        meters.append(len(sources))
        sources.append((node(("s", j)), -1, 0.0))
    n, m = len(names), len(sources)
    rows, cols, vals = [], [], []

    def add(a, b, v):
        if a >= 0 and b >= 0:
            rows.append(a), cols.append(b), vals.append(v)

    for a, b, g in resistors:
        add(a, a, g), add(b, b, g), add(a, b, -g), add(b, a, -g)
    rhs = np.zeros(n + m)
    for k, (a, b, v) in enumerate(sources):
        add(a, n + k, 1.0), add(n + k, a, 1.0)
        add(b, n + k, -1.0), add(n + k, b, -1.0)
        rhs[n + k] = v
    A = sp.csc_matrix((vals, (rows, cols)), shape=(n + m, n + m))
    x = spla.spsolve(A, rhs)
    if elements:
        a, b, g, e2, e3 = (np.array(t) for t in zip(*elements))
        a, b = a.astype(int), b.astype(int)
        h, dh = _law(iv, v0, e2, e3)

        def residual(x):
            u = x[a] - x[b]
            f = g * h(u)
            out = A @ x - rhs
            np.add.at(out, a, f)
            np.add.at(out, b, -f)
            return out, u

        x = np.zeros(n + m)
        F, u = residual(x)
        for _ in range(maxiter):
            d = g * dh(u)
            J = A + sp.csc_matrix(
                (np.concatenate([d, d, -d, -d]), (np.concatenate([a, b, a, b]), np.concatenate([a, b, b, a]))),
                shape=A.shape,
            )
            dx = spla.spsolve(J, -F)
            t = 1.0
            while True:
                F_t, u_t = residual(x + t * dx)
                if np.linalg.norm(F_t) < np.linalg.norm(F) or t < 1e-12:
                    break
                t /= 2
            x, F, u = x + t * dx, F_t, u_t
            if np.max(np.abs(t * dx[:n])) <= tol * max(np.max(np.abs(V)), 1e-300):
                break
        else:
            raise RuntimeError("reference Newton did not converge")
    # source current unknown flows from + node through the source to - node.
    columns = np.array([x[n + k] for k in meters])
    if drivers:  # a driver delivers the current leaving its + terminal into the circuit
        return columns, -np.array([x[n + k] for k in driver_sources])
    return columns
