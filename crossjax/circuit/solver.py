"""Public circuit entry points: ``solve``, ``effective_conductance``, ``node_voltages``.

Shapes: ``G`` (..., R, C) siemens; ``V`` (R,) or (..., B, R) volts; currents
``V @ G_eff`` under NumPy matmul broadcasting, amperes. The signatures' jaxtyping
annotations name them ``"*arrays R C"``, ``"*inputs R"`` and ``"*out C"``: the
leading axes broadcast as in ``V @ G_eff``, so they carry different names.

Two exact regimes (``method``):

* ``"direct"``: form ``G_eff`` once by the transfer sweep down the column wires
  (:mod:`.sweep`), then ``V @ G_eff``; best with many inputs per array.
* ``"iterative"``: preconditioned CG on the cell-current form per input
  (:mod:`.iterative`) to the residual of an exact solve; best with few inputs.
* nonlinear cells (``cell=``, :class:`.cell.Cell`): damped Newton on
  Kirchhoff's law, each step a CG solve of the linearized crossbar
  (:mod:`.nonlinear`, :func:`solve_nonlinear`).
* ``"auto"``: ``"iterative"`` when there are fewer than ``ITERATIVE_BELOW``
  (4) input vectors per conductance sample, else ``"direct"``: the sweep's
  cost does not grow with the inputs and CG's does, with more iterations as
  the wires get stronger (the crossover measured at 64x64 and 128x128 is in
  ``benchmarks/README.md``).

Gradients (w.r.t. ``G``, ``V`` and each resistance) use the adjoint circuit
through ``jax.custom_vjp``: for ``"direct"`` and ``effective_conductance`` the
forward sweep keeps its block-end anchors and one upward pass walks the
forward and adjoint circuits together (:func:`.sweep.sweep_gradients`; with
more inputs than rows the ``G_eff`` adjoint with R unit inputs is used); for
``"iterative"`` the adjoint circuit is solved by CG (:mod:`.adjoint`), reusing
the forward cell currents. Nothing is backpropagated through iterations or
the sweep. Forward-mode (``jvp``/``jacfwd``) is not supported.

``effective_conductance`` sweeps all arrays on one batch axis, in chunks whose
sweep state fits in cache (``crossjax.backend.policy().geff_chunk_bytes``; one
sweep of all arrays where the policy says ``None``, as on GPU/TPU); under ``jax.vmap`` (Monte Carlo
samples) a batching rule folds the mapped axis into the arrays' axis instead
of adding a second one, which XLA CPU runs several times slower.

Validation (``ValueError`` naming the argument): shapes and dtypes always
(float16, bool and complex refused); negative or non-finite ``G``, ``V`` and
resistances when the values are concrete, and under ``jit`` inside
``crossjax.checked``; circuits stiffer than the dtype resolves
(:func:`sweep_interval`, which also picks the renormalization interval).

Widths above 16 that are not a multiple of 16 are padded with zero-conductance
columns (electrically inert, see :func:`_pad_columns`): jaxlib 0.10's YNNPACK
reduce fusion segfaulted on the padded ladder blocks inside the row loop.
"""

from __future__ import annotations

from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from crossjax import backend, config_checks

from . import adjoint, iterative, nonlinear
from .cell import Cell, check_cell, check_monotone
from .ladder import LADDER_BLOCK
from .parasitics import FIELDS, Parasitics, check_parasitics
from .sweep import SWEEP_BLOCK, sweep_effective_conductance, sweep_gradients, sweep_node_voltages, sweep_with_anchors

METHODS = ("auto", "direct", "iterative")


def _concrete(x):
    return not isinstance(x, jax.core.Tracer)


def _float_array(x, name):
    """``x`` as a float32/float64 array; integers are promoted, others rejected."""
    x = jnp.asarray(x)
    if x.dtype == jnp.bool_ or jnp.issubdtype(x.dtype, jnp.complexfloating):
        raise ValueError(
            f"{name} must be real float32 or float64, got dtype {x.dtype}; "
            f"convert explicitly (e.g. {name}.real.astype(float) for complex data)."
        )
    if jnp.issubdtype(x.dtype, jnp.integer):
        return x.astype(jnp.result_type(float))
    if not jnp.issubdtype(x.dtype, jnp.floating) or x.dtype.itemsize < 4:
        raise ValueError(
            f"{name} must be float32 or float64, got dtype {x.dtype}: the sweep's "
            f"renormalization does not hold in half precision; pass {name}.astype(jnp.float32)."
        )
    return x


