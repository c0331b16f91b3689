"""Digital-to-analog and analog-to-digital converters with straight-through gradients.

DAC (inputs -> row voltages). With input range ``x_range`` (fixed ``x_max`` or the
per-vector ``max |x|``) the voltage applied to row ``i`` is

    V_i = v_read * x_i / x_range                      (volts; ideal DAC, ``bits=None``)
    V_i = v_read * round(clip(x_i / x_range, -1, 1) * n) / n,   n = 2**(bits-1) - 1

(sign-magnitude, ``2*n + 1`` levels). Three input encodings (``encoding``):

* amplitude (default): the voltage above for the whole read;
* bit-serial (``slice_bits``, below);
* pulse width (``encoding="pulse_width"``): each row is driven at
  ``v_read * sign(q_i)`` for ``|q_i|`` of ``n`` unit time steps and then held at
  0 V, so the rows switch off one after another. During step ``l = 1..n`` the
  row voltages are ``V_l,i = v_read * sign(q_i) * [|q_i| >= l]``; the column
  integrates the charge ``Q = dt * sum_l I(V_l)``, read out as the mean
  current ``Q / (n dt) = sum_l I(V_l) / n``. Linear cells give exactly the
  amplitude product (``sum_l V_l / n = v_read q / n``); nonlinear cells see only
  ``0`` and ``+-v_read``, one operating point per segment.

With ``slice_bits = s`` the ``bits - 1``
magnitude bits are applied bit-serially in ``S = ceil((bits-1)/s)`` slices:
slice ``k`` carries digit ``d_k`` of ``|q|`` in base ``2**s`` as
``V_k = v_read * sign(q) * d_k / (2**s - 1)``; the digital outputs recombine by
shift-add with coefficients ``2**(s*k) * (2**s - 1) / n`` (see :func:`apply_dac`).

ADC (column current -> digital code). Two's-complement, mid-tread, full scale
``i_fs`` amperes, ``bits`` per column (scalar or an array broadcast over columns):

    step = i_fs / 2**(bits-1),   code = clip(round(I / step), -2**(bits-1), 2**(bits-1) - 1),
    I_q  = code * step

so an ``n``-bit ADC produces at most ``2**n`` distinct values and represents 0
exactly. The full scale is ``"fixed"`` (``i_max``), ``"max"`` (the largest
current the column can carry, ``v_read * sum_i |G_eff[i, j]|``),
``"calibrated"`` (a percentile of ``|I|`` measured on data, see
``crossbar.calibrate_adc``) or ``"granular"``: the step is one *unit current*,
the smallest change of a column current, one input level through one cell level,

    I_unit = (g_max - g_min) * v_read / (input_levels * cell_levels),   i_fs = 2**(bits-1) * I_unit

(``DACConfig.input_levels``, ``MappingConfig.cell_levels``). With quantized
inputs and weights, linear cells, ideal wires and ``g_min`` cancelled (a
differential pair subtracted before conversion, ``mapping.subtract="analog"``,
or ``g_min = 0``) every column current is an integer number of units, so the
ADC is exact while ``|I| <= (2**(bits-1) - 1) I_unit``: a column of ``T`` cells
with 1-bit cells and 1-bit signed input slices (``|sum| <= T``) is exact at
``ceil(log2 T) + 2`` bits, and at ``k`` fewer bits when it holds at most
``T 2**-k`` non-zero weights (D.U.B., Ibrayev et al., arXiv 2403.13082).
The step does not depend on the column, so per-column or per-tile ``bits``
shrink the range, not the resolution (CrossSim offers such an ADC range as
"granular").

Rounding uses the straight-through estimator ``round(x) ~ x`` in the backward
pass; clipping passes zero gradient outside the range.
"""

from __future__ import annotations

import functools
import math
import operator

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from crossjax import config_checks as chk

DAC_RANGES = ("fixed", "max")
ENCODINGS = ("amplitude", "pulse_width")  # bit-serial amplitude: slice_bits
# float32 holds every integer up to 2**24 exactly, float64 up to 2**53: codes,
# levels and shift-add coefficients beyond that would silently round (and
# 2**(bits-1) overflows float32 at 129 bits), so every bit count is bounded by
# the working dtype's: float64 when x64 is enabled, else float32.


