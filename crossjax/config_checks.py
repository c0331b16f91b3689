"""Eager validation of configuration values (concrete values only).

Configuration dataclasses are pytrees, so JAX re-runs their constructors while
unflattening under ``jit``/``vmap``/``grad`` with tracers or placeholder
objects as leaves. Every check here therefore looks only at *concrete* numeric
values (Python numbers, NumPy arrays, non-traced JAX arrays) and silently skips
everything else: under ``jit`` a config built from traced leaves is not checked.
Errors are ``ValueError`` naming the field and the fix.

JAX also rebuilds configs while unflattening *gradients* (cotangents may be
negative or violate ``g_min < g_max``), so config constructors check only
Python/NumPy values (``include_jax=False``); the kernels re-check the whole
config, JAX arrays included, on entry (``HardwareConfig.check()``).
"""

from __future__ import annotations

import jax
import numpy as np


def concrete(value, include_jax: bool = True) -> np.ndarray | None:
    """``value`` as a float64 NumPy array if it is concrete and numeric, else ``None``.

    ``include_jax=False`` also skips (non-traced) JAX arrays.

    Args:
      value: anything (a config field's value).
      include_jax: also convert non-traced JAX arrays.

    Returns:
      A float64 array of ``value``'s shape, or ``None`` for tracers, ``None``,
      bools and non-numeric values.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import config_checks as chk
      >>> chk.concrete(3).dtype, chk.concrete(True), chk.concrete("x")
      (dtype('float64'), None, None)
      >>> chk.concrete(jnp.ones(2)).shape, chk.concrete(jnp.ones(2), include_jax=False)
      ((2,), None)
    """
    if value is None or isinstance(value, jax.core.Tracer):
        return None
    if not include_jax and isinstance(value, jax.Array):
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, np.ndarray, np.generic, jax.Array)):
        try:
            return np.asarray(value, dtype=np.float64)
        except Exception:  # pragma: no cover - non-numeric placeholder
            return None
    return None


def finite(name: str, value, include_jax: bool = True) -> None:
    """Raise ``ValueError`` unless every entry of a concrete ``value`` is finite.

    Args:
      name: the field's name, for the message.
      value: its value (checked only when concrete, :func:`concrete`).
      include_jax: also check non-traced JAX arrays.

    Raises:
      ValueError: ``value`` holds NaN or inf.

    Example:
      >>> from crossjax import config_checks as chk
      >>> chk.finite("device.g_max", 1e-4)
      >>> chk.finite("device.g_max", float("nan"))
      Traceback (most recent call last):
      ...
      ValueError: device.g_max must be finite, got nan; pass a finite number.
    """
    _require(name, value, include_jax)


def _require(name: str, value, include_jax: bool, ok=None, rule: str = "", fix: str = "") -> None:
    """The finite check, then ``ok(entries)`` (all true) with message ``name must <rule> ... <fix>``."""
    a = concrete(value, include_jax)
    if a is None:
        return
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got {value!r}; pass a finite number.")
    if ok is not None and not np.all(ok(a)):
        raise ValueError(f"{name} must {rule}, got {value!r}; {fix}.")


def non_negative(name: str, value, include_jax: bool = True) -> None:
    """Raise ``ValueError`` unless a concrete ``value`` is finite and ``>= 0`` (every entry).

    Args:
      name, value, include_jax: as :func:`finite`.

    Raises:
      ValueError: ``value`` is not finite or has a negative entry.

    Example:
      >>> from crossjax import config_checks as chk
      >>> chk.non_negative("r_wire", 0.0)
      >>> chk.non_negative("r_wire", -1.0)
      Traceback (most recent call last):
      ...
      ValueError: r_wire must be >= 0, got -1.0; use 0 to switch it off.
    """
    _require(name, value, include_jax, lambda a: a >= 0, "be >= 0", "use 0 to switch it off")


def positive(name: str, value, include_jax: bool = True) -> None:
    """Raise ``ValueError`` unless a concrete ``value`` is finite and ``> 0`` (every entry).

    Args:
      name, value, include_jax: as :func:`finite`.

    Raises:
      ValueError: ``value`` is not finite or has an entry ``<= 0``.

    Example:
      >>> from crossjax import config_checks as chk
      >>> chk.positive("v_read", 0.2)
      >>> chk.positive("v_read", 0)
      Traceback (most recent call last):
      ...
      ValueError: v_read must be > 0, got 0; pass a positive value.
    """
    _require(name, value, include_jax, lambda a: a > 0, "be > 0", "pass a positive value")


def fraction(name: str, value, include_jax: bool = True) -> None:
    """Raise ``ValueError`` unless a concrete ``value`` lies in ``[0, 1]`` (every entry).

    Args:
      name, value, include_jax: as :func:`finite`.

    Raises:
      ValueError: ``value`` is not finite or has an entry outside ``[0, 1]``.

    Example:
      >>> from crossjax import config_checks as chk
      >>> import numpy as np
      >>> chk.fraction("p_stuck", np.array([0.0, 0.5, 1.0]))
      >>> chk.fraction("p_stuck", 1.5)
      Traceback (most recent call last):
      ...
      ValueError: p_stuck must lie in [0, 1], got 1.5; pass a fraction.
    """
    _require(name, value, include_jax, lambda a: (a >= 0) & (a <= 1), "lie in [0, 1]", "pass a fraction")


