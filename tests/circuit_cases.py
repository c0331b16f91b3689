"""Worker for the subprocess robustness sweep of the circuit (``test_circuit_robustness.py``).

``python circuit_cases.py DTYPE R,C[,BATCH] ...`` solves each case with
``effective_conductance``, ``solve(method="direct")`` and ``node_voltages`` and
prints one JSON line per case with the relative errors against the scipy nodal
reference. It prints ``start <case>`` before each case, so when XLA kills the
process the parent knows which shape did it.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from circuit_reference import mna_currents  # noqa: E402

from crossjax.circuit import Parasitics, effective_conductance, node_voltages, solve  # noqa: E402


def run(dtype, spec):
    dims = [int(x) for x in spec.split(",")]
    (R, C), batch = dims[:2], dims[2:]
    rng = np.random.default_rng(R * 1009 + C)
    G = rng.uniform(1e-6, 1e-4, tuple(batch) + (R, C))
    V = rng.uniform(-0.3, 0.3, tuple(batch) + (3, R))
    p = Parasitics(r_wire_row=1.0, r_wire_col=1.0, r_source=10.0, r_sink=5.0)
    Gj, Vj = jnp.asarray(G, dtype), jnp.asarray(V, dtype)
    geff = np.asarray(effective_conductance(Gj, p), np.float64)
    direct = np.asarray(solve(Gj, Vj, p, method="direct"), np.float64)
    v_row, v_col = node_voltages(Gj[..., :1, :, :] if batch else Gj, Vj[..., :1, :], p)
    G2, V2 = G.reshape((-1, R, C)), V.reshape((-1, 3, R))
    ref = np.stack([np.stack([mna_currents(g, v, p) for v in vs]) for g, vs in zip(G2, V2)]).reshape(direct.shape)
    scale = np.abs(ref).max()
    errors = {
        "geff": float(np.abs(V @ geff - ref).max() / scale),
        "direct": float(np.abs(direct - ref).max() / scale),
        "node_voltages_finite": bool(np.all(np.isfinite(np.asarray(v_row))) and np.all(np.isfinite(np.asarray(v_col)))),
    }
    return errors


if __name__ == "__main__":
    dtype = sys.argv[1]
    for spec in sys.argv[2:]:
        print("start", spec, flush=True)
        print(json.dumps({"case": spec, **run(dtype, spec)}), flush=True)
