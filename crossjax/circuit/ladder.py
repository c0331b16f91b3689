"""One driven row of the crossbar as a resistive ladder, seen from its column nodes.

Row ``i`` is a ladder: the driver at ``v`` (volts), ``r_source + r_wire_row``
to row node 0, ``r_wire_row`` between row nodes ``j-1`` and ``j``, an open far
end, and a shunt cell ``g_j`` (siemens) from row node ``j`` to column node
``c_j``. Its response to the column-node voltages ``c`` is linear::

    row-node voltages     u = v t + Z (g * c)
    cell voltages         U = u - c = v t + Phi^T c
    currents into column nodes  g * U = v a - Y_row c,   a = g * t,   Y_row = -diag(g) Phi^T

with ``Z`` (ohms) the row-node impedance matrix of the ladder with the driver
and column nodes grounded. ``Z`` is semiseparable: with the admittance looking
right into node ``m``, ``y_m = g_m + y_(m+1) / (1 + r_wire_row y_(m+1))``, and
the impedance looking left through the segment into node ``j``,
``z_0 = r_source + r_wire_row``, ``z_j = r_wire_row + z_(j-1) / (1 + g_(j-1) z_(j-1))``,

    Z_jj = z_j / (1 + z_j (g_j + y'_j)),   y'_j = y_(j+1) / (1 + r_wire_row y_(j+1)),
    Z_jk = Z_min(j,k),min(j,k) exp(-|s_j - s_k|),   s_k = -sum_(m<=k) log(1 + r_wire_row y_m),

and the driver transfer is ``t_j = exp(s_j - s_0) / (1 + z_0 (g_0 + y'_0))``.
Nothing divides by a resistance, so zero wires and zero conductances are exact
(``Z = 0``, ``t = 1``, ``Y_row = diag(g)``); the diagonal ``Phi_jj = -(1 + z_j y'_j) /
(1 + z_j (g_j + y'_j))`` is formed without cancellation.

``exp(-|s_j - s_k|)`` is built in ``O(C)`` exponentials without overflow: with
blocks of ``LADDER_BLOCK`` columns starting at ``f_J``, it is
``exp(f_J - s_j) exp(s_k - f_K) exp(f_K - f_J)`` for ``j <= k``, each factor
bounded by the decay inside one block.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

LADDER_BLOCK = 16  # columns per exponent-scaling block of the semiseparable Z
FUSED_CROSS_BLOCKS = 8  # up to this many blocks (128 columns) the cross-block sums are fused multiply-sums


class RowLadders(NamedTuple):
    """Per-row ladder vectors, each ``(..., R, C)``; ``block`` scale factors ``(..., R, nb, nb)``."""

    g: jax.Array  # cell conductances, S
    a: jax.Array  # g * t: column currents per volt on the driver, columns grounded, S
    t: jax.Array  # driver -> row-node voltage transfer, 1
    zd: jax.Array  # Z_jj, ohms
    diag: jax.Array  # Phi_jj (negative), 1
    grow: jax.Array  # exp(f_J - s_j) >= 1
    decay: jax.Array  # exp(s_k - f_K) <= 1
    block: jax.Array  # exp(f_K - f_J) for J <= K, else 0


def row_ladders(G, p) -> RowLadders:
    """Ladder vectors of every row of ``G`` (..., R, C) under the row parasitics of ``p``.

    Args:
      G: conductances (..., R, C), siemens.
      p: :class:`~crossjax.circuit.Parasitics` (ohms); uses ``r_source`` and
        ``r_wire_row``.

    Returns:
      :class:`RowLadders`: ``g``, ``a`` (S), ``t``, ``zd`` (ohms), ``diag``,
      ``grow``, ``decay``, each (..., R, C), and ``block`` (..., R, nb, nb)
      with ``nb = ceil(C / LADDER_BLOCK)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import circuit
      >>> G = jnp.full((2, 3), 1e-4)
      >>> lad = row_ladders(G, circuit.Parasitics(r_wire_row=1.0, r_wire_col=2.0))
      >>> lad.t.shape, lad.block.shape, bool((lad.t < 1).all())
      ((2, 3), (2, 1, 1), True)
      >>> ideal = row_ladders(G, circuit.Parasitics())  # no wires: t = 1, a = G
      >>> bool(jnp.allclose(ideal.t, 1.0)), bool(jnp.allclose(ideal.a, G))
      (True, True)
    """
    dtype = G.dtype
    rw = jnp.asarray(p.r_wire_row, dtype)
    C = G.shape[-1]

    def step(carry, g):
        # one scan walks both ways: column C-1-j from the open end (y: admittance looking
        # right into the next node) and column j from the driver (z: impedance looking
        # left through the segment into this node)
        y, z = carry
        g_right, g_left = g
        through = y / (1 + rw * y)
        return (g_right + through, rw + z / (1 + g_left * z)), (through, z)

    cols = jnp.moveaxis(G, -1, 0)
    zero = jnp.zeros(G.shape[:-1], dtype)
    _, (through, z_left) = jax.lax.scan(step, (zero, zero + jnp.asarray(p.r_source, dtype) + rw), (cols[::-1], cols))
    y_through, z_left = jnp.moveaxis(through[::-1], 0, -1), jnp.moveaxis(z_left, 0, -1)
    den = 1 + z_left * (G + y_through)
    s = jnp.cumsum(-jnp.log1p(rw * (G + y_through)), axis=-1)
    t = jnp.exp(s - s[..., :1]) / den[..., :1]

    b = min(LADDER_BLOCK, C)
    nb = -(-C // b)
    pad = nb * b - C
    s_pad = jnp.concatenate([s, jnp.broadcast_to(s[..., -1:], s.shape[:-1] + (pad,))], -1) if pad else s
    f = s_pad[..., ::b]  # block starts (..., nb)
    f_col = jnp.repeat(f, b, axis=-1)[..., :C]
    J = jnp.arange(nb)
    upper = J[:, None] <= J[None, :]
    block = jnp.where(upper, jnp.exp(jnp.where(upper, f[..., None, :] - f[..., :, None], 0)), 0)
    return RowLadders(
        g=G,
        a=G * t,
        t=t,
        zd=z_left / den,
        diag=-(1 + z_left * y_through) / den,
        grow=jnp.exp(f_col - s),
        decay=jnp.exp(s - f_col),
        block=block,
    )


def port_response(row: RowLadders, c):
    """Cell voltages (V) of one row with its driver grounded and column nodes at ``c``.

    ``c`` is (..., C, M): M excitations of the row's C column nodes (volts);
    returns ``Phi^T c`` (..., C, M), i.e. ``diag * c + Z_off (g * c)`` with the
    diagonal ``Phi_jj`` and the off-diagonal ladder impedances ``Z``. The row's
    admittance acts as ``Y_row @ X = -g * port_response(row, X)``.

    ``Z`` is applied in its blocked semiseparable form, ``O(LADDER_BLOCK * C * M)``
    flops: dense ``b x b`` blocks on the diagonal, and rank-one couplings
    ``Z_jk = (zd grow)_j decay_k block_JK`` (``j`` in block J < K, symmetric below).

    Args:
      row: :class:`RowLadders` from :func:`row_ladders` (its leading dims
        broadcast against ``c``'s).
      c: column-node voltages (..., C, M), volts.

    Returns:
      ``Phi^T c`` (..., C, M), volts.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import circuit
      >>> G, c = jnp.full((2, 3), 1e-4), jnp.ones((3, 2))
      >>> port_response(row_ladders(G, circuit.Parasitics(r_wire_row=1.0)), c).shape
      (2, 3, 2)
      >>> ideal = row_ladders(G, circuit.Parasitics())  # no wires: U = -c
      >>> bool(jnp.allclose(port_response(ideal, c), -c))
      True
    """
    C, M = c.shape[-2:]
    b = min(LADDER_BLOCK, C)
    nb = row.block.shape[-1]
    pad = nb * b - C

    def blocks(v):
        return jnp.pad(v, [(0, 0)] * (v.ndim - 1) + [(0, pad)]).reshape(v.shape[:-1] + (nb, b))

    zg, decay = blocks(row.zd * row.grow), blocks(row.decay)
    X = row.g[..., :, None] * c
    X = jnp.pad(X, [(0, 0)] * (X.ndim - 2) + [(0, pad), (0, 0)]).reshape(X.shape[:-2] + (nb, b, M))
    i = jnp.arange(b)
    # masks as multiplications: a select over the sliced ladder vectors cost XLA CPU more than the product
    strict = (i[:, None] < i[None, :]).astype(c.dtype)  # j < k in one block
    Z_in = strict * (zg[..., :, None] * decay[..., None, :]) + strict.T * (decay[..., :, None] * zg[..., None, :])
    J = jnp.arange(nb)
    cross = jnp.where(J[:, None] < J[None, :], row.block, 0)  # block_JK, J < K
    sd, sz = jnp.sum(decay[..., None] * X, -2), jnp.sum(zg[..., None] * X, -2)  # (..., nb, M)
    if nb <= FUSED_CROSS_BLOCKS:
        # batched vector-matrix products as fused multiply-sums (XLA CPU runs tiny dots one by one)
        below = jnp.sum(cross[..., :, :, None] * sd[..., None, :, :], -2)  # sum_(K > J) block_JK sd_K
        above = jnp.sum(cross[..., :, :, None] * sz[..., :, None, :], -3)  # sum_(K < J) block_KJ sz_K
    else:
        # the multiply-sums' (nb, nb, M) temporary grows as C^3 per row: products instead
        below = cross @ sd
        above = jnp.swapaxes(cross, -1, -2) @ sz
    out = Z_in @ X + zg[..., None] * below[..., :, None, :] + decay[..., None] * above[..., :, None, :]
    return row.diag[..., :, None] * c + out.reshape(X.shape[:-3] + (nb * b, M))[..., :C, :]
