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

Fitted device models replace steps 3-4 with published, conductance-dependent
statistics at an inference time ``t``: :class:`PCMModel` (Nandakumar et al. 2019 /
Joshi et al. 2020: programming noise, drift, accumulated 1/f noise) and
:class:`RRAMModel` (Wan et al. 2022). Their draws come from the key alone, so one key
read at several ``t`` is one programmed chip. :class:`DriftCompensation` rescales a
layer's outputs from a reference read right after programming (``crossbar``).

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
import numpy as np
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


def _coefficients(value, name, shape=None):
    """A coefficient field as a (nested) tuple of floats: TOML/JSON lists and arrays become tuples
    (hashable and comparable configs); tuples, tracers and JAX arrays are kept."""
    if isinstance(value, (list, np.ndarray)):
        a = np.asarray(value, dtype=np.float64)
        if shape is not None and a.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {a.shape}.")
        return tuple(a.tolist()) if a.ndim == 1 else tuple(tuple(r) for r in a.tolist())
    return value


def _check_coefficients(name, value, shape, include_jax):
    if _traced(value):
        return
    a = np.asarray(value, np.float64) if isinstance(value, tuple) else chk.concrete(value, include_jax)
    if a is None:
        return
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}.")
    chk.finite(name, a)


def _traced(value):
    return any(isinstance(v, jax.core.Tracer) for v in jax.tree_util.tree_leaves(value))