def max_bits(dtype=None) -> int:
    """Largest bit count whose integers ``dtype`` represents exactly (24 for float32, 53 for
    float64); ``None``: JAX's default float (float64 only with ``jax_enable_x64``).

    Args:
      dtype: a floating dtype, or ``None``.

    Returns:
      The int ``nmant + 1`` of ``dtype`` (the mantissa bits and the implicit one).

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import converters
      >>> converters.max_bits(jnp.float32), converters.max_bits(jnp.float64)
      (24, 53)
    """
    dtype = jnp.result_type(float) if dtype is None else jnp.dtype(dtype)
    return jnp.finfo(dtype).nmant + 1


ADC_RANGES = ("fixed", "max", "calibrated", "granular")

#: ``ADCConfig.kind`` -> conversion law ``law(current, full_scale, bits) -> current``: amperes
#: in and out, ``full_scale`` (A) and ``bits`` (an int or integer array) broadcast against
#: ``current``; the read-out applies it to every tile column it converts. Add a kind with
#: :func:`register_adc` (the default ``"uniform"`` is :func:`adc_quantize`).
ADC_KINDS: dict = {}


def register_adc(kind: str, law=None):
    """Make ``law`` the conversion of ``ADCConfig(kind=kind)``; returns ``law`` (a decorator too).

    A new ADC type is a module with its law and this one call: configs name it by
    ``adc.kind``, and every read-out that converts (``crossbar.matmul``, training,
    Monte Carlo, the studies) applies it. The law must be differentiable (or
    carry a straight-through gradient, as :func:`adc_quantize` does) and keep
    the dtype of ``current``.

    Args:
      kind: the name, a non-empty string.
      law: ``law(current, full_scale, bits) -> current`` (see :data:`ADC_KINDS`).

    Returns:
      ``law``.

    Raises:
      ValueError: an empty or non-string ``kind``, or a ``law`` that is not callable.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import converters
      >>> @converters.register_adc("clip_only")     # an ideal converter that only saturates
      ... def clip_only(current, full_scale, bits):
      ...     return jnp.clip(current, -full_scale, full_scale)
      >>> converters.ADCConfig(bits=4, kind="clip_only").kind
      'clip_only'
      >>> del converters.ADC_KINDS["clip_only"]
    """
    if law is None:  # used as @register_adc(kind)
        return lambda fn: register_adc(kind, fn)
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"kind must be a non-empty string naming the ADC type, got {kind!r}.")
    if not callable(law):
        raise ValueError(f"law must be callable as law(current, full_scale, bits), got {law!r}.")
    ADC_KINDS[kind] = law
    return law


def shift_add(a, coef, axis: int = 0):
    """``sum_k coef[k] * a[k]`` along ``axis`` for a static tuple ``coef`` (bit slices, array pairs).

    Written as a sum of slices, not a contraction, so XLA fuses it with the
    elementwise converter and noise work around it (one pass over the data).

    Args:
      a: an array with ``len(coef)`` entries along ``axis`` (e.g. ``(S, ...)``
        outputs of ``S`` bit slices, or the arrays of a mapping).
      coef: a static tuple of Python numbers.
      axis: the axis summed over.

    Returns:
      ``a`` without ``axis``.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import converters
      >>> bits = jnp.array([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])  # bit 0 (row 0) and bit 1 of 3, 2, 1
      >>> converters.shift_add(bits, (1.0, 2.0)).tolist()
      [3.0, 2.0, 1.0]
    """
    terms = (c * jax.lax.index_in_dim(a, k, axis, keepdims=False) for k, c in enumerate(coef))
    return functools.reduce(operator.add, terms)


def ste_round(x):
    """``round(x)`` forward, identity gradient backward (straight-through estimator).

    Args:
      x: a floating array.

    Returns:
      ``round(x)`` (halves to even), the shape and dtype of ``x``; its gradient
      w.r.t. ``x`` is 1.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from crossjax import converters
      >>> x = jnp.array([0.25, 1.75, -2.5])
      >>> converters.ste_round(x).tolist()
      [0.0, 2.0, -2.0]
      >>> jax.grad(lambda x: converters.ste_round(x).sum())(x).tolist()  # straight through
      [1.0, 1.0, 1.0]
    """
    return x + jax.lax.stop_gradient(jnp.round(x) - x)


