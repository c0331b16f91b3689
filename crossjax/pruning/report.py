"""Crossbar cost of a (pruned) layer: sparsity, tiles, columns, dense vs sparse mapping.

Mapping schemes, for ``W`` (K, N) on (R x C) tiles (docs/architecture.md):

* **dense mapping**: every tile of the (Kt, Nt) grid is a crossbar, zeros
  included: ``Kt * Nt`` crossbars.
* **sparse mapping**: all-zero crossbar columns (and hence all-zero tiles) are
  skipped, and within each row block ``a`` (the tiles that share the inputs
  ``x[a*R:(a+1)*R]``) the remaining non-zero columns are compacted, in order,
  into ``ceil(nnz_cols[a] / C)`` crossbars. Total ``sum_a ceil(nnz_cols[a]/C)``.
  The column order is undone digitally with the index map of
  :func:`compact_columns` (:func:`scatter_outputs`).

Crossbar compression rate = dense crossbars / sparse crossbars.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import struct

from crossjax import mapping
from crossjax.mapping import Compaction, scatter_outputs
from crossjax.tiling import check_matrix, check_tile_size, grid, tile

__all__ = ["CrossbarReport", "crossbar_report", "Compaction", "compact_columns", "scatter_outputs", "compacted_matmul"]


@struct.dataclass
class CrossbarReport:
    """Crossbar usage of one layer (all counts are integer arrays; jit-friendly).

    weights: real weights K*N; nonzeros: non-zero weights; sparsity = 1 - nonzeros/weights.
    tiles_dense: Kt*Nt; tiles_nonempty: tiles with a non-zero; tiles_sparse: sparse-mapping crossbars.
    columns_dense: Kt*N crossbar columns holding a real output segment; columns_nonempty.
    compression: tiles_dense / tiles_sparse (crossbar compression rate).
    """

    weights: jnp.ndarray
    nonzeros: jnp.ndarray
    sparsity: jnp.ndarray
    tiles_dense: jnp.ndarray
    tiles_nonempty: jnp.ndarray
    tiles_sparse: jnp.ndarray
    columns_dense: jnp.ndarray
    columns_nonempty: jnp.ndarray
    compression: jnp.ndarray

    def as_dict(self):
        """Plain Python numbers (for JSON reports); needs concrete values."""
        return {k: (float(v) if k in ("sparsity", "compression") else int(v)) for k, v in self.__dict__.items()}


def crossbar_report(W, rows, cols, mask=None):
    """:class:`CrossbarReport` of ``W * mask`` (``mask`` optional) on (rows x cols) tiles.

    Args:
      W: weights ``(K, N)``; exact zeros count as pruned.
      rows: tile rows ``R``.
      cols: tile columns ``C``.
      mask: optional keep mask broadcastable to ``(K, N)`` (True = kept).

    Returns:
      :class:`CrossbarReport` of integer (and, for ``sparsity``/``compression``,
      float) scalar arrays.

    Example:
      One all-zero tile of four: the sparse mapping packs row block 0's two
      remaining columns into one crossbar, so 3 crossbars do the work of 4:

      >>> import jax.numpy as jnp
      >>> from crossjax.pruning import crossbar_report
      >>> W = jnp.ones((4, 4)).at[:2, 2:].set(0.0)
      >>> r = crossbar_report(W, 2, 2)
      >>> int(r.tiles_dense), int(r.tiles_nonempty), int(r.tiles_sparse), round(float(r.compression), 4)
      (4, 3, 3, 1.3333)
      >>> int(crossbar_report(W, 2, 2, mask=jnp.arange(4) < 2).tiles_sparse)
      2
    """
    check_matrix(W)
    check_tile_size(rows, cols)
    W = jnp.asarray(W)
    if mask is not None:
        W = jnp.where(mask, W, 0)
    K, N = W.shape
    Kt, Nt = grid(K, N, rows, cols)
    nz = tile(W != 0, rows, cols)  # (Kt, Nt, R, C)
    col_nz = nz.any(axis=2)  # (Kt, Nt, C)
    nnz_cols = col_nz.sum(axis=(1, 2))  # per row block
    tiles_sparse = jnp.sum(-(-nnz_cols // cols))
    nonzeros = jnp.sum(nz)
    return CrossbarReport(
        weights=jnp.asarray(K * N),
        nonzeros=nonzeros,
        sparsity=1.0 - nonzeros / (K * N),
        tiles_dense=jnp.asarray(Kt * Nt),
        tiles_nonempty=jnp.sum(col_nz.any(-1)),
        tiles_sparse=tiles_sparse,
        columns_dense=jnp.asarray(Kt * N),
        columns_nonempty=jnp.sum(col_nz),
        compression=Kt * Nt / jnp.maximum(tiles_sparse, 1),
    )


def compact_columns(W, rows, cols) -> Compaction:
    """Sparse mapping of ``W`` (K, N): skip all-zero crossbar columns, compact the rest (module doc;
    :func:`crossjax.mapping.compact_columns`, which the crossbar kernels use for ``layout="sparse"``).

    Args:
      W: weights ``(K, N)``.
      rows: tile rows ``R``.
      cols: tile columns ``C``.

    Returns:
      :class:`Compaction`: ``tiles`` ``(Kt, Nt, R, C)``, ``column_index``
      int32 ``(Kt, Nt*C)`` (output held by each compacted column, -1 if empty)
      and ``tiles_used`` int32 ``(Kt,)``.

    Example:
      Row block 0 keeps outputs 0 and 1 in one crossbar; row block 1 is dense:

      >>> import jax.numpy as jnp
      >>> from crossjax.pruning import compact_columns
      >>> c = compact_columns(jnp.ones((4, 4)).at[:2, 2:].set(0.0), 2, 2)
      >>> c.tiles.shape, c.tiles_used.tolist(), c.column_index.tolist()
      ((2, 2, 2, 2), [1, 2], [[0, 1, -1, -1], [0, 1, 2, 3]])
    """
    check_matrix(W)
    check_tile_size(rows, cols)
    return mapping.compact_columns(jnp.asarray(W), rows, cols)


def compacted_matmul(x, compaction, N):
    """Digital reference of the sparse mapping: ``x (..., K) -> (..., N)``, equal to ``x @ W``.

    Args:
      x: inputs ``(..., K)``.
      compaction: :class:`Compaction` of ``W`` (:func:`compact_columns`).
      N: number of outputs (columns of ``W``).

    Returns:
      ``(..., N)`` outputs, in the units of ``x @ W``.

    Example:
      Output 1's crossbar column in row block 0 is all zero and skipped:

      >>> import jax.numpy as jnp
      >>> from crossjax.pruning import compact_columns, compacted_matmul
      >>> W = jnp.arange(15.0).reshape(5, 3).at[:2, 1].set(0.0)
      >>> x = jnp.linspace(-1.0, 1.0, 10).reshape(2, 5)
      >>> y = compacted_matmul(x, compact_columns(W, 2, 2), 3)
      >>> y.shape, bool(jnp.allclose(y, x @ W, atol=1e-5))
      ((2, 3), True)
    """
    Kt, Nt, R, C = compaction.tiles.shape
    K = x.shape[-1]
    xb = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, Kt * R - K)]).reshape(*x.shape[:-1], Kt, R)
    blocks = compaction.tiles.transpose(0, 2, 1, 3).reshape(Kt, R, Nt * C)
    partials = jnp.einsum("...ar,arj->...aj", xb, blocks)
    return scatter_outputs(partials, compaction.column_index, N)
