"""Exact solve of a crossbar of nonlinear cells (:class:`.cell.Cell`): Newton on Kirchhoff's law.

Unknowns: the element voltage ``u`` of every cell, (..., B, R, C) for B input
vectors. With element currents ``I = f(u; G)`` the wires give every cell's
terminal voltage as ``V[i] - P I`` (:mod:`.wires`), so Kirchhoff's laws are

    F(u) = u + (r_series + P) f(u) - V = 0                         (volts, per cell)

Newton step: with ``D = df/du = G h'(u)`` and ``dI = D du``,

    (diag(1 / D_s) + P) dI = -F,   D_s = D / (1 + r_series D),   du = -F - (r_series + P) dI,

i.e. each step is a *linear* crossbar with cell conductances ``D_s`` and a
voltage per cell on the right-hand side: the structured preconditioned CG of
:mod:`.iterative` (O(R C) per iteration, never a dense solve), run as an
inexact Newton method (CG tolerance ``min(0.1, |F|)``, down to an exact
solve's near the end). The step is the Newton step of the circuit's strictly
convex co-content in the currents (Millar's principle),

    E(I) = sum Phi(I) + 1/2 I^T (r_series + P) I - sum V I,    dPhi/dI = f^-1(I),

so it is a descent direction of ``E``; a backtracking line search (Armijo on
``E``, or a decrease of ``|F|``) makes Newton converge from a cold start
(``u = 0``, whose first step is the linear crossbar at the small-signal
conductances) on exponentially stiff cells, and element voltages are kept
within the span of the inputs (where a passive array's lie). Converged: the
KCL residual ``max|F| <= rtol * max|V|`` for every input (``rtol`` 1e-13 in
float64, 1e-5 in float32). Zero-conductance cells carry no current and their
``u`` is the open-circuit voltage.

Gradients (``jax.custom_vjp``) by implicit differentiation, one adjoint solve
with the converged Jacobian: for ``L = sum(ybar * y)``, ``y_j = sum_i I_ij``,

    (diag(1 / D_s) + P) lam = ybar (broadcast over rows),   mu = ybar - (r_series + P) lam,
    dL/dG = sum_b mu h(u),   dL/dtheta = sum_b mu df/dtheta   (theta = v0, c2, c3),
    dL/dV_i = sum_(b, j) lam,   dL/dr_series = -sum_b lam I,   dL/dr = -lam . (dP/dr) I

(``mu = D^-1 lam`` written without dividing by ``D``, so zero conductances are
exact). Nothing is backpropagated through the iterations.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from . import iterative
from .cell import Cell
from .parasitics import FIELDS, Parasitics
from .wires import column_voltage, row_drop, wire_operator

MAX_NEWTON = 100  # Newton steps before a solve is declared not converged
_MAX_HALVINGS = 40  # line-search step halvings per Newton step
_ARMIJO = 1e-4
CHUNK_CELLS = 2**18  # cells per Newton loop (lax.map over chunks of problems), ~1-2 MiB per array


class NotConverged(RuntimeError):
    """A nonlinear crossbar solve stopped before Kirchhoff's laws held to its tolerance."""


class NonlinearSolution(NamedTuple):
    """Result of :func:`crossjax.circuit.solve_nonlinear`.

    ``currents`` (..., [B,] C) amperes into the sinks; ``converged`` (..., [B])
    whether each input's KCL residual met ``rtol``; ``residual`` (..., [B]) that
    relative residual ``max|F| / max|V|``; ``newton_steps`` and
    ``cg_iterations`` (ints): Newton steps taken and CG iterations summed over them (the most
    over the chunks of problems that :func:`solve_flat` runs as separate loops).
    """

    currents: Float[Array, "*out C"]
    converged: Bool[Array, "*out"]
    residual: Float[Array, "*out"]
    newton_steps: Int[Array, ""]
    cg_iterations: Int[Array, ""]


def default_rtol(dtype) -> float:
    """KCL residual of a converged solve, relative to ``max|V|``: 1e-13 (float64), 1e-5 (float32).

    Args:
      dtype: the solve's floating dtype.

    Returns:
      The Newton tolerance (a float).

    Example:
      >>> import jax.numpy as jnp
      >>> default_rtol(jnp.float32)
      1e-05
    """
    return 1e-13 if jnp.finfo(dtype).bits >= 64 else 1e-5


def _sum(x, axes):
    return jnp.sum(x, axis=axes, keepdims=True)