@struct.dataclass
class DACConfig:
    """Input DAC.

    Attributes:
      bits: input resolution including sign (``None``: ideal, unclipped, linear). static.
      v_read: read voltage for a full-scale input, volts.
      x_max: input range for ``range="fixed"`` (inputs are clipped to ``[-x_max, x_max]``
        when quantized).
      range: ``"fixed"`` (``x_max``) or ``"max"`` (per input vector ``max |x|``). static.
      slice_bits: bits per bit-serial input slice (``None``: all bits at once). static.
      encoding: ``"amplitude"`` (the level as a voltage; bit-serial with ``slice_bits``)
        or ``"pulse_width"`` (the level as a duration at ``+-v_read``; needs ``bits``). static.
    """

    bits: int | None = struct.field(pytree_node=False, default=None)
    v_read: float = 0.2
    x_max: float = 1.0
    range: str = struct.field(pytree_node=False, default="fixed")
    slice_bits: int | None = struct.field(pytree_node=False, default=None)
    encoding: str = struct.field(pytree_node=False, default="amplitude")

    def __post_init__(self):
        self.check(include_jax=False)

    def check(self, include_jax: bool = True):
        """Raise ``ValueError`` naming the field for an invalid value (concrete values only)."""
        j = include_jax
        chk.positive_int("dac.bits", self.bits, allow_none=True)
        if self.bits is not None and not 2 <= self.bits <= max_bits():
            raise ValueError(
                f"dac.bits must lie in [2, {max_bits()}] (sign + magnitude; the working dtype "
                f"{jnp.result_type(float)} represents integers exactly up to 2**{max_bits()}), "
                f"got {self.bits}."
            )
        chk.positive("dac.v_read", self.v_read, j)
        chk.positive("dac.x_max", self.x_max, j)
        chk.choice("dac.range", self.range, DAC_RANGES)
        chk.positive_int("dac.slice_bits", self.slice_bits, allow_none=True)
        if self.slice_bits is not None and self.slice_bits > max_bits():
            raise ValueError(f"dac.slice_bits must be <= {max_bits()}, got {self.slice_bits}.")
        if self.slice_bits is not None and self.bits is None:
            raise ValueError("dac.slice_bits needs dac.bits: set dac.bits or slice_bits=None.")
        chk.choice("dac.encoding", self.encoding, ENCODINGS)
        if self.encoding == "pulse_width" and (self.bits is None or self.slice_bits is not None):
            raise ValueError(
                "dac.encoding='pulse_width' times 2**(bits-1) - 1 levels: it needs dac.bits "
                "and no dac.slice_bits (bit-serial slices are an amplitude encoding)."
            )

    @property
    def input_levels(self) -> int:
        """Levels per ``v_read`` of one read's row voltage (the voltage unit is ``v_read /
        input_levels``): ``2**slice_bits - 1`` per bit-serial digit, ``2**(bits-1) - 1`` for one
        amplitude or pulse-width read (its mean current), 1 for an ideal DAC."""
        if self.bits is None:
            return 1
        if self.slice_bits is not None:
            return 2**self.slice_bits - 1
        return 2 ** (self.bits - 1) - 1

    @property
    def n_slices(self) -> int:
        """Slices ``S`` of :func:`apply_dac`: bit-serial digits, pulse-width time steps, else 1."""
        if self.encoding == "pulse_width":
            return 2 ** (self.bits - 1) - 1
        if self.slice_bits is None:
            return 1
        return math.ceil((self.bits - 1) / self.slice_bits)