@struct.dataclass
class PCMModel:
    """Statistical PCM model fitted on doped-GST chips: Nandakumar et al., "Phase-change
    memory models for deep learning training and inference", ICECS 2019 (chip data as in
    Joshi et al., "Accurate deep neural network inference using computational phase-change
    memory", Nat. Commun. 11, 2473, 2020).

    With ``x = g_T / g_max`` (target conductance over the device's ``g_max``; the fit
    used ``g_max = 25 uS``, and every figure below in siemens scales with ``g_max``):

    * programming noise, additive Gaussian clipped at 0:
      ``g_prog = g_T + prog_scale * g_max * max(p0 + p1 x + p2 x^2, 0) * n1``,
      ``prog = (p0, p1, p2) = (0.26348, 1.9650, -1.1731) / 25`` (the published
      ``sigma_prog = max(-1.1731 x^2 + 1.9650 x + 0.26348, 0)`` uS at 25 uS);
    * drift, one exponent per device drawn at programming:
      ``nu = |mu + s n2|``, ``mu = clip(a ln x + b, lo, hi)`` with ``nu_mean = (a, b, lo, hi)
      = (-0.0155, 0.0244, 0.049, 0.1)``, ``s = clip(...)`` with ``nu_std = (-0.0125, -0.0059,
      0.008, 0.045)`` (``x`` clipped to ``>= 1e-6``, an assumption: the source only says "away
      from 0"), ``g_drift = g_prog ((t + t0) / t0)^(-nu)``;
    * accumulated 1/f read noise at the inference time ``t`` (seconds after programming ended):
      ``Q = min(q0 / max(|g_prog| / g_max, 1e-3)^q1, q2)`` with ``q = (0.0088, 0.65, 0.2)``,
      ``g = max(g_drift + |g_drift| Q sqrt(ln((t + t0 + t_read) / (2 t_read))) n3, 0)``,
      ``t_read = 250 ns``.

    ``n1, n2, n3 ~ N(0, 1)`` per device come from the programming key alone, not from ``t``:
    the same key read at several times is the same programmed chip (same programming noise,
    same ``nu`` and the same 1/f deviation, scaled by its time-dependent std).
    ``t`` and every coefficient are leaves (a sweep over ``t`` does not recompile).
    Replaces ``device.write_noise`` and ``device.drift`` (set those to ``None``).

    Example:
      >>> from crossjax.devices import DeviceConfig, PCMModel
      >>> dev = DeviceConfig(g_min=0.0, g_max=25e-6, pcm=PCMModel(t=3600.0))
      >>> dev.write_stochastic
      True
    """

    t: float = 1.0
    t0: float = 20.0
    prog: tuple = (0.26348 / 25, 1.9650 / 25, -1.1731 / 25)
    prog_scale: float = 1.0
    nu_mean: tuple = (-0.0155, 0.0244, 0.049, 0.1)
    nu_std: tuple = (-0.0125, -0.0059, 0.008, 0.045)
    q: tuple = (0.0088, 0.65, 0.2)
    t_read: float = 250e-9

    def __post_init__(self):
        for name, n in (("prog", 3), ("nu_mean", 4), ("nu_std", 4), ("q", 3)):
            object.__setattr__(self, name, _coefficients(getattr(self, name), f"device.pcm.{name}", (n,)))
        self.check(include_jax=False)

    def check(self, include_jax: bool = True):
        """Raise ``ValueError`` naming the field for an invalid value (concrete values only)."""
        j = include_jax
        chk.non_negative("device.pcm.t", self.t, j)
        chk.positive("device.pcm.t0", self.t0, j)
        chk.non_negative("device.pcm.prog_scale", self.prog_scale, j)
        chk.positive("device.pcm.t_read", self.t_read, j)
        for name, n in (("prog", 3), ("nu_mean", 4), ("nu_std", 4), ("q", 3)):
            _check_coefficients(f"device.pcm.{name}", getattr(self, name), (n,), j)

    # the published laws, elementwise in x = g_T / g_max (dimensionless)
    def programming_std(self, x):
        """Programming-noise std relative to ``g_max``: ``prog_scale * max(p0 + p1 x + p2 x^2, 0)``."""
        p0, p1, p2 = self.prog
        return self.prog_scale * jnp.maximum(p0 + x * (p1 + x * p2), 0.0)

    def drift_exponent_stats(self, x):
        """``(mu, s)`` of the drift exponent at ``x`` (``x`` clipped to ``>= 1e-6``)."""
        lx = jnp.log(jnp.maximum(x, 1e-6))
        a, b, lo, hi = self.nu_mean
        c, d, lo2, hi2 = self.nu_std
        return jnp.clip(a * lx + b, lo, hi), jnp.clip(c * lx + d, lo2, hi2)

    def read_noise_std(self, g_prog, g_drift, g_max):
        """Std (S) of the accumulated 1/f read noise at time ``t``."""
        q0, q1, q2 = self.q
        Q = jnp.minimum(q0 / jnp.maximum(jnp.abs(g_prog) / g_max, 1e-3) ** q1, q2)
        return jnp.abs(g_drift) * Q * jnp.sqrt(jnp.log((self.t + self.t0 + self.t_read) / (2 * self.t_read)))


#: Times (s) of the RRAM fits of Wan et al. 2022: 1 s, 1 day and 2 days after programming.
RRAM_FIT_TIMES = (1.0, 86400.0, 172800.0)