def choice(name: str, value, allowed) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``allowed``.

    Args:
      name: the field's name, for the message.
      value: its value.
      allowed: the permitted values (a set or sequence of sortable values).

    Raises:
      ValueError: ``value not in allowed`` (the message lists ``allowed``, sorted).

    Example:
      >>> from crossjax import config_checks as chk
      >>> chk.choice("adc.range", "max", {"max", "fixed"})
      >>> chk.choice("adc.range", "min", {"max", "fixed"})
      Traceback (most recent call last):
      ...
      ValueError: adc.range must be one of ['fixed', 'max'], got 'min'.
    """
    if value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, got {value!r}.")


def positive_int(name: str, value, *, allow_none: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer ``>= 1`` (Python or NumPy, not bool).

    Args:
      name: the field's name, for the message.
      value: its value.
      allow_none: also accept ``None`` (a switched-off option).

    Raises:
      ValueError: ``value`` is not a positive integer (nor an allowed ``None``).

    Example:
      >>> from crossjax import config_checks as chk
      >>> chk.positive_int("adc.bits", 8)
      >>> chk.positive_int("adc.bits", None, allow_none=True)
      >>> chk.positive_int("adc.bits", 0, allow_none=True)
      Traceback (most recent call last):
      ...
      ValueError: adc.bits must be a positive integer or None to switch it off, got 0.
    """
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        hint = " or None to switch it off" if allow_none else ""
        raise ValueError(f"{name} must be a positive integer{hint}, got {value!r}.")


# ----------------------------------------------------------------------------- checked mode
# Under ``jit`` values are tracers and the eager checks above skip them. Inside
# :func:`checked` the entry points also emit ``checkify`` checks on traced
# values, so a negative or NaN conductance or resistance becomes an error
# raised by the compiled function instead of a silent NaN.
_checked_depth = 0


def checking() -> bool:
    """True while a function runs under :func:`checked` (its trace emits runtime checks).

    Returns:
      Whether a :func:`checked` call is in progress.

    Example:
      >>> from crossjax import config_checks as chk
      >>> chk.checking()
      False
      >>> chk.checked(lambda: chk.checking())()
      True
    """
    return _checked_depth > 0


def traced_check(predicate, message: str) -> None:
    """``checkify.check(predicate, message)`` when checking; a no-op otherwise.

    ``predicate`` is a boolean array (all of it must hold); call this only for
    traced values (concrete ones are checked eagerly with ``ValueError``).

    Args:
      predicate: boolean array; the check fails unless all of it is true.
      message: the error message when it fails.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from crossjax import config_checks as chk
      >>> def f(g):
      ...     chk.traced_check(g >= 0, "g must be >= 0")
      ...     return 2 * g
      >>> f(-jnp.ones(2)).shape   # not under checked: no check
      (2,)
      >>> chk.checked(jax.jit(f))(-jnp.ones(2))
      Traceback (most recent call last):
      ...
      ValueError: g must be >= 0 (at run time, under crossjax.checked)
    """
    if checking():
        from jax.experimental import checkify

        checkify.check(jax.numpy.all(predicate), message)


def checked(fn):
    """``fn`` with the crossjax input checks enforced at run time, under ``jit`` too.

    Traced conductances, voltages and resistances that are negative, NaN or
    infinite (and circuits beyond the solver's range) raise ``ValueError`` when
    the function runs, where the plain call would return NaN or garbage. Built
    on ``jax.experimental.checkify``: ``fn`` may be jitted or contain ``jit``;
    functions jitted *outside* ``fn`` and traced earlier without checks keep
    their cached trace (check them through a fresh function).

    Args:
      fn: any function calling crossjax kernels (``circuit.solve``,
        ``crossbar.program``, a model's forward, ...).

    Returns:
      A function with ``fn``'s signature and outputs that raises ``ValueError``
      naming the failed check.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from crossjax import checked, circuit
      >>> p = circuit.Parasitics(r_wire_row=1.0, r_wire_col=1.0)
      >>> f = checked(jax.jit(lambda G: circuit.effective_conductance(G, p)))
      >>> f(-jnp.ones((2, 2)))
      Traceback (most recent call last):
      ...
      ValueError: G must be >= 0 siemens and finite (traced value failed the check) ...
    """
    from jax.experimental import checkify

    checkified = checkify.checkify(fn, errors=checkify.user_checks)

    def run(*args, **kwargs):
        global _checked_depth
        _checked_depth += 1
        try:
            err, out = checkified(*args, **kwargs)
        finally:
            _checked_depth -= 1
        message = err.get()
        if message is not None:
            raise ValueError(message.split(" (`check` failed")[0] + " (at run time, under crossjax.checked)")
        return out

    return run