def _check_G(G):
    G = _float_array(G, "G")
    if G.ndim < 2:
        raise ValueError(
            f"G must have shape (..., R, C) with R, C >= 1, got shape {G.shape}; pass a conductance matrix in siemens."
        )
    if G.shape[-1] < 1 or G.shape[-2] < 1:
        raise ValueError(f"G must have at least one row and one column, got shape {G.shape}.")
    if _concrete(G):
        a = np.asarray(G)
        if not np.all(np.isfinite(a)):
            raise ValueError("G must be finite; found NaN or inf conductances.")
        if np.any(a < 0):
            raise ValueError(f"G must be >= 0 siemens, found min {a.min():.3g}; clip conductances at 0.")
    else:
        config_checks.traced_check(
            (G >= 0) & jnp.isfinite(G), "G must be >= 0 siemens and finite (traced value failed the check)"
        )
    return G


def _check_V(V, R):
    V = _float_array(V, "V")
    if V.ndim < 1 or V.shape[-1] != R:
        raise ValueError(f"V must have shape (R,) or (..., B, R) with R={R} (rows of G), got shape {V.shape}.")
    if _concrete(V):
        if not np.all(np.isfinite(np.asarray(V))):
            raise ValueError("V must be finite; found NaN or inf input voltages.")
    else:
        config_checks.traced_check(jnp.isfinite(V), "V must be finite (traced value failed the check)")
    return V


# Error model of the sweep, fitted on 64x64 arrays against the scipy nodal
# solve with all four resistances at r (tests/test_circuit_robustness.py checks it):
# the fractional form grows by about q = 1 + 0.6 sqrt(kappa) per row between
# renormalizations, kappa = max(G) * max(r_wire_row, r_wire_col) (terminal
# resistances alone do not grow it), and the circuit itself loses about
# 20 kappa ulps. relative error ~ eps (q^k + 20 kappa) for k rows per block.
_TARGET = {4: 2e-5, 8: 1e-10}  # choose the longest block within this
_LIMIT = {4: 1e-4, 8: 1e-9}  # beyond this even one-row blocks are refused
_BLOCKS = (1024, 512, 256, 128, 64, SWEEP_BLOCK, 16, 8, 4, 2, 1)  # longest first; mild circuits take long ones


def _error_estimate(kappa, k, dtype):
    eps = float(jnp.finfo(dtype).eps) / 2
    growth = k * np.log1p(0.6 * np.sqrt(kappa))  # log q^k, capped: long blocks of stiff circuits overflow
    return eps * (np.exp(min(growth, 700.0)) + 20 * kappa)