class _Circuit(NamedTuple):
    """One batch of problems: ``G`` (N, 1, R, C), ``V`` (N, B, R, 1), cell leaves broadcastable;
    ``span`` (N, B, 1, 1) bounds every element voltage."""

    G: jax.Array
    V: jax.Array
    p: Parasitics
    cell: Cell
    span: jax.Array

    def evaluate(self, I):
        """``(F, u, E)`` at element currents ``I``: KCL residual, element voltages, co-content (N, B, 1, 1).

        Zero-conductance cells carry no current; their ``u`` is the open-circuit voltage (``F = 0``).
        """
        cell = self.cell
        drop = cell.r_series * I + wire_operator(I, self.p)
        u = jnp.where(self.G > 0, cell.voltage(self.G, I, self.span), self.V - drop)
        F = u + drop - self.V
        E = _sum(cell.cocontent(self.G, u) + 0.5 * I * drop - self.V * I, (-2, -1))
        return F, u, E

    def step_conductance(self, u):
        """``D_s``: the conductance of element and series resistor at ``u`` (S), >= 0."""
        D = jnp.maximum(self.G * self.cell.slope(u), 0)
        return D / (1 + self.cell.r_series * D)


def _relative(F, scale):
    return jnp.max(jnp.abs(F), axis=(-2, -1), keepdims=True) / scale


def _span(V):
    return jnp.max(jnp.maximum(V, 0), axis=-2, keepdims=True) - jnp.min(jnp.minimum(V, 0), axis=-2, keepdims=True)


def _newton(circuit: _Circuit, rtol, maxiter):
    """Damped Newton in the element currents from ``I = 0``.

    Returns ``(I, u, converged, rel, steps, cg_iterations)``.
    """
    V = circuit.V
    dtype = V.dtype
    shape = jnp.broadcast_shapes(V.shape[:-1] + circuit.G.shape[-1:], circuit.G.shape)
    scale = jnp.maximum(jnp.max(jnp.abs(V), axis=-2, keepdims=True), jnp.finfo(dtype).tiny)
    cg_floor = iterative.default_rtol(dtype)
    # every element current lies within what the law passes at the span of the inputs
    I_max = jnp.abs(circuit.cell.current(circuit.G, circuit.span))
    I0 = jnp.zeros(shape, dtype)
    F0, u0, E0 = circuit.evaluate(I0)

    def cond(state):
        rel, k = state[4], state[5]
        return (k < maxiter) & jnp.any(rel > rtol)

    def body(state):
        I, u, F, E, rel, k, iters = state
        Ds = circuit.step_conductance(u)
        eta = jnp.clip(rel, cg_floor, 0.1)
        dI, cg_k, _ = iterative.solve_cell_form(Ds, -F, circuit.p, rtol=eta)
        slope = _sum(F * dI, (-2, -1))  # dE/dt at t = 0 (<= 0: Newton descends the convex E)

        def trial(t):
            I_t = jnp.clip(I + t * dI, -I_max, I_max)
            F_t, u_t, E_t = circuit.evaluate(I_t)
            ok = (E_t <= E + _ARMIJO * t * slope) | (_relative(F_t, scale) <= (1 - _ARMIJO * t) * rel)
            return I_t, u_t, F_t, E_t, ok & jnp.all(jnp.isfinite(F_t), axis=(-2, -1), keepdims=True)

        def search_cond(s):
            return (s[-1] < _MAX_HALVINGS) & ~jnp.all(s[-2])

        def search_body(s):
            t, I_t, u_t, F_t, E_t, ok, j = s
            t = jnp.where(ok, t, t / 2)
            new = trial(t)
            keep = lambda a, b: jnp.where(ok, a, b)  # noqa: E731
            return (t, *(keep(a, b) for a, b in zip((I_t, u_t, F_t, E_t), new[:4])), ok | new[4], j + 1)

        t = jnp.ones_like(rel)
        s = jax.lax.while_loop(search_cond, search_body, (t, *trial(t), 0))
        I_t, u_t, F_t, E_t, ok = s[1:6]
        move = (rel > rtol) & ok  # converged systems are left as they are
        I, u, F, E = (jnp.where(move, a, b) for a, b in zip((I_t, u_t, F_t, E_t), (I, u, F, E)))
        return I, u, F, E, _relative(F, scale), k + 1, iters + cg_k

    state = (I0, u0, F0, E0, _relative(F0, scale), jnp.array(0), jnp.array(0))
    I, u, F, E, rel, k, iters = jax.lax.while_loop(cond, body, state)
    return I, u, rel <= rtol, rel, k, iters


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _solve(rtol, maxiter, G, V, p, cell):
    I, u, converged, rel, k, iters = _newton(_Circuit(G, V, p, cell, _span(V)), rtol, maxiter)
    return jnp.sum(I, -2), converged, rel, k, iters