@struct.dataclass
class ADCConfig:
    """Column ADC.

    Attributes:
      bits: resolution per column (``None``: ideal, no ADC). An int, or an integer array
        broadcastable to the per-tile columns ``(Nt, C)`` (per-column bits) or to
        ``(Kt, Nt, C)`` (per tile and column: a layer's own, see
        ``crossjax.layers.set_layer_hardware``).
      range: ``"fixed"``, ``"max"``, ``"calibrated"`` or ``"granular"`` (module doc). static.
      i_max: full scale in amperes for ``range="fixed"``.
      percentile: percentile of ``|I|`` used by ``crossbar.calibrate_adc``.
      kind: the conversion law, a name in :data:`ADC_KINDS` (``"uniform"``: the
        two's-complement quantizer :func:`adc_quantize`; more by :func:`register_adc`). static.
    """

    bits: object = None
    range: str = struct.field(pytree_node=False, default="max")
    i_max: float = 1e-4
    percentile: float = 99.99
    kind: str = struct.field(pytree_node=False, default="uniform")

    def __post_init__(self):
        self.check(include_jax=False)

    def check(self, include_jax: bool = True):
        """Raise ``ValueError`` naming the field for an invalid value (concrete values only)."""
        j = include_jax
        check_bits("adc.bits", self.bits, j)
        chk.choice("adc.range", self.range, ADC_RANGES)
        chk.choice("adc.kind", self.kind, tuple(ADC_KINDS))
        chk.positive("adc.i_max", self.i_max, j)
        check_percentile("adc.percentile", self.percentile, j)


def tile_column_bits(bits, shape):
    """ADC ``bits`` broadcast to a layer's tile columns.

    Args:
      bits: an int or an integer array (``ADCConfig.bits``): 3-D arrays are per tile
        ``(Kt, Nt, C)``, others per column ``(Nt, C)`` (broadcast).
      shape: the layer's ``(Kt, Nt, C)``.

    Returns:
      ``(Nt, C)`` (per column) or ``(Kt, Nt, C)`` (3-D ``bits``) array.

    Raises:
      ValueError: ``bits`` does not broadcast to that shape.

    Example:
      >>> tile_column_bits(8, (2, 1, 3)).tolist()
      [[8, 8, 8]]
      >>> tile_column_bits(np.array([[[8]], [[6]]]), (2, 1, 3)).tolist()
      [[[8, 8, 8]], [[6, 6, 6]]]
    """
    target = tuple(shape) if np.ndim(bits) == 3 else tuple(shape[1:])
    if np.ndim(bits) <= 3:
        try:
            return jnp.broadcast_to(jnp.asarray(bits), target)
        except ValueError:
            pass
    raise ValueError(
        f"adc.bits of shape {np.shape(bits)} does not broadcast to this layer's tile columns "
        f"(Kt, Nt, C) = {tuple(shape)} or (Nt, C); give one bit count per column of the layer's "
        "tiles (crossjax.layers.set_layer_hardware gives each layer its own config)."
    )


