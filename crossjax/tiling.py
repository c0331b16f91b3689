"""The tile layout: how a layer's weight matrix and inputs are cut into crossbar tiles.

Every module that tiles (mapping, crossbar, pruning, energy, mitigation, the paper
studies) calls these functions, so the layout is defined once:

* ``W`` ``(K, N)`` (``K`` inputs on the rows, ``N`` outputs on the columns) is
  zero-padded to ``(Kt R, Nt C)`` with ``Kt = ceil(K / R)``, ``Nt = ceil(N / C)``,
  and tile ``(a, b)`` is ``W[a R:(a+1) R, b C:(b+1) C]``: tiled shape
  ``(Kt, Nt, R, C)`` (:func:`tile`, :func:`untile`); leading axes are carried.
* an input vector ``(..., K)`` is cut the same way into ``(..., Kt, R)``
  (:func:`tile_inputs`), zero-padded, so padding rows add nothing.
* a convolution kernel ``(kh, kw, Cin, Cout)`` is the matrix
  ``kernel.transpose(2, 0, 1, 3).reshape(Cin kh kw, Cout)`` (channel-major rows,
  :func:`flatten_kernel`), the row order of ``layers.CrossbarConv``'s patches.

The functions are shape-generic and work on NumPy or JAX arrays (JAX arrays out),
under ``jit`` and ``vmap``.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

__all__ = [
    "grid",
    "tile",
    "untile",
    "tile_inputs",
    "valid_tiles",
    "real_columns",
    "column_nonzeros",
    "flatten_kernel",
    "unflatten_kernel",
    "check_tile_size",
    "check_matrix",
]


def check_tile_size(rows, cols) -> None:
    """Raise ``ValueError`` unless ``rows`` and ``cols`` are positive Python ints.

    Args:
      rows, cols: the tile size ``R x C`` (cells).

    Raises:
      ValueError: either is not a positive ``int`` (bools and NumPy integers are refused).

    Example:
      >>> check_tile_size(64, 64)
      >>> check_tile_size(64, 0)
      Traceback (most recent call last):
      ...
      ValueError: cols must be a positive int (crossbar tile size), got 0
    """
    for name, v in (("rows", rows), ("cols", cols)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive int (crossbar tile size), got {v!r}")


def check_matrix(W, name: str = "W") -> None:
    """Raise ``ValueError`` unless ``W`` is a 2-D ``(K, N)`` weight matrix.

    Args:
      W: the array to check (NumPy or JAX).
      name: its name, for the message.

    Raises:
      ValueError: ``W`` is not 2-D.

    Example:
      >>> check_matrix(np.zeros((3, 2)))
      >>> check_matrix(np.zeros((3, 3, 4, 8)), "kernel")
      Traceback (most recent call last):
      ...
      ValueError: kernel must be a 2-D weight matrix (K inputs, N outputs), got shape (3, 3, 4, 8); ...
    """
    if jnp.ndim(W) != 2:
        raise ValueError(
            f"{name} must be a 2-D weight matrix (K inputs, N outputs), got shape {jnp.shape(W)}; "
            "flatten conv kernels with flatten_kernel first"
        )


def grid(K: int, N: int, rows: int, cols: int) -> tuple[int, int]:
    """Tiles ``(Kt, Nt) = (ceil(K / rows), ceil(N / cols))`` of a ``(K, N)`` matrix.

    Example:
      >>> grid(130, 70, 64, 64)
      (3, 2)
    """
    return math.ceil(K / rows), math.ceil(N / cols)


def tile(W, rows: int, cols: int):
    """Cut ``W`` into tiles, zero-padded (module doc).

    Args:
      W: ``(..., K, N)``.
      rows, cols: the tile size ``R x C``.

    Returns:
      ``(..., Kt, Nt, R, C)``.

    Example:
      >>> tile(np.arange(6.0).reshape(3, 2), 2, 2)[1, 0].tolist()   # row tile 1: row 2 and padding
      [[4.0, 5.0], [0.0, 0.0]]
    """
    W = jnp.asarray(W)
    K, N = W.shape[-2:]
    kt, nt = grid(K, N, rows, cols)
    Wp = jnp.pad(W, [(0, 0)] * (W.ndim - 2) + [(0, kt * rows - K), (0, nt * cols - N)])
    return jnp.moveaxis(Wp.reshape(W.shape[:-2] + (kt, rows, nt, cols)), -3, -2)


def untile(tiles, K: int, N: int):
    """Inverse of :func:`tile`: ``(..., Kt, Nt, R, C)`` -> ``(..., K, N)``, padding dropped.

    Example:
      >>> W = np.arange(6.0).reshape(3, 2)
      >>> bool((untile(tile(W, 2, 2), 3, 2) == W).all())
      True
    """
    tiles = jnp.asarray(tiles)
    kt, nt, r, c = tiles.shape[-4:]
    W = jnp.moveaxis(tiles, -2, -3).reshape(tiles.shape[:-4] + (kt * r, nt * c))
    return W[..., :K, :N]


def tile_inputs(v, K: int, rows: int):
    """Cut inputs along their last axis into row tiles: ``(..., K)`` -> ``(..., Kt, R)``,
    zero-padded.

    Example:
      >>> tile_inputs(np.ones(3), 3, 2).tolist()
      [[1.0, 1.0], [1.0, 0.0]]
    """
    v = jnp.asarray(v)
    kt = -(-K // rows)
    v = jnp.pad(v, [(0, 0)] * (v.ndim - 1) + [(0, kt * rows - K)])
    return v.reshape(v.shape[:-1] + (kt, rows))


def valid_tiles(K: int, N: int, rows: int, cols: int) -> np.ndarray:
    """NumPy bool ``(Kt, Nt, R, C)``: ``True`` where the tiled entry is a real weight, not
    padding (built from shapes only: a constant under ``jit``).

    Example:
      >>> int(valid_tiles(3, 2, 2, 2).sum())
      6
    """
    Kt, Nt = grid(K, N, rows, cols)
    v = np.zeros((Kt * rows, Nt * cols), bool)
    v[:K, :N] = True
    return v.reshape(Kt, rows, Nt, cols).transpose(0, 2, 1, 3)


def real_columns(N: int, cols: int) -> np.ndarray:
    """NumPy bool ``(Nt, C)``: which crossbar columns of a column-tile row hold an output (the
    rest are padding of the last column tile).

    Example:
      >>> real_columns(3, 2).tolist()
      [[True, True], [True, False]]
    """
    return valid_tiles(1, N, 1, cols)[0, :, 0, :]


def column_nonzeros(W, rows: int, cols: int) -> np.ndarray:
    """Non-zero weights in every crossbar column: NumPy int ``(Kt, Nt, C)`` (padding columns 0).

    Example:
      >>> column_nonzeros(np.array([[1.0, 0.0], [2.0, 3.0], [0.0, 4.0]]), 2, 2).tolist()
      [[[2, 1]], [[0, 1]]]
    """
    check_matrix(W)
    return np.asarray(tile(np.asarray(W) != 0, rows, cols)).sum(axis=2)


def flatten_kernel(kernel):
    """Conv kernel ``(kh, kw, Cin, Cout)`` -> its crossbar matrix ``(Cin kh kw, Cout)``
    (channel-major rows); a 2-D ``(K, N)`` kernel passes through.

    Example:
      >>> flatten_kernel(np.zeros((3, 3, 4, 8))).shape
      (36, 8)
    """
    if kernel.ndim == 2:
        return kernel
    if kernel.ndim != 4:
        raise ValueError(f"kernel must be (K, N) or (kh, kw, Cin, Cout), got shape {kernel.shape}")
    return kernel.transpose(2, 0, 1, 3).reshape(-1, kernel.shape[-1])


def unflatten_kernel(W, shape):
    """Inverse of :func:`flatten_kernel` for a kernel of shape ``shape``.

    Example:
      >>> k = np.arange(72.0).reshape(3, 3, 2, 4)
      >>> bool((unflatten_kernel(flatten_kernel(k), k.shape) == k).all())
      True
    """
    if len(shape) == 2:
        return W.reshape(shape)
    kh, kw, cin, cout = shape
    return W.reshape(cin, kh, kw, cout).transpose(1, 2, 0, 3)
