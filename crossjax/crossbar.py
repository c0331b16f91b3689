"""The crossbar kernels: program a weight matrix onto tiles, multiply through them.

Data path (docs/circuit.md), for ``W`` ``(K, N)`` on ``R x C`` tiles::

    u      = map(W / w_max)                      (P, Kt, Nt, R, Cp)   crossjax.mapping
    G      = program(u; key)                      siemens             crossjax.devices
    G_eff  = effective_conductance(G, wires)      exact IR drop       crossjax.circuit
    V_s    = DAC(x) slice s                       volts               crossjax.converters
    I      = V_s @ G_eff  (+ read noise)          amperes, per tile column
                                                  (I+ - I- per pair column with mapping.subtract="analog")
    I_q    = ADC(I)                               per tile column, full scale per column
    y      = sum_s coef_s sum_p coef_p sum_Kt I_q * w_max * x_range / ((g_max - g_min) * v_read)

With ideal devices and converters ``y == x @ W`` (the ``g_min`` offsets cancel in
the differential pair). :func:`program` does all the per-weight work once and
folds the linear part into ``effective_weights`` ``(K, N)``,
``W_eff = recombine(G_eff) * w_max / (g_max - g_min)``, so that without ADC and
read noise :func:`matmul` is a single ``x_q @ W_eff`` (with read noise but no ADC, plus
one Gaussian per output whose variance is a second matmul); otherwise it is one
batched einsum over the read-out columns of all tiles, with the row tile as the
leading axis of its result (the product's own layout: neither the per-tile
currents nor their gradient is transposed), followed by the per-column ADC and
a sum over the row tiles. With
``mapping.layout="sparse"`` the tiles hold packed non-empty columns and the
outputs are scattered back digitally. No Python loops
over tiles, samples or inputs; ``jax.vmap(program, in_axes=(None, None, 0))``
gives Monte Carlo samples.

Checks (``ValueError`` naming the argument) run eagerly on concrete inputs; under
``jit``/``vmap`` traced arrays are not checked (config static fields still are).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from crossjax import backend, circuit, converters, devices, mapping, readout, tiling
from crossjax import config_checks as chk
from crossjax.circuit import NotConverged
from crossjax.hardware import HardwareConfig
from crossjax.numerics import safe_sqrt
from crossjax.readout import ReadoutPlan


@struct.dataclass
class CrossbarState:
    """A programmed layer (pytree).

    Attributes:
      g: programmed conductances ``(P, Kt, Nt, R, Cp)``, siemens.
      g_eff: effective conductances with IR drop, same shape (``g`` for ideal wires).
      w_eff: effective digital weights ``(K, N)`` (what the hardware computes, linear part).
      w_max: weight scale, scalar or ``(N,)``.
      adc_range: ADC full scale per read-out tile column ``(P_read, Kt, Nt, Cp)`` amperes, or ``None``
        (no ADC); ``P_read = mapping.read_arrays`` (``P``, or ``P / 2`` with analog pair subtraction).
      column_index: sparse layout only (``mapping.layout="sparse"``): the output held by
        compacted column ``j`` of row block ``a``, ``(Kt, Nt*C)``, -1 for an empty slot.
      out_scale: drift compensation (``device.drift_compensation``): the factor ``(N,)`` every
        output is multiplied by in the digital periphery (folded into ``w_eff``), or ``None``.
      in_features, out_features: ``K``, ``N`` (static).
      programmed_with: what the state depends on of the config it was programmed
        with (static; :func:`programming_signature`); :func:`matmul` refuses a config
        that differs there. ``()``: unknown (not checked).
    """

    g: jax.Array
    g_eff: jax.Array
    w_eff: jax.Array
    w_max: jax.Array
    adc_range: jax.Array | None
    column_index: jax.Array | None = None
    out_scale: jax.Array | None = None
    in_features: int = struct.field(pytree_node=False, default=0)
    out_features: int = struct.field(pytree_node=False, default=0)
    programmed_with: tuple = struct.field(pytree_node=False, default=())


def _leaf_digest(value):
    if isinstance(value, jax.core.Tracer):
        return None  # traced: not comparable, not checked
    if isinstance(value, (int, float, jax.Array, np.ndarray, np.generic)) and not isinstance(value, bool):
        # by value at float32 precision, so 1e-4, its float32 copy after device_put and jnp arrays agree
        a = np.asarray(value, dtype=np.float64).astype(np.float32)
        return f"{a.shape}:" + hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]
    return repr(value)


def _fields(obj, prefix):
    if obj is None or not dataclasses.is_dataclass(obj):
        yield prefix, _leaf_digest(obj)
        return
    for f in dataclasses.fields(obj):
        yield from _fields(getattr(obj, f.name), f"{prefix}.{f.name}")


def programming_signature(config: HardwareConfig) -> tuple:
    """``((field, digest), ...)`` of everything a programmed state depends on:
    the tile geometry and wires, the devices and the weight mapping. The DAC and
    ADC may change between reads of one state (its ADC full scale is part of the
    state), and so may the read-time effects ``device.read_noise`` and
    ``mapping.subtract`` (where the pair is subtracted). Traced values are
    recorded as ``None`` and not compared.

    Args:
      config: the hardware.

    Returns:
      A tuple of ``(field, digest)`` pairs, ``field`` a dotted path such as
      ``"array.rows"``, ``digest`` a string (numbers: shape and a hash of their
      float32 values; others: their ``repr``) or ``None`` for a traced value.

    Example:
      >>> from crossjax import crossbar
      >>> from crossjax.hardware import HardwareConfig
      >>> sig = dict(crossbar.programming_signature(HardwareConfig()))
      >>> "array.rows" in sig, "adc.bits" in sig   # the ADC may change between reads
      (True, False)
      >>> sig == dict(crossbar.programming_signature(HardwareConfig().set({"adc.bits": 6})))
      True
      >>> sig == dict(crossbar.programming_signature(HardwareConfig().set({"array.rows": 32})))
      False
    """
    return tuple(
        item
        for item in (
            *_fields(config.array, "array"),
            *_fields(config.device, "device"),
            *_fields(config.mapping, "mapping"),
        )
        if not item[0].startswith(_READ_TIME)
    )


_READ_TIME = ("mapping.subtract", "device.read_noise")


def check_state_config(state: CrossbarState, config: HardwareConfig) -> None:
    """Raise ``ValueError`` when ``state`` was programmed with a config that differs from ``config``
    in a field the state depends on (:func:`programming_signature`).

    Args:
      state: a :class:`CrossbarState` from :func:`program`.
      config: the hardware it is to be read with.

    Raises:
      ValueError: ``config`` has an ADC but the state has no ADC full scale, or one
        for another number of read-out arrays, or the state was programmed with a
        config that differs in a programming field (states with an empty
        ``programmed_with`` are not compared).

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import crossbar
      >>> from crossjax.hardware import HardwareConfig
      >>> state = crossbar.program(jnp.ones((4, 2)), HardwareConfig())
      >>> crossbar.check_state_config(state, HardwareConfig())
      >>> crossbar.check_state_config(state, HardwareConfig().set({"array.rows": 32}))
      Traceback (most recent call last):
      ...
      ValueError: state was programmed with another hardware config (differs in array.rows); ...
    """
    if config.adc.bits is not None and state.adc_range is None:
        raise ValueError(
            "config has an ADC (adc.bits) but the state was programmed without one, so it has no "
            "ADC full scale; program with the ADC configured: crossbar.program(W, config, key)."
        )
    if (
        config.adc.bits is not None
        and not isinstance(state.adc_range, jax.core.Tracer)
        and state.adc_range.shape[0] != config.mapping.read_arrays
    ):
        raise ValueError(
            f"state's ADC full scale has {state.adc_range.shape[0]} read-out arrays but config reads "
            f"{config.mapping.read_arrays} (mapping.subtract={config.mapping.subtract!r}); program "
            "with the read-out you use, or switch the ADC off to compare subtractions."
        )
    if not state.programmed_with:
        return
    now = dict(programming_signature(config))
    differ = [k for k, v in state.programmed_with if k in now and v is not None and now[k] is not None and now[k] != v]
    if differ or set(now) != {k for k, _ in state.programmed_with}:
        fields = ", ".join(differ[:6]) + (" ..." if len(differ) > 6 else "") or "the config's structure"
        raise ValueError(
            f"state was programmed with another hardware config (differs in {fields}); pass the "
            "config it was programmed with, or reprogram: crossbar.program(W, config, key)."
        )


# ----------------------------------------------------------------------------- checks
def _check_config(config):
    if not isinstance(config, HardwareConfig):
        raise ValueError(f"config must be a crossjax.hardware.HardwareConfig, got {type(config).__name__}.")
    config.check()


def _check_array(name, a, ndim_min=1):
    if not hasattr(a, "shape") or a.ndim < ndim_min:
        raise ValueError(f"{name} must be an array with at least {ndim_min} dimension(s), got {a!r:.80}.")
    if 0 in a.shape:
        raise ValueError(
            f"{name} has shape {a.shape} with a zero-size axis; pass at least one "
            f"{'input vector' if name == 'x' else 'row and column'}."
        )
    if jnp.issubdtype(a.dtype, jnp.complexfloating) or a.dtype == jnp.bool_:
        raise ValueError(f"{name} must be real numbers, got dtype {a.dtype}; convert explicitly.")
    c = chk.concrete(a)
    if c is not None and not np.all(np.isfinite(c)):
        raise ValueError(f"{name} contains NaN or inf; pass finite values.")


def _check_dtype_bits(x, config):
    """Bit counts within what ``x``'s dtype represents exactly (float32 inputs under x64: 24)."""
    dtype = jnp.result_type(x) if jnp.issubdtype(jnp.result_type(x), jnp.floating) else jnp.result_type(float)
    converters.check_bits("adc.bits", config.adc.bits, dtype=dtype)
    if config.dac.bits is not None and config.dac.bits > converters.max_bits(dtype):
        raise ValueError(
            f"dac.bits={config.dac.bits} exceeds the exact integers of {dtype} inputs "
            f"(<= {converters.max_bits(dtype)}); pass float64 inputs or fewer bits."
        )


