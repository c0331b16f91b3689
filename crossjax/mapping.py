"""Weights <-> normalized conductance targets on the tiles.

Tile layout (:mod:`crossjax.tiling`, which owns it): ``W`` ``(K, N)`` is zero-padded to
``(Kt*R, Nt*C)``, ``Kt = ceil(K/R)``, ``Nt = ceil(N/C)``, and tile ``(a, b)`` is
``W[a*R:(a+1)*R, b*C:(b+1)*C]`` -> tiled shape ``(Kt, Nt, R, C)``.

A mapping turns each tile into ``P`` physical arrays of normalized targets
``u`` in ``[0, 1]`` (``G = g_min + (g_max - g_min) * u``, see ``crossjax.devices``),
shape ``(P, Kt, Nt, R, Cp)``, with recombination coefficients ``coef`` (``P``,)
such that, with ``w = W / w_max`` (``w_max`` the layer or column weight scale),

    w = sum_p coef[p] * column_difference(u_p)

where ``column_difference`` is the identity for ``"differential"`` and
``u[..., :C] - u[..., C]`` for ``"offset"`` (one reference column per tile at ``u = 1/2``).

- ``"differential"`` (default, docs/circuit.md): ``u+ = max(w, 0)``, ``u- = max(-w, 0)``,
  ``coef = (+1, -1)``.
- ``"offset"``: ``u = (w + 1) / 2`` plus the reference column, ``coef = (2,)``.
- bit slicing (``slice_bits = b``, ``slices = S``, differential only): ``|w|`` is
  quantized to ``B = S*b`` bits, ``q = round(|w| * (2**B - 1))``; slice ``s`` holds
  digit ``d_s = floor(q / 2**(b*s)) mod 2**b`` as ``u_s = d_s / (2**b - 1)`` and
  recombines with ``coef_s = 2**(b*s) * (2**b - 1) / (2**B - 1)`` (shift-add).
  Arrays are ordered ``[+s0, +s1, ..., -s0, -s1, ...]``.
Quantization uses straight-through gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from crossjax import config_checks as chk
from crossjax import tiling
from crossjax.converters import max_bits, shift_add, ste_round

SCHEMES = ("differential", "offset")
WEIGHT_SCALES = ("layer", "column")
LAYOUTS = ("dense", "sparse")
SUBTRACTIONS = ("digital", "analog")


@struct.dataclass
class MappingConfig:
    """Weight mapping.

    Attributes:
      scheme: ``"differential"`` or ``"offset"``. static.
      weight_scale: ``"layer"`` (``w_max = max |W|``) or ``"column"`` (per output). static.
      w_max: fixed weight scale (weights are clipped to ``[-w_max, w_max]``);
        ``None``: from ``W`` as ``weight_scale`` says.
      slice_bits: bits per cell for quantized weights (``None``: continuous). static.
      slices: cells (bit slices) per weight magnitude. static.
      layout: ``"dense"`` (every tile of the ``(Kt, Nt)`` grid is a crossbar, zero
        weights included) or ``"sparse"`` (per row block, the crossbar columns
        holding a non-zero weight are packed in order into ``ceil(nnz / C)``
        crossbars; all-zero columns and tiles are not programmed and the outputs
        are put back in order digitally, :func:`compact_columns`). static.
      subtract: where a differential pair's column currents are subtracted.
        ``"digital"``: each array's columns have their own ADC conversion and the
        converted values are subtracted (:func:`recombine`). ``"analog"``: the two
        currents ``I+ - I-`` are subtracted before one conversion per pair column
        (a current mirror at the column, as in CrossSim's balanced core
        subtracting in the array): half the ADC conversions, and the read noise
        of both devices lands in one converted current. Needs
        ``scheme="differential"``. static.
    """

    scheme: str = struct.field(pytree_node=False, default="differential")
    weight_scale: str = struct.field(pytree_node=False, default="layer")
    w_max: float | None = None
    slice_bits: int | None = struct.field(pytree_node=False, default=None)
    slices: int = struct.field(pytree_node=False, default=1)
    layout: str = struct.field(pytree_node=False, default="dense")
    subtract: str = struct.field(pytree_node=False, default="digital")

    def __post_init__(self):
        self.check(include_jax=False)

    def check(self, include_jax: bool = True):
        """Raise ``ValueError`` naming the field for an invalid value (concrete values only)."""
        j = include_jax
        chk.choice("mapping.scheme", self.scheme, SCHEMES)
        chk.choice("mapping.weight_scale", self.weight_scale, WEIGHT_SCALES)
        if self.w_max is not None:
            chk.positive("mapping.w_max", self.w_max, j)
        chk.positive_int("mapping.slice_bits", self.slice_bits, allow_none=True)
        chk.positive_int("mapping.slices", self.slices)
        top = max_bits()
        if self.slice_bits is not None and self.slice_bits * self.slices > top:
            raise ValueError(
                f"mapping.slice_bits * mapping.slices must be <= {top} (the working dtype "
                f"represents the quantized weights exactly up to 2**{top}), got "
                f"{self.slice_bits} * {self.slices}."
            )
        if self.slices > 1 and self.slice_bits is None:
            raise ValueError("mapping.slices > 1 needs mapping.slice_bits (bits per cell).")
        if self.scheme == "offset" and self.slices > 1:
            raise ValueError("mapping.slices > 1 needs mapping.scheme='differential'.")
        chk.choice("mapping.layout", self.layout, LAYOUTS)
        chk.choice("mapping.subtract", self.subtract, SUBTRACTIONS)
        if self.subtract == "analog" and self.scheme != "differential":
            raise ValueError(
                "mapping.subtract='analog' subtracts a differential pair's currents; "
                "it needs mapping.scheme='differential' (or use subtract='digital')."
            )
        if self.layout == "sparse" and self.weight_scale != "layer":
            raise ValueError(
                "mapping.layout='sparse' packs columns of different outputs into one "
                "crossbar; it needs mapping.weight_scale='layer'."
            )

    @property
    def n_arrays(self) -> int:
        return 2 * self.slices if self.scheme == "differential" else 1

    @property
    def cell_levels(self) -> int:
        """Levels above 0 of one cell's target ``u`` (``u = d / cell_levels``): ``2**slice_bits - 1``
        for bit-sliced weights, 1 for continuous ones."""
        return 1 if self.slice_bits is None else 2**self.slice_bits - 1

    @property
    def reference_columns(self) -> int:
        return 1 if self.scheme == "offset" else 0

    @property
    def read_arrays(self) -> int:
        """Arrays whose column currents are converted separately: ``n_arrays``, or the
        ``slices`` pair differences with ``subtract="analog"``."""
        return self.slices if self.subtract == "analog" else self.n_arrays

    def read_coefficients(self) -> tuple[float, ...]:
        """Recombination coefficients of the ``read_arrays`` converted currents."""
        c = self.coefficients()
        return c[: self.slices] if self.subtract == "analog" else c

    def coefficients(self) -> tuple[float, ...]:
        """Recombination coefficients ``coef`` (length ``n_arrays``)."""
        if self.scheme == "offset":
            return (2.0,)
        if self.slice_bits is None:
            return (1.0, -1.0)
        b, s = self.slice_bits, self.slices
        q = 2 ** (b * s) - 1
        c = tuple(2 ** (b * k) * (2**b - 1) / q for k in range(s))
        return c + tuple(-x for x in c)


# the tile layout lives in crossjax.tiling; these names are the mapping's view of it
tile_counts = tiling.grid
tile_weights = tiling.tile
untile_weights = tiling.untile


def weight_scale(W, mapping: MappingConfig):
    """``w_max``: scalar (layer) or ``(N,)`` (column); zeros replaced by 1 (all-zero weights map to g_min).

    Args:
      W: weights ``(K, N)``.
      mapping: :class:`MappingConfig`; a fixed ``mapping.w_max`` is returned as is
        (broadcast to ``(N,)`` for ``weight_scale="column"``).

    Returns:
      ``w_max`` in the units of ``W``: a scalar ``max |W|`` for ``weight_scale="layer"``,
      ``(N,)`` ``max_k |W[k, n]|`` for ``"column"``.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import mapping
      >>> W = jnp.array([[0.5, -2.0, 0.0], [0.25, 1.0, 0.0]])
      >>> float(mapping.weight_scale(W, mapping.MappingConfig()))
      2.0
      >>> mapping.weight_scale(W, mapping.MappingConfig(weight_scale="column")).tolist()  # all-zero column: 1
      [0.5, 2.0, 1.0]
    """
    if mapping.w_max is not None:
        s = jnp.asarray(mapping.w_max, W.dtype)
        return jnp.broadcast_to(s, (W.shape[-1],)) if mapping.weight_scale == "column" else s
    axis = None if mapping.weight_scale == "layer" else 0
    s = jnp.max(jnp.abs(W), axis=axis)
    return jnp.where(s > 0, s, jnp.ones_like(s))


def map_weights(W, mapping: MappingConfig, rows: int, cols: int):
    """Normalized targets ``u`` ``(P, Kt, Nt, rows, cols + ref)`` and ``w_max`` for ``W`` ``(K, N)``.

    The schemes and bit slicing are those of the module docstring; the
    conductances are ``G = g_min + (g_max - g_min) * u``
    (:func:`crossjax.devices.program_conductances`).

    Args:
      W: weights ``(K, N)``.
      mapping: :class:`MappingConfig`.
      rows, cols: the tile size ``R x C``.

    Returns:
      ``(u, w_max)``: ``u`` ``(P, Kt, Nt, rows, cols + ref)`` targets in ``[0, 1]``
      (``P = mapping.n_arrays``, ``ref = mapping.reference_columns``,
      ``Kt = ceil(K / rows)``, ``Nt = ceil(N / cols)``) and ``w_max`` of
      :func:`weight_scale` (a scalar or ``(N,)``, in the units of ``W``).

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import mapping
      >>> W = jnp.array([[0.5, -1.0], [0.25, 0.0]])
      >>> u, w_max = mapping.map_weights(W, mapping.MappingConfig(), rows=2, cols=2)
      >>> u.shape, float(w_max)  # (P, Kt, Nt, R, C): a differential pair of one 2 x 2 tile
      ((2, 1, 1, 2, 2), 1.0)
      >>> bool(jnp.allclose(u[0, 0, 0] - u[1, 0, 0], W / w_max))  # u+ - u- = W / w_max
      True
      >>> u, _ = mapping.map_weights(W, mapping.MappingConfig(scheme="offset"), rows=2, cols=2)
      >>> u.shape, u[0, 0, 0, :, -1].tolist()  # one array, plus the reference column at u = 1/2
      ((1, 1, 1, 2, 3), [0.5, 0.5])
    """
    K, N = W.shape
    w_max = weight_scale(W, mapping)
    if mapping.weight_scale == "column":
        w = W / w_max[None, :]
    else:
        w = W / w_max
    if mapping.w_max is not None:
        w = jnp.clip(w, -1.0, 1.0)
    wt = tile_weights(w, rows, cols)  # (Kt, Nt, R, C)
    if mapping.scheme == "offset":
        u = (wt + 1.0) / 2.0
        if mapping.slice_bits is not None:
            q = 2**mapping.slice_bits - 1
            u = ste_round(u * q) / q
        ref = jnp.full(u.shape[:-1] + (1,), 0.5, u.dtype)
        return jnp.concatenate([u, ref], axis=-1)[None], w_max
    pos, neg = jnp.maximum(wt, 0.0), jnp.maximum(-wt, 0.0)
    if mapping.slice_bits is None:
        return jnp.stack([pos, neg]), w_max
    b, S = mapping.slice_bits, mapping.slices
    Q = 2 ** (b * S) - 1
    coef = mapping.coefficients()
    arrays = []
    for mag in (pos, neg):
        qv = ste_round(mag * Q)
        qs = jax.lax.stop_gradient(qv)
        for s in range(S):  # static: a few bit slices
            d = jnp.mod(jnp.floor(qs / 2 ** (b * s)), 2**b) / (2**b - 1)
            if s == 0:  # straight-through: gradient of the recombined magnitude via slice 0
                d = d + (qv - qs) / Q / coef[0]
            arrays.append(d)
    return jnp.stack(arrays), w_max


@struct.dataclass
class Compaction:
    """Sparse-mapping layout of one layer.

    tiles: (Kt, Nt, R, C) compacted crossbars; row block ``a`` uses tiles
        ``[a, :tiles_used[a]]``, the rest are all zero (static shapes for jit).
    column_index: (Kt, Nt*C) int32: the output n held by compacted column j of
        row block a, or -1 for an empty slot.
    tiles_used: (Kt,) crossbars per row block = ceil(nnz_cols[a] / C).
    """

    tiles: jnp.ndarray
    column_index: jnp.ndarray
    tiles_used: jnp.ndarray


def compact_columns(W, rows: int, cols: int) -> Compaction:
    """Sparse mapping of ``W`` (K, N): within each row block (the tiles sharing the
    inputs ``x[a*R:(a+1)*R]``), skip the all-zero crossbar columns and pack the rest,
    in order, into ``ceil(nnz_cols[a] / C)`` crossbars.

    Args:
      W: weights ``(K, N)``.
      rows, cols: the tile size ``R x C``.

    Returns:
      A :class:`Compaction`: ``tiles`` ``(Kt, Nt, R, C)`` (row block ``a``'s packed
      crossbars first, then all-zero ones), ``column_index`` ``(Kt, Nt*C)`` int32 (the
      column of ``W`` each packed column holds, -1 for an empty slot) and
      ``tiles_used`` ``(Kt,)`` int32.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import mapping
      >>> W = jnp.array([[1.0, 0.0, 2.0, 0.0], [3.0, 0.0, 0.0, 0.0]])  # columns 1 and 3 all zero
      >>> c = mapping.compact_columns(W, rows=2, cols=2)
      >>> c.tiles.shape, c.tiles_used.tolist()  # the 2 non-zero columns fill 1 of the 2 crossbars
      ((1, 2, 2, 2), [1])
      >>> c.column_index.tolist()
      [[0, 2, -1, -1]]
      >>> c.tiles[0, 0].tolist()
      [[1.0, 2.0], [3.0, 0.0]]
    """
    K, N = W.shape
    Kt, Nt = tile_counts(K, N, rows, cols)
    T = tile_weights(W, rows, cols)  # (Kt, Nt, R, C)
    blocks = T.transpose(0, 2, 1, 3).reshape(Kt, rows, Nt * cols)  # row block a: (R, Nt*C)
    nonempty = (blocks != 0).any(axis=1)  # (Kt, Nt*C)
    order = jnp.argsort(~nonempty, axis=1, stable=True)  # non-empty first, in order
    packed = jnp.take_along_axis(blocks, order[:, None, :], axis=2)
    keep = jnp.take_along_axis(nonempty, order, axis=1)
    packed = jnp.where(keep[:, None, :], packed, 0)
    index = jnp.where(keep, order, -1).astype(jnp.int32)
    tiles = packed.reshape(Kt, rows, Nt, cols).transpose(0, 2, 1, 3)
    used = -(-nonempty.sum(1) // cols)
    return Compaction(tiles=tiles, column_index=index, tiles_used=used.astype(jnp.int32))


def scatter_outputs(partials, column_index, N: int):
    """Undo the compaction digitally: ``y[..., n] = sum_{a,j: index[a,j]=n} partials[..., a, j]``.

    ``partials`` (..., Kt, Nt*C): per-row-block column outputs of the compacted
    crossbars; empty slots (index -1) are dropped. Returns (..., N).

    Args:
      partials: ``(..., Kt, Nt*C)`` outputs of the compacted columns.
      column_index: ``(Kt, Nt*C)`` int, the :class:`Compaction`'s ``column_index``.
      N: the layer's outputs.

    Returns:
      ``(..., N)`` outputs, the dtype of ``partials`` (0 for an output with no
      non-zero weight).

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import mapping
      >>> W = jnp.array([[1.0, 0.0, 2.0, 0.0], [3.0, 0.0, 0.0, 0.0]])
      >>> c = mapping.compact_columns(W, rows=2, cols=2)  # packed columns: outputs 0 and 2
      >>> partials = jnp.array([[10.0, 20.0, 0.0, 0.0]])  # (Kt, Nt*C)
      >>> mapping.scatter_outputs(partials, c.column_index, N=4).tolist()
      [10.0, 0.0, 20.0, 0.0]
    """
    idx = jnp.where(column_index < 0, N, column_index).ravel()
    flat = partials.reshape(*partials.shape[:-2], -1)
    out = jnp.zeros((*partials.shape[:-2], N + 1), partials.dtype)
    return out.at[..., idx].add(flat)[..., :N]


def scatter_rows(blocks, column_index, N: int):
    """Compacted weights back in place: ``(Kt, R, Nt*C)`` -> ``(Kt, R, N)`` (row blocks kept apart).

    Args:
      blocks: ``(Kt, R, Nt*C)`` compacted weights per row block (a :class:`Compaction`'s
        ``tiles.transpose(0, 2, 1, 3).reshape(Kt, R, Nt*C)``).
      column_index: ``(Kt, Nt*C)`` int, the :class:`Compaction`'s ``column_index``.
      N: the layer's outputs.

    Returns:
      ``(Kt, R, N)``: row block ``a`` holds rows ``a*R:(a+1)*R`` of the weights
      (zero rows past ``K``), the dtype of ``blocks``.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import mapping
      >>> W = jnp.array([[1.0, 0.0, 2.0, 0.0], [3.0, 0.0, 0.0, 0.0]])
      >>> c = mapping.compact_columns(W, rows=2, cols=2)
      >>> blocks = c.tiles.transpose(0, 2, 1, 3).reshape(1, 2, 4)  # (Kt, R, Nt*C)
      >>> bool(jnp.array_equal(mapping.scatter_rows(blocks, c.column_index, N=4)[0], W))
      True
    """

    def one(block, index):
        idx = jnp.where(index < 0, N, index)
        return jnp.zeros((block.shape[0], N + 1), block.dtype).at[:, idx].add(block)[:, :N]

    return jax.vmap(one)(blocks, column_index)


def column_difference(a, mapping: MappingConfig):
    """Remove the reference column (offset scheme): ``a[..., :C] - a[..., C:]``; identity otherwise.

    Args:
      a: ``(..., C + 1)`` per-column quantities of one tile's columns, the
        reference column last (``scheme="offset"``); any shape otherwise.
      mapping: :class:`MappingConfig`.

    Returns:
      ``(..., C)`` for ``scheme="offset"``, else ``a`` itself.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import mapping
      >>> a = jnp.array([0.75, 0.25, 0.5])  # two columns and the reference at u = 1/2
      >>> mapping.column_difference(a, mapping.MappingConfig(scheme="offset")).tolist()
      [0.25, -0.25]
    """
    if mapping.scheme == "offset":
        return a[..., :-1] - a[..., -1:]
    return a


def recombine(a, mapping: MappingConfig, axis: int, read: bool = False):
    """``sum_p coef[p] * column_difference(a_p)`` over the array axis ``axis`` of ``a``.

    ``read=True``: ``a`` holds the ``read_arrays`` converted currents (:func:`subtract_pairs`).

    Args:
      a: per-array quantities with ``mapping.n_arrays`` entries along ``axis``
        (``mapping.read_arrays`` with ``read=True``), e.g. targets
        ``(P, Kt, Nt, R, Cp)`` of :func:`map_weights` or column currents.
      mapping: :class:`MappingConfig`.
      axis: the array axis of ``a``.
      read: use :meth:`MappingConfig.read_coefficients` instead of ``coefficients``.

    Returns:
      ``a`` without ``axis`` (and, for ``scheme="offset"``, without the reference
      column): for targets, ``W / w_max`` tiled, ``(Kt, Nt, R, C)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import mapping
      >>> W = jnp.array([[0.5, -1.0], [0.25, 0.0]])
      >>> m = mapping.MappingConfig(slice_bits=2, slices=2)  # 4-bit magnitudes in two 2-bit cells
      >>> u, w_max = mapping.map_weights(W, m, rows=2, cols=2)
      >>> u.shape  # arrays [+s0, +s1, -s0, -s1]
      (4, 1, 1, 2, 2)
      >>> w = mapping.recombine(u, m, axis=0)  # shift-add: (Kt, Nt, R, C)
      >>> (w[0, 0] * 15).round().astype(int).tolist()  # the 4-bit codes of W / w_max
      [[8, -15], [4, 0]]
    """
    coef = mapping.read_coefficients() if read else mapping.coefficients()
    return shift_add(column_difference(a, mapping), coef, axis)


def subtract_pairs(a, mapping: MappingConfig, axis: int = 0, variance: bool = False):
    """The arrays' column quantities ``a`` (``n_arrays`` along ``axis``) as read out:
    with ``subtract="analog"`` the pair differences ``a+ - a-`` (``variance=True``: the
    sums ``a+ + a-`` of independent variances), else ``a`` unchanged.

    Args:
      a: ``mapping.n_arrays`` arrays' column quantities along ``axis`` (currents in
        amperes, or their variances in A^2), ordered ``[+s0, ..., -s0, ...]``.
      mapping: :class:`MappingConfig`.
      axis: the array axis of ``a``.
      variance: ``a`` holds variances: add the pair's, do not subtract.

    Returns:
      ``a`` with ``mapping.read_arrays`` entries along ``axis``: the ``slices`` pair
      differences (or variance sums) for ``subtract="analog"``, else ``a`` itself.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import mapping
      >>> i = jnp.array([[3.0, 1.0], [1.0, 2.0]])  # column currents of I+ (row 0) and I- (row 1)
      >>> analog = mapping.MappingConfig(subtract="analog")
      >>> mapping.subtract_pairs(i, analog).tolist()  # one current per pair column: half the conversions
      [[2.0, -1.0]]
      >>> mapping.subtract_pairs(i, analog, variance=True).tolist()
      [[4.0, 3.0]]
      >>> mapping.subtract_pairs(i, mapping.MappingConfig()).shape  # digital: both arrays are converted
      (2, 2)
    """
    if mapping.subtract != "analog":
        return a
    h = mapping.slices
    plus = jax.lax.slice_in_dim(a, 0, h, axis=axis)
    minus = jax.lax.slice_in_dim(a, h, 2 * h, axis=axis)
    return plus + minus if variance else plus - minus


def unmap_tiles(u, w_max, mapping: MappingConfig, K: int, N: int):
    """Inverse map for inspection: targets (or effective normalized conductances) -> weights ``(K, N)``.

    Args:
      u: ``(P, Kt, Nt, R, Cp)`` targets of :func:`map_weights`, or effective
        normalized conductances ``(G - g_min) / (g_max - g_min)`` of that shape.
      w_max: the weight scale :func:`map_weights` returned (a scalar or ``(N,)``).
      mapping: :class:`MappingConfig` the weights were mapped with.
      K, N: the weight matrix's shape.

    Returns:
      ``(K, N)`` weights in the units of the mapped ``W``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from crossjax import mapping
      >>> W = jax.random.normal(jax.random.key(0), (5, 3))
      >>> m = mapping.MappingConfig(weight_scale="column")
      >>> u, w_max = mapping.map_weights(W, m, rows=4, cols=2)
      >>> u.shape  # Kt = ceil(5 / 4) = 2, Nt = ceil(3 / 2) = 2
      (2, 2, 2, 4, 2)
      >>> bool(jnp.allclose(mapping.unmap_tiles(u, w_max, m, K=5, N=3), W))
      True
    """
    w = untile_weights(recombine(u, mapping, axis=0), K, N)
    return w * (w_max[None, :] if mapping.weight_scale == "column" else w_max)
