"""Wire voltage drops of the cell-current form of the crossbar circuit.

With cell currents ``I[i, j]`` (amperes, row node -> column node) the
row-node and column-node voltages follow from the wires alone:

    v_row[i, j] = V[i] - r_source * T[i, 0] - r_wire_row * sum_{k<=j} T[i, k],
        T[i, k] = sum_{j' >= k} I[i, j']       (current in the row segment before cell k)
    v_col[i, j] = r_sink * S[R-1, j] + r_wire_col * sum_{k>=i} S[k, j],
        S[k, j] = sum_{i' <= k} I[i', j]       (current in the column segment below cell k)

i.e. ``V[i] - v_row - v_col = P I`` with a symmetric positive semi-definite
``P = P_row + P_col`` applied in O(R*C) by cumulative sums. The cell voltage is
``U = v_row - v_col = V[i] - P I`` and Ohm's law ``I = G * U`` closes the
system ``(diag(1/G) + P) I = V``.

Summing the segment currents gives ``P`` entrywise,

    (P_row I)[i, j] = sum_j' (r_source + r_wire_row (min(j, j') + 1)) I[i, j']
    (P_col I)[i, j] = sum_i' (r_sink + r_wire_col (R - max(i, i'))) I[i', j]

so up to ``DENSE_KERNEL_MAX`` rows and columns :func:`wire_operator` applies ``P``
as two small matrix products (``I @ K_row + K_col @ I``): O(R + C) multiply-adds
per cell, but faster on CPU than the four cumulative sums, which XLA lowers
to windowed reductions (``benchmarks/README.md``, "Wire operator"). Larger arrays
use the sums (O(1) per cell).
"""

from __future__ import annotations

import jax.numpy as jnp


def reverse_cumsum(x, axis):
    """``out[..., k, ...] = sum_(m >= k) x[..., m, ...]`` along ``axis`` (the current a wire segment
    carries is the sum of the cell currents beyond it).

    Args:
      x: array of any shape (e.g. cell currents in amperes).
      axis: the axis to sum along.

    Returns:
      An array of ``x``'s shape and units.

    Example:
      >>> import jax.numpy as jnp
      >>> reverse_cumsum(jnp.array([1.0, 2.0, 3.0]), 0).tolist()
      [6.0, 5.0, 3.0]
    """
    return jnp.flip(jnp.cumsum(jnp.flip(x, axis), axis), axis)


def row_segment_currents(I):
    """``T[..., i, k]``: current (A) in the row-wire segment just before cell ``(i, k)``.

    Args:
      I: cell currents (..., R, C), amperes.

    Returns:
      ``T`` (..., R, C), amperes.

    Example:
      >>> import jax.numpy as jnp
      >>> row_segment_currents(jnp.ones((2, 3))).tolist()
      [[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]]
    """
    return reverse_cumsum(I, -1)


def column_segment_currents(I):
    """``S[..., k, j]``: current (A) in the column-wire segment just below cell ``(k, j)``.

    Args:
      I: cell currents (..., R, C), amperes.

    Returns:
      ``S`` (..., R, C), amperes.

    Example:
      >>> import jax.numpy as jnp
      >>> column_segment_currents(jnp.ones((2, 3))).tolist()
      [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]]
    """
    return jnp.cumsum(I, -2)


def row_drop(I, p):
    """``V[i] - v_row[i, j]`` in volts for cell currents ``I`` (..., R, C).

    Args:
      I: cell currents (..., R, C), amperes.
      p: :class:`~crossjax.circuit.Parasitics` (ohms); uses ``r_source`` and
        ``r_wire_row``.

    Returns:
      The row-wire drop (..., R, C), volts.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import circuit
      >>> p = circuit.Parasitics(r_wire_row=1.0, r_wire_col=2.0)
      >>> I = jnp.full((2, 3), 1e-4)
      >>> bool(jnp.allclose(row_drop(I, p), I @ row_kernel(3, p, I.dtype)))
      True
    """
    T = row_segment_currents(I)
    return p.r_source * T[..., :, :1] + p.r_wire_row * jnp.cumsum(T, -1)


def column_voltage(I, p):
    """``v_col[i, j]`` in volts for cell currents ``I`` (..., R, C).

    Args:
      I: cell currents (..., R, C), amperes.
      p: :class:`~crossjax.circuit.Parasitics` (ohms); uses ``r_sink`` and
        ``r_wire_col``.

    Returns:
      The column-node voltages (..., R, C), volts.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import circuit
      >>> p = circuit.Parasitics(r_wire_row=1.0, r_wire_col=2.0)
      >>> I = jnp.full((2, 3), 1e-4)
      >>> bool(jnp.allclose(column_voltage(I, p), column_kernel(2, p, I.dtype) @ I))
      True
    """
    S = column_segment_currents(I)
    return p.r_sink * S[..., -1:, :] + p.r_wire_col * reverse_cumsum(S, -2)