def _check_key(key, needed, what):
    if key is None and needed:
        raise ValueError(f"key is None but {what}; pass a jax.random key (e.g. jax.random.key(0)).")


def _as_float(a):
    """Real inputs as float32/float64: integers take the default float and half precision
    becomes float32 (the circuit and converters need at least float32's exact integers)."""
    a = jnp.asarray(a)
    if not jnp.issubdtype(a.dtype, jnp.floating):
        return a.astype(jnp.result_type(float))
    return a.astype(jnp.float32) if a.dtype.itemsize < 4 else a


# ----------------------------------------------------------------------------- program
def _g_bound(config):
    """A bound on programmed conductances (siemens) for the circuit's range check: twice
    ``g_max`` covers write noise and range variation; ``None`` when ``g_max`` is traced."""
    g = chk.concrete(config.device.g_max)
    return None if g is None else 2 * float(g)


def _sweep_interval(config, dtype) -> int:
    """The circuit sweep's renormalization interval for ``config`` (concrete values, outside
    ``jit``; raises ``ValueError`` for wires the dtype cannot resolve, see
    ``circuit.sweep_interval``). Passed into the jitted kernels as a static argument."""
    if not config.has_wires:
        return circuit.solver.SWEEP_BLOCK
    g = _g_bound(config)
    if g is None:
        return circuit.solver.SWEEP_BLOCK
    return circuit.sweep_interval(jnp.zeros((1, 1), dtype), config.array.parasitics, g_max=g)


def _series_folded(g, config):
    """Linear cells with an access transistor: ``g / (1 + r_series g)`` (exact); else ``g``."""
    cell = config.array.cell
    return g if cell is None or not cell.is_linear else cell.series_folded(g)


def _effective_conductance(g, config, interval):
    """``G_eff`` of linear cells (series resistance folded, then the exact IR-drop solve);
    nonlinear cells have none: their state keeps ``G`` and every read solves per input."""
    if config.has_nonlinear_cells:
        return g
    g = _series_folded(g, config)
    if not config.has_wires:
        return g

    return circuit.effective_conductance(g, config.array.parasitics, interval=interval)


def _cell_drive(v, config):
    """``h(V)`` (volts) with cell current ``G h(V)`` at the full input voltage: ``V`` for
    linear cells, the cell law for nonlinear ones (the ideal-wire, no-series bound)."""
    return config.array.cell.shape_function(v) if config.has_nonlinear_cells else v