def sweep_interval(G: Float[ArrayLike, "*batch R C"], parasitics: Parasitics, g_max=None) -> int:
    """Rows between the sweep's renormalizations for this circuit and dtype.

    The stiffness ``kappa = g_max * max(r_wire_row, r_wire_col)`` sets how
    fast the sweep's fractional form loses precision; the longest block
    (1024 rows down to 1) whose estimated relative error stays within 2e-5
    (float32) / 1e-10 (float64) is used: 1024 rows up to ``kappa`` = 9e-5 in
    float32 (5e-4 in float64), 512 up to 3.6e-4 (2e-3), 256 up to 1.5e-3
    (8.4e-3), 128 up to 6e-3 (0.035), 64 up to 0.025 (0.16), 32 up to 0.11
    (0.79), 16 up to 0.53 (5.1), 8 up to 2.9 (57), one row at the end.
    Physical arrays (1-10 ohm wires, 100 uS cells: ``kappa`` = 1e-4 to 1e-3)
    take 256-1024 rows: a 64-row array is one block (32-row blocks made two).

    Args:
      G: conductances (..., R, C) (siemens); only its dtype and, when
        concrete, its maximum are used.
      parasitics: :class:`Parasitics`; traced resistances give ``SWEEP_BLOCK``.
      g_max: bound on ``G`` (siemens) for traced ``G``.

    Returns:
      The block length (a static int).

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax.circuit import Parasitics, sweep_interval
      >>> sweep_interval(jnp.full((3, 3), 1e-4), Parasitics(r_wire_row=1.0, r_wire_col=2.0))
      512

    Raises:
      ValueError: ``kappa`` above 83 (float32) or 4.5e5 (float64), where no
        block length reaches 1e-4 / 1e-9; the message suggests float64 or a
        physical range.
    """
    r = [config_checks.concrete(getattr(parasitics, f)) for f in ("r_wire_row", "r_wire_col")]
    if g_max is None and _concrete(G):
        g_max = float(np.max(np.asarray(G))) if G.size else 0.0
    g = config_checks.concrete(g_max)
    dtype = jnp.asarray(G).dtype
    if any(x is None for x in r):
        return SWEEP_BLOCK
    if g is None:
        if not isinstance(G, jax.core.Tracer) or not config_checks.checking():
            return SWEEP_BLOCK
        kappa = jnp.max(G) * max(float(r[0]), float(r[1]))
        bound = 1 + 0.6 * jnp.sqrt(kappa)
        eps = float(jnp.finfo(dtype).eps) / 2
        config_checks.traced_check(
            eps * (bound**SWEEP_BLOCK + 20 * kappa) <= _LIMIT[dtype.itemsize],
            "the circuit's stiffness max(G) * max(r_wire_row, r_wire_col) is beyond "
            f"what a {dtype} sweep resolves; pass g_max= or use float64",
        )
        return SWEEP_BLOCK
    kappa = float(g) * max(float(r[0]), float(r[1]))
    for k in _BLOCKS:
        if _error_estimate(kappa, k, dtype) <= _TARGET[dtype.itemsize]:
            return k
    if _error_estimate(kappa, 1, dtype) <= _LIMIT[dtype.itemsize]:
        return 1
    limit = max(x for x in np.logspace(-3, 7, 2001) if _error_estimate(x, 1, dtype) <= _LIMIT[dtype.itemsize])
    hint = (
        "enable float64 (jax.config.update('jax_enable_x64', True)) and pass float64 arrays"
        if dtype.itemsize == 4
        else "check the units (siemens, ohms): real arrays have kappa < 1"
    )
    raise ValueError(
        f"G and parasitics: stiffness max(G) * max(r_wire_row, r_wire_col) = {kappa:.3g} is beyond "
        f"the exact solve's {dtype} range (kappa <= {limit:.3g}, relative error <= "
        f"{_LIMIT[dtype.itemsize]:g}); {hint}."
    )


def _cast(p, dtype):
    return Parasitics(**{f: jnp.asarray(getattr(p, f), dtype) for f in FIELDS})


def _prepare(G, parasitics, V=None):
    check_parasitics(parasitics)
    G = _check_G(G)
    if V is not None:
        V = _check_V(V, G.shape[-2])
        dtype = jnp.result_type(G.dtype, V.dtype)
        if not jnp.issubdtype(dtype, jnp.floating):
            dtype = G.dtype
        G, V = G.astype(dtype), V.astype(dtype)
    p = _cast(parasitics, G.dtype)
    for f in FIELDS:
        value = getattr(p, f)
        if isinstance(value, jax.core.Tracer):
            config_checks.traced_check(
                (value >= 0) & jnp.isfinite(value),
                f"parasitics.{f} must be >= 0 ohms and finite (traced value failed the check)",
            )
    return G, V, p


def _ideal(p):
    """True when all four resistances are zero: then ``G_eff = G`` exactly (not ``sqrt(G)**2``)."""
    return (p.r_wire_row == 0) & (p.r_wire_col == 0) & (p.r_source == 0) & (p.r_sink == 0)


def _sweep(G, p, block):
    return jnp.where(_ideal(p), G, sweep_effective_conductance(G, p, block))


# ---------------------------------------------------------------- G_eff
def _sweep_anchored(G, p, block):
    Geff, anchors = sweep_with_anchors(G, p, block)
    return jnp.where(_ideal(p), G, Geff), anchors


def _unit_inputs(G):
    return jnp.eye(G.shape[-2], dtype=G.dtype)