def _solve_fwd(rtol, maxiter, G, V, p, cell):
    I, u, converged, rel, k, iters = _newton(_Circuit(G, V, p, cell, _span(V)), rtol, maxiter)
    return (jnp.sum(I, -2), converged, rel, k, iters), (I, u, G, V, p, cell)


def _reduce_to(x, like):
    """Sum the cotangent ``x`` (N, B, R, C) down to the shape of the leaf ``like``."""
    like = jnp.asarray(like)
    if like.ndim == 0:
        return jnp.sum(x).astype(like.dtype)
    return jnp.sum(x, axis=tuple(i for i, n in enumerate(like.shape) if n == 1), keepdims=True).astype(like.dtype)


def _solve_bwd(rtol, maxiter, res, cotangents):
    I, u, G, V, p, cell = res
    ybar = cotangents[0]  # (N, B, C)
    circuit = _Circuit(G, V, p, cell, _span(V))
    w = jnp.broadcast_to(ybar[..., None, :], u.shape)
    lam, _, _ = iterative.solve_cell_form(circuit.step_conductance(u), w, p)
    mu = w - cell.r_series * lam - wire_operator(lam, p)
    dG = _reduce_to(mu * cell.shape_function(u), G)
    dV = jnp.sum(lam, -1, keepdims=True)
    zero = {f: 0.0 for f in FIELDS}
    dp = Parasitics(
        **{f: -jnp.sum(lam * wire_operator(I, Parasitics(**{**zero, f: 1.0}))).astype(u.dtype) for f in FIELDS}
    )
    d_v0, d_c2, d_c3 = (mu * s for s in cell.parameter_sensitivities(G, u))
    dcell = cell.replace(
        v0=_reduce_to(d_v0, cell.v0),
        c2=_reduce_to(d_c2, cell.c2),
        c3=_reduce_to(d_c3, cell.c3),
        r_series=_reduce_to(-lam * I, cell.r_series),
    )
    return dG, dV, dp, dcell


_solve.defvjp(_solve_fwd, _solve_bwd)


def _leaf(x, batch, dtype):
    """A cell leaf broadcast to ``batch + (R, C)`` and flattened to (N, 1, R, C); scalars stay scalars."""
    x = jnp.asarray(x, dtype)
    if x.ndim == 0:
        return x
    R, C = batch[-2:]
    return jnp.broadcast_to(x, batch).reshape((-1, 1, R, C))


def _flatten(G, V, p, cell):
    """``(Gb (N, 1, R, C), Vb (N, B, R, 1), p, cell, batch)``: broadcast ``G`` (..., R, C) and
    ``V`` (..., B, R) to one batch axis, cell leaves alike, everything in ``G``'s dtype."""
    dtype = G.dtype
    R, C = G.shape[-2:]
    batch = jnp.broadcast_shapes(G.shape[:-2], V.shape[:-2])
    B = V.shape[-2]
    Gb = jnp.broadcast_to(G, batch + (R, C)).reshape((-1, 1, R, C))
    Vb = jnp.broadcast_to(V, batch + (B, R)).reshape((-1, B, R, 1))
    leaves = {n: _leaf(getattr(cell, n), batch + (R, C), dtype) for n in ("v0", "c2", "c3", "r_series")}
    pc = Parasitics(**{f: jnp.asarray(getattr(p, f), dtype) for f in FIELDS})
    return Gb, Vb, pc, cell.replace(**leaves), batch