def _scale(config):
    """``1 / ((g_max - g_min) * v_read)``: amperes -> normalized digital units."""
    return 1.0 / ((config.device.g_max - config.device.g_min) * config.dac.v_read)


def _untile(a, K, N, column_index=None):
    """Per-cell quantities ``(Kt, Nt, R, C)`` -> ``(K, N)`` in the weights' layout (sparse: scattered back)."""
    if column_index is None:
        return mapping.untile_weights(a, K, N)
    kt, nt, rows, cols = a.shape
    packed = mapping.untile_weights(a, kt * rows, nt * cols)  # (Kt*R, Nt*C)
    return mapping.scatter_rows(packed.reshape(kt, rows, nt * cols), column_index, N).reshape(kt * rows, N)[:K]


def _fold_weights(g_eff, w_max, config, K, N, column_index=None):
    scale = 1.0 / (config.device.g_max - config.device.g_min)
    if column_index is None:
        return mapping.unmap_tiles(g_eff, w_max, config.mapping, K, N) * scale
    return _untile(mapping.recombine(g_eff, config.mapping, axis=0), K, N, column_index) * w_max * scale


def _initial_adc_range(g_eff, config):
    adc = config.adc
    if adc.bits is None:
        return None
    shape = g_eff.shape[:-2] + g_eff.shape[-1:]
    if adc.range == "fixed":
        return jnp.full((config.mapping.read_arrays,) + shape[1:], adc.i_max, g_eff.dtype)
    if adc.range == "granular":  # what _apply recomputes at every read from the read's bits
        fs = 2.0 ** (converters.tile_column_bits(adc.bits, shape[1:]).astype(g_eff.dtype) - 1) * granular_step(config)
        return jnp.broadcast_to(fs, (config.mapping.read_arrays,) + shape[1:]).astype(g_eff.dtype)
    # "max" (and the default of "calibrated" until calibrate_adc is called):
    # the largest current the column can carry, all inputs at +-v_read
    # (nonlinear cells: G h(v_read), which wires and series resistance only lower)
    drive = _cell_drive(jnp.asarray(config.dac.v_read, g_eff.dtype), config)
    return drive * jnp.sum(jnp.abs(mapping.subtract_pairs(g_eff, config.mapping)), axis=-2)


def _write(W, config, key):
    """Map ``W`` ``(K, N)`` to tiles and program the devices: ``(g, w_max, column_index, out_scale)``.

    With ``mapping.layout="sparse"`` the tiles hold the compacted columns
    (``mapping.compact_columns``) and ``column_index`` maps them back; else it is ``None``.
    ``out_scale`` is the drift-compensation factor (:func:`_drift_compensation`) or ``None``.
    """
    K, N = W.shape
    rows, cols = config.array.rows, config.array.cols
    index = None
    if config.mapping.layout == "sparse":
        packed = mapping.compact_columns(W, rows, cols)
        index = packed.column_index
        W = mapping.untile_weights(packed.tiles, packed.tiles.shape[0] * rows, packed.tiles.shape[1] * cols)
    u, w_max = mapping.map_weights(W, config.mapping, rows, cols)
    g = devices.program_conductances(u, config.device, key)
    scale = None
    if config.device.drift_compensation is not None:
        g_ref = devices.program_conductances(u, config.device, key, reference=True)
        scale = _drift_compensation(g_ref, g, w_max, config, K, N, index)
    return g, w_max, index, scale


def _drift_compensation(g_ref, g, w_max, config, K, N, index):
    """Output factor ``(N,)`` of ``device.drift_compensation`` from two reads of the all-ones
    input through ideal wires, right after programming (``g_ref``) and now (``g``).

    ``"global"``: ``mean_j |y_ref_j| / mean_j |y_t_j|`` over the layer's outputs ``y = 1 @ W_eff``.
    ``"per_column"``: per output, the ratio of its column currents summed over the arrays of
    the pair (or slices) before they are subtracted, ``sum G_ref / sum G_t``: a signed output
    ``sum_i W_ij`` can be near 0 by cancellation, which would make its own ratio noise.
    Factors are 1 where the read is 0; no gradient flows through them (a calibration).
    """
    comp = config.device.drift_compensation
    tiny = jnp.finfo(g.dtype).tiny
    if comp.kind == "global":
        y_ref, y_t = (
            jnp.mean(jnp.abs(jnp.sum(_fold_weights(_series_folded(a, config), w_max, config, K, N, index), axis=0)))
            for a in (g_ref, g)
        )
        return jax.lax.stop_gradient(jnp.broadcast_to(jnp.where(y_t > 0, y_ref / jnp.maximum(y_t, tiny), 1.0), (N,)))
    cols = config.array.cols

    def column_currents(a):  # (P, Kt, Nt, R, Cp) -> (N,): each output's cells over all arrays and row tiles
        a = jnp.sum(_series_folded(a, config), axis=0)[..., :cols]
        return jnp.sum(_untile(a, K, N, index), axis=0)

    y_ref, y_t = column_currents(g_ref), column_currents(g)
    return jax.lax.stop_gradient(jnp.where(y_t > 0, y_ref / jnp.where(y_t > 0, y_t, 1.0), 1.0))


def _state(g, g_eff, w_max, index, config, K, N, out_scale=None):
    w_eff = (
        None
        if config.has_nonlinear_cells
        else _compensated(_fold_weights(g_eff, w_max, config, K, N, index), out_scale)
    )
    return CrossbarState(
        g=g,
        g_eff=g_eff,
        w_eff=w_eff,
        w_max=w_max,
        adc_range=_initial_adc_range(g_eff, config),
        column_index=index,
        out_scale=out_scale,
        in_features=K,
        out_features=N,
    )


def _compensated(y, out_scale):
    """Outputs (or weights ``(K, N)``) times the drift-compensation factor ``(N,)``, if any."""
    return y if out_scale is None else y * out_scale


@functools.partial(jax.jit, static_argnames=("interval",))
def _program(W, config, key, interval):
    K, N = W.shape
    g, w_max, index, scale = _write(W, config, key)
    return _state(g, _effective_conductance(g, config, interval), w_max, index, config, K, N, scale)


