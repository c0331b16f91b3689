"""Magnitude pruning: unstructured, channel/filter (C/F), and crossbar-aware XCS/XRS/tile.

Every function returns a boolean *keep* mask with the shape of the weights it
was given (True = weight kept, False = pruned); apply it with ``W * mask``.

Groups and scores, for ``W`` (K, N) on the tile layout (Kt, Nt, R, C) of
docs/architecture.md (padding never counts):

============  ===========================================  ===================
kind          group                                         score
============  ===========================================  ===================
unstructured  one weight                                    |w|
channel (C/F) one output (column of W; a conv filter)       L1 norm sum_k |W[k,n]|
XCS           crossbar column: output n's R-row segment     RMS = ||g||_2 / sqrt(|g|)
              inside tile (a, b)  -> groups (Kt, Nt, C)
XRS           crossbar row: input k across tile's C columns RMS
              -> groups (Kt, Nt, R)
tile          whole tile -> groups (Kt, Nt)                 RMS
============  ===========================================  ===================

The RMS (group L2 norm divided by sqrt of the number of real weights) is used
so that groups cut short by the zero padding of the last tile row/column are
not pruned first merely for being smaller. ``sparsity`` is the fraction of
groups pruned: exactly ``round(sparsity * n_groups)`` groups (ties broken by
index), ``n_groups`` counting only groups that hold at least one real weight.
XCS/XRS follow crossbar-granularity pruning (Meng et al., IEEE TCAS-II 2021;
Bhattacharjee et al., DATE 2022).

Under ``jit`` the ``sparsity`` may be traced (it is then not range-checked);
shapes and tile sizes must be static.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from crossjax import config_checks as chk
from crossjax.numerics import safe_sqrt
from crossjax.tiling import check_matrix, check_tile_size, tile, untile, valid_tiles

__all__ = [
    "magnitude_mask",
    "channel_scores",
    "channel_mask",
    "input_channel_mask",
    "crossbar_column_mask",
    "crossbar_row_mask",
    "tile_mask",
    "group_lasso",
]


def _keep_all_but_lowest(scores, n_prune):
    """Boolean mask over flat ``scores``: False for the ``n_prune`` lowest (stable order)."""
    order = jnp.argsort(scores, stable=True)
    rank = jnp.zeros(scores.shape, jnp.int32).at[order].set(jnp.arange(scores.size, dtype=jnp.int32))
    return rank >= n_prune


def _n_prune(sparsity, n_groups):
    return jnp.round(jnp.asarray(sparsity) * n_groups).astype(jnp.int32)


def magnitude_mask(W, sparsity):
    """Unstructured magnitude pruning: drop the ``round(sparsity*W.size)`` smallest |w|.

    Works on any weight shape (dense matrices, conv kernels).

    Args:
      W: weights, any shape.
      sparsity: fraction of the weights to prune, in ``[0, 1]`` (may be traced under ``jit``).

    Returns:
      Bool keep mask of ``W``'s shape; ties in |w| are pruned in index order.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax.pruning import magnitude_mask
      >>> magnitude_mask(jnp.array([[0.1, -2.0], [3.0, -0.2]]), 0.5).tolist()
      [[False, True], [True, False]]
    """
    chk.fraction("sparsity", sparsity)
    W = jnp.asarray(W)
    keep = _keep_all_but_lowest(jnp.abs(W).ravel(), _n_prune(sparsity, W.size))
    return keep.reshape(W.shape)


def channel_scores(W):
    """L1 norm of each output channel: ``sum |W|`` over all axes but the last (N,).

    Args:
      W: weights ``(K, N)`` or a conv kernel ``(kh, kw, Cin, N)`` (any shape; the
        last axis is the output channel).

    Returns:
      ``(N,)`` scores, in the units of ``W``.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax.pruning import channel_scores
      >>> channel_scores(jnp.array([[1.0, -2.0, 0.0], [3.0, 0.0, 0.5]])).tolist()
      [4.0, 2.0, 0.5]
    """
    W = jnp.asarray(W)
    return jnp.abs(W).reshape(-1, W.shape[-1]).sum(0)


def channel_mask(W, sparsity):
    """Channel/filter (C/F) pruning: drop whole outputs (last axis) with the lowest L1 norm.

    ``W`` is (K, N) or a conv kernel (kh, kw, Cin, Cout). Returns the keep mask
    of ``W``'s shape; the per-channel keep vector is ``mask.reshape(-1, N).any(0)``
    (or use :func:`input_channel_mask` to prune the next layer's matching inputs).

    Args:
      W: weights ``(K, N)`` or a conv kernel ``(kh, kw, Cin, Cout)``.
      sparsity: fraction of the output channels to prune, in ``[0, 1]``.

    Returns:
      Bool keep mask of ``W``'s shape, constant along all axes but the last.

    Raises:
      ValueError: ``W`` is neither 2-D nor 4-D, or ``sparsity`` out of range.

    Example:
      Output 2 has the lowest L1 norm (0.5) and is pruned whole:

      >>> import jax.numpy as jnp
      >>> from crossjax.pruning import channel_mask
      >>> channel_mask(jnp.array([[1.0, -2.0, 0.0], [3.0, 0.0, 0.5]]), 1 / 3).tolist()
      [[True, True, False], [True, True, False]]
      >>> channel_mask(jnp.ones((3, 3, 2, 4)), 0.5).shape
      (3, 3, 2, 4)
    """
    chk.fraction("sparsity", sparsity)
    W = jnp.asarray(W)
    if W.ndim not in (2, 4):
        raise ValueError(f"W must be (K, N) or (kh, kw, Cin, Cout), got shape {W.shape}")
    keep = _keep_all_but_lowest(channel_scores(W), _n_prune(sparsity, W.shape[-1]))
    return jnp.broadcast_to(keep, W.shape)


def input_channel_mask(channel_keep, W_next):
    """Keep mask for the next layer's inputs that read the kept channels.

    ``channel_keep`` (Cin,) bool: the previous layer's kept outputs.
    ``W_next``: a conv kernel (kh, kw, Cin, Cout) (mask along the Cin axis) or a
    flattened matrix (Cin*P, N) whose rows are channel-major (P positions per
    channel, e.g. kh*kw for a flattened conv or H*W after a channel-major flatten).

    Args:
      channel_keep: bool ``(Cin,)``.
      W_next: ``(kh, kw, Cin, Cout)`` or ``(Cin*P, N)``.

    Returns:
      Bool keep mask of ``W_next``'s shape.

    Raises:
      ValueError: ``W_next``'s input channels (or rows) do not match ``channel_keep``.

    Example:
      Channel 1 of 2 is pruned; the next layer reads 2 positions per channel
      (rows ``[c*2, c*2 + 1]``), so it loses rows 2 and 3:

      >>> import jax.numpy as jnp
      >>> from crossjax.pruning import input_channel_mask
      >>> keep = jnp.array([True, False])
      >>> input_channel_mask(keep, jnp.ones((4, 3)))[:, 0].tolist()
      [True, True, False, False]
      >>> bool(input_channel_mask(keep, jnp.ones((3, 3, 2, 5)))[:, :, 1].any())
      False
    """
    channel_keep = jnp.asarray(channel_keep, bool)
    W_next = jnp.asarray(W_next)
    cin = channel_keep.shape[0]
    if W_next.ndim == 4:
        if W_next.shape[2] != cin:
            raise ValueError(f"W_next has {W_next.shape[2]} input channels but channel_keep has {cin}")
        return jnp.broadcast_to(channel_keep[None, None, :, None], W_next.shape)
    check_matrix(W_next, "W_next")
    K = W_next.shape[0]
    if K % cin:
        raise ValueError(
            f"W_next rows ({K}) must be a multiple of the channel count ({cin}) with channel-major row order"
        )
    rows = jnp.repeat(channel_keep, K // cin)
    return jnp.broadcast_to(rows[:, None], W_next.shape)


def _tile_group_mask(W, rows, cols, sparsity, axes):
    check_matrix(W)
    check_tile_size(rows, cols)
    chk.fraction("sparsity", sparsity)
    W = jnp.asarray(W)
    K, N = W.shape
    valid_np = np.asarray(valid_tiles(K, N, rows, cols))
    count_np = valid_np.sum(axis=axes, keepdims=True)
    n_groups = int((count_np > 0).sum())
    sumsq = jnp.sum(tile(W, rows, cols) ** 2, axis=axes, keepdims=True)
    score = jnp.sqrt(sumsq / np.maximum(count_np, 1))
    score = jnp.where(count_np > 0, score, jnp.inf)  # padding-only groups never chosen
    keep = _keep_all_but_lowest(score.ravel(), _n_prune(sparsity, n_groups)).reshape(score.shape)
    full = jnp.broadcast_to(keep, (*score.shape[:2], rows, cols))
    return untile(full, K, N)


def crossbar_column_mask(W, rows, cols, sparsity):
    """XCS: prune whole crossbar columns (one output's R-row segment in a tile) by RMS.

    Args:
      W: weights ``(K, N)``.
      rows: tile rows ``R``.
      cols: tile columns ``C``.
      sparsity: fraction of the ``(Kt, Nt, C)`` crossbar columns to prune, in ``[0, 1]``.

    Returns:
      Bool keep mask ``(K, N)``.

    Example:
      Of the 8 crossbar columns of a 2 x 2 grid of 2 x 2 tiles, the weakest is
      output 1's segment in row tile 1; output 1 keeps its segment in row tile 0:

      >>> import jax.numpy as jnp
      >>> from crossjax.pruning import crossbar_column_mask
      >>> mask = crossbar_column_mask(jnp.ones((4, 4)).at[2:, 1].set(0.1), 2, 2, sparsity=1 / 8)
      >>> int((~mask).sum()), mask[:, 1].tolist()
      (2, [True, True, False, False])
    """
    return _tile_group_mask(W, rows, cols, sparsity, (2,))


def crossbar_row_mask(W, rows, cols, sparsity):
    """XRS: prune whole crossbar rows (one input across a tile's C columns) by RMS.

    Args:
      W: weights ``(K, N)``.
      rows: tile rows ``R``.
      cols: tile columns ``C``.
      sparsity: fraction of the ``(Kt, Nt, R)`` crossbar rows to prune, in ``[0, 1]``.

    Returns:
      Bool keep mask ``(K, N)``.

    Example:
      Input 1's row in column tile 0 is the weakest of the 8 crossbar rows;
      the same input stays connected in column tile 1:

      >>> import jax.numpy as jnp
      >>> from crossjax.pruning import crossbar_row_mask
      >>> mask = crossbar_row_mask(jnp.ones((4, 4)).at[1, :2].set(0.1), 2, 2, sparsity=1 / 8)
      >>> int((~mask).sum()), mask[1].tolist()
      (2, [False, False, True, True])
    """
    return _tile_group_mask(W, rows, cols, sparsity, (3,))


def tile_mask(W, rows, cols, sparsity):
    """Whole-tile pruning: drop entire R x C tiles with the lowest RMS.

    Args:
      W: weights ``(K, N)``.
      rows: tile rows ``R``.
      cols: tile columns ``C``.
      sparsity: fraction of the ``(Kt, Nt)`` tiles to prune, in ``[0, 1]``.

    Returns:
      Bool keep mask ``(K, N)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax.pruning import tile_mask
      >>> tile_mask(jnp.ones((4, 4)).at[2:, 2:].set(0.1), 2, 2, sparsity=0.25).astype(int).tolist()
      [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0]]
    """
    return _tile_group_mask(W, rows, cols, sparsity, (2, 3))


_GROUP_AXES = {"column": (2,), "row": (3,), "tile": (2, 3)}


def group_lasso(W, rows=None, cols=None, group="column"):
    """Group-lasso penalty  sum_g sqrt(|g|) * ||W_g||_2  (|g| = real weights in the group).

    ``group``: ``"column"`` (XCS groups), ``"row"`` (XRS groups), ``"tile"``
    (whole tiles) on the (rows x cols) tile layout, or ``"channel"`` (one output
    of ``W``, any shape; tile size unused). Add ``lam * group_lasso(...)`` to the
    training loss; the gradient at an all-zero group is 0 (subgradient choice).

    Args:
      W: weights ``(K, N)`` (any shape for ``group="channel"``).
      rows: tile rows ``R`` (not needed for ``"channel"``).
      cols: tile columns ``C`` (not needed for ``"channel"``).
      group: ``"column"``, ``"row"``, ``"tile"`` or ``"channel"``.

    Returns:
      Scalar penalty, in the units of ``W``.

    Raises:
      ValueError: unknown ``group``, or (tile groups) a ``W`` that is not 2-D or a bad tile size.

    Example:
      One non-zero crossbar column of 4 ones: ``sqrt(4) * ||(1, 1, 1, 1)||_2 = 4``;
      an all-zero ``W`` costs nothing:

      >>> import jax.numpy as jnp
      >>> from crossjax.pruning import group_lasso
      >>> W = jnp.zeros((4, 2)).at[:, 0].set(1.0)
      >>> round(float(group_lasso(W, 4, 2)), 4), round(float(group_lasso(jnp.zeros((4, 2)), 4, 2)), 4)
      (4.0, 0.0)
      >>> round(float(group_lasso(W, 4, 2, group="tile")), 4)  # sqrt(8) * 2
      5.6569
    """
    W = jnp.asarray(W)
    if group == "channel":
        sumsq = jnp.sum(W.reshape(-1, W.shape[-1]) ** 2, axis=0)
        return jnp.sqrt(W.size // W.shape[-1]) * jnp.sum(safe_sqrt(sumsq))
    if group not in _GROUP_AXES:
        raise ValueError(f"group must be one of 'column', 'row', 'tile', 'channel', got {group!r}")
    check_matrix(W)
    check_tile_size(rows, cols)
    K, N = W.shape
    axes = _GROUP_AXES[group]
    count = np.asarray(valid_tiles(K, N, rows, cols)).sum(axis=axes)
    sumsq = jnp.sum(tile(W, rows, cols) ** 2, axis=axes)
    return jnp.sum(np.sqrt(count) * safe_sqrt(sumsq))
