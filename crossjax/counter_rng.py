"""A cheap counter-based Gaussian generator for per-read noise.

Read noise is resampled at every read, for every row tile of every read-out
column: on a network this is more normal draws than multiply-accumulates
leave time for. JAX's threefry-2x32 (20 rounds per 64 bits) costs 8-13.5 ns
per draw on a 2-core CPU, half of an analog VGG11 forward pass with read noise
and an 8-bit ADC. This generator costs 4.9-5.6 ns (measured) and is used when
``ReadNoise.generator == "counter"`` (the default); ``"threefry"`` keeps
``jax.random.normal``.

Construction, for the flat element index ``c`` (``uint32``)::

    k_0, k_1, k_2 = jax.random.bits(key, (3,))           threefry, once per call
    x = mix(mix(mix(c ^ k_0) ^ k_1) ^ k_2)                 a keyed bijection of c
    v = (2 floor(x / 2^8) + 1 - 2^24) / 2^24               = 2u - 1, u in (0, 1) on 24 bits
    z = sqrt(2) erfinv(v)                                  ~ N(0, 1), |z| < 5.4

(``v`` is an odd integer over ``2^24``: exact in float32, never +-1.)

``mix`` is the "lowbias32" integer hash (xor-shift / multiply, 32-bit,
invertible). Because the key enters between the rounds, every key gives its
own permutation of the counters, so the streams of different keys (Monte
Carlo samples, reads) do not overlap or shift into each other as they would
with ``hash(c + key)``. It is not a cryptographic generator; the tests check
the moments, a Kolmogorov-Smirnov test against N(0, 1), the independence of
neighbouring draws and of different keys. The same 24-bit uniform is used for
float32 and float64, so both precisions see the same noise.

Like ``jax.random``, the draw is a pure function of ``(key, shape)``, works
under ``jit``/``vmap``/``grad`` (zero gradient) and is reproducible bit for bit.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

ROUNDS = 3
_M1, _M2 = np.uint32(0x21F0AAAD), np.uint32(0xD35A2D97)  # lowbias32 multipliers


def mix(x):
    """The lowbias32 hash of ``uint32`` ``x`` (a bijection of the 32-bit integers).

    Args:
      x: ``uint32`` array of any shape (or a NumPy ``uint32`` scalar).

    Returns:
      The hashed values, same shape and dtype (elementwise).

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import counter_rng
      >>> int(counter_rng.mix(jnp.uint32(0))), int(counter_rng.mix(jnp.uint32(1)))
      (0, 114555507)
      >>> int(jnp.unique(counter_rng.mix(jnp.arange(1000, dtype=jnp.uint32))).size)   # no collisions
      1000
    """
    x = x ^ (x >> 16)
    x = x * _M1
    x = x ^ (x >> 15)
    x = x * _M2
    return x ^ (x >> 15)


def bits(key, shape):
    """``uint32`` draws of ``shape``: the keyed hash of each element's flat index.

    Args:
      key: a JAX PRNG key (its threefry bits give the ``ROUNDS`` round keys).
      shape: the output shape, at most ``2**32`` elements.

    Returns:
      ``uint32`` array of ``shape``, a pure function of ``(key, shape)``.

    Raises:
      ValueError: more than ``2**32`` elements.

    Example:
      >>> import jax
      >>> from crossjax import counter_rng
      >>> b = counter_rng.bits(jax.random.key(0), (2, 3))
      >>> b.shape, str(b.dtype), bool((b == counter_rng.bits(jax.random.key(0), (2, 3))).all())
      ((2, 3), 'uint32', True)
    """
    shape = tuple(shape)
    n = math.prod(shape)
    if n > 2**32:
        raise ValueError(f"shape {shape} has {n} elements; counter_rng draws at most 2**32 per call, split the draw.")
    round_keys = jax.random.bits(key, (ROUNDS,), jnp.uint32)
    x = jax.lax.iota(jnp.uint32, n)
    for r in range(ROUNDS):  # static, 3 rounds
        x = mix(x ^ round_keys[r])
    return x.reshape(shape)


def normal(key, shape, dtype=jnp.float32):
    """Standard normal draws of ``shape`` and floating ``dtype`` (see the module docstring).

    Args:
      key: a JAX PRNG key.
      shape: the output shape, at most ``2**32`` elements.
      dtype: a floating dtype (the draw is made in float32, 24-bit uniforms, then cast).

    Returns:
      ``N(0, 1)`` draws of ``shape`` and ``dtype``, ``|z| < 5.4``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from crossjax import counter_rng
      >>> z = counter_rng.normal(jax.random.key(0), (10000,))
      >>> z.shape, str(z.dtype), bool(abs(z.mean()) < 0.05), bool(abs(z.std() - 1) < 0.05)
      ((10000,), 'float32', True, True)
    """
    odd = (2 * (bits(key, shape) >> 8) + 1).astype(jnp.int32) - 2**24  # odd, |odd| < 2^24
    v = odd.astype(jnp.float32) * np.float32(2.0**-24)  # = 2u - 1, exact, in (-1, 1)
    z = np.float32(math.sqrt(2.0)) * jax.lax.erf_inv(v)
    return z.astype(dtype)