def check_bits(name: str, bits, include_jax: bool = True, dtype=None) -> None:
    """ADC bits: ``None``, an int or an integer array in ``[2, max_bits(dtype)]``; bools and
    strings are refused.

    One bit of a two's-complement ADC only tells the sign (codes -1 and 0, so
    every positive current read 0); beyond :func:`max_bits` the codes are not
    exact in the working dtype (24 for float32, 53 for float64).

    Args:
      name: the config field, for the message (e.g. ``"adc.bits"``).
      bits: the value to check; tracers and abstract arrays pass unchecked.
      include_jax: also check the values of concrete JAX arrays.
      dtype: the working dtype that bounds the bits (default: JAX's default float).

    Returns:
      ``None``; it only raises.

    Raises:
      ValueError: naming ``name``, for a bool, string, other non-integer type, or a
        count outside ``[2, max_bits(dtype)]``.

    Example:
      >>> import numpy as np
      >>> from crossjax import converters
      >>> converters.check_bits("adc.bits", 8)
      >>> converters.check_bits("adc.bits", np.array([4, 8]))  # per-column bits
      >>> converters.check_bits("adc.bits", 1)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: adc.bits must be integers in [2, ...] (or None for no ADC), got 1: 1 bit only resolves the sign...
    """
    if bits is None or isinstance(bits, jax.core.Tracer):
        return
    kind = getattr(bits, "dtype", None)
    if isinstance(bits, (bool, np.bool_, str, bytes)) or (
        kind is not None and (kind == np.bool_ or kind.kind in "USO")
    ):
        raise ValueError(
            f"{name} must be an integer (or an integer array, or None for no ADC), got "
            f"{bits!r} of type {type(bits).__name__}; write e.g. {name.split('.')[-1]} = 8."
        )
    if kind is not None and hasattr(bits, "shape") and not isinstance(bits, (np.generic, np.ndarray, jax.Array)):
        return  # an abstract stand-in (jax.ShapeDtypeStruct, nnx's repr of an array): no values to check
    if not isinstance(bits, (int, float, np.integer, np.floating, np.ndarray, jax.Array)):
        raise ValueError(f"{name} must be an integer, an integer array or None, got {type(bits).__name__}.")
    b = chk.concrete(bits, include_jax)
    if b is None:
        return
    top = max_bits(dtype)
    if b.size == 0 or not np.all(np.isfinite(b)) or np.any(b != np.round(b)) or np.any(b < 2) or np.any(b > top):
        raise ValueError(
            f"{name} must be integers in [2, {top}] (or None for no ADC), got {bits!r}: 1 bit only "
            f"resolves the sign and more than {top} exceed the exact integers of "
            f"{jnp.dtype(dtype) if dtype is not None else jnp.result_type(float)}"
            + ("; enable float64 for more" if top == 24 else "")
            + "."
        )


def check_percentile(name: str, value, include_jax: bool = True) -> None:
    """A calibration percentile in ``(0, 100]``, finite, not a bool or string.

    Args:
      name: the config field, for the message (e.g. ``"adc.percentile"``).
      value: the value to check; tracers pass unchecked.
      include_jax: also check the value of a concrete JAX array.

    Returns:
      ``None``; it only raises.

    Raises:
      ValueError: naming ``name``, for ``None``, a bool or string, or a value that is
        not one finite number in ``(0, 100]``.

    Example:
      >>> from crossjax import converters
      >>> converters.check_percentile("adc.percentile", 99.99)
      >>> converters.check_percentile("adc.percentile", 0)
      Traceback (most recent call last):
      ...
      ValueError: adc.percentile must lie in (0, 100], got 0; e.g. 99.99.
    """
    if isinstance(value, (bool, str, bytes)) or value is None:
        raise ValueError(f"{name} must be a number in (0, 100], got {value!r}.")
    p = chk.concrete(value, include_jax)
    if p is not None and not (p.size == 1 and np.isfinite(p) and 0 < p <= 100):
        raise ValueError(f"{name} must lie in (0, 100], got {value!r}; e.g. 99.99.")


def apply_dac(x, dac: DACConfig):
    """Row voltages for inputs ``x`` ``(..., K)``.

    Returns ``(v, coef, x_range)``: ``v`` ``(S, ..., K)`` volts for the ``S``
    bit-serial slices (pulse width: time steps, ``coef = 1/n`` each), ``coef`` a
    tuple of ``S`` shift-add weights with
    ``sum_k coef[k] * v[k] / v_read == x_q / x_range``, and ``x_range``
    ``(..., 1)`` (or a scalar) to undo the input scaling. Gradients are
    straight-through: ``d sum_k coef[k] v[k] / dx`` is that of ``x_q``.

    Args:
      x: inputs ``(..., K)``.
      dac: :class:`DACConfig`.

    Returns:
      ``(v, coef, x_range)`` as above.

    Example:
      >>> import jax.numpy as jnp
      >>> v, coef, _ = apply_dac(jnp.array([0.5, -1.0]), DACConfig(bits=3, encoding="pulse_width", v_read=0.2))
      >>> (v / 0.2).round().tolist(), len(coef)   # 3 time steps: levels 2 and -3 of n = 3
      ([[1.0, -1.0], [1.0, -1.0], [0.0, -1.0]], 3)
    """
    if dac.range == "max":
        x_range = jnp.max(jnp.abs(x), axis=-1, keepdims=True)
        x_range = jnp.where(x_range > 0, x_range, 1.0)
        x_range = jax.lax.stop_gradient(x_range)
    else:
        x_range = jnp.asarray(dac.x_max, dtype=x.dtype)
    xn = x / x_range
    if dac.bits is None:
        return (xn * dac.v_read)[None], (1.0,), x_range
    n = 2 ** (dac.bits - 1) - 1
    q = ste_round(jnp.clip(xn, -1.0, 1.0) * n)
    if dac.encoding == "pulse_width":
        return _pulse_width(q, n) * dac.v_read, (1.0 / n,) * n, x_range
    if dac.slice_bits is None:
        return (q / n * dac.v_read)[None], (1.0,), x_range
    s = dac.slice_bits
    base = 2**s
    mag = jax.lax.stop_gradient(jnp.abs(q))
    sign = jax.lax.stop_gradient(jnp.sign(q))
    slices, coef = [], []
    for k in range(dac.n_slices):  # static, a handful of bit slices
        d = jnp.mod(jnp.floor(mag / base**k), base)
        slices.append(sign * d / (base - 1))
        coef.append(base**k * (base - 1) / n)
    v = jnp.stack(slices)
    # straight-through: the gradient of the recombined input flows via slice 0
    v = v.at[0].add((q / n - jax.lax.stop_gradient(q / n)) / coef[0])
    return v * dac.v_read, tuple(coef), x_range


