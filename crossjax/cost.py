"""Energy, latency and area of the simulated crossbar hardware, per layer and per model.

The cost is computed from what the accuracy is computed from: the programmed
conductances of a :class:`crossjax.crossbar.CrossbarState`, the row voltages
the DAC makes of the layer's actual inputs (:func:`crossjax.converters.apply_dac`),
the circuit's node voltages where the wires have resistance, and the ADC bits
and mapping of the :class:`~crossjax.hardware.HardwareConfig`. Every figure is
a JAX array of a pure function, so it is jitted, vmapped and differentiated
like the accuracy (``jax.grad`` of the energy w.r.t. the weights, ``dac.v_read``,
``device.g_max`` or any cost figure below).

Per input vector ``x`` (one row of the layer's crossbar matrix input; a conv
layer reads one per output position) and per array ``(p, kt, nt)`` of the
tiled layer (``P`` arrays of the mapping x ``Kt`` row tiles x ``Nt`` column
tiles), with ``S`` input slices ``V_s`` (bit-serial slices, pulse-width time
steps, or one amplitude):

* **array read** (joules): the power the row drivers deliver, times the read
  time: ``E = sum_s tau_s sum_i V_s,i I_s,i`` with the row current
  ``I_i = sum_j g_ij (v_row,ij - v_col,ij)`` of the circuit's node voltages
  (:func:`crossjax.circuit.node_voltages`, exact, wires and the source/sink
  resistances included); with ideal wires ``I_i = V_i sum_j g_ij``.
  ``g`` is the programmed (noisy) conductance, an access transistor's
  ``r_series`` folded in. ``tau_s = t_read`` per bit-serial slice or amplitude
  read; a pulse-width input's full-scale pulse lasts ``t_read`` (each of its
  ``n`` time steps ``t_read / n``). Columns that hold no output (tile padding,
  empty slots of the sparse layout, and with ``skip_empty`` columns whose
  weights are all zero in that row tile) are disconnected: no current, no
  conversion. Nonlinear cells are refused (the row currents need their
  I-V law; see :mod:`crossjax.circuit`).
* **DAC** (joules): one conversion per driven row per slice,
  ``E_dac(b) = dac.energy * b`` for a ``b``-bit conversion (``b = slice_bits``
  bit-serial, the DAC bits for amplitude, 1 for a pulse driver). Rows of
  arrays with no connected column are not driven.
* **ADC** (joules): one conversion per connected column per read-out array
  (``mapping.read_arrays``) per slice (one per read for pulse width, whose
  column integrates the pulse), at ``E_adc(b)`` of :class:`ADCCost`:
  ``"walden"`` ``E = FoM_W 2^b``; ``"schreier"``
  ``E = 10^((6.02 b + 1.76 - FoM_S) / 10) / 2`` (a Nyquist converter of
  SNDR ``6.02 b + 1.76`` dB); or ``"table"`` (log-linear interpolation).
  ``bits`` per column: ``adc.bits`` (scalar or per column) or the
  ``adc_bits`` argument ``(Kt, Nt, C)`` (D.U.B. per-tile bits,
  :func:`crossjax.energy.column_bits`).
* **digital** (joules): shift-add of the slices and of the mapping's arrays
  (``(S_conv - 1) P_read + (P_read - 1)`` adds per connected column),
  accumulation of the row tiles (``Kt_connected - 1`` adds per output), and
  buffer traffic (the input vector at the DAC bits, the output vector at
  ``digital.output_bits``, ``digital.buffer`` joules per byte).

**Latency** (seconds, per input vector of a layer): every array of the layer
reads at once; a slice takes ``max(t_read, share / rate)`` (the array read of
one slice overlaps the ``share`` conversions of the previous one, as with
ISAAC's sample-and-hold), plus one conversion pass to drain:
``t_vector = S_conv * max(t_read, share/rate) + share/rate``. The vectors of a
layer are read one after another on the same arrays (no weight replication).
A model's ``latency`` runs its layers one after another; ``interval`` is the
slowest layer's time per inference (layer pipelining across inferences, as in
ISAAC).

**Area** (mm^2): cells ``cell_f2 * F^2`` each (``"1R"`` 4 F^2, ``"1T1R"``
12 F^2; the type follows the config: an access transistor's ``r_series``
makes it 1T1R), for every array that holds a connected column (an array
with none is not built); per built array ``R`` DACs and ``ceil(C / share)``
ADCs (area ``adc.area * 2^(b - 8)`` at the array's largest bits) each with
a shift-add unit; the buffers (``digital.buffer_area`` per byte of the
input and output vectors).

Default figures (all fields of the configs below, sources in their
docstrings): ISAAC (Shafiee et al., ISCA 2016, 32 nm) for the array read
time, DAC, ADC rate and areas; the Murmann ADC survey (2025) for the Walden
figure of merit; Horowitz (ISSCC 2014, 45 nm) for the digital adds and SRAM
bytes. Change them to the chip you model; ratios between designs depend
less on them than absolute joules.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from crossjax import cost, crossbar
  >>> from crossjax.hardware import HardwareConfig
  >>> hw = HardwareConfig().set({"adc.bits": 8, "dac.bits": 8})
  >>> W, x = jnp.ones((64, 8)) * 0.1, jnp.ones((4, 64)) * 0.5
  >>> c = cost.layer_cost(x, crossbar.program(W, hw), hw)
  >>> sorted(c["energy"])
  ['adc', 'array', 'dac', 'digital']
  >>> bool(c["energy"]["adc"] > 0), c["conversions"].tolist()
  (True, 16.0)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx, struct

from crossjax import config_checks as chk
from crossjax import converters, layers
from crossjax.circuit import node_voltages

__all__ = [
    "ADCCost",
    "DACCost",
    "ArrayCost",
    "DigitalCost",
    "CostConfig",
    "ADC_LAWS",
    "CELL_TYPES",
    "adc_energy",
    "adc_area",
    "layer_cost",
    "model_cost",
    "programmed_cost",
    "total",
    "EnergyAwareLoss",
    "energy_aware_loss",
    "Component",
    "budget",
    "pareto_front",
]

ADC_LAWS = ("walden", "schreier", "table")
CELL_TYPES = ("auto", "1R", "1T1R")


@struct.dataclass
class ADCCost:
    """One column ADC (shared by ``share`` columns).

    Attributes:
      law: ``"walden"``, ``"schreier"`` or ``"table"`` (module doc). static.
      fom_walden: Walden figure of merit, joules per conversion step
        (``E = fom_walden 2^b``); default 20 fJ, the median of Nyquist ADCs at
        35-53 dB SNDR and 0.1-2 GS/s built since 2015 (Murmann, "ADC
        Performance Survey 1997-2025").
      fom_schreier: Schreier figure of merit, dB; default 165 dB (8 bits:
        1.55 pJ, about ISAAC's 8-bit 1.28 GS/s ADC, 2 mW / 1.28 GS/s = 1.56 pJ).
      table_bits: bits of the ``"table"`` law, increasing (static tuple).
      table_energy: joules per conversion at ``table_bits`` (interpolated
        linearly in ``log2 E``; bits outside the table are refused).
      rate: conversions per second of one ADC; default 1.28e9 (ISAAC).
      share: columns one ADC converts in turn (static); default 8.
      area: mm^2 of one 8-bit ADC, scaled by ``2^(b - 8)``; default 0.0012
        (ISAAC's 8-bit ADC, 32 nm).
    """

    law: str = struct.field(pytree_node=False, default="walden")
    fom_walden: float = 20e-15
    fom_schreier: float = 165.0
    table_bits: tuple = struct.field(pytree_node=False, default=())
    table_energy: tuple = ()
    rate: float = 1.28e9
    share: int = struct.field(pytree_node=False, default=8)
    area: float = 0.0012

    def __post_init__(self):
        chk.choice("adc.law", self.law, ADC_LAWS)
        chk.positive_int("adc.share", self.share)
        for name in ("fom_walden", "rate", "area"):
            chk.positive(f"adc.{name}", getattr(self, name), False)
        if self.law == "table":
            bits = tuple(self.table_bits)
            if len(bits) < 2 or any(b2 <= b1 for b1, b2 in zip(bits, bits[1:])):
                raise ValueError(f"adc.table_bits must hold >= 2 increasing bit counts, got {self.table_bits!r}")
            e = self.table_energy
            if isinstance(e, (tuple, list)):
                e = None if any(isinstance(v, jax.core.Tracer) for v in e) else np.asarray(e, dtype=float)
            else:
                e = chk.concrete(e, False)
            if e is not None and (np.shape(e) != (len(bits),) or not np.all(np.asarray(e) > 0)):
                raise ValueError(
                    f"adc.table_energy must hold {len(bits)} energies > 0 J (one per table_bits), "
                    f"got {self.table_energy!r}"
                )


@struct.dataclass
class DACCost:
    """Row DACs / drivers.

    Attributes:
      energy: joules per bit per conversion (``E_dac(b) = energy * b``);
        default 0.39 pJ: ISAAC's 1-bit DACs, 4 mW for 8 x 128 of them, one
        conversion per 100 ns read (4 mW x 100 ns / 1024).
      area: mm^2 per 1-bit DAC, ``b`` times that for ``b`` bits; default
        1.66e-7 (ISAAC: 0.00017 mm^2 / 1024).
    """

    energy: float = 0.39e-12
    area: float = 1.66e-7

    def __post_init__(self):
        chk.positive("dac.energy", self.energy, False)
        chk.positive("dac.area", self.area, False)


@struct.dataclass
class ArrayCost:
    """The crossbar arrays.

    Attributes:
      t_read: seconds of one read (an amplitude read or one bit-serial slice;
        a pulse-width input's full-scale pulse); default 100 ns (ISAAC's read
        cycle).
      feature: the technology's feature size F, metres; default 32 nm (ISAAC).
      cell_1r: F^2 per passive (1R) cell; default 4 (a cross-point cell).
      cell_1t1r: F^2 per 1T1R cell; default 12 (an access transistor of
        about 3x the minimum width beside the resistive element; published
        1T1R RRAM macros report 6-30 F^2).
      cell_type: ``"auto"`` (1T1R where the config's cell has ``r_series > 0``,
        else 1R), ``"1R"`` or ``"1T1R"``. static.
    """

    t_read: float = 100e-9
    feature: float = 32e-9
    cell_1r: float = 4.0
    cell_1t1r: float = 12.0
    cell_type: str = struct.field(pytree_node=False, default="auto")

    def __post_init__(self):
        chk.choice("array.cell_type", self.cell_type, CELL_TYPES)
        for name in ("t_read", "feature", "cell_1r", "cell_1t1r"):
            chk.positive(f"array.{name}", getattr(self, name), False)


@struct.dataclass
class DigitalCost:
    """The digital periphery.

    Attributes:
      add: joules per shift-add or accumulation (a 32-bit integer add, 0.1 pJ
        at 45 nm: Horowitz, "Computing's energy problem", ISSCC 2014).
      buffer: joules per byte moved to or from the layer buffers (a 64-bit
        read of an 8 KB SRAM, 10 pJ, per byte: 1.25 pJ; Horowitz 2014).
      output_bits: bits of each output word written back; default 16.
      shift_add_area: mm^2 per shift-add unit (one per ADC); default 6e-5
        (ISAAC's shift-and-add, 32 nm).
      buffer_area: mm^2 per byte of buffer; default 1.03e-6 (ISAAC's 2 KB input
        register, 0.0021 mm^2).
    """

    add: float = 0.1e-12
    buffer: float = 1.25e-12
    output_bits: int = struct.field(pytree_node=False, default=16)
    shift_add_area: float = 6e-5
    buffer_area: float = 1.03e-6

    def __post_init__(self):
        chk.positive_int("digital.output_bits", self.output_bits)
        for name in ("add", "buffer", "shift_add_area", "buffer_area"):
            chk.positive(f"digital.{name}", getattr(self, name), False)


@struct.dataclass
class CostConfig:
    """Every cost figure (frozen pytree: continuous figures are differentiable leaves).

    Attributes:
      adc, dac, array, digital: the component figures.
      skip_empty: columns whose weights are all zero in a row tile are
        disconnected and not converted, and arrays with no connected column
        are not built (what a pruning-aware mapping does). static.
    """

    adc: ADCCost = ADCCost()
    dac: DACCost = DACCost()
    array: ArrayCost = ArrayCost()
    digital: DigitalCost = DigitalCost()
    skip_empty: bool = struct.field(pytree_node=False, default=True)


# ---------------------------------------------------------------------------
# converters
# ---------------------------------------------------------------------------
def adc_energy(bits, adc: ADCCost = ADCCost()):
    """Joules of one ``bits``-bit conversion (module doc), elementwise.

    Args:
      bits: ADC bits, any shape.
      adc: :class:`ADCCost`.

    Returns:
      Energy per conversion, joules, the shape of ``bits``.

    Example:
      >>> float(adc_energy(8, ADCCost(law="schreier"))) * 1e12  # doctest: +ELLIPSIS
      1.55...
    """
    b = jnp.asarray(bits, dtype=jnp.result_type(float))
    if adc.law == "walden":
        return adc.fom_walden * 2.0**b
    if adc.law == "schreier":
        return 0.5 * 10.0 ** ((6.02 * b + 1.76 - adc.fom_schreier) / 10.0)
    tb = np.asarray(adc.table_bits, dtype=float)
    concrete = chk.concrete(bits, True)
    if concrete is not None and (np.min(concrete) < tb[0] or np.max(concrete) > tb[-1]):
        raise ValueError(
            f"adc_energy: bits {np.unique(concrete).tolist()} lie outside adc.table_bits "
            f"[{tb[0]:g}, {tb[-1]:g}]; extend the table"
        )
    log_e = jnp.log2(jnp.asarray(adc.table_energy, dtype=b.dtype))
    return 2.0 ** jnp.interp(b, jnp.asarray(tb, b.dtype), log_e)


def adc_area(bits, adc: ADCCost = ADCCost()):
    """mm^2 of one ``bits``-bit ADC: ``adc.area * 2^(bits - 8)`` (area, like a flash or SAR
    converter's comparators or capacitor array, doubles per bit).

    Args:
      bits: ADC bits, any shape.
      adc: :class:`ADCCost`.

    Returns:
      Area per ADC, mm^2, the shape of ``bits``.

    Example:
      >>> from crossjax import cost
      >>> round(float(cost.adc_area(8)), 4)  # ISAAC's 8-bit ADC
      0.0012
      >>> round(float(cost.adc_area(10) / cost.adc_area(8)), 4)  # two more bits: 4x the area
      4.0
    """
    return adc.area * 2.0 ** (jnp.asarray(bits, dtype=jnp.result_type(float)) - 8.0)


# ---------------------------------------------------------------------------
# one layer
# ---------------------------------------------------------------------------
def _connected(state, config, weights, skip_empty):
    """Connected columns ``(Kt, Nt, Cp)`` (bool) of a programmed state."""
    _, kt, nt, rows, cp = state.g.shape
    if state.column_index is not None:  # sparse layout: packed columns, -1 = empty slot
        return (state.column_index >= 0).reshape(kt, nt, cp)
    if config.mapping.reference_columns:  # offset scheme: every column of a tile (the reference included)
        active = jnp.ones((kt, nt, cp), bool)
    else:
        active = jnp.broadcast_to((jnp.arange(nt * cp) < state.out_features).reshape(1, nt, cp), (kt, nt, cp))
    if skip_empty and weights is not None:
        K, N = weights.shape
        w = jnp.pad(weights != 0, ((0, kt * rows - K), (0, nt * cp - N)))
        nonzero = jnp.any(w.reshape(kt, rows, nt, cp), axis=1)  # (Kt, Nt, Cp)
        active = active & nonzero
    return active


def _cell_conductance(g, config):
    cell = config.array.cell
    if cell is None:
        return g
    if not cell.is_linear:
        raise ValueError(
            "cost.layer_cost: the array read energy needs linear cells (array.cell.iv='linear'); "
            "nonlinear cells' row currents follow their I-V law, not modelled here"
        )
    return cell.series_folded(g)


def _is_1t1r(config, cost: CostConfig) -> bool:
    if cost.array.cell_type != "auto":
        return cost.array.cell_type == "1T1R"
    cell = config.array.cell
    if cell is None:
        return False
    r = chk.concrete(cell.r_series, False)
    return r is None or bool(np.any(np.asarray(r) > 0))


def _tile_rows(v, K, kt, rows):
    """Row voltages ``(..., K)`` -> ``(..., Kt, R)`` (padding rows at 0 V)."""
    v = jnp.pad(v, [(0, 0)] * (v.ndim - 1) + [(0, kt * rows - K)])
    return v.reshape(v.shape[:-1] + (kt, rows))


@jax.jit
def _row_power(vt, g, parasitics):
    """Power the drivers deliver, summed over inputs: ``vt (S, B, Kt, R)`` volts, ``g (P, Kt, Nt, R, C)``
    siemens (disconnected columns at 0) -> watts per slice ``(S,)``, summed over inputs and arrays."""
    if parasitics is None:  # I_i = V_i sum_j g_ij
        return jnp.einsum("sbkr,pknr->s", vt**2, jnp.sum(g, axis=-1))

    P, kt, nt, R, C = g.shape
    S, B = vt.shape[:2]
    v = jnp.moveaxis(vt, 2, 0).reshape(kt, S * B, R)  # (Kt, S*B, R) per row tile

    def one(args):
        gk, vk = args  # (R, C), (S*B, R)
        v_row, v_col = node_voltages(gk, vk, parasitics)  # (S*B, R, C)
        current = jnp.sum(gk * (v_row - v_col), axis=-1)  # (S*B, R) row currents
        return jnp.sum((vk * current).reshape(S, B, R), axis=(1, 2))

    gs = jnp.moveaxis(g, 1, 0).reshape(kt * P * nt, R, C)  # arrays, row tile leading
    vs = jnp.repeat(v, P * nt, axis=0)
    return jnp.sum(jax.lax.map(one, (gs, vs)), axis=0)


def layer_cost(x, state, config, cost: CostConfig = CostConfig(), *, weights=None, adc_bits=None) -> dict:
    """Energy per input vector, latency and area of one programmed crossbar layer.

    Args:
      x: the layer's crossbar inputs ``(..., K)`` (for a conv layer, its patches);
        the energies are means over these vectors.
      state: the layer's :class:`~crossjax.crossbar.CrossbarState` (``crossbar.program``).
      config: the :class:`~crossjax.hardware.HardwareConfig` it was programmed with.
      cost: :class:`CostConfig`.
      weights: the logical matrix ``(K, N)`` whose zeros mark empty columns
        (``cost.skip_empty``); ``None``: every column holding an output is connected.
      adc_bits: ADC bits per column ``(Kt, Nt, C)`` (e.g. D.U.B.'s
        :func:`crossjax.energy.column_bits`), instead of ``config.adc.bits``.

    Returns:
      ``{"energy": {"array", "dac", "adc", "digital"}`` (joules per input vector),
      ``"latency"`` (seconds per vector), ``"area": {"cells", "dac", "adc", "digital"}``
      (mm^2), ``"conversions"`` (ADC conversions per vector), ``"arrays"`` (arrays
      built), ``"slices"`` (input slices per vector)}; every value a scalar array.

    Raises:
      ValueError: ``x``'s last axis is not ``K``; nonlinear cells; ``adc_bits`` of
        the wrong shape.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import cost, crossbar
      >>> from crossjax.hardware import HardwareConfig
      >>> hw = HardwareConfig().set({"adc.bits": 8, "dac.bits": 8, "array.rows": 4, "array.cols": 4})
      >>> W = jnp.array([[0.5, 0.0, -0.25], [1.0, 0.0, 0.5]])  # (K, N) = (2, 3), column 1 all zero
      >>> state, x = crossbar.program(W, hw), jnp.full((3, 2), 0.5)
      >>> c = cost.layer_cost(x, state, hw)
      >>> c["arrays"].tolist(), c["conversions"].tolist()  # one differential pair: 3 columns x 2 arrays
      (2.0, 6.0)
      >>> cost.layer_cost(x, state, hw, weights=W)["conversions"].tolist()  # the zero column is not read
      4.0
    """
    x = jnp.asarray(x)
    K = state.in_features
    if x.ndim < 1 or x.shape[-1] != K:
        raise ValueError(f"x: expected (..., {K}) crossbar inputs for this layer, got shape {x.shape}")
    x = x.reshape(-1, K)
    n_vec = x.shape[0]
    P, kt, nt, rows, cp = state.g.shape
    connected = _connected(state, config, weights, cost.skip_empty)  # (Kt, Nt, Cp)
    built = jnp.any(connected, axis=-1)  # (Kt, Nt) arrays with a connected column
    g = _cell_conductance(state.g, config) * connected[None, :, :, None, :]

    # inputs -> row voltages per slice
    v, _, _ = converters.apply_dac(x, config.dac)  # (S, B, K)
    S = v.shape[0]
    pulse = config.dac.bits is not None and config.dac.encoding == "pulse_width"
    tau = cost.array.t_read / S if pulse else cost.array.t_read
    vt = _tile_rows(v, K, kt, rows) * built.any(axis=1)[None, None, :, None]  # rows of unbuilt row tiles idle
    e_array = tau * jnp.sum(_row_power(vt, g, config.array.parasitics)) / n_vec

    # DAC: one conversion per driven row per slice
    dac_bits = 1 if pulse else (config.dac.slice_bits or config.dac.bits or 8)
    real_rows = jnp.asarray((np.arange(kt * rows) < K).reshape(kt, rows).sum(axis=1))  # (Kt,)
    driven = P * jnp.sum(built * real_rows[:, None])
    dac_conv = (1 if pulse else S) * driven
    e_dac = dac_conv * cost.dac.energy * dac_bits

    # ADC: per connected column, read-out array and converted slice
    s_conv = 1 if pulse else S
    p_read = config.mapping.read_arrays
    if adc_bits is not None:
        bits = jnp.asarray(adc_bits)
        if bits.shape != (kt, nt, cp):
            raise ValueError(f"adc_bits: expected per-column bits {(kt, nt, cp)} (Kt, Nt, C), got {bits.shape}")
    elif config.adc.bits is not None:
        bits = jnp.broadcast_to(converters.tile_column_bits(config.adc.bits, (kt, nt, cp)), (kt, nt, cp))
    else:
        bits = None
    n_conn = jnp.sum(connected)
    if bits is None:  # no ADC modelled (ideal read-out): nothing converted
        e_adc, conversions, t_conv = jnp.zeros(()), jnp.zeros(()), 0.0
        adc_units = jnp.zeros(())
        a_adc = jnp.zeros(())
    else:
        e_adc = s_conv * p_read * jnp.sum(jnp.where(connected, adc_energy(bits, cost.adc), 0.0))
        conversions = (s_conv * p_read * n_conn).astype(e_adc.dtype)
        t_conv = cost.adc.share / cost.adc.rate
        per_array = math.ceil(cp / cost.adc.share)
        adc_units = p_read * per_array * jnp.sum(built)
        tile_bits = jnp.max(jnp.where(connected, bits, 0), axis=-1)  # (Kt, Nt)
        a_adc = p_read * per_array * jnp.sum(jnp.where(built, adc_area(tile_bits, cost.adc), 0.0))

    # digital periphery
    adds = n_conn * ((s_conv - 1) * p_read + (p_read - 1)) + jnp.maximum(jnp.sum(connected, axis=0) - 1, 0).sum()
    in_bytes = K * (config.dac.bits or 8) / 8.0
    out_bytes = state.out_features * cost.digital.output_bits / 8.0
    e_digital = adds * cost.digital.add + (in_bytes + out_bytes) * cost.digital.buffer

    # latency per vector
    t_slice = jnp.maximum(cost.array.t_read, t_conv)
    latency = (1 if pulse else S) * t_slice + t_conv

    # area
    f2 = cost.array.cell_1t1r if _is_1t1r(config, cost) else cost.array.cell_1r
    n_built = P * jnp.sum(built)
    a_cells = n_built * rows * cp * f2 * (cost.array.feature * 1e3) ** 2  # m -> mm
    a_dac = n_built * rows * cost.dac.area * dac_bits
    a_digital = adc_units * cost.digital.shift_add_area + (in_bytes + out_bytes) * cost.digital.buffer_area
    dtype = e_array.dtype
    f = lambda a: jnp.asarray(a, dtype)  # noqa: E731
    return {
        "energy": {"array": e_array, "dac": f(e_dac), "adc": f(e_adc), "digital": f(e_digital)},
        "latency": f(latency),
        "area": {"cells": f(a_cells), "dac": f(a_dac), "adc": f(a_adc), "digital": f(a_digital)},
        "conversions": f(conversions),
        "arrays": f(n_built),
        "slices": f(S),
    }


def total(parts: dict):
    """The sum of a ``{"component": value}`` breakdown.

    Args:
      parts: ``{component: value}``, values numbers or arrays that broadcast together
        (e.g. the ``"energy"`` joules or ``"area"`` mm^2 of :func:`layer_cost`).

    Returns:
      The sum, in the units of the values (a JAX array, or ``0`` for an empty dict).

    Example:
      >>> from crossjax import cost
      >>> round(float(cost.total({"array": 2.0, "adc": 1.5, "dac": 0.5})), 4)
      4.0
    """
    return sum(jnp.asarray(v) for v in parts.values())


# ---------------------------------------------------------------------------
# a model
# ---------------------------------------------------------------------------
def model_cost(model, x, cost: CostConfig = CostConfig(), *, key=None, adc_bits=None) -> dict:
    """Energy and latency per inference, area, per layer and for the model.

    Runs ``model`` on ``x`` (``crossjax.layers.run``) and records each crossbar
    layer's crossbar inputs (patches for convolutions) as the layer reads them;
    each layer is then costed with :func:`layer_cost` on its programmed state:
    the installed one in ``"hardware"`` mode (the state the accuracy was measured
    on), or, in ``"train"`` mode, ``layer.program`` of its current weights (so
    ``jax.grad`` reaches the weights; ``fold_in(key, i)`` per layer ``i``).

    Args:
      model: a crossjax or converted model in ``"hardware"`` or ``"train"`` mode.
      x: a batch of model inputs; energies are per inference (means over the batch).
      cost: :class:`CostConfig`.
      key: PRNG key of the run (noise) and of train-mode programming; default ``key(0)``.
      adc_bits: ``{layer path string: (Kt, Nt, C) bits}`` overriding ``adc.bits`` per layer.

    Returns:
      ``{"layers": {path: {"energy": {...}, "latency", "area": {...}, "vectors", ...}},
      "energy": {component: J per inference}, "energy_total", "latency" (s per
      inference, layers in sequence), "interval" (s, slowest layer: layer-pipelined),
      "area": {component: mm^2}, "area_total", "logits"}``.

    Raises:
      ValueError: the model has no crossbar layer, or is in ``"digital"`` mode.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from crossjax import cost, layers, models
      >>> from crossjax.hardware import HardwareConfig
      >>> hw = HardwareConfig().set({"adc.bits": 6, "dac.bits": 6})
      >>> model = models.MLP(8, (4,), 2, rngs=nnx.Rngs(0))
      >>> _ = layers.set_mode(model, "hardware", hw)
      >>> _ = layers.load_program(model, layers.program_model(model, hw, jax.random.key(0)))
      >>> c = cost.model_cost(model, jnp.full((2, 8), 0.5))
      >>> sorted(c["layers"]), c["logits"].shape
      (['layers.0', 'layers.1'], (2, 2))
      >>> bool(jnp.allclose(c["energy_total"], cost.total(c["energy"])))
      True
      >>> bool(c["latency"] >= c["interval"])  # layers in sequence vs the slowest layer
      True
    """
    key = jax.random.key(0) if key is None else key
    found = layers.crossbar_layers(model)
    if not found:
        raise ValueError("model_cost: the model has no crossbar layer (crossjax.convert it or use crossjax.models)")
    modes = {layer.mode for _, layer in found}
    if "digital" in modes:
        raise ValueError(
            "model_cost: the model is in 'digital' mode; cost is that of a crossbar: "
            "crossjax.layers.set_mode(model, 'hardware', hw) and load_program(...) "
            "(or set_mode(model, 'train', hw) for a differentiable cost)"
        )
    adc_bits = adc_bits or {}
    names = {".".join(map(str, path)) for path, _ in found}
    if set(adc_bits) - names:
        raise ValueError(
            f"model_cost: adc_bits names layers the model does not have: {sorted(set(adc_bits) - names)}; "
            f"its crossbar layers are {sorted(names)}"
        )
    batch = jnp.asarray(x).shape[0]
    with layers.record_inputs() as calls:
        logits = layers.run(model, x, key)
    index = {id(layer): (i, ".".join(map(str, path))) for i, (path, layer) in enumerate(found)}
    per_layer, energies, latency, interval = {}, {}, 0.0, 0.0
    area: dict = {}
    for layer, inputs in calls:
        i, name = index[id(layer)]
        config = layer.active_config()
        if layer.mode == "hardware":
            state = layer.programmed_state()
        else:
            state = layer.program(config, jax.random.fold_in(key, 10_000 + i))
        W = layer.crossbar_weights()
        bits = adc_bits.get(name)
        if bits is not None and layer.groups > 1:
            raise ValueError(
                f"model_cost: adc_bits[{name!r}] given for a grouped layer ({layer.groups} groups); "
                "per-column bits apply to ungrouped layers only"
            )
        if layer.groups == 1:
            c = layer_cost(inputs, state, config, cost, weights=W, adc_bits=bits)
        else:  # (..., G, K/G) inputs, one state per group: sum the groups
            xs = jnp.moveaxis(inputs.reshape((-1,) + inputs.shape[-2:]), -2, 0)
            c = jax.vmap(lambda xg, sg, wg: layer_cost(xg, sg, config, cost, weights=wg))(xs, state, W)
            c = jax.tree.map(lambda a: jnp.sum(a, axis=0), c)
            c["latency"] = c["latency"] / layer.groups  # the groups' arrays read at once
            c["slices"] = c["slices"] / layer.groups
        vectors = math.prod(inputs.shape[: -1 if layer.groups == 1 else -2]) / batch
        c = dict(c, vectors=jnp.asarray(vectors))
        c["energy"] = {k: v * vectors for k, v in c["energy"].items()}
        c["latency"] = c["latency"] * vectors
        c["conversions"] = c["conversions"] * vectors
        if name in per_layer:  # a layer called twice (shared weights): its work adds, its area does not
            prev = per_layer[name]
            c["energy"] = {k: prev["energy"][k] + v for k, v in c["energy"].items()}
            c["latency"] = prev["latency"] + c["latency"]
            c["conversions"] = prev["conversions"] + c["conversions"]
            c["vectors"] = prev["vectors"] + c["vectors"]
        per_layer[name] = c
    for c in per_layer.values():
        for k, v in c["energy"].items():
            energies[k] = energies.get(k, 0.0) + v
        for k, v in c["area"].items():
            area[k] = area.get(k, 0.0) + v
        latency = latency + c["latency"]
        interval = jnp.maximum(interval, c["latency"])
    return {
        "layers": per_layer,
        "energy": energies,
        "energy_total": total(energies),
        "latency": latency,
        "interval": interval,
        "area": area,
        "area_total": total(area),
        "logits": logits,
    }


def programmed_cost(model, hardware, x, key=None, cost: CostConfig = CostConfig(), **kwargs) -> dict:
    """:func:`model_cost` of a copy of ``model`` programmed on ``hardware`` with ``key``, as plain floats.

    What the studies record per config. A calibrated ADC range is costed as
    ``"max"`` (the range does not change the cost).

    Args:
      model: a crossjax or converted model (any mode; it is not changed).
      hardware: the :class:`~crossjax.hardware.HardwareConfig`.
      x: model inputs; the energies are per inference, averaged over them.
      key: the programming (and read) key; default ``key(0)``.
      cost: :class:`CostConfig`.
      **kwargs: more :func:`model_cost` arguments (``adc_bits``).

    Returns:
      ``{"energy_J", "energy_breakdown_J", "latency_s", "interval_s", "area_mm2",
      "area_breakdown_mm2"}`` (floats), or ``{"unavailable": reason}`` for nonlinear cells.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from crossjax import cost, models
      >>> from crossjax.hardware import HardwareConfig
      >>> model = models.MLP(8, (4,), 2, rngs=nnx.Rngs(0))
      >>> r = cost.programmed_cost(model, HardwareConfig().set({"adc.bits": 6}), jnp.full((2, 8), 0.5))
      >>> sorted(r["energy_breakdown_J"]), type(r["energy_J"]).__name__
      (['adc', 'array', 'dac', 'digital'], 'float')
      >>> r["energy_J"] > 0, model.layers[0].mode  # the model itself stays digital
      (True, 'digital')
    """
    key = jax.random.key(0) if key is None else key
    if hardware.adc.range == "calibrated":
        hardware = hardware.set({"adc.range": "max"})
    m = nnx.clone(model)
    layers.set_mode(m, "hardware", hardware)
    try:
        layers.load_program(m, layers.program_model(m, hardware, key))
        c = model_cost(m, jnp.asarray(x), cost, key=key, **kwargs)
    except ValueError as e:
        if "linear cells" not in str(e):
            raise
        return {"unavailable": str(e)}
    return {
        "energy_J": float(c["energy_total"]),
        "energy_breakdown_J": {k: float(v) for k, v in c["energy"].items()},
        "latency_s": float(c["latency"]),
        "interval_s": float(c["interval"]),
        "area_mm2": float(c["area_total"]),
        "area_breakdown_mm2": {k: float(v) for k, v in c["area"].items()},
    }


# ---------------------------------------------------------------------------
# training against energy
# ---------------------------------------------------------------------------
@struct.dataclass
class EnergyAwareLoss:
    """``CE(model(x), y) + weight * E(model, x) / reference`` (a hashable ``loss_fn`` for
    :func:`crossjax.training.train`); see :func:`energy_aware_loss`."""

    weight: float = struct.field(pytree_node=False, default=0.1)
    reference: float = struct.field(pytree_node=False, default=1e-9)
    component: str | None = struct.field(pytree_node=False, default=None)
    cost: CostConfig = struct.field(pytree_node=False, default=CostConfig())

    def __call__(self, model, x, y):
        c = model_cost(model, x, self.cost)
        e = c["energy_total"] if self.component is None else c["energy"][self.component]
        ce = optax.softmax_cross_entropy_with_integer_labels(c["logits"], y).mean()
        return ce + self.weight * e / self.reference


def energy_aware_loss(
    weight: float, reference: float, *, component: str | None = None, cost: CostConfig = CostConfig()
) -> EnergyAwareLoss:
    """A training loss that trades accuracy for energy: ``CE + weight * E / reference``.

    ``E`` is :func:`model_cost`'s energy per inference of the batch (the model in
    ``"train"`` mode: programmed from its weights at every step, with the
    step's noise), all components or one (``component="array"``: the read
    energy, the part the weights' conductances set). ``reference`` (joules)
    makes the term dimensionless, e.g. the energy before fine-tuning.

    Args:
      weight: the trade-off ``lambda``, ``>= 0``.
      reference: joules that ``E`` is divided by, ``> 0``.
      component: ``None`` (the total) or one of ``"array"``, ``"dac"``, ``"adc"``, ``"digital"``.
      cost: the :class:`CostConfig`.

    Returns:
      An :class:`EnergyAwareLoss` for ``training.train(..., loss_fn=...)``.

    Example:
      >>> from crossjax import cost
      >>> loss_fn = cost.energy_aware_loss(0.1, 1e-9, component="array")  # CE + 0.1 E_array / 1 nJ
      >>> loss_fn.weight, loss_fn.reference, loss_fn.component
      (0.1, 1e-09, 'array')
      >>> loss_fn == cost.energy_aware_loss(0.1, 1e-9, component="array")  # hashable: jitted steps are reused
      True
      >>> from crossjax import training  # fine-tune a "train"-mode model against its read energy:
      >>> training.train(model, dataset, training.TrainConfig(steps=200), loss_fn=loss_fn)  # doctest: +SKIP
    """
    chk.non_negative("weight", weight, False)
    chk.positive("reference", reference, False)
    if component is not None:
        chk.choice("component", component, ("array", "dac", "adc", "digital"))
    return EnergyAwareLoss(float(weight), float(reference), component, cost)


# ---------------------------------------------------------------------------
# a published design's budget from its component figures
# ---------------------------------------------------------------------------
@struct.dataclass
class Component:
    """``count`` units of one component, each drawing ``power`` watts on ``area`` mm^2."""

    name: str = struct.field(pytree_node=False, default="")
    count: float = 1.0
    power: float = 0.0
    area: float = 0.0


def budget(components) -> dict:
    """Power and area of a block built from ``components`` (a sequence of :class:`Component`
    or of ``(block_dict, count)`` pairs of nested blocks).

    Args:
      components: an iterable of :class:`Component` (``count`` units of ``power`` watts
        and ``area`` mm^2 each) or ``(block, count)`` pairs, ``block`` a dict with
        ``"power"`` (W) and ``"area"`` (mm^2), such as this function returns; its
        ``"name"`` (default ``"block"``) names it in the breakdown.

    Returns:
      ``{"power": W, "area": mm^2, "breakdown": {name: {"power", "area"}}}``; components
      of one name are summed into one entry, so the breakdown adds up to the totals.

    Example:
      >>> from crossjax import cost
      >>> tile = cost.budget(
      ...     [cost.Component("dac", count=128, power=4e-6, area=1.7e-7), cost.Component("adc", power=2e-3, area=1.2e-3)]
      ... )
      >>> round(tile["power"] * 1e3, 4), sorted(tile["breakdown"])  # mW
      (2.512, ['adc', 'dac'])
      >>> chip = cost.budget([(dict(tile, name="tile"), 4)])  # four such tiles
      >>> round(chip["power"] * 1e3, 4), round(chip["area"], 4), list(chip["breakdown"])
      (10.048, 0.0049, ['tile'])
    """
    power, area, breakdown = 0.0, 0.0, {}
    for item in components:
        if isinstance(item, Component):
            p, a, name = item.count * item.power, item.count * item.area, item.name
        else:
            block, count = item
            p, a, name = count * block["power"], count * block["area"], block.get("name", "block")
        if name in breakdown:  # components of one name are one line of the breakdown, as in the totals
            p_prev, a_prev = breakdown[name]["power"], breakdown[name]["area"]
            breakdown[name] = {"power": p_prev + p, "area": a_prev + a}
        else:
            breakdown[name] = {"power": p, "area": a}
        power, area = power + p, area + a
    return {"power": power, "area": area, "breakdown": breakdown}


def pareto_front(objectives) -> np.ndarray:
    """Which designs are Pareto-optimal: no other design is at least as good in every objective
    and better in one (every objective is minimized: pass ``-accuracy`` to maximize accuracy).

    Args:
      objectives: ``(n, d)`` finite numbers, one row per design (e.g. energy, area, -accuracy).

    Returns:
      ``(n,)`` bool, ``True`` for the non-dominated designs (equal rows are all kept).

    Raises:
      ValueError: ``objectives`` is not 2-D or holds a NaN or infinity.

    Example:
      >>> pareto_front([[1.0, -0.90], [2.0, -0.95], [3.0, -0.93], [1.0, -0.85]]).tolist()
      [True, True, False, False]
    """
    f = np.asarray(objectives, dtype=float)
    if f.ndim != 2:
        raise ValueError(f"objectives must be 2-D (designs, objectives), got shape {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError(
            "objectives hold a NaN or infinity: a design without a finite figure cannot be ranked; "
            "drop it (or give it a finite worst value) first"
        )
    le = np.all(f[:, None, :] <= f[None, :, :], axis=-1)  # [j, i]: j at least as good as i everywhere
    lt = np.any(f[:, None, :] < f[None, :, :], axis=-1)  # [j, i]: j better somewhere
    return ~np.any(le & lt, axis=0)
