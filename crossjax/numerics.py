"""Numerical helpers shared by the kernels: functions whose plain form has a bad gradient."""

from __future__ import annotations

import jax.numpy as jnp


def safe_sqrt(x):
    """``sqrt(x)`` for ``x >= 0`` with a finite gradient (0) where ``x == 0``.

    ``jnp.sqrt`` has an infinite derivative at 0, and ``0 * inf`` makes NaN: a
    column no input reaches (its read-noise variance is 0) or a pruned weight
    group (its group-lasso norm is 0) would turn every gradient NaN.

    Args:
      x: a non-negative array.

    Returns:
      ``sqrt(x)``, same shape and dtype.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from crossjax.numerics import safe_sqrt
      >>> float(jax.grad(lambda x: safe_sqrt(x))(jnp.float32(0.0)))
      0.0
    """
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)