def program(W: Float[ArrayLike, "K N"], config: HardwareConfig, key: PRNGKeyArray | None = None) -> CrossbarState:
    """Map ``W`` ``(K, N)`` to tiles, program the devices (write-time non-idealities from ``key``)
    and prepare the per-tile ``G_eff`` (exact circuit solve, once).

    Args:
      W: weights ``(K, N)`` (any units: the mapping scales ``max |W|``, or
        ``mapping.w_max``, to the conductance range).
      config: the hardware.
      key: PRNG key of the write-time draws (programming noise, range variation,
        stuck cells, drift exponents); ``None`` only when
        ``config.program_is_stochastic`` is false.

    Returns:
      The :class:`CrossbarState`: conductances ``(P, Kt, Nt, R, C)`` in siemens
      (``P`` arrays per weight, ``Kt x Nt`` tiles), their ``G_eff``, the mapping's scales.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from crossjax import crossbar, presets
      >>> state = crossbar.program(jnp.ones((100, 3)), presets.rram(), jax.random.key(0))
      >>> state.g.shape   # a differential pair, 2 row tiles of 64, 1 column tile
      (2, 2, 1, 64, 64)
    """
    _check_config(config)
    _check_array("W", W, 2)
    if W.ndim != 2:
        raise ValueError(f"W must have shape (K, N), got {W.shape}; vmap over extra axes.")
    _check_key(key, config.program_is_stochastic, "config has write-time non-idealities")
    if key is None:
        key = jax.random.key(0)  # unused: nothing stochastic
    W = _as_float(W)
    interval = _sweep_interval(config, W.dtype)
    return _program(W, config, key, interval=interval).replace(programmed_with=programming_signature(config))


def program_many(Ws, config: HardwareConfig, keys) -> list[CrossbarState]:
    """Program several weight matrices (e.g. every layer of a model) with one circuit solve.

    ``Ws[i]`` is ``(K_i, N_i)``, or ``(G_i, K_i, N_i)`` for ``G_i`` independent
    matrices (grouped convolutions, programmed with ``jax.random.split(keys[i], G_i)``).
    Equal to ``[program(W, config, k) for W, k in zip(Ws, keys)]``, but the tiles
    of all matrices share one batched ``G_eff`` sweep (one compilation, one
    sequence of batched linear algebra instead of one per matrix).

    Args:
      Ws: a non-empty sequence of weight matrices ``(K_i, N_i)`` or stacks ``(G_i, K_i, N_i)``.
      config: the hardware (one config for all).
      keys: one PRNG key per matrix (``None`` entries only when
        ``config.program_is_stochastic`` is false).

    Returns:
      A list of :class:`CrossbarState`, one per matrix; a stack's state has a
      leading ``G_i`` axis on its arrays.

    Raises:
      ValueError: bad arguments, ``Ws`` and ``keys`` of different lengths, or an empty ``Ws``.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import crossbar
      >>> from crossjax.hardware import HardwareConfig
      >>> states = crossbar.program_many([jnp.ones((4, 2)), jnp.ones((3, 4, 2))], HardwareConfig(), [None, None])
      >>> [s.w_eff.shape for s in states]
      [(4, 2), (3, 4, 2)]
    """
    _check_config(config)
    if len(Ws) != len(keys):
        raise ValueError(f"Ws and keys must have the same length, got {len(Ws)} and {len(keys)}.")
    for i, (W, k) in enumerate(zip(Ws, keys)):
        _check_array(f"Ws[{i}]", W, 2)
        if W.ndim not in (2, 3):
            raise ValueError(f"Ws[{i}] must have shape (K, N) or (G, K, N), got {W.shape}.")
        _check_key(k, config.program_is_stochastic, "config has write-time non-idealities")
    if not Ws:
        raise ValueError("Ws is empty: pass at least one weight matrix to program_many.")
    keys = [jax.random.key(0) if k is None else k for k in keys]
    signature = programming_signature(config)
    Ws = [_as_float(W) for W in Ws]
    interval = _sweep_interval(config, jnp.result_type(*Ws))
    return [s.replace(programmed_with=signature) for s in _program_many(Ws, config, keys, interval=interval)]