@struct.dataclass
class RRAMModel:
    """RRAM conductance deviation after programming, fitted on the chip of Wan et al., "A
    compute-in-memory chip based on resistive random-access memory", Nature 608, 504 (2022)
    (the fit used ``g_max = 40 uS``; figures in siemens scale with ``g_max``).

    Additive Gaussian, clipped at 0: ``g = max(g_T + std_scale * g_max * s(x, t) * n, 0)``,
    ``x = g_T / g_max``, where ``s`` is a 4th-order polynomial in ``x`` (relative to
    ``g_max``; row ``k`` of ``coeffs`` the ascending coefficients at ``times[k]``):

    * t = 1 s:    ``0.348 + 16.030 x - 43.853 x^2 + 45.393 x^3 - 16.815 x^4`` uS,
    * t = 1 day:  ``0.701 + 22.086 x - 50.773 x^2 + 47.095 x^3 - 16.458 x^4`` uS,
    * t = 2 days: ``0.782 + 20.274 x - 43.507 x^2 + 37.062 x^3 - 11.934 x^4`` uS,

    each divided by 40 uS and clipped at 0. **Assumptions** (the source gives only the three
    fits): between the fitted times ``s`` is interpolated linearly in ``ln t``; before 1 s and
    after 2 days it is held at the nearest fit; one normal ``n`` per device from the
    programming key, so a chip read at several times keeps each device's deviation and only
    its size changes. The source has no read (1/f) noise: add ~1 % ``device.read_noise``.
    Replaces ``device.write_noise`` (set it to ``None``).

    Example:
      >>> from crossjax.devices import RRAMModel
      >>> round(float(RRAMModel(t=1.0).deviation_std(0.0)) * 40, 3)   # 0.348 uS of 40 uS
      0.348
    """

    t: float = 1.0
    std_scale: float = 1.0
    coeffs: tuple = tuple(
        tuple(c / 40.0 for c in row)
        for row in (
            (0.348, 16.030, -43.853, 45.393, -16.815),
            (0.701, 22.086, -50.773, 47.095, -16.458),
            (0.782, 20.274, -43.507, 37.062, -11.934),
        )
    )
    times: tuple = RRAM_FIT_TIMES

    def __post_init__(self):
        object.__setattr__(self, "coeffs", _coefficients(self.coeffs, "device.rram.coeffs"))
        object.__setattr__(self, "times", _coefficients(self.times, "device.rram.times"))
        self.check(include_jax=False)

    def check(self, include_jax: bool = True):
        """Raise ``ValueError`` naming the field for an invalid value (concrete values only)."""
        j = include_jax
        chk.non_negative("device.rram.t", self.t, j)
        chk.non_negative("device.rram.std_scale", self.std_scale, j)
        times = (
            None
            if _traced(self.times)
            else (np.asarray(self.times, np.float64) if isinstance(self.times, tuple) else chk.concrete(self.times, j))
        )
        if times is not None:
            if times.ndim != 1 or times.size < 1 or np.any(times <= 0) or np.any(np.diff(times) <= 0):
                raise ValueError(f"device.rram.times must be increasing positive seconds, got {times.tolist()}.")
            _check_coefficients(
                "device.rram.coeffs", self.coeffs, (times.size, np.shape(np.asarray(self.coeffs, dtype=object))[-1]), j
            )

    def deviation_std(self, x):
        """``std_scale * s(x, t)``, relative to ``g_max`` (see the class docstring)."""
        c = jnp.asarray(self.coeffs)  # (T, K)
        powers = jnp.asarray(x)[..., None] ** jnp.arange(c.shape[-1])
        per_time = jnp.maximum(powers @ c.T.astype(powers.dtype), 0.0)  # (..., T)
        lt = jnp.log(jnp.asarray(self.times, per_time.dtype))
        w = jnp.interp(
            jnp.log(jnp.maximum(jnp.asarray(self.t, per_time.dtype), 1e-30)),
            lt,
            jnp.arange(lt.size, dtype=per_time.dtype),
        )
        lo = jnp.floor(w).astype(jnp.int32)
        hi = jnp.minimum(lo + 1, lt.size - 1)
        f = w - lo
        return self.std_scale * ((1 - f) * per_time[..., lo] + f * per_time[..., hi])


DRIFT_COMPENSATIONS = ("global", "per_column")


@struct.dataclass
class DriftCompensation:
    """Drift compensation in the digital periphery (as with the PCM model of Joshi et al. 2020).

    A known input (every row at full scale) is read once right after programming and again
    at the inference time; the layer's outputs are multiplied by
    ``mean_j |y_ref_j| / mean_j |y_t_j|`` (``kind="global"``, one factor per layer, from the
    signed outputs ``y = 1 @ W_eff``) or, per output column (``"per_column"``), by the ratio
    of that column's currents summed over the arrays of its pair before subtraction
    (``sum G_ref / sum G_t``; a signed output can be near 0 by cancellation). Factors are 1
    where a read is 0. The two reads are of the programmed conductances through ideal
    wires, without ADC or read noise (the factor measures drift; a chip would average
    several reads).
    """

    kind: str = struct.field(pytree_node=False, default="global")

    def __post_init__(self):
        self.check(include_jax=False)

    def check(self, include_jax: bool = True):
        """Raise ``ValueError`` naming the field for an invalid value."""
        chk.choice("device.drift_compensation.kind", self.kind, DRIFT_COMPENSATIONS)


