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

import numpy as np
import jax


def concrete(value, include_jax: bool = True) -> np.ndarray | None:
    """``value`` as a float64 NumPy array if it is concrete and numeric, else ``None``.

    ``include_jax=False`` also skips (non-traced) JAX arrays.
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
    a = concrete(value, include_jax)
    if a is not None and not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got {value!r}; pass a finite number.")


def non_negative(name: str, value, include_jax: bool = True) -> None:
    finite(name, value, include_jax)
    a = concrete(value, include_jax)
    if a is not None and np.any(a < 0):
        raise ValueError(f"{name} must be >= 0, got {value!r}; use 0 to switch it off.")


def positive(name: str, value, include_jax: bool = True) -> None:
    finite(name, value, include_jax)
    a = concrete(value, include_jax)
    if a is not None and np.any(a <= 0):
        raise ValueError(f"{name} must be > 0, got {value!r}; pass a positive value.")


def fraction(name: str, value, include_jax: bool = True) -> None:
    non_negative(name, value, include_jax)
    a = concrete(value, include_jax)
    if a is not None and np.any(a > 1):
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}; pass a fraction.")


def choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, got {value!r}.")


def positive_int(name: str, value, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        hint = " or None to switch it off" if allow_none else ""
        raise ValueError(f"{name} must be a positive integer{hint}, got {value!r}.")