@functools.partial(jax.jit, static_argnames=("interval",))
def _program_many(Ws, config, keys, interval):
    written = []
    for W, key in zip(Ws, keys):  # static: one entry per layer
        if W.ndim == 2:
            written.append(_write(W, config, key))
        else:
            written.append(jax.vmap(_write, in_axes=(0, None, 0))(W, config, jax.random.split(key, W.shape[0])))
    tile = written[0][0].shape[-2:]
    flat = jnp.concatenate([w[0].reshape((-1,) + tile) for w in written])
    flat_eff = _effective_conductance(flat, config, interval)
    sizes = np.cumsum([w[0].size // math.prod(tile) for w in written])[:-1]
    states = []
    for W, (g, w_max, index, scale), g_eff in zip(Ws, written, jnp.split(flat_eff, sizes)):
        K, N = W.shape[-2:]
        g_eff = g_eff.reshape(g.shape)
        if W.ndim == 2:
            states.append(_state(g, g_eff, w_max, index, config, K, N, scale))
        else:
            states.append(
                jax.vmap(_state, in_axes=(0, 0, 0, 0, None, None, None, 0))(g, g_eff, w_max, index, config, K, N, scale)
            )
    return states


def effective_weights(state: CrossbarState, config: HardwareConfig | None = None) -> Float[Array, "K N"]:
    """Effective digital weights ``(K, N)`` the programmed hardware applies.

    ``W_eff = recombine(G_eff) * w_max / (g_max - g_min)``: the inverse map of
    ``G_eff``, without the ADC and read noise.

    Args:
      state: a :class:`CrossbarState` from :func:`program`.
      config: optional; when given, the state must have been programmed with it
        (:func:`check_state_config`), so weights are never read off a state made
        for other hardware.

    Returns:
      ``(K, N)`` weights in the units of the programmed ``W``.

    Raises:
      ValueError: nonlinear cells (their read has no weight matrix), or a
        ``config`` the state was not programmed with.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import crossbar
      >>> from crossjax.hardware import HardwareConfig
      >>> W = jnp.array([[0.5, -1.0], [0.25, 0.0]])
      >>> bool(jnp.allclose(crossbar.effective_weights(crossbar.program(W, HardwareConfig()), HardwareConfig()), W))
      True
    """
    if config is not None:
        _check_config(config)
        check_state_config(state, config)
    if state.w_eff is None:
        raise ValueError(
            "state has no effective weights: nonlinear cells (config.array.cell) have no G_eff, "
            "their output depends on each input; use crossbar.matmul."
        )
    return state.w_eff


# ----------------------------------------------------------------------------- matmul
def _readout(a, state, config):
    """Tile columns ``(..., Nt, Cp)`` -> the columns that are read out, ``(..., M)``.

    In the dense layout without reference columns every read-out column is an
    output: ``M = N`` (the padding columns of the last tile are dropped, so
    nothing is computed for them). With the offset scheme's reference column or
    the sparse layout's packed columns the tiles are kept, ``M = Nt * Cp``.
    """
    a = a.reshape(a.shape[:-2] + (-1,))
    if config.mapping.reference_columns or state.column_index is not None:
        return a
    return a[..., : state.out_features]


def _tile_products(v, m, K, rows):
    """``sum_r v[..., t*R + r] m[p, t, r, :]`` per row tile: ``(..., K)`` x ``(P, Kt, R, M)`` -> ``(Kt, ..., P, M)``.

    The row tile leads: that is the layout of the batched product, so neither the
    per-tile currents nor their gradient is transposed (a transpose of every tile
    output cost more than the product). The partial last tile's padding inputs are
    zero (``tiling.tile_inputs``), so its padding rows add nothing.

    It runs as one plain batched matmul ``(Kt, B, R) @ (Kt, R, P*M)`` (batch axes
    flattened, arrays merged with columns; a plain matmul when ``Kt == 1``, where
    XLA would drop the batch axis). Only this form keeps XLA CPU from laying the
    cotangent out batch-minor for the weight gradient: otherwise every tile
    output's cotangent was transposed inside the fusion that computes it from
    the read noise and ADC backward, several times the products' own cost
    (``benchmarks/README.md``, "Per-tile outputs").
    """
    p, kt, r, n = m.shape
    vt = tiling.tile_inputs(v, K, rows)
    lead = vt.shape[:-2]
    if backend.policy().tile_product == "einsum":  # the plain form (GPU/TPU): no layout workaround
        return jnp.einsum("bkr,pkrn->kbpn", vt.reshape((-1, kt, r)), m).reshape((kt,) + lead + (p, n))
    m = jnp.moveaxis(m, 0, 2).reshape(kt, r, p * n)
    if kt == 1:  # no batch axis: XLA would drop it and transpose the cotangent
        i = (vt.reshape((-1, r)) @ m[0])[None]
    else:
        i = jnp.einsum("bkr,krn->kbn", vt.reshape((-1, kt, r)), m)
    return i.reshape((kt,) + lead + (p, n))


def _sum_row_tiles(i):
    """``sum_k i[k]`` over the leading row-tile axis: pairwise halving on XLA CPU, a plain
    ``jnp.sum`` where :func:`crossjax.backend.policy` says ``row_tile_sum="reduce"``."""
    if backend.policy().row_tile_sum == "reduce":
        return jnp.sum(i, axis=0)
    return _sum_row_tiles_pairwise(i)


@jax.custom_vjp
def _sum_row_tiles_pairwise(i):
    """``sum_k i[k]`` over the leading row-tile axis by pairwise halving (``ceil(log2 Kt)``
    elementwise adds of contiguous halves, which XLA fuses with the converters that
    produce ``i``): XLA CPU's reduce over a leading axis is several times slower. The
    gradient is the cotangent broadcast over the row tiles (autodiff of the halving
    would pad every half back to full size)."""
    while i.shape[0] > 1:  # static: log2(Kt) levels
        h = i.shape[0] // 2
        odd = i[2 * h :]
        i = i[:h] + i[h : 2 * h]
        if odd.shape[0]:
            i = i.at[0].add(odd[0])
    return i[0]


def _sum_row_tiles_fwd(i):
    return _sum_row_tiles_pairwise(i), jnp.zeros((i.shape[0], 0), i.dtype)  # the tile count, as a shape


def _sum_row_tiles_bwd(tiles, ct):
    return (jnp.broadcast_to(ct, tiles.shape[:1] + ct.shape),)


_sum_row_tiles_pairwise.defvjp(_sum_row_tiles_fwd, _sum_row_tiles_bwd)


def _tiles_last(i):
    """Per-tile currents ``(Kt, ..., P, M)`` -> ``(..., P, Kt, M)`` (the ``adc_range`` layout)."""
    return jnp.moveaxis(i, 0, -2)


def _tile_currents(v, state, config, key, plan: ReadoutPlan | None = None, coef=None):
    """Per-tile read-out column currents ``(Kt, S, ..., P_read, M)`` for voltages ``v`` ``(S, ..., K)``
    (row tile leading, see :func:`_tile_products`; columns: :func:`_readout`), read noise included.

    ``plan`` (default: a programmed state's, :func:`readout.plan`) chooses the array
    physics; with a pulse-width encoding (``plan.encoding.integrates``) the ``S`` time
    steps are integrated with weights ``coef`` first (``S = 1`` on return). Read noise is a
    conductance fluctuation held during the read: a cell adds ``dG h(V)`` (``h(V) = V`` for
    linear cells), integrated like the current, ``dG ~ N(0, s^2)``.
    """
    plan = readout.plan(config) if plan is None else plan
    K, rows = state.in_features, config.array.rows

    def per_row(g, variance=False):  # (P, Kt, Nt, R, Cp) -> (P_read, Kt, R, M), P_read = mapping.read_arrays
        return _readout(jnp.moveaxis(mapping.subtract_pairs(g, config.mapping, 0, variance), -2, 2), state, config)

    if not plan.physics.per_input:
        i = _tile_products(v, per_row(state.g_eff), K, rows)
    else:  # per-input circuit solve (few inputs per conductance sample; nonlinear cells always)
        i = _solved_currents(v, state, config, plan)
    drive = _cell_drive(v, config)
    if plan.encoding.integrates:  # the column integrates the time steps before the ADC
        i = converters.shift_add(i, coef, axis=1)[:, None]
        drive = converters.shift_add(drive, coef)[None]
    if plan.noise is not None:
        s = devices.read_noise_std(state.g, config.device)
        var = _tile_products(drive * drive, per_row(s * s, variance=True), K, rows)
        i = i + safe_sqrt(var) * devices.read_noise_normal(key, i.shape, i.dtype, config.device)
    return i


def _solved_currents(v, state, config, plan):
    """Column currents of a circuit solve of ``G`` per input vector, ``(Kt, S, ..., P_read, M)``."""
    K, rows = state.in_features, config.array.rows
    vt = tiling.tile_inputs(v, K, rows)  # (S, ..., Kt, R)
    lead = vt.shape[:-2]
    kt, r = vt.shape[-2:]
    vb = jnp.moveaxis(vt.reshape((-1, kt, r)), 0, -2)  # (Kt, B, R)
    vb = vb[None, :, None]  # (1, Kt, 1, B, R)
    if plan.physics.nonlinear:
        cell = config.array.cell
        if plan.physics.method == "elementwise":  # ideal wires, no series resistance: exact, no iteration
            i = circuit.nonlinear.without_wires(state.g, vb, cell)
        elif config.has_wires:
            i = circuit.solve(state.g, vb, config.array.parasitics, cell=cell)
        else:  # ideal wires, r_series traced: the exact sum when it is 0, else the Newton solve
            i = jax.lax.cond(
                jnp.all(jnp.asarray(cell.r_series) == 0),
                lambda g, v, c: circuit.nonlinear.without_wires(g, v, c),
                lambda g, v, c: circuit.solve(g, v, circuit.Parasitics(), cell=c),
                state.g,
                vb,
                cell,
            )
    else:
        i = circuit.solve(
            state.g,
            vb,
            config.array.parasitics,
            method=plan.physics.method,
            g_max=_g_bound(config),
            cell=config.array.cell,
        )  # (P, Kt, Nt, B, Cp)
    i = _readout(jnp.moveaxis(mapping.subtract_pairs(i, config.mapping), -2, 0), state, config)  # (B, P_read, Kt, M)
    return jnp.moveaxis(i, -2, 0).reshape((kt,) + lead + i.shape[1:2] + i.shape[-1:])


def _adc_bits(state, config):
    """ADC bits broadcast to the read-out columns: an int, ``(M,)`` for per-column bits, or
    ``(Kt, M)`` for bits per tile and column."""
    bits = config.adc.bits
    if np.ndim(bits) == 0:
        return bits
    _, kt, nt, _, cp = state.g_eff.shape
    return _readout(converters.tile_column_bits(bits, (kt, nt, cp)), state, config)


def granular_step(config: HardwareConfig):
    """The unit current of ``adc.range="granular"`` (amperes): one input level through one
    cell level, ``(g_max - g_min) * v_read / (dac.input_levels * mapping.cell_levels)``
    (``crossjax.converters`` module doc).

    Args:
      config: the hardware.

    Returns:
      The unit current in amperes (a scalar).

    Example:
      >>> from crossjax.hardware import HardwareConfig
      >>> cfg = HardwareConfig().set({"dac.bits": 9, "dac.slice_bits": 1, "mapping.slice_bits": 1,
      ...                             "mapping.slices": 4, "device.g_min": 0.0, "device.g_max": 1e-4})
      >>> round(float(granular_step(cfg)) * 1e6, 6)   # 100 uS * 0.2 V / (1 * 1), microamperes
      20.0
    """
    levels = config.dac.input_levels * config.mapping.cell_levels
    return (config.device.g_max - config.device.g_min) * config.dac.v_read / levels


def is_linear(config: HardwareConfig) -> bool:
    """Whether a programmed crossbar computes ``q(x) @ effective_weights(state)`` with an
    elementwise input quantizer ``q = converters.dac_equivalent`` (``q(0) = 0``).

    True without ADC and read noise, with linear cells and an ideal or fixed-range DAC (a ``"max"``
    range depends on the whole input vector). Write-time effects and IR drop are in
    ``effective_weights``. A layer may then apply them in any linear form: a
    convolution layer uses its effective kernel directly instead of unfolding patches.
    (``readout.plan(config).is_linear``.)

    Args:
      config: the hardware.

    Returns:
      ``True`` where a layer may fold the read into ``effective_weights``.

    Example:
      >>> from crossjax import crossbar, presets
      >>> from crossjax.hardware import HardwareConfig
      >>> crossbar.is_linear(HardwareConfig()), crossbar.is_linear(HardwareConfig().set({"adc.bits": 8}))
      (True, False)
      >>> crossbar.is_linear(presets.rram())   # ADC and read noise
      False
    """
    return readout.plan(config).is_linear


def _encode(x, config, plan):
    """Row voltage slices ``(v, coef, x_range)`` of :func:`converters.apply_dac` for the plan's
    encoding (pulse width through linear cells runs as its equal amplitude slice)."""
    dac = config.dac
    if dac.encoding == "pulse_width" and plan.encoding.kind != "pulse_width":
        dac = dac.replace(encoding="amplitude")
    return converters.apply_dac(x, dac)


def _apply(x, state, config, key, plan: ReadoutPlan | None = None):
    plan = readout.plan(config) if plan is None else plan
    if plan.folds_weights and plan.noise is None:
        return converters.dac_equivalent(x, config.dac) @ state.w_eff
    v, coef, x_range = _encode(x, config, plan)
    if plan.folds_weights:
        return _apply_summed_read_noise(x, v, coef, x_range, state, config, key)
    i = _tile_currents(v, state, config, key, plan, coef)  # (Kt, S, ..., P_read, M)
    if plan.encoding.integrates:
        coef = (1.0,)
    if plan.adc is not None:
        bits = _adc_bits(state, config)
        if np.ndim(bits) == 2:  # per tile: (Kt, M) -> (Kt, 1, ..., 1, M) against i (Kt, S, ..., P_read, M)
            bits = bits.reshape(bits.shape[:1] + (1,) * (i.ndim - 2) + bits.shape[1:])
        if config.adc.range == "granular":  # a read-time law of the bits: the step stays one unit
            full_scale = 2.0 ** (jnp.asarray(bits, i.dtype) - 1) * granular_step(config)
        else:
            full_scale = jnp.moveaxis(_readout(state.adc_range, state, config), 1, 0)  # (Kt, P_read, M)
            full_scale = full_scale.reshape(full_scale.shape[:1] + (1,) * (i.ndim - 3) + full_scale.shape[1:])
        i = converters.ADC_KINDS[config.adc.kind](i, full_scale, bits)
    i = converters.shift_add(i, coef, axis=1)  # bit-serial shift-add
    if config.mapping.reference_columns:
        i = i.reshape(i.shape[:-1] + state.g_eff.shape[2:3] + state.g_eff.shape[-1:])  # (Kt, ..., P, Nt, Cp)
        i = mapping.recombine(i, config.mapping, axis=-3, read=True)  # (Kt, ..., Nt, C)
        i = i.reshape(i.shape[:-2] + (-1,))
    else:
        i = mapping.recombine(i, config.mapping, axis=-2, read=True)  # (Kt, ..., M)
    if state.column_index is not None:  # sparse layout: packed columns back in place
        y = mapping.scatter_outputs(jnp.moveaxis(i, 0, -2), state.column_index, state.out_features)
    else:
        y = _sum_row_tiles(i)[..., : state.out_features]
    return _compensated(y * state.w_max * x_range * _scale(config), state.out_scale)


def _apply_summed_read_noise(x, v, coef, x_range, state, config, key):
    """Read noise without an ADC: nothing is converted per tile, so the independent
    Gaussian read noise of every tile, array and input slice adds up to one Gaussian per
    output, exactly (a sum of independent normals is normal)::

        y = q(x) @ W_eff + sqrt(sum_s coef_s^2 v_s^2 @ S2) * z * w_max x_range / ((g_max - g_min) v_read)

    with ``S2 = untile(sum_p c_p^2 s_p^2)`` (A^2/V^2 per weight; ``c_p`` the pair / bit-slice
    coefficients, ``s_p`` the cells' read-noise std) and one ``z ~ N(0, 1)`` per output
    instead of one per tile output. Same distribution as the per-tile path; not for
    the offset scheme, whose shared reference column correlates the outputs.
    """
    K, N = state.in_features, state.out_features
    s = devices.read_noise_std(state.g, config.device)
    c2 = tuple(c * c for c in config.mapping.coefficients())
    s2 = _untile(converters.shift_add(s * s, c2), K, N, state.column_index)  # (K, N)
    var = converters.shift_add((v * v) @ s2, tuple(c * c for c in coef))  # (..., N), A^2
    noise = safe_sqrt(var) * devices.read_noise_normal(key, var.shape, var.dtype, config.device)
    y = converters.dac_equivalent(x, config.dac) @ state.w_eff  # w_eff holds the compensation
    return y + _compensated(noise * state.w_max * x_range * _scale(config), state.out_scale)


@functools.partial(jax.jit, static_argnames=("plan",))
def _matmul(x, state, config, key, plan):
    return _apply(x, state, config, key, plan)


def _check_inputs(x, state, config, key):
    _check_config(config)
    if not isinstance(state, CrossbarState):
        raise ValueError(
            f"state must be a crossjax.crossbar.CrossbarState (from crossbar.program), got {type(state).__name__}."
        )
    check_state_config(state, config)
    _check_array("x", x, 1)
    _check_dtype_bits(x, config)
    if x.shape[-1] != state.in_features:
        raise ValueError(
            f"x has {x.shape[-1]} features in its last axis but the crossbar was programmed with "
            f"K={state.in_features} inputs; pass x of shape (..., {state.in_features})."
        )
    _check_key(key, config.read_is_stochastic, "config has read noise")


def matmul(
    x: Float[ArrayLike, "*batch K"], state: CrossbarState, config: HardwareConfig, key: PRNGKeyArray | None = None
) -> Float[Array, "*batch N"]:
    """``x`` ``(..., K)`` -> ``y`` ``(..., N)`` through the programmed crossbar ``state``.

    DAC, column currents ``V @ G_eff`` per tile (nonlinear cells: the exact solve per
    input), read noise (``key``), ADC per tile column, recombination (differential /
    offset, bit slices, row tiles), rescale; the stages as :func:`readout.plan` decides.
    On ideal hardware ``y == x @ W``.

    Args:
      x: inputs ``(..., K)`` in the units of the layer's inputs (the DAC maps
        them to volts, up to ``dac.v_read``).
      state: the programmed crossbar (:func:`program`, with this ``config``).
      config: the hardware.
      key: PRNG key of the read-time draws (read noise); ``None`` only when
        ``config.read_is_stochastic`` is false.

    Returns:
      ``y`` ``(..., N)`` in the units of ``x @ W``, ``x``'s float dtype.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import crossbar
      >>> from crossjax.hardware import HardwareConfig
      >>> W, x = jnp.array([[0.5, -1.0], [0.25, 0.0]]), jnp.array([1.0, 2.0])
      >>> y = crossbar.matmul(x, crossbar.program(W, HardwareConfig()), HardwareConfig())
      >>> bool(jnp.allclose(y, x @ W))   # ideal hardware: the exact product
      True

    Raises:
      ValueError: bad arguments.
      circuit.NotConverged: a nonlinear solve did not converge (eagerly; under ``jit``
        its outputs are NaN).
    """
    _check_inputs(x, state, config, key)
    if key is None:
        key = jax.random.key(0)
    plan = readout.plan(config)
    return _raise_if_unsolved(_matmul(_as_float(x), state, config, key, plan), plan)


def _raise_if_unsolved(y, plan):
    """Nonlinear reads: NaN outputs (finite inputs were checked) mean a solve failed to converge."""
    if plan.physics.nonlinear and not isinstance(y, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(y))):
        raise NotConverged(
            "the nonlinear crossbar solve did not converge for some inputs (outputs NaN); "
            "check that the cell's I-V law is increasing on +-dac.v_read."
        )
    return y


def calibrate_adc(x, state: CrossbarState, config: HardwareConfig, key=None, percentile=None) -> CrossbarState:
    """ADC full scale per tile column from data: the ``percentile`` (default
    ``config.adc.percentile``) of ``|I|`` over the inputs ``x`` ``(..., K)``.

    Args:
      x: calibration inputs ``(..., K)``, in the units of the layer's inputs.
      state: the programmed crossbar (:func:`program`, with this ``config``).
      config: the hardware; needs an ADC (``adc.bits``), not ``adc.range="granular"``.
      key: PRNG key of the read noise during calibration; ``None`` only when
        ``config.read_is_stochastic`` is false.
      percentile: in ``[0, 100]``; default ``config.adc.percentile``.

    Returns:
      ``state`` with ``adc_range`` ``(P_read, Kt, Nt, Cp)`` amperes set from the data
      (unread padding columns get 1).

    Raises:
      ValueError: bad arguments, no ADC, or a granular ADC range.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import crossbar
      >>> from crossjax.hardware import HardwareConfig
      >>> cfg = HardwareConfig().set({"adc.bits": 8, "adc.range": "calibrated"})
      >>> state = crossbar.program(jnp.full((4, 2), 0.25), cfg)
      >>> cal = crossbar.calibrate_adc(jnp.ones((16, 4)), state, cfg)
      >>> real = (..., slice(0, 2))   # the 2 output columns of the tile (padding columns get 1)
      >>> cal.adc_range.shape, bool(jnp.all(cal.adc_range[real] <= state.adc_range[real]))   # within "max"
      ((2, 1, 1, 64), True)
    """
    _check_inputs(x, state, config, key)
    if config.adc.bits is None:
        raise ValueError("calibrate_adc needs config.adc.bits (no ADC configured).")
    if config.adc.range == "granular":  # its full scale is a law of the bits: a calibration would be ignored
        raise ValueError(
            "calibrate_adc: adc.range='granular' fixes the full scale at 2**(bits-1) unit currents; "
            "use adc.range='calibrated' to set it from data."
        )
    if key is None:
        key = jax.random.key(0)
    q = config.adc.percentile if percentile is None else percentile
    converters.check_percentile("percentile", q)
    return _calibrate(_as_float(x), state, config, key, q)


def _calibrate(x, state, config, key, q):
    return _calibrate_jit(x, state, config, key, q, readout.plan(config))


@functools.partial(jax.jit, static_argnames=("plan",))
def _calibrate_jit(x, state, config, key, q, plan):
    v, coef, _ = _encode(x, config, plan)
    i = _tiles_last(_tile_currents(v, state, config, key, plan, coef))
    i = i.reshape((-1,) + i.shape[-3:])
    full_scale = converters.percentile_full_scale(i, q, axis=0)  # (P, Kt, M)
    return state.replace(adc_range=_physical(full_scale, state, config))


def _physical(a, state, config):
    """Inverse of :func:`_readout` on the last axis: ``(..., M)`` -> ``(..., Nt, Cp)`` (unread columns get 1)."""
    nt, cp = state.g_eff.shape[2], state.g_eff.shape[-1]
    if a.shape[-1] < nt * cp:  # the dense layout's unread padding columns
        a = jnp.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, nt * cp - a.shape[-1])], constant_values=1.0)
    return a.reshape(a.shape[:-1] + (nt, cp))