@struct.dataclass
class DeviceConfig:
    """Resistive device: conductance range (siemens), finite levels and non-idealities.

    ``levels``: number of programmable conductance states (``None``: continuous;
    ``2**bits`` for ``bits`` per cell). Build from resistances with
    :meth:`from_resistance`. ``pcm`` / ``rram``: a fitted device model (one at a time;
    ``pcm`` replaces ``write_noise`` and ``drift``, ``rram`` replaces ``write_noise``);
    ``drift_compensation``: the periphery's output rescaling (:class:`DriftCompensation`).
    """

    g_min: float = 1e-6
    g_max: float = 1e-4
    levels: int | None = struct.field(pytree_node=False, default=None)
    write_noise: WriteNoise | None = None
    range_variation: RangeVariation | None = None
    stuck: StuckAt | None = None
    drift: Drift | None = None
    read_noise: ReadNoise | None = None
    pcm: PCMModel | None = None
    rram: RRAMModel | None = None
    drift_compensation: DriftCompensation | None = None

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
            raise ValueError(
                f"device.levels must lie in [2, {top}] (or None): the working dtype represents "
                f"the level grid exactly up to there, got {self.levels}."
            )
        for sub in (
            self.write_noise,
            self.range_variation,
            self.stuck,
            self.drift,
            self.read_noise,
            self.pcm,
            self.rram,
            self.drift_compensation,
        ):
            if sub is not None:
                sub.check(include_jax)
        if self.pcm is not None and self.rram is not None:
            raise ValueError("device.pcm and device.rram are two device models: set one of them to None.")
        for model, replaces in (("pcm", ("write_noise", "drift")), ("rram", ("write_noise",))):
            clash = [
                f"device.{r}" for r in replaces if getattr(self, model) is not None and getattr(self, r) is not None
            ]
            if clash:
                raise ValueError(
                    f"device.{model} models the programming noise"
                    + (" and drift" if model == "pcm" else "")
                    + f" itself: set {' and '.join(clash)} to None."
                )

    @classmethod
    def from_resistance(cls, r_on: float, r_off: float, **kw) -> "DeviceConfig":
        """``g_max = 1/r_on``, ``g_min = 1/r_off`` (ohms)."""
        chk.positive("r_on", r_on)
        chk.positive("r_off", r_off)
        return cls(g_min=1.0 / r_off, g_max=1.0 / r_on, **kw)

    @property
    def write_stochastic(self) -> bool:
        """Whether programming samples random numbers (needs a PRNG key)."""
        return any(
            x is not None for x in (self.write_noise, self.range_variation, self.stuck, self.drift, self.pcm, self.rram)
        )


def draw(sample, key, shape, dtype):
    """``sample(key, shape, dtype)`` (``jax.random.normal`` / ``uniform``) drawn as a 2-D array and reshaped.

    The numbers equal a direct draw of ``shape`` (JAX's counter-based threefry,
    ``jax_threefry_partitionable``, indexes draws by their flat position), but XLA
    compiles a rank-2 draw several times faster than a rank-4/5 one (the times are in
    ``benchmarks/README.md``, "Compilation"), which adds up over the layers of a network.

    Args:
      sample: ``sample(key, shape, dtype)``, e.g. ``jax.random.normal``.
      key: PRNG key.
      shape: the shape of the draw.
      dtype: a floating dtype.

    Returns:
      ``sample``'s numbers of ``shape`` and ``dtype``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from crossjax import devices
      >>> key = jax.random.key(0)
      >>> n = devices.draw(jax.random.normal, key, (2, 3, 4, 5), jnp.float32)
      >>> n.shape, bool(jnp.array_equal(n, jax.random.normal(key, (2, 3, 4, 5), jnp.float32)))
      ((2, 3, 4, 5), True)
    """
    shape = tuple(shape)
    flat = (math.prod(shape[:-1]), shape[-1]) if len(shape) > 2 else shape
    return sample(key, flat, dtype).reshape(shape)


