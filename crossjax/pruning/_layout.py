"""Tile layout helpers shared by pruning, energy and mitigation.

The layout is the one fixed in docs/architecture.md: ``W`` (K, N) is zero-padded
to (Kt*R, Nt*C), Kt = ceil(K/R), Nt = ceil(N/C), and tile (a, b) is
``W[a*R:(a+1)*R, b*C:(b+1)*C]``; tiled shape (Kt, Nt, R, C). These helpers
reproduce ``mapping.tile_weights`` / ``mapping.untile_weights`` on plain arrays
so that pruning does not depend on the mapping configuration objects.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def check_tile_size(rows, cols):
    """Raise ValueError unless ``rows`` and ``cols`` are positive Python ints."""
    for name, v in (("rows", rows), ("cols", cols)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive int (crossbar tile size), got {v!r}")


def check_matrix(W, name="W"):
    """Raise ValueError unless ``W`` is a 2-D (K, N) weight matrix."""
    if jnp.ndim(W) != 2:
        raise ValueError(
            f"{name} must be a 2-D weight matrix (K inputs, N outputs), got shape {jnp.shape(W)}; "
            "flatten conv kernels with flatten_kernel first")


def check_fraction(x, name):
    """Raise ValueError unless concrete ``x`` lies in [0, 1] (tracers are not checked)."""
    if isinstance(x, jax.core.Tracer):
        return
    v = float(x)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be a fraction in [0, 1], got {v}")


def grid(K, N, rows, cols):
    """Number of tiles (Kt, Nt) = (ceil(K/R), ceil(N/C))."""
    return math.ceil(K / rows), math.ceil(N / cols)


def tile(W, rows, cols):
    """(K, N) -> (Kt, Nt, R, C), zero-padded."""
    K, N = W.shape
    Kt, Nt = grid(K, N, rows, cols)
    Wp = jnp.pad(W, ((0, Kt * rows - K), (0, Nt * cols - N)))
    return Wp.reshape(Kt, rows, Nt, cols).transpose(0, 2, 1, 3)


def untile(T, K, N):
    """(Kt, Nt, R, C) -> (K, N), padding dropped."""
    Kt, Nt, R, C = T.shape
    return T.transpose(0, 2, 1, 3).reshape(Kt * R, Nt * C)[:K, :N]


def valid_tiles(K, N, rows, cols):
    """NumPy bool (Kt, Nt, R, C): True where the tiled entry is a real weight, not padding.

    Built from shapes only, so it is a constant under ``jit``.
    """
    Kt, Nt = grid(K, N, rows, cols)
    v = np.zeros((Kt * rows, Nt * cols), bool)
    v[:K, :N] = True
    return v.reshape(Kt, rows, Nt, cols).transpose(0, 2, 1, 3)


def flatten_kernel(kernel):
    """Conv kernel (kh, kw, Cin, Cout) -> (Cin*kh*kw, Cout) (channel-major rows); 2-D passes through."""
    if kernel.ndim == 2:
        return kernel
    if kernel.ndim != 4:
        raise ValueError(f"kernel must be (K, N) or (kh, kw, Cin, Cout), got shape {kernel.shape}")
    return kernel.transpose(2, 0, 1, 3).reshape(-1, kernel.shape[-1])


def unflatten_kernel(W, shape):
    """Inverse of :func:`flatten_kernel` for a kernel of shape ``shape``."""
    if len(shape) == 2:
        return W.reshape(shape)
    kh, kw, cin, cout = shape
    return W.reshape(cin, kh, kw, cout).transpose(1, 2, 0, 3)
