"""The scipy baseline of benchmarks/circuit.py solves the same circuit (so its ratios compare like with like)."""

import numpy as np

from benchmarks.circuit import scipy_currents, scipy_geff
from crossjax.circuit import Parasitics, effective_conductance, solve


def test_scipy_baseline_agrees_with_crossjax():
    rng = np.random.default_rng(0)
    G = rng.uniform(1e-6, 1e-3, (6, 5))
    V = rng.uniform(-1, 1, (3, 6))
    p = Parasitics(r_wire_row=2.0, r_wire_col=1.0, r_source=10.0, r_sink=30.0)
    np.testing.assert_allclose(scipy_geff(G, p), effective_conductance(G, p), rtol=1e-10)
    np.testing.assert_allclose(scipy_currents(G, V, p), solve(G, V, p, method="direct"), rtol=1e-10)
