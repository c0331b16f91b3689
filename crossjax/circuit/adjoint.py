"""Implicit (adjoint) gradients of the crossbar currents by CG, never through iterations.

The column currents are a short-circuit transfer admittance of a reciprocal
resistor network, ``I_out = -Y_port[sink, driver] V``, and
``dY_port/dg = v_b^(p) v_b^(q)`` for any branch conductance ``g``. Hence, for a
loss ``L`` with output cotangent ``ybar`` (..., B, C):

    dL/dG[i, j] = -sum_b U_b[i, j] * Lambda_b[i, j]
    dL/dr       = +sum_b sum_(segments of r) i_b * iadj_b         (ohms)
    dL/dV_b     = ybar_b @ G_eff^T

with ``U_b`` the forward cell voltages and ``Lambda_b`` / ``iadj_b`` the cell
voltages / segment currents when the sinks are driven at ``ybar_b`` and the
drivers grounded. That adjoint circuit is the same circuit seen from the
sinks: ``G -> G[::-1, ::-1].T`` with row/column and source/sink resistances
swapped (:meth:`Parasitics.transposed`), so it reuses the forward solver.
"""

from __future__ import annotations

import jax.numpy as jnp

from . import iterative
from .parasitics import Parasitics
from .wires import cell_voltages, column_segment_currents, row_segment_currents


def flip(X):
    """Re-orient (..., R, C) arrays to the sink-driven view (..., C, R) and back (an involution).

    Args:
      X: array (..., R, C), any units (conductances, currents, voltages).

    Returns:
      ``X[..., ::-1, ::-1]`` transposed, (..., C, R), in ``X``'s units.

    Example:
      >>> import jax.numpy as jnp
      >>> X = jnp.arange(6.0).reshape(2, 3)
      >>> flip(X).shape, bool((flip(flip(X)) == X).all())
      ((3, 2), True)
    """
    return jnp.swapaxes(X[..., ::-1, ::-1], -1, -2)


def gradients(G, V, p, ybar, I=None):
    """Cotangents ``(dG, dV, dp)`` for ``G`` (N, R, C), ``V`` (N, B, R), output cotangent ``ybar`` (N, B, C).

    ``I`` are the forward cell currents (N, B, R, C) if already known; the
    forward and adjoint circuits are solved by CG (:mod:`.iterative`).

    Args:
      G: conductances (N, R, C), siemens.
      V: input voltages (N, B, R), volts.
      p: :class:`~crossjax.circuit.Parasitics` (ohms).
      ybar: cotangent of the column currents (N, B, C), per ampere.
      I: optional forward cell currents (N, B, R, C), amperes.

    Returns:
      ``(dG, dV, dp)``: ``dG`` (N, R, C) per siemens, ``dV`` (N, B, R) per
      volt, and ``dp`` a :class:`~crossjax.circuit.Parasitics` of scalar
      cotangents per ohm.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import circuit
      >>> p = circuit.Parasitics(r_wire_row=1.0, r_wire_col=2.0)
      >>> G = jnp.full((1, 2, 3), 1e-4)
      >>> V, ybar = jnp.ones((1, 1, 2)), jnp.ones((1, 1, 3))
      >>> dG, dV, dp = gradients(G, V, p, ybar)
      >>> dG.shape, dV.shape
      ((1, 2, 3), (1, 1, 2))
      >>> Geff = circuit.effective_conductance(G, p)
      >>> bool(jnp.allclose(dV, ybar @ jnp.swapaxes(Geff, -1, -2), rtol=1e-4))
      True
    """
    if I is None:
        I = iterative.cell_currents(G, V, p)[0]
    pt = p.transposed()
    Vt = ybar[..., ::-1]
    It = iterative.cell_currents(flip(G), Vt, pt)[0]
    Ut = cell_voltages(It, Vt, pt)
    dV = jnp.sum(It, -2)[..., ::-1]
    Ia = flip(It)  # adjoint cell currents, sink-view orientation (col -> row)
    Ua = flip(Ut)  # = -Lambda
    U = cell_voltages(I, V, p)
    dG = jnp.sum(U * Ua, axis=-3)
    Tf, Ta = row_segment_currents(I), row_segment_currents(Ia)
    Sf, Sa = column_segment_currents(I), column_segment_currents(Ia)
    dp = Parasitics(
        r_wire_row=-jnp.sum(Tf * Ta),
        r_wire_col=-jnp.sum(Sf * Sa),
        r_source=-jnp.sum(Tf[..., 0] * Ta[..., 0]),
        r_sink=-jnp.sum(Sf[..., -1, :] * Sa[..., -1, :]),
    )
    return dG, dV, dp