def geff_chunks(G):
    """``(count, size)`` for sweeping ``G`` (n, R, C) in chunks whose sweep state ``2 C^2`` per
    array fits in cache (``count == 1``: one sweep).

    A batch that outgrows the cache streams the state from memory at every row
    step (per-array costs in ``benchmarks/README.md``). Chunks run one after
    another (``lax.map``); the backend policy's ``geff_chunk_bytes`` sets their
    size (``None``: one sweep).

    Args:
      G: conductances (n, R, C), siemens; only the shape and dtype are used.

    Returns:
      ``(count, size)`` ints: ``count`` chunks of ``size`` arrays each
      (``count * size >= n``).

    Example:
      >>> import jax.numpy as jnp
      >>> geff_chunks(jnp.zeros((1, 3, 3)))
      (1, 1)
    """
    n, R, C = G.shape
    chunk_bytes = backend.policy().geff_chunk_bytes
    if chunk_bytes is None:
        return 1, n
    chunk = max(1, chunk_bytes // (2 * C * C * G.dtype.itemsize))
    count = -(-n // chunk)
    return count, -(-n // count)  # balanced chunks, fewer than `count` zero arrays of padding


def _split(G, count, size):
    return jnp.pad(G, ((0, count * size - G.shape[0]), (0, 0), (0, 0))).reshape((count, size) + G.shape[1:])


def _join(X, n):
    return X.reshape((-1,) + X.shape[2:])[:n]


def _sweep_chunked(G, p, block):
    count, size = geff_chunks(G)
    if count == 1:
        return _sweep(G, p, block)
    return _join(jax.lax.map(lambda g: _sweep(g, p, block), _split(G, count, size)), G.shape[0])


@lru_cache(maxsize=None)
def _geff_primal(block):
    """The chunked sweep renormalizing every ``block`` rows, with its batching rule."""

    @jax.custom_batching.custom_vmap
    def primal(G, p):
        return _sweep_chunked(G, p, block)

    @primal.def_vmap
    def primal_vmap(axis_size, in_batched, G, p):
        """Under ``vmap`` (Monte Carlo samples) the mapped axis joins the arrays' axis,
        so the samples' arrays are swept together in cache-sized chunks instead of
        with a second batch axis (several times slower on XLA CPU)."""
        g_batched, p_batched = in_batched
        if any(jax.tree.leaves(p_batched)):  # a sweep over resistances: one sweep per value
            in_axes = (0 if g_batched else None, jax.tree.map(lambda b: 0 if b else None, p_batched))
            return jax.vmap(lambda g, q: _sweep_chunked(g, q, block), in_axes=in_axes)(G, p), True
        return primal(G.reshape((-1,) + G.shape[2:]), p).reshape(G.shape), True

    return primal


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _geff(block, G, p):
    return _geff_primal(block)(G, p)


def _geff_fwd(block, G, p):
    count, size = geff_chunks(G)
    if count == 1:
        Geff, anchors = _sweep_anchored(G, p, block)
        return Geff, (G, p, anchors)
    Gc = _split(G, count, size)
    Geff, anchors = jax.lax.map(lambda g: _sweep_anchored(g, p, block), Gc)
    return _join(Geff, G.shape[0]), (Gc, p, anchors)


def _geff_bwd(block, res, Gbar):
    G, p, anchors = res
    if G.ndim == 3:
        return sweep_gradients(G, anchors, _unit_inputs(G), Gbar)
    count, size = G.shape[:2]  # chunked forward: (count, size, R, C)
    dG, dp = jax.lax.map(
        lambda a: sweep_gradients(a[0], a[1], _unit_inputs(a[0]), a[2]), (G, anchors, _split(Gbar, count, size))
    )
    return _join(dG, Gbar.shape[0]), jax.tree.map(lambda d: jnp.sum(d, 0), dp)


_geff.defvjp(_geff_fwd, _geff_bwd)


def _pad_columns(G):
    """``G`` widened by zero-conductance columns to a multiple of ``LADDER_BLOCK``.

    A column without cells is electrically inert (no current enters it, and the
    row wire beyond the last real cell carries none: the far end is open), so
    the first C columns of the widened array's ``G_eff``, currents and node
    voltages are exactly the original array's. The sweep then never pads its
    ladder blocks inside the row loop: XLA CPU (jaxlib 0.10) fused that pad
    with the blocked product and its multiply-sums into one YNNPACK reduce
    fusion that segfaulted for single float32 arrays of width 200, 300, 1000
    (any width above 16 that is not a multiple of it could).
    """
    C = G.shape[-1]
    extra = 0 if C <= LADDER_BLOCK else (-C) % LADDER_BLOCK
    return jnp.pad(G, [(0, 0)] * (G.ndim - 1) + [(0, extra)]) if extra else G


def _geff_flat(G, p, block=SWEEP_BLOCK):
    """``_geff`` over one flattened batch axis: XLA CPU runs the sweep's fused
    products several times slower with several batch axes."""
    C = G.shape[-1]
    Gp = _pad_columns(G)
    return _geff(block, Gp.reshape((-1,) + Gp.shape[-2:]), p)[..., :C].reshape(G.shape)


def effective_conductance(
    G: Float[ArrayLike, "*batch R C"], parasitics: Parasitics, *, g_max=None, interval: int | None = None
) -> Float[Array, "*batch R C"]:
    """Effective conductance ``G_eff`` (S), (..., R, C), with ``solve(G, V, p) == V @ G_eff``.

    Exact transfer sweep (:mod:`.sweep`); all resistances zero gives ``G``.

    Args:
      G: conductances (..., R, C), siemens, >= 0 (float32 or float64; integers
        are promoted, float16/complex/bool rejected).
      parasitics: :class:`Parasitics` (ohms).
      g_max: optional bound on ``G`` (siemens) used to choose the sweep's
        renormalization interval when ``G`` is traced (under ``jit``); by
        default the concrete ``max(G)``, or the float32-safe interval.
      interval: rows between the sweep's renormalizations, overriding the
        choice from ``g_max`` (a static int, e.g. from :func:`sweep_interval`
        computed outside ``jit``).

    Returns:
      ``G_eff`` (..., R, C), siemens, in ``G``'s dtype.

    Raises:
      ValueError: bad shapes/dtypes/values, or a circuit whose stiffness
        ``max(G) * max(r_wire_row, r_wire_col)`` is beyond what the dtype
        resolves (:func:`sweep_interval`).

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax.circuit import Parasitics, effective_conductance
      >>> Geff = effective_conductance(jnp.full((4, 3), 1e-4), Parasitics(r_wire_row=1.0, r_wire_col=1.0))
      >>> Geff.shape, bool((Geff < 1e-4).all())
      ((4, 3), True)
    """
    G, _, p = _prepare(G, parasitics)
    if interval is None:
        interval = sweep_interval(G, parasitics, g_max)
    elif not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
        raise ValueError(f"interval must be a positive int (rows between renormalizations), got {interval!r}.")
    return _geff_jit(G, p, interval)


_geff_jit = jax.jit(_geff_flat, static_argnums=(2,))


# ---------------------------------------------------------------- per-input solve
@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _currents(method, block, G, V, p):
    if method == "direct":
        return V @ _sweep(G, p, block)
    I, _, _ = iterative.cell_currents(G, V, p)
    return jnp.where(_ideal(p), V @ G, jnp.sum(I, -2))


def _currents_fwd(method, block, G, V, p):
    if method == "direct":
        Geff, anchors = _sweep_anchored(G, p, block)
        return V @ Geff, (G, V, p, (Geff, anchors))
    I, _, _ = iterative.cell_currents(G, V, p)
    return jnp.where(_ideal(p), V @ G, jnp.sum(I, -2)), (G, V, p, I)


def _currents_bwd(method, block, res, ybar):
    G, V, p, X = res
    if method == "iterative":
        return adjoint.gradients(G, V, p, ybar, X)
    Geff, anchors = X
    dV = ybar @ jnp.swapaxes(Geff, -1, -2)
    if V.shape[-2] > G.shape[-2]:
        # More inputs than rows: differentiate G_eff instead (R unit inputs).
        dG, dp = sweep_gradients(G, anchors, _unit_inputs(G), jnp.swapaxes(V, -1, -2) @ ybar)
    else:
        dG, dp = sweep_gradients(G, anchors, V, ybar)
    return dG, dV, dp


_currents.defvjp(_currents_fwd, _currents_bwd)


def _broadcast(G, V):
    """``G`` (N, R, C), ``V`` (N, B, R), the output batch shape, and whether V was a vector."""
    R, C = G.shape[-2:]
    vector = V.ndim == 1
    V2 = V[None, :] if vector else V
    batch = jnp.broadcast_shapes(G.shape[:-2], V2.shape[:-2])
    B = V2.shape[-2]
    Gb = jnp.broadcast_to(G, batch + (R, C)).reshape((-1, R, C))
    Vb = jnp.broadcast_to(V2, batch + (B, R)).reshape((-1, B, R))
    return Gb, Vb, batch, B, vector


ITERATIVE_BELOW = 4


def choose_method(inputs_per_sample: int) -> str:
    """The ``"auto"`` rule: ``"iterative"`` (CG per input) below ``ITERATIVE_BELOW`` inputs
    per conductance sample, else ``"direct"`` (one ``G_eff``, reused by every input).

    The crossover was measured at 4-6 inputs on 64x64 and 128x128 arrays, moving
    with the wire resistance but not with the array size (benchmarks/README.md),
    so the rule takes the number of inputs only.

    Args:
      inputs_per_sample: input vectors read per conductance sample.

    Returns:
      ``"iterative"`` or ``"direct"``.

    Example:
      >>> from crossjax.circuit import choose_method
      >>> choose_method(1), choose_method(256)
      ('iterative', 'direct')
    """
    if isinstance(inputs_per_sample, bool) or not isinstance(inputs_per_sample, (int, np.integer)):
        raise ValueError(f"choose_method: inputs_per_sample={inputs_per_sample!r} must be an int")
    return "iterative" if inputs_per_sample < ITERATIVE_BELOW else "direct"


@partial(jax.jit, static_argnums=(0, 1))
def _solve_jit(method, block, G, V, p):
    R, C = G.shape[-2:]
    Gb, Vb, batch, B, vector = _broadcast(G, V)
    if method == "direct" and Gb.shape[0] != int(np.prod(G.shape[:-2], dtype=int)):
        # V carries batch dims G lacks: form G_eff once per G, then broadcast the matmul.
        return V @ _geff_flat(G, p, block)
    if method == "direct":
        out = _currents(method, block, _pad_columns(Gb), Vb, p)[..., :C].reshape(batch + (B, C))
    else:
        out = _currents(method, block, Gb, Vb, p).reshape(batch + (B, C))
    return out[..., 0, :] if vector else out


def _span(V):
    """``max(V, 0) - min(V, 0)`` when ``V`` is concrete (bounds every element voltage), else ``None``."""
    if not _concrete(V):
        return None
    a = np.asarray(V)
    return float(max(a.max(initial=0.0), 0.0) - min(a.min(initial=0.0), 0.0))


def _no_wires(p, cell):
    """True when all resistances (wires, terminals, series) are concretely zero."""
    values = [config_checks.concrete(getattr(p, f)) for f in FIELDS] + [config_checks.concrete(cell.r_series)]
    return all(v is not None and not np.any(v) for v in values)


_nonlinear_jit = jax.jit(nonlinear.solve_flat, static_argnums=(4, 5))
_without_wires_jit = jax.jit(nonlinear.without_wires)


def solve_nonlinear(
    G: Float[ArrayLike, "*arrays R C"],
    V: Float[ArrayLike, "*inputs R"],
    parasitics: Parasitics,
    cell: Cell,
    *,
    rtol: float | None = None,
    maxiter: int = nonlinear.MAX_NEWTON,
) -> nonlinear.NonlinearSolution:
    """Exact column currents of a crossbar of nonlinear cells, with the solver's report.

    Newton on Kirchhoff's current law, each step a structured linear crossbar
    solve (:mod:`.nonlinear`); gradients by implicit differentiation.

    Args:
      G: small-signal conductances at 0 V (..., R, C), siemens, >= 0.
      V: input voltages (R,) or (..., B, R), volts.
      parasitics: :class:`Parasitics` (ohms).
      cell: :class:`Cell` (any ``iv``; linear cells take one Newton step).
      rtol: KCL residual relative to ``max|V|`` (default 1e-13 float64, 1e-5 float32).
      maxiter: Newton steps before giving up.

    Returns:
      :class:`NonlinearSolution`: ``currents`` (..., [B,] C) amperes, and per
      input ``converged`` and ``residual``, plus ``newton_steps`` and
      ``cg_iterations``. Nothing is raised for a failed solve here: check
      ``converged`` (:func:`solve` raises, or returns NaN under ``jit``).

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax.circuit import Cell, Parasitics, solve_nonlinear
      >>> sol = solve_nonlinear(jnp.full((4, 3), 1e-4), jnp.full((4,), 0.3), Parasitics(r_wire_row=2.0),
      ...                       Cell(iv="sinh", v0=0.25))
      >>> bool(sol.converged), sol.currents.shape
      (True, (3,))
    """
    G, V, p = _prepare(G, parasitics, V)
    cell = check_cell(cell, G.shape)
    check_monotone(cell, _span(V))
    rtol = nonlinear.default_rtol(G.dtype) if rtol is None else float(rtol)
    if not (0 < rtol < 1):
        raise ValueError(f"rtol must be in (0, 1) (KCL residual relative to max|V|), got {rtol!r}.")
    if not isinstance(maxiter, int) or isinstance(maxiter, bool) or maxiter < 1:
        raise ValueError(f"maxiter must be a positive int (Newton steps), got {maxiter!r}.")
    vector = V.ndim == 1
    sol = _nonlinear_jit(G, V[None, :] if vector else V, p, cell, rtol, maxiter)
    if vector:
        sol = sol._replace(
            currents=sol.currents[..., 0, :], converged=sol.converged[..., 0], residual=sol.residual[..., 0]
        )
    return sol


def _currents_or_raise(sol: nonlinear.NonlinearSolution):
    """The currents; eagerly a :class:`NotConverged` error, under ``jit`` NaN where a solve failed."""
    converged = sol.converged
    if _concrete(converged):
        if not bool(np.all(np.asarray(converged))):
            bad = int(np.sum(~np.asarray(converged)))
            raise nonlinear.NotConverged(
                f"the nonlinear crossbar solve did not converge for {bad} input(s) in {int(sol.newton_steps)} "
                f"Newton steps (worst KCL residual {float(np.max(np.asarray(sol.residual))):.3g} of max|V|); "
                "check that the I-V law is increasing on the input range, or raise maxiter."
            )
        return sol.currents
    config_checks.traced_check(converged, "the nonlinear crossbar solve did not converge")
    return jnp.where(converged[..., None], sol.currents, jnp.nan)


def solve(
    G: Float[ArrayLike, "*arrays R C"],
    V: Float[ArrayLike, "*inputs R"],
    parasitics: Parasitics,
    *,
    method: str = "auto",
    g_max=None,
    cell: Cell | None = None,
) -> Float[Array, "*out C"]:
    """Column currents (A) into the sinks: ``V @ G_eff`` with broadcasting (linear cells).

    Args:
      G: conductances (..., R, C), siemens (small-signal at 0 V for nonlinear cells).
      V: input voltages (R,) or (..., B, R), volts.
      parasitics: :class:`Parasitics` (ohms).
      method: ``"auto"``, ``"direct"`` or ``"iterative"`` (module docstring);
        nonlinear cells are solved by Newton with CG steps (``"auto"`` or
        ``"iterative"``; ``"direct"`` is refused: there is no ``G_eff``).
      g_max: bound on ``G`` for the sweep's interval when ``G`` is traced.
      cell: :class:`Cell` (default linear). Linear cells with ``r_series``
        fold it into ``G / (1 + r_series G)``; nonlinear cells use
        :func:`solve_nonlinear` (exact elementwise ``sum_i f(V_i; G_ij)``
        when every resistance is zero).

    Returns:
      Currents (..., [B,] C), amperes.

    Raises:
      ValueError: bad arguments (see module docstring).
      NotConverged: a nonlinear solve that did not converge (eagerly; under
        ``jit`` its currents are NaN, and ``crossjax.checked`` raises).

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax.circuit import Parasitics, solve
      >>> I = solve(jnp.full((2, 2), 1e-4), jnp.array([0.1, 0.2]), Parasitics(r_wire_row=1.0))
      >>> [round(float(i) * 1e6, 2) for i in I]   # microamperes, just under the ideal 30
      [29.99, 29.99]
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    G, V, p = _prepare(G, parasitics, V)
    cell = check_cell(cell, G.shape)
    if not cell.is_linear:
        if method == "direct":
            raise ValueError(
                "method='direct' forms G_eff, which nonlinear cells do not have; "
                "use method='auto' (Newton with CG steps)."
            )
        if _no_wires(p, cell):
            check_monotone(cell, _span(V))
            return _without_wires_jit(G, V, cell) if V.ndim > 1 else _without_wires_jit(G, V[None], cell)[..., 0, :]
        return _currents_or_raise(solve_nonlinear(G, V, parasitics, cell))
    G = cell.series_folded(G)
    if method == "auto":
        method = choose_method(1 if V.ndim == 1 else V.shape[-2])
    # the interval (and its range check) concerns the direct sweep; CG has no fractional form to lose
    block = sweep_interval(G, parasitics, g_max) if method == "direct" else SWEEP_BLOCK
    return _solve_jit(method, block, G, V, p)


@partial(jax.jit, static_argnums=(0,))
def _node_voltages_jit(block, G, V, p):
    R, C = G.shape[-2:]
    Gb, Vb, batch, B, vector = _broadcast(G, V)
    v_row, v_col = sweep_node_voltages(_pad_columns(Gb), p, Vb, block)
    v_row, v_col = v_row[..., :C], v_col[..., :C]
    shape = batch + (B, R, C)
    v_row, v_col = v_row.reshape(shape), v_col.reshape(shape)
    if vector:
        v_row, v_col = v_row[..., 0, :, :], v_col[..., 0, :, :]
    return v_row, v_col


_nonlinear_nodes_jit = jax.jit(nonlinear.node_voltages_flat, static_argnums=(4, 5))


def node_voltages(
    G: Float[ArrayLike, "*arrays R C"],
    V: Float[ArrayLike, "*inputs R"],
    parasitics: Parasitics,
    *,
    cell: Cell | None = None,
) -> tuple[Float[Array, "*out R C"], Float[Array, "*out R C"]]:
    """Row-node and column-node voltages ``(v_row, v_col)`` (V), each (..., [B,] R, C).

    The cell's terminal voltage is ``v_row - v_col`` (element plus ``r_series``).
    Exact: for linear cells the direct sweep followed by its upward pass
    (:func:`.sweep.sweep_node_voltages`), for nonlinear cells the Newton solve
    (raising :class:`NotConverged` if it fails). Meant for inspection and
    plots; use :func:`solve` or :func:`effective_conductance` for gradients.

    Args:
      G: conductances (..., R, C), siemens.
      V: input voltages (R,) or (..., B, R), volts.
      parasitics: :class:`Parasitics` (ohms).
      cell: :class:`Cell` (default linear).

    Returns:
      ``(v_row, v_col)``, each (..., [B,] R, C), volts (no ``B`` axis for a
      vector ``V``).

    Raises:
      NotConverged: the nonlinear solve did not converge.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax.circuit import Parasitics, node_voltages
      >>> v_row, v_col = node_voltages(jnp.full((2, 2), 1e-3), jnp.array([0.2, 0.2]), Parasitics(r_wire_row=5.0))
      >>> bool((v_row < 0.2).all()), bool((v_col == 0).all())
      (True, True)
    """
    G, V, p = _prepare(G, parasitics, V)
    cell = check_cell(cell, G.shape)
    if cell.is_linear:
        return _node_voltages_jit(sweep_interval(G, parasitics), cell.series_folded(G), V, p)
    check_monotone(cell, _span(V))
    vector = V.ndim == 1
    v_row, v_col, ok = _nonlinear_nodes_jit(
        G, V[None] if vector else V, p, cell, nonlinear.default_rtol(G.dtype), nonlinear.MAX_NEWTON
    )
    if not bool(ok):
        raise nonlinear.NotConverged("the nonlinear crossbar solve behind node_voltages did not converge.")
    return (v_row[..., 0, :, :], v_col[..., 0, :, :]) if vector else (v_row, v_col)