def program_conductances(u, device: DeviceConfig, key, *, reference: bool = False):
    """Programmed conductances (S) for normalized targets ``u`` in ``[0, 1]`` (any shape).

    Applies levels, range variation, write noise, drift and stuck-at faults as in
    the module docstring, or the fitted device models (:class:`PCMModel`,
    :class:`RRAMModel`); independent sub-keys per effect (``fold_in(key, i)``), none
    of them depending on the read time, so one key read at several times is one
    programmed chip.

    Args:
      u: normalized targets in ``[0, 1]``.
      device: the device config.
      key: PRNG key (``None`` only when ``device.write_stochastic`` is false).
      reference: the conductances right after programming (no drift, no
        accumulated read noise, no later relaxation: ``t = 0`` for the PCM model,
        the first fit time for the RRAM model); drift compensation reads them.

    Returns:
      Conductances of ``u``'s shape and dtype, siemens.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from crossjax import devices, mapping
      >>> dev = devices.DeviceConfig(g_min=1e-6, g_max=1e-4)  # siemens; no noise: no key needed
      >>> g = devices.program_conductances(jnp.array([0.0, 0.5, 1.0]), dev, None)
      >>> [round(float(x) * 1e6, 4) for x in g]  # uS
      [1.0, 50.5, 100.0]
      >>> W = jnp.array([[0.5, -1.0], [0.25, 0.0]])
      >>> u, w_max = mapping.map_weights(W, mapping.MappingConfig(), rows=2, cols=2)
      >>> G = devices.program_conductances(u, dev, None)  # (2, 1, 1, 2, 2): G+ and G-
      >>> bool(jnp.allclose(G[0] - G[1], (1e-4 - 1e-6) * W / w_max, atol=1e-12))  # G+ - G- proportional to W
      True
      >>> noisy = devices.DeviceConfig(write_noise=devices.WriteNoise(sigma=0.05), stuck=devices.StuckAt(p_min=0.1))
      >>> g = devices.program_conductances(jnp.full((4, 8), 0.5), noisy, jax.random.key(0))
      >>> g.shape, bool((g >= 0).all())
      ((4, 8), True)
      >>> bool(jnp.array_equal(g, devices.program_conductances(jnp.full((4, 8), 0.5), noisy, jax.random.key(0))))
      True
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
    if device.pcm is not None:
        g = _pcm(g, device, key, reference)
    if device.rram is not None:
        rram = device.rram.replace(t=device.rram.times[0]) if reference else device.rram
        n = draw(jax.random.normal, jax.random.fold_in(key, 7), shape, dtype)
        g = jnp.maximum(g + g_max * rram.deviation_std(g / g_max).astype(dtype) * n, 0.0)
    dr = device.drift
    if dr is not None and not reference:
        nu = dr.nu + dr.nu_std * draw(jax.random.normal, jax.random.fold_in(key, 3), shape, dtype)
        g = g * jnp.exp(-nu * jnp.log(dr.t / dr.t0))
    st = device.stuck
    if st is not None:
        r = draw(jax.random.uniform, jax.random.fold_in(key, 4), shape, dtype)
        g = jnp.where(r < st.p_min, jnp.asarray(g_min, dtype), g)
        g = jnp.where((r >= st.p_min) & (r < st.p_min + st.p_max), jnp.asarray(g_max, dtype), g)
    return g


def _pcm(g_target, device, key, reference):
    """:class:`PCMModel` applied to the targets ``g_target`` (S): programming noise, drift, 1/f noise."""
    pcm, g_max, dtype, shape = device.pcm, device.g_max, g_target.dtype, g_target.shape
    x = g_target / g_max
    n1, n2, n3 = draw(jax.random.normal, jax.random.fold_in(key, 5), (3,) + shape, dtype)
    g_prog = jnp.maximum(g_target + g_max * pcm.programming_std(x).astype(dtype) * n1, 0.0)
    if reference:
        return g_prog
    mu, s = pcm.drift_exponent_stats(x)
    nu = jnp.abs(mu + s * n2).astype(dtype)
    g_drift = g_prog * jnp.exp(-nu * jnp.log((pcm.t + pcm.t0) / pcm.t0)).astype(dtype)
    return jnp.maximum(g_drift + pcm.read_noise_std(g_prog, g_drift, g_max).astype(dtype) * n3, 0.0)


def _require_read_noise(device, who: str) -> None:
    if device.read_noise is None:
        raise ValueError(
            f"{who}: device.read_noise is None (no read noise); set it, e.g. "
            "DeviceConfig(read_noise=ReadNoise(sigma=0.01)), or do not draw read noise"
        )


def read_noise_normal(key, shape, dtype, device: DeviceConfig):
    """Standard normals ``(shape)`` for read noise, from ``device.read_noise.generator``.

    Args:
      key: PRNG key (a fresh one per read).
      shape: the shape of the draw.
      dtype: a floating dtype.
      device: a :class:`DeviceConfig` whose ``read_noise`` is set (its ``generator``:
        :mod:`crossjax.counter_rng` or ``jax.random.normal``).

    Returns:
      Standard normal numbers of ``shape`` and ``dtype`` (dimensionless).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from crossjax import devices
      >>> dev = devices.DeviceConfig(read_noise=devices.ReadNoise(sigma=0.02))
      >>> n = devices.read_noise_normal(jax.random.key(0), (1000, 100), jnp.float32, dev)
      >>> n.shape, bool(abs(float(n.mean())) < 0.05), bool(abs(float(n.std()) - 1) < 0.05)
      ((1000, 100), True, True)
    """
    _require_read_noise(device, "read_noise_normal")
    sample = counter_rng.normal if device.read_noise.generator == "counter" else jax.random.normal
    return draw(sample, key, shape, dtype)


def read_noise_std(g, device: DeviceConfig):
    """Per-cell read-noise standard deviation ``s`` (S) for conductances ``g``.

    Args:
      g: conductances, siemens, any shape.
      device: a :class:`DeviceConfig` whose ``read_noise`` is set.

    Returns:
      ``s``, siemens, the shape and dtype of ``g``: ``sigma * g`` for
      ``kind="proportional"``, ``sigma * (g_max - g_min)`` for ``"gaussian"``.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import devices
      >>> g = jnp.array([1e-6, 5e-5, 1e-4])  # siemens
      >>> prop = devices.DeviceConfig(read_noise=devices.ReadNoise(sigma=0.02))
      >>> [round(float(s / x), 4) for s, x in zip(devices.read_noise_std(g, prop), g)]  # 2 % of each G
      [0.02, 0.02, 0.02]
      >>> gauss = devices.DeviceConfig(read_noise=devices.ReadNoise(sigma=0.02, kind="gaussian"))
      >>> [round(float(s) * 1e6, 4) for s in devices.read_noise_std(g, gauss)]  # 2 % of g_max - g_min, uS
      [1.98, 1.98, 1.98]
    """
    _require_read_noise(device, "read_noise_std")
    rn = device.read_noise
    if rn.kind == "proportional":
        return rn.sigma * g
    return jnp.broadcast_to(rn.sigma * (device.g_max - device.g_min), g.shape).astype(g.dtype)
