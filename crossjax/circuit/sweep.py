"""Exact effective conductance by a transfer sweep down the column wires, and its adjoint.

Rows are added one at a time from the top (the open end of the column wires)
toward the sinks. Everything above the column nodes of row ``i`` is a Norton
equivalent ``J - c @ Y`` (amperes into the column nodes at voltages ``c``). Adding
row ``i`` (:mod:`.ladder`) gives ``Y' = Y + Y_row``, ``J' = J + v_i a``; the
column-wire segment ``r`` below it (``r_wire_col``, plus ``r_sink`` after the
last row) maps ``Y <- Y' (1 + r Y')^-1``, ``J <- J' (1 + r Y')^-1``.

That Riccati recursion is linear in a fractional representation ``Y = N D^-1``:

    N <- N + Y_row D,        D <- D + r N          (one application of Y_row per row)

and the Norton currents telescope, ``J D = sum_i v_i a_i^T D_i``. After every
block of rows (up to 1024, chosen by the stiffness in ``solver.sweep_interval``)
the representation is brought back to ``(Y, 1)`` by one LU solve with ``D``
(which also maps the accumulated rows of ``G_eff``), so ``D`` stays well
conditioned (it is a product of ``1 + r Y'``, eigenvalues >= 1). After
the last row the sinks sit at 0 V and ``G_eff`` is the accumulated matrix:
``I = V @ G_eff`` exactly (no 1/r anywhere; zero resistances and conductances are
fine). ``Y_row D`` costs ``O(b C^2)`` in the ladder's blocked semiseparable
form (:func:`.ladder.port_response`), so a sweep is about ``R`` such products
plus ``R/k`` LU solves with ``C + R`` right-hand sides; memory ``O(C^2 + R C)``.

The block ends keep ``(Y, G_eff so far)`` as anchors. From them an upward pass
recovers the column-node voltages of any excitation exactly: below row ``i`` the
column current is ``i_down = J - c_below @ Y`` at a block end, and inside a block

    c_i = c_below + r_i i_down,   U_i = v_i t + Phi_i^T c_i,   i_down <- i_down - g * U_i,

which gives the cell voltages ``U``, the cell currents and every wire current
(used by :func:`sweep_gradients` and :func:`sweep_node_voltages`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from crossjax import backend

from .ladder import RowLadders, port_response, row_ladders
from .parasitics import Parasitics
from .wires import reverse_cumsum

# Narrower arrays are never split by column: many of them share a chunk, and splitting their
# few columns makes the products too narrow (slower for 64x64 arrays, benchmarks/README.md)
COLUMN_CHUNKS_FROM = 256
COLUMN_CHUNK_MIN = 64
SWEEP_BLOCK = 32  # rows between renormalizations when the stiffness is not known (traced values)


class Anchors(NamedTuple):
    """What the upward pass needs from the sweep.

    ``Y`` (nb, ..., C, C) and ``A`` (nb, ..., Rp, C), siemens: the Norton
    admittance and the ``G_eff`` rows so far at every block end; ``ladders`` and
    ``r``: the row ladders and column-wire resistances in blocks (:class:`_Layout`).
    """

    Y: jax.Array
    A: jax.Array
    ladders: RowLadders
    r: jax.Array


class _Layout(NamedTuple):
    pad: int  # zero rows added above row 0 (no current flows there)
    k: int  # rows per block
    nb: int  # blocks
    ladders: RowLadders  # fields (nb, k, ..., C) [block: (nb, k, ..., nbc, nbc)]
    r: jax.Array  # (nb, k) column-wire resistance below each row, ohms


def _blocking(R: int, block: int = SWEEP_BLOCK) -> tuple[int, int, int]:
    """``(pad, k, nb)``: zero rows on top, rows per block (at most ``block``), blocks.

    The blocks are balanced (``nb = ceil(R / block)`` blocks of ``ceil(R / nb)``
    rows), so fewer than ``nb`` zero rows are swept: 100 rows in blocks of at
    most 64 are two blocks of 50, not 128 rows."""
    nb = -(-R // min(R, block))
    k = -(-R // nb)
    return nb * k - R, k, nb


def _layout(G, p, block) -> _Layout:
    R = G.shape[-2]
    pad, k, nb = _blocking(R, block)
    batch_ndim = G.ndim - 2
    Gp = jnp.pad(G, [(0, 0)] * batch_ndim + [(pad, 0), (0, 0)])
    lad = row_ladders(Gp, p)

    def blocks(x):  # rows axis (position batch_ndim) -> leading (nb, k)
        x = jnp.moveaxis(x, batch_ndim, 0)
        return x.reshape((nb, k) + x.shape[1:])

    r = jnp.full((R + pad,), jnp.asarray(p.r_wire_col, G.dtype)).at[-1].add(jnp.asarray(p.r_sink, G.dtype))
    return _Layout(pad, k, nb, RowLadders(*map(blocks, lad)), r.reshape(nb, k))


def column_chunks(G, columns: int | None = None) -> int:
    """Chunks of the sweep's excitation columns (``C`` by default; the upward pass's ``2 B``)
    so that each chunk's state, ``2 * arrays * C * columns`` numbers, fits a 16th of
    ``backend.policy().geff_chunk_bytes`` (1: no chunks; arrays narrower than
    ``COLUMN_CHUNKS_FROM`` are never split).

    Arrays are already swept in cache-sized groups (``solver``); this splits one array that
    alone outgrows the cache (float64 1024x1024: 16 MiB of state; the measurement is in
    ``benchmarks/README.md``).

    Args:
      G: conductances (..., R, C), siemens; only the shape and dtype are used.
      columns: excitation columns per array (int), ``C`` by default.

    Returns:
      The number of chunks (int, 1: no chunks).

    Example:
      >>> import jax.numpy as jnp
      >>> column_chunks(jnp.zeros((2, 3)))  # narrower than COLUMN_CHUNKS_FROM
      1
    """
    budget = backend.policy().geff_chunk_bytes
    arrays = int(np.prod(G.shape[:-2], dtype=int))
    C = G.shape[-1]
    total = C if columns is None else int(columns)
    if budget is None or C < COLUMN_CHUNKS_FROM:
        return 1
    # the row step's temporaries are several times the state: chunks of 1/16 of the budget measured best
    size = max(COLUMN_CHUNK_MIN, budget // (32 * arrays * C * G.dtype.itemsize))
    return -(-total // size) if size < total else 1


def _sweep(G, p, keep, block):
    R, C = G.shape[-2:]
    lay = _layout(G, p, block)
    batch = G.shape[:-2]
    dtype = G.dtype
    eye = jnp.broadcast_to(jnp.eye(C, dtype=dtype), batch + (C, C))

    def level(carry, xs):
        N, D = carry
        row, r = xs
        N = N - row.g[..., :, None] * port_response(row, D)  # N + Y_row D
        a_row = jnp.sum(row.a[..., :, None] * D, -2)
        return (N, D + r * N), a_row

    chunks = column_chunks(G)

    def rows_of_block(Y, rows, r):
        if chunks == 1:
            return jax.lax.scan(level, (Y, eye), (rows, r))
        # every excitation column of (N, D) evolves on its own inside a block: sweep them in
        # chunks whose state stays in cache (one n x n array's state outgrows it from n ~ 512)
        size = -(-C // chunks)

        def split(X):
            X = jnp.pad(X, [(0, 0)] * (X.ndim - 1) + [(0, chunks * size - C)])
            return jnp.moveaxis(X.reshape(X.shape[:-1] + (chunks, size)), -2, 0)

        def join(X):
            X = jnp.moveaxis(X, 0, -2)
            return X.reshape(X.shape[:-2] + (chunks * size,))[..., :C]

        (N, D), a_rows = jax.lax.map(lambda yd: jax.lax.scan(level, yd, (rows, r)), (split(Y), split(eye)))
        return (join(N), join(D)), join(a_rows)

    def block_step(carry, xs):
        Y, A = carry
        rows, r, b = xs
        (N, D), a_rows = rows_of_block(Y, rows, r)
        A = jax.lax.dynamic_update_slice_in_dim(A, jnp.moveaxis(a_rows, 0, -2), b * lay.k, axis=-2)
        X = jnp.linalg.solve(jnp.swapaxes(D, -1, -2), jnp.swapaxes(jnp.concatenate([N, A], -2), -1, -2))
        X = jnp.swapaxes(X, -1, -2)  # [N; A] D^-1
        Y = 0.5 * (X[..., :C, :] + jnp.swapaxes(X[..., :C, :], -1, -2))
        A = X[..., C:, :]
        return (Y, A), ((Y, A) if keep else None)

    init = (jnp.zeros(batch + (C, C), dtype), jnp.zeros(batch + (R + lay.pad, C), dtype))
    (_, A), ends = jax.lax.scan(block_step, init, (lay.ladders, lay.r, jnp.arange(lay.nb)))
    return A[..., lay.pad :, :], (Anchors(*ends, lay.ladders, lay.r) if keep else None)


def sweep_effective_conductance(G, p, block: int = SWEEP_BLOCK):
    """``G_eff`` (S), (..., R, C), of conductances ``G`` (..., R, C) under parasitics ``p``,
    renormalizing every ``block`` rows.

    Args:
      G: conductances (..., R, C), siemens.
      p: :class:`~crossjax.circuit.Parasitics` (ohms), in ``G``'s dtype.
      block: rows between renormalizations (static int).

    Returns:
      ``G_eff`` (..., R, C), siemens.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import circuit
      >>> p = circuit.Parasitics(r_wire_row=1.0, r_wire_col=2.0)
      >>> G = jnp.full((2, 3), 1e-4)
      >>> bool(jnp.allclose(sweep_effective_conductance(G, p), circuit.effective_conductance(G, p)))
      True
    """
    return _sweep(G, p, keep=False, block=block)[0]


def sweep_with_anchors(G, p, block: int = SWEEP_BLOCK):
    """``(G_eff, anchors)``; the anchors let :func:`sweep_gradients` skip a second sweep.

    Args:
      G: conductances (..., R, C), siemens.
      p: :class:`~crossjax.circuit.Parasitics` (ohms), in ``G``'s dtype.
      block: rows between renormalizations (static int).

    Returns:
      ``(G_eff, anchors)``: ``G_eff`` (..., R, C) siemens and the
      :class:`Anchors` at the block ends.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import circuit
      >>> p = circuit.Parasitics(r_wire_row=1.0, r_wire_col=2.0)
      >>> G = jnp.full((2, 3), 1e-4)
      >>> Geff, anchors = sweep_with_anchors(G, p)
      >>> Geff.shape, bool(jnp.allclose(Geff, sweep_effective_conductance(G, p)))
      ((2, 3), True)
    """
    return _sweep(G, p, keep=True, block=block)


def _up_pass(anchors, V, sink, reduce, acc):
    """Walk from the sinks to the top, yielding every row's cell voltages.

    ``V`` (..., B, R) driver voltages, ``sink`` (..., B, C) sink-terminal voltages.
    ``reduce(acc, (U, I, i_down, c), row)`` -> ``(acc, out)`` sees each row's cell
    voltages ``U``, cell currents ``I``, the column current ``i_down`` in the
    segment below it and the column-node voltages ``c``, each (..., C, B)
    (columns first). Returns ``(acc, outs)`` with ``outs`` stacked over the rows
    of ``G``, top to bottom.
    """
    nb, k = anchors.r.shape
    pad = nb * k - V.shape[-1]
    Vt = jnp.swapaxes(jnp.pad(V, [(0, 0)] * (V.ndim - 1) + [(pad, 0)]), -1, -2)  # (..., Rp, B)
    v_rows = jnp.moveaxis(Vt, -2, 0).reshape((nb, k) + Vt.shape[:-2] + Vt.shape[-1:])

    def level(carry, xs):
        c, i_down, acc = carry
        row, r, v, index = xs
        c = c + r * i_down
        U = row.t[..., :, None] * v[..., None, :] + port_response(row, c)
        I = row.g[..., :, None] * U
        acc, out = reduce(acc, (U, I, i_down, c), index)
        return (c, i_down - I, acc), out

    def block(carry, xs):
        c, acc = carry
        rows, r, v, Y, A, b = xs
        i_down = jnp.swapaxes(A, -1, -2) @ Vt - Y @ c
        index = b * k + jnp.arange(k) - pad  # row of G (negative: padding)
        (c, _, acc), outs = jax.lax.scan(level, (c, i_down, acc), (rows, r, v, index), reverse=True)
        return (c, acc), outs

    xs = (anchors.ladders, anchors.r, v_rows, anchors.Y, anchors.A, jnp.arange(nb))
    (_, acc), outs = jax.lax.scan(block, (jnp.swapaxes(sink, -1, -2), acc), xs, reverse=True)
    outs = jax.tree.map(lambda o: o.reshape((nb * k,) + o.shape[2:])[pad:], outs)
    return acc, outs


def sweep_gradients(G, anchors, V, ybar):
    """Cotangents ``(dG, dp)`` of ``L = sum(ybar * (V @ G_eff))`` by the adjoint circuit.

    ``V`` (..., B, R), ``ybar`` (..., B, C); ``anchors`` from :func:`sweep_with_anchors`.
    The forward circuit (drivers at ``V``, sinks at 0 V) and the adjoint circuit
    (drivers grounded, sinks at ``ybar``) are walked up together:

        dL/dG[i, j] = -sum_b U_b[i, j] Lambda_b[i, j]        (cell voltages)
        dL/dr       = +sum_b sum_(segments of r) i_b iadj_b  (wire currents, same orientation)

    Args:
      G: conductances (..., R, C), siemens.
      anchors: from :func:`sweep_with_anchors` of ``G``.
      V: input voltages (..., B, R), volts.
      ybar: cotangent of the column currents (..., B, C), per ampere.

    Returns:
      ``(dG, dp)``: ``dG`` of ``G``'s shape (per siemens) and ``dp`` a
      :class:`~crossjax.circuit.Parasitics` of scalar cotangents (per ohm).

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import circuit
      >>> p = circuit.Parasitics(r_wire_row=1.0, r_wire_col=2.0)
      >>> from crossjax.circuit import adjoint
      >>> G, V, ybar = jnp.full((2, 3), 1e-4), jnp.array([[1.0, 0.5]]), jnp.ones((1, 3))
      >>> dG, dp = sweep_gradients(G, sweep_with_anchors(G, p)[1], V, ybar)
      >>> dG.shape, bool(jnp.allclose(dG, adjoint.gradients(G[None], V[None], p, ybar[None])[0][0], rtol=1e-4))
      ((2, 3), True)
    """
    lead = jnp.broadcast_shapes(G.shape[:-2], V.shape[:-2], ybar.shape[:-2])
    V = jnp.broadcast_to(V, lead + V.shape[-2:])
    ybar = jnp.broadcast_to(ybar, lead + ybar.shape[-2:])
    B = V.shape[-2]
    chunks = column_chunks(G, 2 * B)
    if chunks == 1:
        return _gradients(G, anchors, V, ybar)
    # both cotangents are sums over the excitations: walk them up in chunks whose state stays
    # in cache (zero rows of padding excite nothing) and add the chunks' sums
    size = -(-B // chunks)

    def split(X):
        X = jnp.pad(X, [(0, 0)] * (X.ndim - 2) + [(0, chunks * size - B), (0, 0)])
        return jnp.moveaxis(X.reshape(X.shape[:-2] + (chunks, size, X.shape[-1])), -3, 0)

    dG, dp = jax.lax.map(lambda vy: _gradients(G, anchors, *vy), (split(V), split(ybar)))
    return jnp.sum(dG, 0), jax.tree.map(lambda d: jnp.sum(d, 0), dp)


def _gradients(G, anchors, V, ybar):
    """:func:`sweep_gradients` for ``V`` and ``ybar`` broadcast to the same leading shape."""
    B = V.shape[-2]
    R, C = G.shape[-2:]
    Vs = jnp.concatenate([V, jnp.zeros_like(V)], -2)
    sinks = jnp.concatenate([jnp.zeros_like(ybar), ybar], -2)

    def reduce(acc, level, index):
        U, I, i_down, _ = level  # (..., C, 2B): forward | adjoint
        Tf, Ta = reverse_cumsum(I[..., :B], -2), reverse_cumsum(I[..., B:], -2)
        col = jnp.sum(i_down[..., :B] * i_down[..., B:])
        acc = Parasitics(
            r_wire_row=acc.r_wire_row + jnp.sum(Tf * Ta),
            r_wire_col=acc.r_wire_col + col,
            r_source=acc.r_source + jnp.sum(Tf[..., 0, :] * Ta[..., 0, :]),
            r_sink=acc.r_sink + jnp.where(index == R - 1, col, 0),
        )
        U2 = U.reshape(U.shape[:-1] + (2, B))  # forward | adjoint without slicing copies
        return acc, -jnp.sum(U2[..., 0, :] * U2[..., 1, :], axis=-1)

    zero = jnp.zeros((), G.dtype)
    dp, dG = _up_pass(anchors, Vs, sinks, reduce, Parasitics(zero, zero, zero, zero))
    dG = jnp.moveaxis(dG, 0, -2)  # (..., R, C)
    extra = dG.ndim - G.ndim
    if extra:  # G was broadcast against V's batch dims
        dG = jnp.sum(dG, axis=tuple(range(extra)))
    for i, (n, m) in enumerate(zip(dG.shape[:-2], G.shape[:-2])):
        if m == 1 and n != 1:
            dG = jnp.sum(dG, axis=i, keepdims=True)
    return dG, dp


def sweep_node_voltages(G, p, V, block: int = SWEEP_BLOCK):
    """Row- and column-node voltages ``(v_row, v_col)`` (V), each (..., B, R, C), for inputs ``V`` (..., B, R).

    Args:
      G: conductances (..., R, C), siemens.
      p: :class:`~crossjax.circuit.Parasitics` (ohms), in ``G``'s dtype.
      V: input voltages (..., B, R), volts.
      block: rows between renormalizations (static int).

    Returns:
      ``(v_row, v_col)``, each (..., B, R, C), volts.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import circuit
      >>> p = circuit.Parasitics(r_wire_row=1.0, r_wire_col=2.0)
      >>> G, V = jnp.full((2, 3), 1e-4), jnp.array([[1.0, 0.5]])
      >>> v_row, v_col = sweep_node_voltages(G, p, V)
      >>> v_row.shape, bool(jnp.allclose(v_col, circuit.node_voltages(G, V, p)[1]))
      ((1, 2, 3), True)
    """
    _, anchors = sweep_with_anchors(G, p, block)
    sink = jnp.zeros(V.shape[:-1] + (G.shape[-1],), G.dtype)

    def keep(acc, level, index):
        U, _, _, c = level
        return acc, (U + c, c)

    _, (v_row, v_col) = _up_pass(anchors, V, sink, keep, ())  # (R, ..., C, B)
    return jnp.moveaxis(v_row, (0, -1), (-2, -3)), jnp.moveaxis(v_col, (0, -1), (-2, -3))
