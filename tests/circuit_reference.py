"""An independent reference for the crossbar circuit: scipy sparse modified nodal analysis.

Written from the topology in shared/DESIGN.md, sharing no code with
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
    G = np.asarray(G, np.float64)
    V = np.asarray(V, np.float64)
    R, C = G.shape
    p = {k: float(getattr(p, k)) for k in FIELDS}
    names = {}

    def node(name):
        return names.setdefault(name, len(names))

    resistors, sources = [], []  # (a, b, g), (a, b, volts); -1 is ground

    def branch(a, b, r):
        if r == 0.0:
            sources.append((a, b, 0.0))
        else:
            resistors.append((a, b, 1.0 / r))

    for i in range(R):
        sources.append((node(("d", i)), -1, V[i]))
        branch(node(("d", i)), node(("a", i)), p["r_source"])
        prev = node(("a", i))
        for j in range(C):
            branch(prev, node(("r", i, j)), p["r_wire_row"])
            prev = node(("r", i, j))
            if G[i, j] > 0:
                resistors.append((node(("r", i, j)), node(("c", i, j)), G[i, j]))
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
    # source current unknown flows from + node through the source to - node.
    return np.array([x[n + k] for k in meters])


