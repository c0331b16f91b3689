"""D.U.B. pruning: balanced, power-of-two column sparsity per tile for cheaper ADCs.

After Ibrayev, Garg, Chakraborty, Roy, arXiv 2403.13082. On the tile layout
(Kt, Nt, T, C) of docs/architecture.md (T = tile rows), a crossbar column is one
output's T-row segment. A column with at most ``T * 2**-k`` non-zeros needs
``k`` fewer ADC bits (see :mod:`crossjax.energy`), but the whole tile shares
the saving only if *every* column of the tile reaches it; D.U.B. therefore
balances the columns of each tile and snaps the tile to a level.

1. Regularizer (training). Per column v (T weights) the Hoyer-square
   H(v) = (sum_i |v_i|)^2 / (sum_i v_i^2 + eps), a smooth proxy of the number
   of non-zeros (H = n for n equal-magnitude non-zeros). Per tile with n
   columns, mean m = (1/n) sum_j H_j, and the one-sided unbiased semivariance
        D_tile = sum_j 1[H_j > m] (H_j - m)^2 / (n - 1),
   with ``m`` and the gate held constant in the gradient, so only columns
   denser than the tile mean are pushed down (towards the sparser columns).
   Loss += lam * sum_tiles D_tile; the paper uses lam ~ 1e-3 .. 5e-3.
2. Projection. Tile sparsity s = min over the tile's columns of the column's
   zero fraction (zeros / T; padding rows count as zero cells). Levels
   L_k = 1 - 2^-k, k = 0 .. k_max (k_max = floor(log2 T): at least one cell
   left). The level is the nearest one: with L_k <= s < L_{k+1}, choose k+1 if
   s > (L_k + L_{k+1}) / 2, else k. Every column of the tile then keeps exactly
   its floor(T * 2^-k) largest-magnitude entries (fewer only where the tile has
   fewer real rows), so all columns of a tile have the same count.
3. Fine-tuning with the masks fixed: :func:`crossjax.pruning.apply_masks` and
   :func:`crossjax.pruning.masked_updates`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from crossjax.tiling import check_matrix, check_tile_size, tile, untile, valid_tiles

__all__ = ["hoyer_square", "dub_regularizer", "dub_levels", "dub_tile_levels", "dub_project"]


def hoyer_square(v, axis=-1, eps=1e-8):
    """Hoyer-square H(v) = (sum|v|)^2 / (sum v^2 + eps) along ``axis`` (dimensionless).

    A smooth proxy of the number of non-zeros: ``n`` equal-magnitude non-zeros
    give ``H = n`` (up to ``eps``), an all-zero ``v`` gives 0.

    Args:
      v: array of any shape (e.g. tiled weights ``(Kt, Nt, T, C)``).
      axis: the axis (or tuple of axes) summed over; default the last.
      eps: added to the denominator so that an all-zero ``v`` gives 0, not NaN.

    Returns:
      ``v``'s shape without ``axis``, dimensionless.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax.pruning import hoyer_square
      >>> H = hoyer_square(jnp.array([[1.0, -1.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5]]))
      >>> H.shape, [round(float(h), 4) for h in H]
      ((2,), [2.0, 4.0])
    """
    v = jnp.asarray(v)
    return jnp.sum(jnp.abs(v), axis=axis) ** 2 / (jnp.sum(v * v, axis=axis) + eps)


def _column_valid(K, N, rows, cols):
    """(Kt, Nt, C) bool: the crossbar column holds at least one real weight."""
    return np.asarray(valid_tiles(K, N, rows, cols)).any(axis=2)


def dub_regularizer(W, rows, cols, eps=1e-8):
    """Sum over tiles of the one-sided unbiased variance of column Hoyer-squares (module doc).

    ``W`` (K, N); columns that are only padding are excluded; tiles with fewer
    than two real columns contribute 0. Multiply by lam (~1e-3..5e-3) in the loss.

    Args:
      W: weights ``(K, N)``.
      rows: tile rows ``T`` (the length of a crossbar column).
      cols: tile columns ``C``.
      eps: the :func:`hoyer_square` denominator guard.

    Returns:
      Scalar penalty, dimensionless (a semivariance of non-zero counts);
      differentiable in ``W``.

    Example:
      A tile whose columns are equally sparse costs nothing; a dense column
      (H = 4) next to a one-hot column (H = 1) costs ``(4 - 2.5)^2 / (2 - 1)``:

      >>> import jax.numpy as jnp
      >>> from crossjax.pruning import dub_regularizer
      >>> balanced = jnp.array([[1.0, 2.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
      >>> round(float(dub_regularizer(balanced, 4, 2)), 4)
      0.0
      >>> unbalanced = jnp.array([[1.0, 2.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
      >>> round(float(dub_regularizer(unbalanced, 4, 2)), 4)
      2.25
    """
    check_matrix(W)
    check_tile_size(rows, cols)
    W = jnp.asarray(W)
    K, N = W.shape
    valid = _column_valid(K, N, rows, cols)
    H = hoyer_square(tile(W, rows, cols), axis=2, eps=eps)  # (Kt, Nt, C)
    n = valid.sum(-1, keepdims=True)
    mean = jax.lax.stop_gradient(jnp.sum(jnp.where(valid, H, 0.0), -1, keepdims=True) / np.maximum(n, 1))
    gate = jax.lax.stop_gradient(valid & (H > mean))
    dev2 = jnp.where(gate, (H - mean) ** 2, 0.0)
    return jnp.sum(dev2 / np.maximum(n - 1, 1))


def dub_levels(rows, max_level=None):
    """Sparsity levels L_k = 1 - 2^-k, k = 0..max_level (default floor(log2 rows)), as NumPy.

    Args:
      rows: tile rows ``T``.
      max_level: highest level ``k``, in ``[0, floor(log2 rows)]`` (at least one
        cell of a column left); default ``floor(log2 rows)``.

    Returns:
      NumPy float ``(max_level + 1,)``: the zero fraction of a column at each level.

    Raises:
      ValueError: ``max_level`` out of range.

    Example:
      >>> from crossjax.pruning import dub_levels
      >>> dub_levels(8).tolist()
      [0.0, 0.5, 0.75, 0.875]
    """
    check_tile_size(rows, 1)
    k_max = int(math.floor(math.log2(rows))) if max_level is None else int(max_level)
    if not 0 <= k_max or rows * 2.0**-k_max < 1:
        raise ValueError(f"max_level must be in [0, floor(log2(rows))] = [0, {int(math.log2(rows))}], got {max_level}")
    return 1.0 - 2.0 ** -np.arange(k_max + 1)


def dub_tile_levels(W, rows, cols, max_level=None):
    """Snapped level k per tile (Kt, Nt) int32 from the current zeros of ``W`` (module doc, step 2).

    Args:
      W: weights ``(K, N)``; their exact zeros count (padding rows too).
      rows: tile rows ``T``.
      cols: tile columns ``C``.
      max_level: highest level, as in :func:`dub_levels`.

    Returns:
      int32 ``(Kt, Nt)``: level ``k`` of each tile, set by its densest real column.

    Example:
      On 8-row tiles, tile 0's densest column has 6 zeros of 8 (level 2,
      ``L_2 = 0.75``); tile 1 has a dense column (level 0):

      >>> import jax.numpy as jnp
      >>> from crossjax.pruning import dub_tile_levels
      >>> W = jnp.zeros((8, 4)).at[:2, :2].set(1.0).at[:, 2].set(1.0)
      >>> dub_tile_levels(W, 8, 2).tolist()
      [[2, 0]]
    """
    check_matrix(W)
    check_tile_size(rows, cols)
    W = jnp.asarray(W)
    K, N = W.shape
    levels = dub_levels(rows, max_level)
    k_max = len(levels) - 1
    valid = _column_valid(K, N, rows, cols)
    zeros = jnp.sum(tile(W, rows, cols) == 0, axis=2)  # (Kt, Nt, C), padding = zero cells
    zeros = jnp.where(valid, zeros, rows)  # padding columns never the min
    z = jnp.min(zeros, axis=-1)  # densest column's zero count
    # compare in exact integers: s >= L_k  <=>  z * 2^k >= rows * (2^k - 1)
    p = 2 ** np.arange(k_max + 1)
    k_down = jnp.sum(z[..., None] * p >= rows * (p - 1), axis=-1) - 1
    k_up = jnp.minimum(k_down + 1, k_max)
    # s > (L_k + L_{k+1})/2 = 1 - 3 / 2^(k+2)  <=>  z * 2^(k+2) > rows * (2^(k+2) - 3)
    q = 2 ** (k_down + 2)
    past_mid = z * q > rows * (q - 3)
    return jnp.where(past_mid, k_up, k_down).astype(jnp.int32)


def dub_project(W, rows, cols, max_level=None):
    """D.U.B. projection: returns ``(mask (K, N) bool, level (Kt, Nt) int32)``.

    Each column of tile (a, b) keeps its ``floor(rows * 2**-level[a, b])``
    largest |w| (ties by row index; padding rows are never kept).

    Args:
      W: weights ``(K, N)``, typically after training with :func:`dub_regularizer`.
      rows: tile rows ``T``.
      cols: tile columns ``C``.
      max_level: highest level, as in :func:`dub_levels`.

    Returns:
      ``(mask, level)``: the keep mask, bool ``(K, N)``, and the level of each
      tile, int32 ``(Kt, Nt)`` (:func:`dub_tile_levels`).

    Example:
      Column 0 has 5 non-zeros of 8 (zero fraction 0.375, past the midpoint
      0.25 of levels 0 and 1), so the tile snaps to level 1 and every column
      keeps its 4 largest entries; column 0 loses its smallest, 0.1:

      >>> import jax.numpy as jnp
      >>> from crossjax.pruning import dub_project
      >>> W = jnp.zeros((8, 2)).at[:5, 0].set(jnp.array([5.0, 4.0, 3.0, 2.0, 0.1])).at[:4, 1].set(1.0)
      >>> mask, level = dub_project(W, 8, 2)
      >>> level.tolist(), jnp.sum(W * mask != 0, axis=0).tolist(), bool(mask[4, 0])
      ([[1]], [4, 4], False)
    """
    W = jnp.asarray(W)
    level = dub_tile_levels(W, rows, cols, max_level)
    K, N = W.shape
    real = valid_tiles(K, N, rows, cols)
    mag = jnp.where(real, jnp.abs(tile(W, rows, cols)), -1.0)  # padding ranks last
    order = jnp.argsort(-mag, axis=2, stable=True)
    rank = jnp.argsort(order, axis=2)  # 0 = largest
    keep_n = (rows // (2**level))[..., None, None]
    keep = (rank < keep_n) & real
    return untile(keep, K, N), level