def analog_matmul(
    x: Float[ArrayLike, "*batch K"], W: Float[ArrayLike, "K N"], config: HardwareConfig, key: PRNGKeyArray | None = None
) -> Float[Array, "*batch N"]:
    """One shot ``x @ W`` on fresh hardware: program (write noise from ``fold_in(key, 0)``),
    then multiply (read noise from ``fold_in(key, 1)``). Differentiable w.r.t. ``x``, ``W``
    and the config's continuous values.

    With wires, ``config.method`` chooses the circuit regime: ``"iterative"`` solves
    per input, ``"direct"`` forms ``G_eff``, ``"auto"`` applies
    ``circuit.choose_method(inputs)`` (iterative for few inputs, as in training);
    nonlinear cells always solve per input (``readout.plan(config, programmed=False)``).
    ``adc.range="calibrated"`` calibrates on ``x`` itself.

    Args:
      x: inputs ``(..., K)``.
      W: weights ``(K, N)``.
      config: the hardware.
      key: PRNG key (write and read draws); ``None`` only for deterministic hardware.

    Returns:
      ``(..., N)``: what the hardware computes for ``x @ W``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from crossjax import crossbar, presets
      >>> W, x = jnp.ones((64, 4)) / 64, jnp.ones((8, 64))
      >>> y = crossbar.analog_matmul(x, W, presets.rram(), jax.random.key(0))
      >>> y.shape, bool(jnp.all(jnp.abs(y - x @ W) < 0.2))   # near 1: noise, wires, converters
      ((8, 4), True)
    """
    _check_config(config)
    _check_array("W", W, 2)
    if W.ndim != 2:
        raise ValueError(f"W must have shape (K, N), got {W.shape}.")
    _check_array("x", x, 1)
    _check_dtype_bits(x, config)
    if x.shape[-1] != W.shape[0]:
        raise ValueError(
            f"x has {x.shape[-1]} features but W has K={W.shape[0]} rows; pass x of shape (..., {W.shape[0]})."
        )
    _check_key(key, config.program_is_stochastic or config.read_is_stochastic, "config has stochastic non-idealities")
    if key is None:
        key = jax.random.key(0)
    x, W = _as_float(x), _as_float(W)
    plan = readout.plan(config, programmed=False, inputs=x.size // W.shape[0])
    y = _analog_matmul(x, W, config, key, interval=_sweep_interval(config, jnp.result_type(x, W)), plan=plan)
    return _raise_if_unsolved(y, plan)


@functools.partial(jax.jit, static_argnames=("interval", "plan"))
def _analog_matmul(x, W, config, key, interval, plan):
    k_prog, k_read = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)
    K, N = W.shape
    g, w_max, index, scale = _write(W, config, k_prog)
    g_eff = _effective_conductance(g, config, interval) if plan.forms_g_eff else g
    state = CrossbarState(
        g=g,
        g_eff=g_eff,
        w_eff=None,
        w_max=w_max,
        adc_range=None,
        column_index=index,
        out_scale=scale,
        in_features=K,
        out_features=N,
    )
    if plan.adc is not None:
        if plan.adc.calibrated:
            v, coef, _ = _encode(x, config, plan)
            i = _tiles_last(_tile_currents(v, state, config, k_read, plan, coef))
            i = jax.lax.stop_gradient(i.reshape((-1,) + i.shape[-3:]))
            adc_range = _physical(converters.percentile_full_scale(i, config.adc.percentile, axis=0), state, config)
        elif plan.adc.range == "max" and plan.physics.per_input:
            adc_range = _initial_adc_range(jax.lax.stop_gradient(_series_folded(g, config)), config)  # ideal-wire bound
        else:
            adc_range = _initial_adc_range(g_eff, config)
        state = state.replace(adc_range=adc_range)
    if plan.folds_weights:
        state = state.replace(w_eff=_compensated(_fold_weights(g_eff, w_max, config, K, N, index), scale))
    return _apply(x, state, config, k_read, plan)
