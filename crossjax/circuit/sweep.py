"""Direct effective conductance by a row-by-row Kron reduction toward the sinks.

Row ``i`` alone (driver, ``r_source``, row wire, cells) seen from its column
nodes ``c`` is a Norton source injecting ``Y_row (V[i] 1 - c)`` with the
resistance-form admittance

    Y_row = s (1 + s P_row s)^-1 s,  s = sqrt(G[i]),
    P_row[j, j'] = r_source + r_wire_row * (min(j, j') + 1)   (ohms).

Everything above the column nodes of row ``i`` is a Norton equivalent
``J - Y c`` with ``J = A^T V``. Adding row ``i`` gives ``Y' = Y + Y_row`` and
``A'[i] = Y_row 1``; passing through the column-wire segment ``r`` (``r_wire_col``,
plus ``r_sink`` after the last row) maps

    Y <- (1 + r Y')^-1 Y',   A^T <- (1 + r Y')^-1 A'^T      (SPD Cholesky solves).

After the last row the sinks sit at 0 V, so the column currents are
``I = V @ A``: ``G_eff = A`` exactly (no 1/r anywhere, zero resistances and
zero conductances are fine). Cost about 6-8 R*C^3 flops, memory O(C^2 + R*C).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.lax.linalg import triangular_solve


def _sym(Y):
    return 0.5 * (Y + jnp.swapaxes(Y, -1, -2))


def _inverse_cholesky_factor(M, B):
    """``L^-1 B`` with ``L L^T = M`` (Cholesky; ``M`` SPD with eigenvalues >= 1)."""
    L = jnp.linalg.cholesky(M)
    return triangular_solve(L, B, left_side=True, lower=True)


def row_admittance(g, p):
    """Norton admittance ``Y_row`` (S), (..., C, C), of one driven row with conductances ``g`` (..., C).

    ``Y_row = W^T W`` with ``W = L^-1 diag(s)``, ``L L^T = 1 + s P_row s``.
    """
    C = g.shape[-1]
    j = jnp.arange(C)
    P = p.r_source + p.r_wire_row * (jnp.minimum(j[:, None], j[None, :]) + 1).astype(g.dtype)
    s = jnp.sqrt(g)
    eye = jnp.eye(C, dtype=g.dtype)
    K = eye + s[..., :, None] * P * s[..., None, :]
    W = _inverse_cholesky_factor(K, s[..., None, :] * eye)
    return jnp.swapaxes(W, -1, -2) @ W


def sweep_effective_conductance(G, p):
    """``G_eff`` (S), (..., R, C), of conductances ``G`` (..., R, C) under parasitics ``p``."""
    R, C = G.shape[-2:]
    dtype = G.dtype
    batch = G.shape[:-2]
    eye = jnp.eye(C, dtype=dtype)
    r_col = jnp.asarray(p.r_wire_col, dtype)
    r_steps = jnp.full((R,), r_col, dtype).at[-1].add(jnp.asarray(p.r_sink, dtype))
    rows = jnp.arange(R)

    def step(carry, xs):
        Y, A = carry
        g, r, i = xs
        Yr = row_admittance(g, p)
        Yp = Y + Yr
        A = A + (rows == i).astype(dtype)[:, None] * jnp.sum(Yr, -1)[..., None, :]
        Linv = _inverse_cholesky_factor(eye + r * Yp, jnp.broadcast_to(eye, Yp.shape))
        Minv = jnp.swapaxes(Linv, -1, -2) @ Linv          # (1 + r Y')^-1, symmetric
        Y = _sym(Minv @ Yp)
        A = A @ Minv
        return (Y, A), None

    init = (jnp.zeros(batch + (C, C), dtype), jnp.zeros(batch + (R, C), dtype))
    (_, A), _ = jax.lax.scan(step, init, (jnp.moveaxis(G, -2, 0), r_steps, rows))
    return A


def sweep_cell_currents(G, V, p):
    """Cell currents ``I`` (A), (..., B, R, C), for ``G`` (..., R, C) and inputs ``V`` (..., B, R).

    The same Kron-reduction sweep carrying the Norton currents ``J`` (..., B, C)
    of the actual inputs, storing each level's ``Y_row``, ``Y'`` and
    ``(1 + r Y')^-1``; a reverse sweep then recovers the column-node voltages
    from the sink upward (``c_R = 0``):

        i_down = (1 + r Y')^-1 (J' - Y' c_(i+1)),   c_i = c_(i+1) + r i_down,
        I[i] = Y_row (V[i] 1 - c_i).

    Exact (direct) like :func:`sweep_effective_conductance`; memory O(R*C^2 + R*B*C).
    """
    R, C = G.shape[-2:]
    dtype = G.dtype
    eye = jnp.eye(C, dtype=dtype)
    r_col = jnp.asarray(p.r_wire_col, dtype)
    r_steps = jnp.full((R,), r_col, dtype).at[-1].add(jnp.asarray(p.r_sink, dtype))
    Vr = jnp.moveaxis(V, -1, 0)                          # (R, ..., B)

    def down(carry, xs):
        Y, J = carry
        g, r, v = xs
        Yr = row_admittance(g, p)
        Yp = Y + Yr
        Jp = J + v[..., :, None] * jnp.sum(Yr, -1)[..., None, :]
        Linv = _inverse_cholesky_factor(eye + r * Yp, jnp.broadcast_to(eye, Yp.shape))
        Minv = jnp.swapaxes(Linv, -1, -2) @ Linv
        return (_sym(Minv @ Yp), Jp @ Minv), (Yr, Yp, Minv, Jp)

    init = (jnp.zeros(G.shape[:-2] + (C, C), dtype), jnp.zeros(V.shape[:-1] + (C,), dtype))
    _, levels = jax.lax.scan(down, init, (jnp.moveaxis(G, -2, 0), r_steps, Vr))

    def up(c, xs):
        Yr, Yp, Minv, Jp, r, v = xs
        c = c + r * ((Jp - c @ Yp) @ Minv)
        return c, (v[..., :, None] - c) @ Yr

    _, I = jax.lax.scan(up, jnp.zeros(V.shape[:-1] + (C,), dtype), (*levels, r_steps, Vr), reverse=True)
    return jnp.moveaxis(I, 0, -2)