def chunk_size(R, C, problems):
    """Problems (one array, one input vector each) per Newton loop: about ``CHUNK_CELLS`` cells.

    Args:
      R: rows per array (int).
      C: columns per array (int).
      problems: number of (array, input vector) problems (int).

    Returns:
      The chunk size, an int in ``[1, problems]`` (1 at least).

    Example:
      >>> chunk_size(2, 3, 4), chunk_size(1024, 1024, 4)
      (4, 1)
    """
    return int(max(1, min(problems, CHUNK_CELLS // (R * C))))


def solve_flat(G, V, p, cell, rtol, maxiter):
    """Batched solve for broadcast ``G`` (..., R, C), ``V`` (..., B, R) of one dtype.

    The ``N * B`` problems (array, input vector) run in chunks of :func:`chunk_size`
    through ``lax.map``: each chunk's Newton loop stops when its own problems
    converge, and its working set stays in cache (faster on CPU than one loop
    over all problems, ``benchmarks/README.md``). Returns a :class:`NonlinearSolution`
    with ``currents`` (..., B, C); ``newton_steps`` and ``cg_iterations`` are the
    most over the chunks.

    Args:
      G: conductances (..., R, C), siemens.
      V: input voltages (..., B, R), volts, of ``G``'s dtype.
      p: :class:`~crossjax.circuit.Parasitics` (ohms).
      cell: :class:`~crossjax.circuit.Cell`.
      rtol: Newton tolerance (e.g. :func:`default_rtol`).
      maxiter: Newton step cap (e.g. ``MAX_NEWTON``).

    Returns:
      :class:`NonlinearSolution`: ``currents`` (..., B, C) amperes,
      ``converged`` and ``residual`` (..., B).

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import circuit
      >>> p = circuit.Parasitics(r_wire_row=1.0, r_wire_col=2.0)
      >>> G, V = jnp.full((2, 3), 1e-4), jnp.array([[0.2, 0.1]])
      >>> cell = circuit.Cell(iv="sinh", v0=0.25)
      >>> sol = solve_flat(G, V, p, cell, default_rtol(G.dtype), MAX_NEWTON)
      >>> sol.currents.shape, bool(sol.converged.all())
      ((1, 3), True)
      >>> bool(jnp.allclose(sol.currents, circuit.solve(G, V, p, cell=cell), rtol=1e-4))
      True
    """
    Gb, Vb, pc, cell, batch = _flatten(G, V, p, cell)
    N, B = Vb.shape[:2]
    R, C = Gb.shape[-2:]
    total = N * B
    c = chunk_size(R, C, total)
    K = -(-total // c)
    index = jnp.minimum(jnp.arange(K * c), total - 1).reshape(K, c)  # the last chunk repeats a problem

    def one(ix):
        n, b = ix // B, ix % B
        leaves = {
            f: x if jnp.ndim(x) == 0 else x[n]
            for f, x in (("v0", cell.v0), ("c2", cell.c2), ("c3", cell.c3), ("r_series", cell.r_series))
        }
        y, converged, rel, k, iters = _solve(rtol, maxiter, Gb[n], Vb[n, b][:, None], pc, cell.replace(**leaves))
        return y[:, 0], converged.reshape(c), rel.reshape(c), k, iters

    y, converged, rel, k, iters = jax.lax.map(one, index)
    flat = lambda x: x.reshape((K * c,) + x.shape[2:])[:total]  # noqa: E731
    rel = jax.lax.stop_gradient(flat(rel))
    return NonlinearSolution(
        flat(y).reshape(batch + (B, C)),
        flat(converged).reshape(batch + (B,)),
        rel.reshape(batch + (B,)),
        jnp.max(k),
        jnp.max(iters),
    )


def without_wires(G, V, cell):
    """``I_j = sum_i f(V_i; G_ij)`` (A), (..., B, C): the exact result with ideal wires and no series resistance.

    Args:
      G: conductances (..., R, C), siemens.
      V: input voltages (..., B, R), volts.
      cell: :class:`~crossjax.circuit.Cell` (its ``r_series`` is ignored).

    Returns:
      Column currents (..., B, C), amperes.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import circuit
      >>> G, V = jnp.full((2, 3), 1e-4), jnp.array([[0.2, 0.1]])
      >>> bool(jnp.allclose(without_wires(G, V, circuit.Cell()), V @ G))  # linear: V @ G
      True
    """
    return jnp.sum(cell.current(G[..., None, :, :], V[..., :, :, None]), -2)


def node_voltages_flat(G, V, p, cell, rtol, maxiter):
    """Row- and column-node voltages (V), each (..., B, R, C), and whether every input converged.

    Arguments as :func:`solve_flat`.

    Returns:
      ``(v_row, v_col, converged)``: two (..., B, R, C) arrays in volts and a
      bool scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import circuit
      >>> p = circuit.Parasitics(r_wire_row=1.0, r_wire_col=2.0)
      >>> G, V = jnp.full((2, 3), 1e-4), jnp.array([[0.2, 0.1]])
      >>> v_row, v_col, ok = node_voltages_flat(G, V, p, circuit.Cell(iv="sinh", v0=0.25), 1e-5, MAX_NEWTON)
      >>> v_row.shape, v_col.shape, bool(ok)
      ((1, 2, 3), (1, 2, 3), True)
    """
    Gb, Vb, pc, cell, batch = _flatten(G, V, p, cell)
    I, _, converged, _, _, _ = _newton(_Circuit(Gb, Vb, pc, cell, _span(Vb)), rtol, maxiter)
    v_row, v_col = Vb - row_drop(I, pc), column_voltage(I, pc)
    shape = batch + (V.shape[-2],) + G.shape[-2:]
    return v_row.reshape(shape), v_col.reshape(shape), jnp.all(converged)