def _pulse_width(q, n):
    """Time steps ``l = 1..n`` of levels ``q`` (``(..., K)``, integers in ``[-n, n]``):
    ``sign(q) [|q| >= l]`` ``(n, ..., K)``; the straight-through gradient of ``q / n``
    reaches every step (their mean is ``q / n``)."""
    level = jax.lax.stop_gradient(q)
    steps = jnp.arange(1, n + 1, dtype=q.dtype).reshape((n,) + (1,) * q.ndim)
    on = jnp.sign(level) * (jnp.abs(level) >= steps)
    return on + (q - level) / n


def dac_equivalent(x, dac: DACConfig):
    """The input value the DAC applies, in the units of ``x``: ``x_range * sum_s coef_s v_s / v_read``
    (``x`` itself for an ideal DAC). A crossbar without ADC or read noise computes ``dac_equivalent(x) @ W_eff``.

    Args:
      x: inputs ``(..., K)``.
      dac: :class:`DACConfig`.

    Returns:
      ``(..., K)`` in the units of ``x``: each input clipped to ``[-x_range, x_range]``
      and rounded to ``x_range * k / n`` (``n = 2**(bits-1) - 1``, ``k`` in ``[-n, n]``);
      ``x`` itself for an ideal DAC (``bits=None``).

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import converters
      >>> x = jnp.array([0.5, -0.2, 2.0])
      >>> dac = converters.DACConfig(bits=3, x_max=1.0)  # levels k / 3, k in [-3, 3]
      >>> [round(float(v), 4) for v in converters.dac_equivalent(x, dac)]  # 2.0 is clipped
      [0.6667, -0.3333, 1.0]
    """
    if dac.bits is None:
        return x
    if dac.encoding == "pulse_width":  # the mean of its time steps is the amplitude level, exactly
        dac = dac.replace(encoding="amplitude")
    v, coef, x_range = apply_dac(x, dac)
    return shift_add(v, coef) * (x_range / dac.v_read)


def adc_quantize(current, full_scale, bits):
    """Two's-complement ADC: ``clip(round(I/step), -2**(b-1), 2**(b-1)-1) * step``, ``step = i_fs / 2**(b-1)``.

    ``current`` amperes; ``full_scale`` and ``bits`` broadcast against it.
    Straight-through gradient: with ``u = I/step`` and the code ``c``,
    ``d out/d I = 1`` where ``round(u)`` is a code (``-2**(b-1) <= round(u) <= 2**(b-1)-1``)
    and 0 where it is clipped; ``d out/d step = c - u`` inside the range and ``c``
    outside (the rounding is the identity inside). ``bits`` gets no gradient.

    Args:
      current: column currents, amperes.
      full_scale: ``i_fs``, amperes, broadcast against ``current``.
      bits: an int or integer array, broadcast against ``current``.

    Returns:
      Converted currents ``code * step``, amperes, the broadcast shape of the three
      arguments.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import converters
      >>> I = jnp.linspace(-1e-4, 1e-4, 101)  # amperes
      >>> q = converters.adc_quantize(I, 1e-4, 4)  # 4 bits, 100 uA full scale
      >>> int(jnp.unique(q).size)  # 2**4 levels
      16
      >>> step = 1e-4 / 2**3
      >>> int(jnp.round(q.min() / step)), int(jnp.round(q.max() / step))  # codes -8 .. 7
      (-8, 7)
    """
    half = 2.0 ** (jnp.asarray(bits, dtype=current.dtype) - 1)
    return _adc(current, full_scale / half, half)


