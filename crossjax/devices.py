"""Resistive devices: conductance range, finite levels and their non-idealities.

A mapped cell holds a normalized target ``u`` in ``[0, 1]`` (see ``crossjax.mapping``);
its nominal conductance is ``G = g_min + (g_max - g_min) * u`` (siemens). Each
non-ideality is an optional sub-config (``None`` = off, which is also static,
so a config without stochastic parts needs no PRNG key). Write-time effects
are applied by :func:`program_conductances` in this order:

1. finite levels: ``u <- round(u * (L - 1)) / (L - 1)`` (straight-through gradient);
2. device-to-device range variation (:class:`RangeVariation`): per device
   ``g_min_d = g_min * (1 + s_min * n1)``, ``g_max_d = g_max * (1 + s_max * n2)``,
   ``G = g_min_d + (g_max_d - g_min_d) * u``;
3. programming (write) noise (:class:`WriteNoise`), ``n ~ N(0, 1)`` per device:
   ``"gaussian"``: ``G + sigma * (g_max - g_min) * n``; ``"proportional"``:
   ``G * (1 + sigma * n)``; ``"lognormal"``: ``G * exp(sigma * n)`` (median kept);
   the result is clipped at 0 S (a conductance cannot be negative);
4. drift (:class:`Drift`): ``G(t) = G * (t / t0) ** (-nu_d)``, per-device
   exponent ``nu_d ~ N(nu, nu_std)`` (power law, as observed in PCM);
5. stuck-at faults (:class:`StuckAt`): a fraction ``p_min`` of devices is stuck at
   ``g_min`` and a disjoint fraction ``p_max`` at ``g_max`` (gradient 0 there).

Read noise (:class:`ReadNoise`) is resampled at every read: each cell's
conductance fluctuates independently by ``delta ~ N(0, s^2)`` with
``s = sigma * G`` (``"proportional"``) or ``s = sigma * (g_max - g_min)``
(``"gaussian"``), so a column current ``I_j = sum_i V_i (G_ij + delta_ij)`` gets
Gaussian noise of variance ``sum_i V_i^2 s_ij^2`` (A^2). That is how
``crossbar.matmul`` samples it: per tile column before an ADC; without an ADC
the independent terms of all tiles of an output are summed into one Gaussian.
This is exact for ideal wires; with wire resistance the same cell variances are
applied through the ideal-wire sum, a first-order model.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct

from crossjax import config_checks as chk
from crossjax import counter_rng
from crossjax.converters import max_bits as converters_max_bits
from crossjax.converters import ste_round

WRITE_NOISE_KINDS = ("gaussian", "proportional", "lognormal")
READ_NOISE_KINDS = ("gaussian", "proportional")
READ_NOISE_GENERATORS = ("counter", "threefry")


@struct.dataclass
class WriteNoise:
    """Programming noise of strength ``sigma`` (dimensionless); ``kind`` static."""

    sigma: float = 0.0
    kind: str = struct.field(pytree_node=False, default="gaussian")

    def __post_init__(self):
        self.check(include_jax=False)

    def check(self, include_jax: bool = True):
        """Raise ``ValueError`` naming the field for an invalid value (concrete values only)."""
        j = include_jax
        chk.non_negative("device.write_noise.sigma", self.sigma, j)
        chk.choice("device.write_noise.kind", self.kind, WRITE_NOISE_KINDS)


@struct.dataclass
class RangeVariation:
    """Device-to-device variation of the conductance range: relative std of ``g_min`` and ``g_max``."""

    sigma_g_min: float = 0.0
    sigma_g_max: float = 0.0

    def __post_init__(self):
        self.check(include_jax=False)

    def check(self, include_jax: bool = True):
        """Raise ``ValueError`` naming the field for an invalid value (concrete values only)."""
        j = include_jax
        chk.non_negative("device.range_variation.sigma_g_min", self.sigma_g_min, j)
        chk.non_negative("device.range_variation.sigma_g_max", self.sigma_g_max, j)


@struct.dataclass
class StuckAt:
    """Stuck-at faults: fractions of devices stuck at ``g_min`` (``p_min``) and ``g_max`` (``p_max``)."""

    p_min: float = 0.0
    p_max: float = 0.0

    def __post_init__(self):
        self.check(include_jax=False)

    def check(self, include_jax: bool = True):
        """Raise ``ValueError`` naming the field for an invalid value (concrete values only)."""
        j = include_jax
        chk.fraction("device.stuck.p_min", self.p_min, j)
        chk.fraction("device.stuck.p_max", self.p_max, j)
        a, b = chk.concrete(self.p_min, j), chk.concrete(self.p_max, j)
        if a is not None and b is not None and a + b > 1:
            raise ValueError("device.stuck.p_min + device.stuck.p_max must be <= 1.")


@struct.dataclass
class Drift:
    """Conductance drift ``G(t) = G (t/t0)^(-nu_d)``, ``nu_d ~ N(nu, nu_std)``; times in seconds."""

    t: float = 1.0
    t0: float = 1.0
    nu: float = 0.05
    nu_std: float = 0.0

    def __post_init__(self):
        self.check(include_jax=False)

    def check(self, include_jax: bool = True):
        """Raise ``ValueError`` naming the field for an invalid value (concrete values only)."""
        j = include_jax
        chk.positive("device.drift.t", self.t, j)
        chk.positive("device.drift.t0", self.t0, j)
        chk.non_negative("device.drift.nu", self.nu, j)
        chk.non_negative("device.drift.nu_std", self.nu_std, j)


@struct.dataclass
class ReadNoise:
    """Read noise resampled per read, strength ``sigma`` (dimensionless); ``kind`` static.

    ``generator`` (static) draws the per-read normals: ``"counter"`` (default) is
    :mod:`crossjax.counter_rng`, 1.4-2.8x cheaper per draw on a CPU than ``"threefry"``
    (``jax.random.normal``), which it matches in distribution, not in values.
    """

    sigma: float = 0.0
    kind: str = struct.field(pytree_node=False, default="proportional")
    generator: str = struct.field(pytree_node=False, default="counter")

    def __post_init__(self):
        self.check(include_jax=False)

    def check(self, include_jax: bool = True):
        """Raise ``ValueError`` naming the field for an invalid value (concrete values only)."""
        j = include_jax
        chk.non_negative("device.read_noise.sigma", self.sigma, j)
        chk.choice("device.read_noise.kind", self.kind, READ_NOISE_KINDS)
        chk.choice("device.read_noise.generator", self.generator, READ_NOISE_GENERATORS)


@struct.dataclass
class DeviceConfig:
    """Resistive device: conductance range (siemens), finite levels and non-idealities.

    ``levels``: number of programmable conductance states (``None``: continuous;
    ``2**bits`` for ``bits`` per cell). Build from resistances with
    :meth:`from_resistance`.
    """

    g_min: float = 1e-6
    g_max: float = 1e-4
    levels: int | None = struct.field(pytree_node=False, default=None)
    write_noise: WriteNoise | None = None
    range_variation: RangeVariation | None = None
    stuck: StuckAt | None = None
    drift: Drift | None = None
    read_noise: ReadNoise | None = None

    def __post_init__(self):
        self.check(include_jax=False)

    def check(self, include_jax: bool = True):
        """Raise ``ValueError`` naming the field for an invalid value (concrete values only)."""
        j = include_jax
        chk.non_negative("device.g_min", self.g_min, j)
        chk.positive("device.g_max", self.g_max, j)
        lo, hi = chk.concrete(self.g_min, j), chk.concrete(self.g_max, j)
        if lo is not None and hi is not None and lo >= hi:
            raise ValueError(
                f"device.g_min ({self.g_min}) must be < device.g_max ({self.g_max}); "
                "swap them or use from_resistance(r_on, r_off) with r_on < r_off."
            )
        chk.positive_int("device.levels", self.levels, allow_none=True)
        top = 2 ** converters_max_bits()
        if self.levels is not None and not 2 <= self.levels <= top:
            raise ValueError(f"device.levels must lie in [2, {top}] (or None): the working dtype represents "
                             f"the level grid exactly up to there, got {self.levels}.")
        for sub in (self.write_noise, self.range_variation, self.stuck, self.drift, self.read_noise):
            if sub is not None:
                sub.check(include_jax)

    @classmethod
    def from_resistance(cls, r_on: float, r_off: float, **kw) -> "DeviceConfig":
        """``g_max = 1/r_on``, ``g_min = 1/r_off`` (ohms)."""
        chk.positive("r_on", r_on)
        chk.positive("r_off", r_off)
        return cls(g_min=1.0 / r_off, g_max=1.0 / r_on, **kw)

    @property
    def write_stochastic(self) -> bool:
        """Whether programming samples random numbers (needs a PRNG key)."""
        return any(x is not None for x in (self.write_noise, self.range_variation, self.stuck, self.drift))


def draw(sample, key, shape, dtype):
    """``sample(key, shape, dtype)`` (``jax.random.normal`` / ``uniform``) drawn as a 2-D array and reshaped.

    The numbers equal a direct draw of ``shape`` (JAX's counter-based threefry,
    ``jax_threefry_partitionable``, indexes draws by their flat position), but XLA
    compiles a rank-2 draw several times faster than a rank-4/5 one (0.2 s vs
    1-2 s per call site on a CPU), which adds up over the layers of a network.
    """
    shape = tuple(shape)
    flat = (math.prod(shape[:-1]), shape[-1]) if len(shape) > 2 else shape
    return sample(key, flat, dtype).reshape(shape)


def program_conductances(u, device: DeviceConfig, key):
    """Programmed conductances (S) for normalized targets ``u`` in ``[0, 1]`` (any shape).

    Applies levels, range variation, write noise, drift and stuck-at faults as in
    the module docstring; independent sub-keys per effect (``fold_in(key, i)``).
    """
    g_min, g_max = device.g_min, device.g_max
    if device.levels is not None:
        n = device.levels - 1
        u = ste_round(jnp.clip(u, 0.0, 1.0) * n) / n
    dtype = u.dtype
    shape = u.shape
    rv = device.range_variation
    if rv is not None:
        k = jax.random.fold_in(key, 1)
        n1, n2 = draw(jax.random.normal, k, (2,) + shape, dtype)
        lo = g_min * (1 + rv.sigma_g_min * n1)
        hi = g_max * (1 + rv.sigma_g_max * n2)
        g = lo + (hi - lo) * u
    else:
        g = g_min + (g_max - g_min) * u
    wn = device.write_noise
    if wn is not None:
        n = draw(jax.random.normal, jax.random.fold_in(key, 2), shape, dtype)
        if wn.kind == "gaussian":
            g = g + wn.sigma * (g_max - g_min) * n
        elif wn.kind == "proportional":
            g = g * (1 + wn.sigma * n)
        else:
            g = g * jnp.exp(wn.sigma * n)
        g = jnp.maximum(g, 0.0)
    dr = device.drift
    if dr is not None:
        nu = dr.nu + dr.nu_std * draw(jax.random.normal, jax.random.fold_in(key, 3), shape, dtype)
        g = g * jnp.exp(-nu * jnp.log(dr.t / dr.t0))
    st = device.stuck
    if st is not None:
        r = draw(jax.random.uniform, jax.random.fold_in(key, 4), shape, dtype)
        g = jnp.where(r < st.p_min, jnp.asarray(g_min, dtype), g)
        g = jnp.where((r >= st.p_min) & (r < st.p_min + st.p_max), jnp.asarray(g_max, dtype), g)
    return g


def read_noise_normal(key, shape, dtype, device: DeviceConfig):
    """Standard normals ``(shape)`` for read noise, from ``device.read_noise.generator``."""
    sample = counter_rng.normal if device.read_noise.generator == "counter" else jax.random.normal
    return draw(sample, key, shape, dtype)


def read_noise_std(g, device: DeviceConfig):
    """Per-cell read-noise standard deviation ``s`` (S) for conductances ``g``."""
    rn = device.read_noise
    if rn.kind == "proportional":
        return rn.sigma * g
    return jnp.broadcast_to(rn.sigma * (device.g_max - device.g_min), g.shape).astype(g.dtype)
