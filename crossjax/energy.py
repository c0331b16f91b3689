"""ADC energy of crossbar layers: energy per conversion, bits per column, energy per inference.

Model (units: joules, bits).

* **Energy per conversion** ``E(b)`` of a b-bit column ADC, law configurable in
  :class:`ADCEnergyModel`:

  - ``"walden"`` (default): ``E = e_step * 2**b``. The Walden figure of merit
    FoM = P / (f_s * 2**ENOB) treats each of the 2**b conversion steps as
    costing ``e_step``; it describes flash and, to first order, SAR converters
    at the low resolutions (2..10 bits) of crossbar columns. Default
    ``e_step = 10 fJ`` per conversion step, an assumption of the order of
    published low-power SAR ADCs (B. Murmann, "ADC Performance Survey");
    energy *ratios* (the improvement) do not depend on ``e_step``.
  - ``"linear"``: ``E = e_step * b`` (successive-approximation cost dominated by
    one comparator decision per bit; the pessimistic case for savings).
  - ``"schreier"``: ``E = e_step * 4**b`` (thermal-noise-limited converters,
    Schreier FoM; the optimistic case).

* **Bits a column needs** (Ibrayev et al., arXiv 2403.13082): a dense column of a
  T-row tile needs ``b0 = ceil(log2 T) + 2`` bits (8 at T = 64); a column with
  at most ``T * 2**-k`` non-zeros needs ``k`` fewer. ``k`` is capped at
  ``floor(log2 T)`` (one non-zero left; an all-zero column gets the same cap).
  Per tile (``per="tile"``, as in the paper) every column of the tile gets the
  bits of its densest column; per column (``per="column"``) each column its own
  (the kernels' ``ADCConfig.bits`` accepts an array broadcast over
  ``(Kt, Nt, C)`` columns).

* **Conversions per inference** of a layer = ``n_vectors * conversions_per_column
  * n_columns``: ``n_vectors`` input vectors per inference (1 for a dense
  layer, the number of output positions H_out*W_out for a conv layer),
  ``n_columns`` the crossbar columns that hold a real output segment
  (``Kt * N``; padding columns are assumed power-gated; with
  ``skip_empty_columns`` all-zero columns are not converted either, as in the
  sparse mapping), ``conversions_per_column`` covers bit-serial input slices
  and separately converted differential arrays.

* **Energy** ``E_layer = n_vectors * conversions_per_column * sum_columns E(b_col)``;
  model energy is the sum over layers; the improvement of a pruned model is
  ``E_dense / E_pruned`` with every column of the dense model at ``b0``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from crossjax.tiling import check_matrix, check_tile_size, flatten_kernel, grid, real_columns, tile

__all__ = [
    "ADCEnergyModel",
    "LAWS",
    "conversion_energy",
    "dense_column_bits",
    "bits_reduction",
    "column_bits",
    "layer_conversions",
    "layer_adc_energy",
    "adc_energy_improvement",
    "model_adc_energy",
]

LAWS = ("walden", "linear", "schreier")
BITS_MODES = ("dense", "tile", "column")


@struct.dataclass
class ADCEnergyModel:
    """ADC energy law ``E(b)`` (module doc). ``law`` static; ``e_step`` joules (a pytree leaf)."""

    e_step: float = 10e-15
    law: str = struct.field(pytree_node=False, default="walden")

    def __post_init__(self):
        if self.law not in LAWS:
            raise ValueError(f"ADCEnergyModel.law must be one of {LAWS}, got {self.law!r}")
        if not isinstance(self.e_step, jax.core.Tracer) and not float(self.e_step) > 0:
            raise ValueError(f"ADCEnergyModel.e_step must be > 0 joules, got {self.e_step!r}")


def conversion_energy(bits, model: ADCEnergyModel = ADCEnergyModel()):
    """Energy of one b-bit conversion, joules (``bits`` any array).

    Args:
      bits: ADC resolution in bits, scalar or array of any shape.
      model: :class:`ADCEnergyModel` (law and ``e_step``, joules).

    Returns:
      Float array of ``bits``' shape, joules per conversion.

    Example:
      Walden law: each extra bit doubles the energy (10 fJ per step by default):

      >>> import jax.numpy as jnp
      >>> from crossjax.energy import ADCEnergyModel, conversion_energy
      >>> [round(float(e) * 1e12, 4) for e in conversion_energy(jnp.array([6, 8]))]  # pJ
      [0.64, 2.56]
      >>> round(float(conversion_energy(8, ADCEnergyModel(law="linear"))) * 1e15, 4)  # fJ
      80.0
    """
    b = jnp.asarray(bits, dtype=jnp.result_type(float))
    if model.law == "walden":
        return model.e_step * 2.0**b
    if model.law == "linear":
        return model.e_step * b
    return model.e_step * 4.0**b


def dense_column_bits(rows):
    """ADC bits of a dense column of a ``rows``-row tile: ``ceil(log2 rows) + 2``.

    Args:
      rows: tile rows ``T``.

    Returns:
      Python int, bits.

    Example:
      >>> from crossjax.energy import dense_column_bits
      >>> dense_column_bits(64), dense_column_bits(100), dense_column_bits(128)
      (8, 9, 9)
    """
    check_tile_size(rows, 1)
    return int(math.ceil(math.log2(rows))) + 2


def bits_reduction(nonzeros, rows):
    """Largest ``k <= floor(log2 rows)`` with ``nonzeros <= rows * 2**-k`` (exact integers).

    Args:
      nonzeros: non-zero weights per column, int array of any shape (e.g. ``(Kt, Nt, C)``).
      rows: tile rows ``T``.

    Returns:
      int32 array of ``nonzeros``' shape: bits saved per column, in
      ``[0, floor(log2 rows)]`` (0 also for ``nonzeros > rows``).

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax.energy import bits_reduction
      >>> bits_reduction(jnp.array([64, 33, 32, 16, 1, 0]), 64).tolist()
      [0, 0, 1, 2, 6, 6]
    """
    check_tile_size(rows, 1)
    k_max = int(math.floor(math.log2(rows)))
    p = 2 ** np.arange(k_max + 1)
    nz = jnp.asarray(nonzeros)[..., None]
    return (jnp.sum(nz * p <= rows, axis=-1) - 1).clip(0).astype(jnp.int32)


def column_bits(W, rows, cols, per="tile"):
    """ADC bits per crossbar column, int32 ``(Kt, Nt, C)`` (``per``: "dense", "tile", "column").

    Args:
      W: weights ``(K, N)``; their exact zeros (and padding rows) lower the bits.
      rows: tile rows ``T``.
      cols: tile columns ``C``.
      per: ``"dense"`` (every column at :func:`dense_column_bits`), ``"tile"``
        (every column of a tile at the bits of its densest real column) or
        ``"column"`` (each column its own).

    Returns:
      int32 ``(Kt, Nt, C)`` bits; padding columns get a value too (they do not
      lower a tile's bits).

    Raises:
      ValueError: unknown ``per``.

    Example:
      On 8-row tiles (5 bits dense), tile 0's columns hold 2 and 4 non-zeros
      (3 and 4 bits); per tile both get 4 bits. Tile 1 is dense:

      >>> import jax.numpy as jnp
      >>> from crossjax.energy import column_bits
      >>> W = jnp.zeros((8, 4)).at[:2, 0].set(1.0).at[:4, 1].set(1.0).at[:, 2:].set(1.0)
      >>> column_bits(W, 8, 2).tolist(), column_bits(W, 8, 2, per="column").tolist()
      ([[[4, 4], [5, 5]]], [[[3, 4], [5, 5]]])
    """
    check_matrix(W)
    check_tile_size(rows, cols)
    if per not in BITS_MODES:
        raise ValueError(f"per must be one of {BITS_MODES}, got {per!r}")
    W = jnp.asarray(W)
    K, N = W.shape
    Kt, Nt = grid(K, N, rows, cols)
    b0 = dense_column_bits(rows)
    if per == "dense":
        return jnp.full((Kt, Nt, cols), b0, jnp.int32)
    k = bits_reduction(jnp.sum(tile(W != 0, rows, cols), axis=2), rows)  # (Kt, Nt, C)
    if per == "tile":
        real = real_columns(N, cols)
        k = jnp.broadcast_to(jnp.min(jnp.where(real, k, 10**6), axis=-1, keepdims=True), k.shape)
    return (b0 - k).astype(jnp.int32)


def _real_columns(K, N, rows, cols):
    """``(Kt, Nt, C)``: :func:`crossjax.tiling.real_columns` for every row tile."""
    Kt, _ = grid(K, N, rows, cols)
    return np.broadcast_to(real_columns(N, cols), (Kt,) + real_columns(N, cols).shape)


def layer_conversions(W, rows, cols, n_vectors=1, conversions_per_column=1, skip_empty_columns=False):
    """ADC conversions per inference of one layer (module doc).

    Args:
      W: weights ``(K, N)``.
      rows: tile rows ``T``.
      cols: tile columns ``C``.
      n_vectors: input vectors per inference (1 for a dense layer, output
        positions for a conv layer).
      conversions_per_column: conversions per column and input vector (bit
        slices, separately converted differential arrays).
      skip_empty_columns: if True, all-zero crossbar columns are not converted.

    Returns:
      Integer scalar array, conversions per inference.

    Example:
      ``(8, 3)`` on 4 x 2 tiles: 2 row tiles x 3 real columns (the padding
      column is not converted); one of the 6 column segments is all zero:

      >>> import jax.numpy as jnp
      >>> from crossjax.energy import layer_conversions
      >>> W = jnp.ones((8, 3)).at[:4, 2].set(0.0)
      >>> int(layer_conversions(W, 4, 2)), int(layer_conversions(W, 4, 2, n_vectors=10))
      (6, 60)
      >>> int(layer_conversions(W, 4, 2, skip_empty_columns=True))
      5
    """
    check_matrix(W)
    check_tile_size(rows, cols)
    W = jnp.asarray(W)
    active = _real_columns(*W.shape, rows, cols)
    if skip_empty_columns:
        active = active & jnp.any(tile(W != 0, rows, cols), axis=2)
    return n_vectors * conversions_per_column * jnp.sum(active)


def layer_adc_energy(
    W,
    rows,
    cols,
    n_vectors=1,
    model: ADCEnergyModel = ADCEnergyModel(),
    per="tile",
    conversions_per_column=1,
    skip_empty_columns=False,
):
    """ADC energy per inference of one layer, joules (module doc). ``per="dense"``: the dense baseline.

    Args:
      W: weights ``(K, N)``.
      rows: tile rows ``T``.
      cols: tile columns ``C``.
      n_vectors: input vectors per inference.
      model: :class:`ADCEnergyModel`.
      per: bits mode of :func:`column_bits`.
      conversions_per_column: conversions per column and input vector.
      skip_empty_columns: if True, all-zero crossbar columns cost nothing.

    Returns:
      Float scalar array, joules per inference.

    Example:
      The layer of :func:`column_bits`: dense, 4 columns at 5 bits (320 fJ
      each); pruned, 2 columns at 4 bits and 2 at 5:

      >>> import jax.numpy as jnp
      >>> from crossjax.energy import layer_adc_energy
      >>> W = jnp.zeros((8, 4)).at[:2, 0].set(1.0).at[:4, 1].set(1.0).at[:, 2:].set(1.0)
      >>> [round(float(layer_adc_energy(W, 8, 2, per=per)) * 1e12, 4) for per in ("dense", "tile")]  # pJ
      [1.28, 0.96]
    """
    W = jnp.asarray(W)
    bits = column_bits(W, rows, cols, per)
    active = _real_columns(*W.shape, rows, cols)
    if skip_empty_columns:
        active = active & jnp.any(tile(W != 0, rows, cols), axis=2)
    e = jnp.sum(jnp.where(active, conversion_energy(bits, model), 0.0))
    return n_vectors * conversions_per_column * e


def adc_energy_improvement(
    W, rows, cols, n_vectors=1, model: ADCEnergyModel = ADCEnergyModel(), per="tile", conversions_per_column=1
):
    """``E_dense / E_pruned`` of one layer: all columns at ``b0`` vs the bits ``W``'s zeros allow.

    Args:
      W: weights ``(K, N)``.
      rows: tile rows ``T``.
      cols: tile columns ``C``.
      n_vectors: input vectors per inference (cancels in the ratio).
      model: :class:`ADCEnergyModel` (the ratio depends on its law, not on ``e_step``).
      per: bits mode of the pruned layer (:func:`column_bits`).
      conversions_per_column: conversions per column and input vector (cancels).

    Returns:
      Float scalar array, dimensionless (>= 1).

    Example:
      One non-zero per 64-row column: 2 bits instead of 8, ``2**8 / 2**2 = 64``
      times less energy under the Walden law:

      >>> import jax.numpy as jnp
      >>> from crossjax.energy import adc_energy_improvement
      >>> round(float(adc_energy_improvement(jnp.eye(64), 64, 64)), 4)
      64.0
    """
    dense = layer_adc_energy(W, rows, cols, n_vectors, model, "dense", conversions_per_column)
    return dense / layer_adc_energy(W, rows, cols, n_vectors, model, per, conversions_per_column)


def model_adc_energy(
    kernels,
    rows,
    cols,
    n_vectors=None,
    model: ADCEnergyModel = ADCEnergyModel(),
    per="tile",
    conversions_per_column=1,
    skip_empty_columns=False,
):
    """ADC energy per inference of a model, dense baseline vs its current zeros.

    ``kernels``: ``{name: kernel}`` (e.g. ``pruning.crossbar_kernels(nnx.state(model, nnx.Param))``),
    kernels (K, N) or conv (kh, kw, Cin, Cout). ``n_vectors``: ``{name: input vectors per
    inference}`` (conv output positions; default 1 for every layer). Returns
    ``{"layers": {name: {"dense", "pruned", "improvement"}}, "dense", "pruned", "improvement"}``
    in joules (concrete floats).

    Args:
      kernels: ``{name: kernel}``, kernels ``(K, N)`` or ``(kh, kw, Cin, Cout)``.
      rows: tile rows ``T``.
      cols: tile columns ``C``.
      n_vectors: optional ``{name: input vectors per inference}``.
      model: :class:`ADCEnergyModel`.
      per: bits mode of the pruned model (:func:`column_bits`).
      conversions_per_column: conversions per column and input vector.
      skip_empty_columns: if True, all-zero columns of the pruned model cost nothing.

    Returns:
      Dict of Python floats: ``"dense"`` and ``"pruned"`` in joules per
      inference, ``"improvement"`` their ratio (``inf`` for zero pruned energy),
      for the model and for each layer under ``"layers"``.

    Raises:
      ValueError: ``n_vectors`` names a layer that is not in ``kernels``.

    Example:
      A pruned dense layer next to an unpruned conv layer read at 9 positions:

      >>> import jax.numpy as jnp
      >>> from crossjax.energy import model_adc_energy
      >>> fc = jnp.zeros((8, 4)).at[:2, 0].set(1.0).at[:4, 1].set(1.0).at[:, 2:].set(1.0)
      >>> out = model_adc_energy({"fc": fc, "conv": jnp.ones((2, 2, 2, 4))}, 8, 2, n_vectors={"conv": 9})
      >>> {name: round(layer["improvement"], 4) for name, layer in out["layers"].items()}
      {'fc': 1.3333, 'conv': 1.0}
      >>> round(out["dense"] * 1e12, 4), round(out["improvement"], 4)  # pJ, ratio
      (12.8, 1.0256)
    """
    n_vectors = n_vectors or {}
    unknown = set(n_vectors) - set(kernels)
    if unknown:
        raise ValueError(f"n_vectors names layers that are not in kernels: {sorted(unknown)}")
    layers = {}
    for name, k in kernels.items():
        W = flatten_kernel(jnp.asarray(k))
        nv = n_vectors.get(name, 1)
        d = float(layer_adc_energy(W, rows, cols, nv, model, "dense", conversions_per_column))
        p = float(layer_adc_energy(W, rows, cols, nv, model, per, conversions_per_column, skip_empty_columns))
        layers[name] = {"dense": d, "pruned": p, "improvement": d / p if p > 0 else math.inf}
    dense = sum(v["dense"] for v in layers.values())
    pruned = sum(v["pruned"] for v in layers.values())
    return {
        "layers": layers,
        "dense": dense,
        "pruned": pruned,
        "improvement": dense / pruned if pruned > 0 else math.inf,
    }