@jax.custom_vjp
def _adc(current, step, half):
    return jnp.clip(jnp.round(current / step), -half, half - 1) * step


def _adc_fwd(current, step, half):
    return _adc(current, step, half), (current, step, half)


def _adc_bwd(residuals, ct):
    current, step, half = residuals
    u = current / step
    r = jnp.round(u)
    inside = (r >= -half) & (r <= half - 1)
    d_step = jnp.where(inside, r - u, jnp.clip(r, -half, half - 1))
    ct_current = jnp.where(inside, ct, 0.0)
    if ct_current.shape != jnp.shape(current):  # a current broadcast against the full scale
        ct_current = _sum_products_to(ct_current, jnp.ones_like(ct_current), jnp.shape(current))
    ct_step = _sum_products_to(ct, d_step, jnp.shape(step))
    # each cotangent in its primal's dtype (a float32 current against a float64 full scale)
    return ct_current.astype(current.dtype), ct_step.astype(step.dtype), jnp.zeros_like(half)


_adc.defvjp(_adc_fwd, _adc_bwd)
register_adc("uniform", adc_quantize)


def _sum_products_to(a, b, shape):
    """``sum(a * b)`` over the axes that ``shape`` broadcasts to ``a.shape``, as
    ``shape``: the cotangent of a broadcast operand. One ``einsum`` (a batched
    dot product): XLA CPU's reduce of ``a * b`` over a middle axis is far slower
    (``benchmarks/README.md``, "Per-tile outputs").
    """
    lead = a.ndim - len(shape)
    kept = [ax for ax in range(a.ndim) if ax >= lead and shape[ax - lead] == a.shape[ax] != 1]
    letters = [chr(ord("a") + ax) for ax in range(a.ndim)]
    spec = "".join(letters)
    out = jnp.einsum(f"{spec},{spec}->{''.join(letters[ax] for ax in kept)}", a, b)
    return out.reshape(shape)


def percentile_full_scale(currents, percentile, axis):
    """ADC full scale from data: the ``percentile`` of ``|I|`` over ``axis`` (amperes), floored at
    ``tiny * 2**max_bits``.

    Args:
      currents: measured column currents, amperes.
      percentile: in ``(0, 100]``.
      axis: the axis (or axes) of the samples; ``None``: all of them.

    Returns:
      The full scale, amperes: ``currents`` without ``axis``, at least
      ``finfo.tiny * 2**max_bits`` (so all-zero data gives a normal ADC step).

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import converters
      >>> I = jnp.arange(1.0, 101.0)[:, None] * jnp.array([1e-6, 2e-6])  # 100 reads of 2 columns
      >>> fs = converters.percentile_full_scale(I, 50.0, axis=0)
      >>> fs.shape, [round(float(f) * 1e6, 4) for f in fs]  # the medians, uA
      ((2,), [50.5, 101.0])
      >>> bool(converters.percentile_full_scale(jnp.zeros(4), 99.0, axis=0) > 0)
      True
    """
    fs = jnp.percentile(jnp.abs(currents), percentile, axis=axis)
    # floored so that the ADC step fs / 2**(bits-1) stays a normal number for every
    # allowed bit count: all-zero calibration data then read 0, not 0/0 = NaN
    # (XLA CPU flushes subnormal steps to zero)
    return jnp.maximum(fs, jnp.finfo(fs.dtype).tiny * 2.0 ** max_bits(fs.dtype))
