"""Per-input solve of the crossbar circuit by preconditioned conjugate gradients.

Writing the cell currents as ``I = s * x`` with ``s = sqrt(G)`` turns the
cell-current system ``(diag(1/G) + P) I = V`` (see :mod:`.wires`) into the
symmetric positive definite resistance-form system

    (1 + s P s) x = s V,        eigenvalues >= 1,

which stays well defined for zero conductances and zero resistances. ``P`` is
applied by cumulative sums in O(R*C) per input; the Jacobi preconditioner is
``1 + G * diag(P)``. The iteration runs until the relative residual of every
system is below ``rtol`` (checked each step, not a fixed sweep count) or
``maxiter`` is hit; under ``jit`` a non-converged solve cannot raise, so
``maxiter`` is generous (``20 * (R + C) + 200``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .wires import wire_operator, wire_operator_diagonal


def default_rtol(dtype) -> float:
    """Relative residual of an exact solve: 1e-13 (float64), 1e-6 (float32).

    Args:
      dtype: the solve's floating dtype.

    Returns:
      The CG tolerance on the relative residual (a float).

    Example:
      >>> import jax.numpy as jnp
      >>> default_rtol(jnp.float32)
      1e-06
    """
    return 1e-13 if jnp.finfo(dtype).bits >= 64 else 1e-6


def cell_currents(G, V, p, *, rtol=None, maxiter=None):
    """Cell currents ``I`` (A), shape (..., B, R, C), for ``G`` (..., R, C), ``V`` (..., B, R).

    Leading dims of ``G`` and ``V`` must already agree (no broadcasting here).
    Returns ``(I, iterations, converged)``.

    Args:
      G: conductances (..., R, C), siemens.
      V: input voltages (..., B, R), volts.
      p: :class:`~crossjax.circuit.Parasitics` (ohms).
      rtol: relative residual tolerance (default :func:`default_rtol`).
      maxiter: CG iteration cap (default ``20 * (R + C) + 200``).

    Returns:
      ``(I, iterations, converged)``: ``I`` (..., B, R, C) amperes, the
      iteration count (int array) and whether every system converged (bool
      array).

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import circuit
      >>> p = circuit.Parasitics(r_wire_row=1.0, r_wire_col=2.0)
      >>> G, V = jnp.full((2, 3), 1e-4), jnp.array([[1.0, 0.5]])
      >>> I, k, ok = cell_currents(G, V, p)
      >>> I.shape, bool(ok), bool(jnp.allclose(I.sum(-2), circuit.solve(G, V, p), rtol=1e-5))
      ((1, 2, 3), True, True)
    """
    rhs = jnp.broadcast_to(V[..., :, :, None], V.shape + (G.shape[-1],))
    return solve_cell_form(G[..., None, :, :], rhs, p, rtol=rtol, maxiter=maxiter)


def solve_cell_form(G, rhs, p, *, rtol=None, maxiter=None):
    """Solve ``(diag(1/G) + P) I = rhs`` for cell currents ``I`` (A), (..., R, C).

    ``rhs`` (..., R, C) volts is a voltage per cell (``V[i]`` broadcast along the
    row for a driven crossbar; a Newton residual for nonlinear cells); ``G``
    (siemens) broadcasts against it. ``rtol`` may be an array broadcastable to
    ``rhs.shape[:-2] + (1, 1)`` (one tolerance per system). Zero conductances
    carry no current (``I = 0``) and need no division.

    Args:
      G: conductances, siemens, broadcastable to ``rhs`` (..., R, C).
      rhs: voltage per cell (..., R, C), volts.
      p: :class:`~crossjax.circuit.Parasitics` (ohms).
      rtol: relative residual tolerance (default :func:`default_rtol`), a
        scalar or one per system.
      maxiter: CG iteration cap (default ``20 * (R + C) + 200``).

    Returns:
      ``(I, iterations, converged)``: ``I`` (..., R, C) amperes, the
      iteration count (int array) and whether every system converged (bool
      array).

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import circuit
      >>> G, rhs = jnp.full((2, 3), 1e-4), jnp.ones((2, 3))
      >>> I, k, ok = solve_cell_form(G, rhs, circuit.Parasitics())  # no wires: Ohm's law
      >>> bool(jnp.allclose(I, G * rhs)), bool(ok)
      (True, True)
    """
    R, C = rhs.shape[-2:]
    dtype = rhs.dtype
    rtol = default_rtol(dtype) if rtol is None else rtol
    maxiter = 20 * (R + C) + 200 if maxiter is None else maxiter
    s = jnp.sqrt(G)
    b = s * rhs
    precond = 1.0 + G * wire_operator_diagonal((R, C), p, dtype)

    def matvec(x):
        return x + s * wire_operator(s * x, p)

    def dot(a, c):
        return jnp.sum(a * c, axis=(-2, -1), keepdims=True)

    bnorm2 = dot(b, b)
    tol2 = (rtol**2) * bnorm2
    x = b / precond
    r = b - matvec(x)
    z = r / precond
    d = z
    rz = dot(r, z)

    def cond(state):
        _, r, _, _, k = state
        return jnp.logical_and(k < maxiter, jnp.any(dot(r, r) > tol2))

    def body(state):
        x, r, d, rz, k = state
        q = matvec(d)
        dq = dot(d, q)
        alpha = jnp.where(dq > 0, rz / jnp.where(dq > 0, dq, 1), 0)
        x = x + alpha * d
        r = r - alpha * q
        z = r / precond
        rz_new = dot(r, z)
        beta = jnp.where(rz > 0, rz_new / jnp.where(rz > 0, rz, 1), 0)
        d = z + beta * d
        return x, r, d, rz_new, k + 1

    x, r, _, _, k = jax.lax.while_loop(cond, body, (x, r, d, rz, jnp.array(0)))
    converged = jnp.all(dot(r, r) <= tol2)
    return s * x, k, converged