DENSE_KERNEL_MAX = 256  # rows/columns up to which P is applied by matrix products


def row_kernel(C, p, dtype):
    """``K_row`` (C, C) in ohms, ``V[i] - v_row = I @ K_row``:
    ``K_row[j', j] = r_source + r_wire_row (min(j, j') + 1)``.

    Args:
      C: number of columns (int).
      p: :class:`~crossjax.circuit.Parasitics` (ohms).
      dtype: dtype of the result.

    Returns:
      ``K_row`` (C, C), ohms.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import circuit
      >>> row_kernel(3, circuit.Parasitics(r_wire_row=1.0, r_wire_col=2.0), jnp.float32).tolist()
      [[1.0, 1.0, 1.0], [1.0, 2.0, 2.0], [1.0, 2.0, 3.0]]
    """
    j = jnp.arange(C)
    return (p.r_source + p.r_wire_row * (jnp.minimum(j[:, None], j[None, :]) + 1).astype(dtype)).astype(dtype)


def column_kernel(R, p, dtype):
    """``K_col`` (R, R) in ohms, ``v_col = K_col @ I``:
    ``K_col[i, i'] = r_sink + r_wire_col (R - max(i, i'))``.

    Args:
      R: number of rows (int).
      p: :class:`~crossjax.circuit.Parasitics` (ohms).
      dtype: dtype of the result.

    Returns:
      ``K_col`` (R, R), ohms.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import circuit
      >>> column_kernel(2, circuit.Parasitics(r_wire_row=1.0, r_wire_col=2.0), jnp.float32).tolist()
      [[4.0, 2.0], [2.0, 2.0]]
    """
    i = jnp.arange(R)
    return (p.r_sink + p.r_wire_col * (R - jnp.maximum(i[:, None], i[None, :])).astype(dtype)).astype(dtype)


def wire_operator(I, p):
    """``P I = row_drop(I) + column_voltage(I)`` (volts) for cell currents ``I`` (..., R, C) in amperes.

    Args:
      I: cell currents (..., R, C), amperes.
      p: :class:`~crossjax.circuit.Parasitics` (ohms).

    Returns:
      ``P I`` (..., R, C), volts (kernel products up to ``DENSE_KERNEL_MAX``
      rows and columns, cumulative sums beyond).

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import circuit
      >>> p = circuit.Parasitics(r_wire_row=1.0, r_wire_col=2.0)
      >>> I = jnp.full((2, 3), 1e-4)
      >>> bool(jnp.allclose(wire_operator(I, p), row_drop(I, p) + column_voltage(I, p)))
      True
    """
    R, C = I.shape[-2:]
    if max(R, C) > DENSE_KERNEL_MAX:
        return row_drop(I, p) + column_voltage(I, p)
    return I @ row_kernel(C, p, I.dtype) + jnp.matmul(column_kernel(R, p, I.dtype), I)


def wire_operator_diagonal(shape, p, dtype):
    """``diag(P)`` reshaped to ``(R, C)``: ``r_source + r_wire_row*(j+1) + r_sink + r_wire_col*(R-i)``.

    Args:
      shape: ``(R, C)``, the array's rows and columns.
      p: :class:`~crossjax.circuit.Parasitics` (ohms).
      dtype: dtype of the result.

    Returns:
      ``diag(P)`` (R, C), ohms.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import circuit
      >>> p = circuit.Parasitics(r_wire_row=1.0, r_wire_col=2.0)
      >>> wire_operator_diagonal((2, 3), p, jnp.float32).tolist()
      [[5.0, 6.0, 7.0], [3.0, 4.0, 5.0]]
    """
    R, C = shape
    j = jnp.arange(1, C + 1, dtype=dtype)
    i = jnp.arange(R, 0, -1, dtype=dtype)
    return (p.r_source + p.r_wire_row * j)[None, :] + (p.r_sink + p.r_wire_col * i)[:, None]


def cell_voltages(I, V, p):
    """Voltage across each cell, ``U = V[i] - P I`` (volts); ``V`` is (..., R).

    Args:
      I: cell currents (..., R, C), amperes.
      V: row drive voltages (..., R), volts.
      p: :class:`~crossjax.circuit.Parasitics` (ohms).

    Returns:
      ``U`` (..., R, C), volts.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import circuit
      >>> p = circuit.Parasitics(r_wire_row=1.0, r_wire_col=2.0)
      >>> cell_voltages(jnp.zeros((2, 3)), jnp.array([1.0, 0.5]), p).tolist()
      [[1.0, 1.0, 1.0], [0.5, 0.5, 0.5]]
    """
    return V[..., :, None] - wire_operator(I, p)
