"""IR-drop mitigations: crossbar column rearrangement and Weight-Constrained Training (WCT).

Both raise the share of current that meets little wire resistance, after
Bhattacharjee, Bhatnagar, Panda (DATE 2022, arXiv 2201.05229); the exact
criteria of that study are not known, so the ones below are defined here.

**Column rearrangement.** A tile's columns (outputs) can be permuted freely:
the permutation is undone digitally on the ADC outputs. Circuit (docs/circuit.md):
row i is driven at column 0's end and carries, through its segment k (between
cells k-1 and k, ``r_wire_row``), the currents of all cells j >= k. To first
order in ``r_wire_row`` the row voltage at cell j drops by
``Delta_ij = r_wire_row * sum_m I_im * (min(j, m) + 1)``, so the current error
of the whole row is ``sum_j G_ij Delta_ij ~ r_wire_row V_i sum_k S_ik^2`` with
``S_ik = sum_{j >= k} G_ij`` the conductance beyond segment k. The column
wires, ``r_source`` and ``r_sink`` are either per column or shared by all,
hence position-independent. ``sum_k S_k^2`` is minimal when every suffix sum
is as small as possible, i.e. with the columns in *descending* conductance
from the drivers: **criterion: sort each tile's columns by total conductance
sum_i (G+_ij + G-_ij), heaviest at column 0 (next to the row drivers)**; for the
differential mapping this is sorting by ``sum_i |W_ij|``. The
:func:`optimize_column_order` search scores permutations with the exact
circuit (:func:`crossjax.circuit.effective_conductance`) instead.

**Weight-Constrained Training.** With the mapping scale pinned
(``MappingConfig(w_max=...)`` at the pre-WCT layer scale, so that conductance
``g_min + (g_max - g_min) |w| / w_max`` falls when |w| falls), the soft
constraint
    P(W) = sum relu(|W| / w_max - t)^2        (dimensionless; t = ``threshold``)
added as ``strength * P`` pushes every weight above ``t * w_max`` towards it,
so more cells sit at low conductance and wires carry less current; the hard
variant projects weights onto ``[-t w_max, t w_max]``. ``strength`` 0 disables
it; the larger, the closer the weights get to the bound. If the mapping re-derives
``w_max = max|W|`` after training, the gain is partly undone (all conductances
rescale), hence the pinned scale.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from crossjax import config_checks as chk
from crossjax.circuit import effective_conductance
from crossjax.tiling import check_matrix, check_tile_size, grid, tile

__all__ = [
    "column_order",
    "rearrange_columns",
    "restore_outputs",
    "ir_drop_error",
    "optimize_column_order",
    "compare_column_orders",
    "differential_conductances",
    "wct_penalty",
    "add_weight_constraint",
    "project_weights",
    "low_conductance_fraction",
]


# ------------------------------------------------------------- rearrangement
def column_order(G):
    """Permutation (..., C) sorting columns by descending total conductance ``sum_i G[..., i, j]``.

    Physical column j holds logical column ``perm[j]``: ``G[..., perm]`` is the
    rearranged tile. Ties keep their order.

    Args:
      G: conductances ``(..., R, C)``, siemens (or any non-negative per-cell
        weight, e.g. ``G+ + G-`` of a differential pair).

    Returns:
      int ``(..., C)`` permutation of the columns.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax.mitigation import column_order
      >>> G = jnp.array([[1.0, 3.0, 2.0], [1.0, 3.0, 2.0]])
      >>> perm = column_order(G)
      >>> perm.tolist(), G[:, perm][0].tolist()
      ([1, 2, 0], [3.0, 2.0, 1.0])
    """
    return jnp.argsort(-jnp.sum(G, axis=-2), axis=-1, stable=True)


def rearrange_columns(W, cols):
    """Rearrange ``W`` (K, N) within each block of ``cols`` outputs (one tile column).

    Within each output block the outputs are sorted by descending ``sum_k |W_kn|``
    (the differential pair's total conductance); padding stays last. Returns
    ``(W[:, perm], perm)`` with ``perm`` (N,) a permutation of the outputs that
    never leaves its block, so every tile holds the same outputs as before. Use
    :func:`restore_outputs` on the results. One order per block serves all of
    the block's row tiles (it scores the whole output); this is what a layer
    whose ``W`` is stored as one matrix can use.

    Args:
      W: weights ``(K, N)``.
      cols: tile columns ``C`` (outputs per block).

    Returns:
      ``(W[:, perm], perm)``: the rearranged weights ``(K, N)`` and the int
      permutation ``(N,)``.

    Example:
      Output 1 is heavier than output 0 and moves next to the drivers; output 2
      is alone in its (padded) block and stays:

      >>> import jax.numpy as jnp
      >>> from crossjax.mitigation import rearrange_columns, restore_outputs
      >>> W = jnp.array([[0.1, -1.0, 0.5], [0.1, 1.0, -0.2]])
      >>> W_perm, perm = rearrange_columns(W, 2)
      >>> x = jnp.array([1.0, 2.0])
      >>> perm.tolist(), bool(jnp.allclose(restore_outputs(x @ W_perm, perm), x @ W))
      ([1, 0, 2], True)
    """
    check_matrix(W)
    check_tile_size(1, cols)
    W = jnp.asarray(W)
    K, N = W.shape
    _, Nt = grid(K, N, 1, cols)
    score = jnp.pad(jnp.sum(jnp.abs(W), axis=0), (0, Nt * cols - N), constant_values=-jnp.inf)
    local = jnp.argsort(-score.reshape(Nt, cols), axis=-1, stable=True)
    perm = (local + cols * jnp.arange(Nt)[:, None]).ravel()[:N]
    return W[:, perm], perm


def restore_outputs(y, perm):
    """Undo the rearrangement digitally: ``y_perm[..., n] = y[..., perm[n]]`` -> ``y``.

    Args:
      y: outputs ``(..., N)`` of the rearranged weights (``y_perm`` above).
      perm: int ``(N,)`` permutation from :func:`rearrange_columns`.

    Returns:
      ``(..., N)`` outputs in the original order.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax.mitigation import restore_outputs
      >>> y, perm = jnp.array([10, 20, 30]), jnp.array([2, 0, 1])
      >>> restore_outputs(y[perm], perm).tolist()
      [10, 20, 30]
    """
    return y[..., jnp.argsort(perm)]


def differential_conductances(W, w_max, g_min, g_max):
    """Differential pair (docs/circuit.md): ``G± = g_min + (g_max - g_min) max(±W, 0) / w_max`` (S).

    Args:
      W: weights, any shape (e.g. tiles ``(..., R, C)``).
      w_max: weight that maps to ``g_max`` (units of ``W``).
      g_min: lowest conductance, siemens.
      g_max: highest conductance, siemens.

    Returns:
      ``(G_pos, G_neg)``, each of ``W``'s shape, siemens.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax.mitigation import differential_conductances
      >>> W = jnp.array([[0.5, -1.0]])
      >>> Gp, Gn = differential_conductances(W, 1.0, 1e-6, 1e-4)
      >>> [round(float(g) * 1e6, 4) for g in Gp[0]], [round(float(g) * 1e6, 4) for g in Gn[0]]  # uS
      ([50.5, 1.0], [1.0, 100.0])
      >>> bool(jnp.allclose((Gp - Gn) * 1.0 / (1e-4 - 1e-6), W))
      True
    """
    W = jnp.asarray(W)
    s = (g_max - g_min) / w_max
    return g_min + s * jnp.maximum(W, 0), g_min + s * jnp.maximum(-W, 0)


def _default_geff():
    return effective_conductance


def ir_drop_error(G_pos, parasitics, G_neg=None, effective_conductance=None):
    """Squared IR-drop error of the effective weights, S^2, over the last two axes:

    ``|| (G+_eff - G-_eff) - (G+ - G-) ||_F^2`` (or ``|| G_eff - G ||_F^2`` without ``G_neg``),
    with ``G_eff`` from the exact circuit. Leading axes batch (candidates, tiles).
    A column permutation does not change the ideal term, so this compares orders directly.

    Args:
      G_pos: conductances ``(..., R, C)``, siemens (``G+`` of a differential pair).
      parasitics: :class:`crossjax.circuit.Parasitics` (ohms).
      G_neg: optional ``G-`` of the pair, ``(..., R, C)`` siemens.
      effective_conductance: optional ``(G, parasitics) -> G_eff``; default the
        exact circuit, :func:`crossjax.circuit.effective_conductance`.

    Returns:
      ``(...)`` errors, S^2.

    Example:
      A tile with its heaviest column next to the row drivers (column 0) has a
      smaller error than the same tile with the heaviest column last; with no
      wire resistance the error is 0:

      >>> import jax.numpy as jnp
      >>> from crossjax.circuit import Parasitics
      >>> from crossjax.mitigation import differential_conductances, ir_drop_error
      >>> Gp, Gn = differential_conductances(jnp.tile(jnp.array([0.1, 0.4, 1.0]), (4, 1)), 1.0, 1e-6, 1e-4)
      >>> par = Parasitics(r_wire_row=2.0, r_wire_col=2.0, r_source=10.0, r_sink=10.0)
      >>> bool(ir_drop_error(Gp[:, ::-1], par, Gn[:, ::-1]) < ir_drop_error(Gp, par, Gn))
      True
      >>> float(ir_drop_error(Gp, Parasitics(), Gn))
      0.0
    """
    geff = effective_conductance or _default_geff()
    err = geff(G_pos, parasitics) - G_pos
    if G_neg is not None:
        err = err - (geff(G_neg, parasitics) - G_neg)
    return jnp.sum(err**2, axis=(-2, -1))


def optimize_column_order(G_pos, parasitics, G_neg=None, init=None, max_swaps=None, effective_conductance=None):
    """Greedy best-swap search of one tile's column order on the exact circuit.

    Start from ``init`` (default :func:`column_order` of ``G_pos + G_neg``); at
    each step evaluate all C(C-1)/2 column swaps at once (one batched exact
    solve) and apply the swap that lowers :func:`ir_drop_error` most; stop when
    none improves or after ``max_swaps`` (default C) accepted swaps. Returns
    ``(perm (C,), error)``; the error never exceeds that of ``init``.
    ``G_pos``/``G_neg`` (R, C) siemens. Cost: ``max_swaps`` solves of C(C-1)/2 tiles.

    Args:
      G_pos: one tile's conductances ``(R, C)``, siemens.
      parasitics: :class:`crossjax.circuit.Parasitics` (ohms).
      G_neg: optional ``G-`` of a differential pair, ``(R, C)`` siemens.
      init: optional starting permutation, int ``(C,)``.
      max_swaps: most swaps accepted (the loop always runs this many steps).
      effective_conductance: as in :func:`ir_drop_error`.

    Returns:
      ``(perm, error)``: int ``(C,)`` permutation (physical column j holds
      logical column ``perm[j]``) and its :func:`ir_drop_error`, S^2.

    Raises:
      ValueError: ``G_pos`` is not 2-D.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax.circuit import Parasitics
      >>> from crossjax.mitigation import differential_conductances, ir_drop_error, optimize_column_order
      >>> Gp, Gn = differential_conductances(jnp.tile(jnp.array([0.1, 0.4, 1.0]), (4, 1)), 1.0, 1e-6, 1e-4)
      >>> par = Parasitics(r_wire_row=2.0, r_wire_col=2.0, r_source=10.0, r_sink=10.0)
      >>> perm, err = optimize_column_order(Gp, par, Gn)
      >>> perm.tolist(), bool(err < ir_drop_error(Gp, par, Gn))
      ([2, 1, 0], True)
    """
    G_pos = jnp.asarray(G_pos)
    if G_pos.ndim != 2:
        raise ValueError(f"G_pos must be one tile (R, C), got shape {G_pos.shape}; vmap for batches")
    C = G_pos.shape[-1]
    total = G_pos if G_neg is None else G_pos + G_neg
    perm = column_order(total) if init is None else jnp.asarray(init)
    max_swaps = C if max_swaps is None else int(max_swaps)
    pairs = np.array(list(itertools.combinations(range(C), 2)), dtype=np.int32).reshape(-1, 2)
    swaps = np.tile(np.arange(C, dtype=np.int32), (len(pairs), 1))
    swaps[np.arange(len(pairs)), pairs[:, 0]] = pairs[:, 1]
    swaps[np.arange(len(pairs)), pairs[:, 1]] = pairs[:, 0]

    def permuted(G, p):  # p (C,) or (P, C) -> (..., R, C)
        return jnp.moveaxis(G[:, p], 0, -2)

    def err(p):
        return ir_drop_error(
            permuted(G_pos, p), parasitics, None if G_neg is None else permuted(G_neg, p), effective_conductance
        )

    def body(_, carry):
        p, e = carry
        cands = p[swaps]  # (P, C)
        errs = err(cands)  # (P,) one batched solve
        best = jnp.argmin(errs)
        better = errs[best] < e
        return jnp.where(better, cands[best], p), jnp.where(better, errs[best], e)

    return jax.lax.fori_loop(0, max_swaps, body, (perm, err(perm)))


def compare_column_orders(
    W, rows, cols, parasitics, key, g_min, g_max, w_max=None, n_random=16, optimize=True, effective_conductance=None
):
    """IR-drop error of every tile of ``W`` (K, N) under three column orders, exact circuit.

    Each tile is mapped as a differential pair (``w_max`` default ``max|W|``,
    ``g_min``/``g_max`` siemens) and scored with :func:`ir_drop_error` (S^2) for:
    the order as stored (``"identity"``), ``n_random`` random permutations
    (``"random"``, shape (n_random, Kt*Nt)), the sorted order of
    :func:`column_order` (``"sorted"``) and, if ``optimize``, the greedy exact
    search of :func:`optimize_column_order` from the sorted order
    (``"optimized"``). Tiles are batched (one solve per order), not looped.

    Args:
      W: weights ``(K, N)``.
      rows: tile rows ``R``.
      cols: tile columns ``C``.
      parasitics: :class:`crossjax.circuit.Parasitics` (ohms).
      key: JAX random key for the random permutations.
      g_min: lowest conductance, siemens.
      g_max: highest conductance, siemens.
      w_max: weight mapped to ``g_max`` (units of ``W``); default ``max|W|``.
      n_random: number of random permutations per tile.
      optimize: whether to run the greedy search too (the slowest part).
      effective_conductance: as in :func:`ir_drop_error`.

    Returns:
      Dict of S^2 errors per tile, tiles in row-major ``(Kt, Nt)`` order:
      ``"identity"``, ``"sorted"`` (and ``"optimized"``) ``(Kt*Nt,)``,
      ``"random"`` ``(n_random, Kt*Nt)``.

    Example:
      Both tiles of this layer store their lighter output first; sorting helps:

      >>> import jax
      >>> import jax.numpy as jnp
      >>> from crossjax.circuit import Parasitics
      >>> from crossjax.mitigation import compare_column_orders
      >>> W = jnp.tile(jnp.array([0.1, 1.0, 0.2, 0.5]), (4, 1))
      >>> par = Parasitics(r_wire_row=2.0, r_wire_col=2.0, r_source=10.0, r_sink=10.0)
      >>> out = compare_column_orders(W, 4, 2, par, jax.random.key(0), 1e-6, 1e-4, n_random=1, optimize=False)
      >>> {name: e.shape for name, e in out.items()}
      {'identity': (2,), 'random': (1, 2), 'sorted': (2,)}
      >>> bool((out["sorted"] < out["identity"]).all())
      True
    """
    check_matrix(W)
    check_tile_size(rows, cols)
    W = jnp.asarray(W)
    w_max = jnp.max(jnp.abs(W)) if w_max is None else w_max
    T = tile(W, rows, cols).reshape(-1, rows, cols)
    Gp, Gn = differential_conductances(T, w_max, g_min, g_max)
    take = jax.vmap(lambda G, p: G[:, p])

    def err(p):  # p (tiles, C)
        return ir_drop_error(take(Gp, p), parasitics, take(Gn, p), effective_conductance)

    n = T.shape[0]
    out = {"identity": ir_drop_error(Gp, parasitics, Gn, effective_conductance)}
    keys = jax.random.split(key, n_random * n).reshape(n_random, n)
    rnd = jax.vmap(jax.vmap(lambda k: jax.random.permutation(k, cols)))(keys)  # (n_random, n, C)
    out["random"] = jax.lax.map(err, rnd)
    out["sorted"] = err(column_order(Gp + Gn))
    if optimize:
        out["optimized"] = jax.vmap(
            lambda a, b: optimize_column_order(a, parasitics, b, effective_conductance=effective_conductance)[1]
        )(Gp, Gn)
    return out


# ------------------------------------------------------------------------ WCT
def wct_penalty(W, w_max, threshold=0.5):
    """WCT penalty ``sum relu(|W| / w_max - threshold)^2`` (dimensionless); multiply by strength.

    Args:
      W: weights, any shape.
      w_max: mapping scale (units of ``W``), scalar or broadcastable to ``W``.
      threshold: ``t`` in ``[0, 1]``: weights up to ``t * w_max`` cost nothing.

    Returns:
      Scalar penalty, dimensionless.

    Example:
      ``0.3^2 + 0.5^2``; weights inside the bound cost nothing:

      >>> import jax.numpy as jnp
      >>> from crossjax.mitigation import wct_penalty
      >>> round(float(wct_penalty(jnp.array([0.2, 0.8, -1.0]), 1.0)), 4)
      0.34
      >>> round(float(wct_penalty(jnp.array([0.1, -0.4]), 1.0)), 4)
      0.0
    """
    chk.fraction("threshold", threshold)
    return jnp.sum(jax.nn.relu(jnp.abs(W) / w_max - threshold) ** 2)


def _scales(params, w_max):
    if w_max is None:
        return jax.tree.map(lambda p: jnp.max(jnp.abs(p)), params)
    return w_max


def add_weight_constraint(strength, threshold=0.5, w_max=None, mask=None):
    """Optax transform adding ``strength * d/dW wct_penalty(W, w_max, threshold)`` to the updates.

    Place it before the optimizer's learning-rate scaling, like
    ``optax.add_decayed_weights`` (``optax.chain(add_weight_constraint(1e-2), optax.adam(1e-3))``).
    ``w_max``: pytree of scales matching the parameters (or None: each leaf's
    ``max|p|`` at ``init``, held fixed — pin it in ``MappingConfig.w_max``).
    ``mask``: optional pytree of bools choosing the leaves to constrain (e.g. only kernels).

    Args:
      strength: penalty weight, >= 0 (0 disables).
      threshold: ``t`` in ``[0, 1]`` of :func:`wct_penalty`.
      w_max: optional pytree of scales with the structure of the parameters.
      mask: optional pytree of bools with the structure of the parameters.

    Returns:
      An ``optax.GradientTransformation`` whose state holds the scales; its
      ``update`` needs ``params``.

    Raises:
      ValueError: negative ``strength`` or ``threshold`` out of range; at
        ``update``, missing ``params``.

    Example:
      The weight at ``w_max`` (scale taken at ``init``) gets the gradient
      ``2 * (1.0 - 0.5) = 1``; the weight inside the bound gets none:

      >>> import jax.numpy as jnp
      >>> from crossjax.mitigation import add_weight_constraint
      >>> params = {"w": jnp.array([0.2, 1.0])}
      >>> tx = add_weight_constraint(1.0)
      >>> updates, _ = tx.update({"w": jnp.zeros(2)}, tx.init(params), params)
      >>> updates["w"].tolist()
      [0.0, 1.0]
    """
    chk.fraction("threshold", threshold)
    if not isinstance(strength, jax.core.Tracer) and float(strength) < 0:
        raise ValueError(f"strength must be >= 0, got {strength}")

    def init_fn(params):
        return {"w_max": _scales(params, w_max)}

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("add_weight_constraint needs params: call tx.update(grads, state, params)")
        g = jax.grad(
            lambda p: sum(jax.tree.leaves(jax.tree.map(lambda x, s: wct_penalty(x, s, threshold), p, state["w_max"])))
        )(params)
        if mask is not None:
            g = jax.tree.map(lambda gi, m: jnp.where(m, gi, 0.0), g, mask)
        return jax.tree.map(lambda u, gi: u + strength * gi, updates, g), state

    return optax.GradientTransformation(init_fn, update_fn)


def project_weights(fraction=1.0, w_max=None, mask=None):
    """Hard WCT: optax transform (put it last) that keeps ``|p + u| <= fraction * w_max``.

    The update is replaced by ``clip(p + u, -b, b) - p`` with ``b = fraction * w_max``
    (``w_max`` per leaf, default ``max|p|`` at ``init``); ``mask`` chooses leaves.

    Args:
      fraction: bound as a fraction of ``w_max``, in ``[0, 1]``.
      w_max, mask: as :func:`add_weight_constraint`.

    Returns:
      As :func:`add_weight_constraint`.

    Raises:
      ValueError: ``fraction`` out of range; at ``update``, missing ``params``.

    Example:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> from crossjax.mitigation import project_weights
      >>> params = {"w": jnp.array([0.2, 1.0, -0.9])}
      >>> tx = project_weights(0.5)
      >>> updates, _ = tx.update({"w": jnp.zeros(3)}, tx.init(params), params)
      >>> [round(float(w), 4) for w in optax.apply_updates(params, updates)["w"]]
      [0.2, 0.5, -0.5]
    """
    chk.fraction("fraction", fraction)

    def init_fn(params):
        return {"w_max": _scales(params, w_max)}

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("project_weights needs params: call tx.update(grads, state, params)")

        def one(u, p, s, m=True):
            b = fraction * s
            return jnp.where(m, jnp.clip(p + u, -b, b) - p, u)

        if mask is None:
            return jax.tree.map(one, updates, params, state["w_max"]), state
        return jax.tree.map(one, updates, params, state["w_max"], mask), state

    return optax.GradientTransformation(init_fn, update_fn)


def low_conductance_fraction(W, w_max, threshold=0.5):
    """Fraction of cells with ``|w| / w_max <= threshold`` (the cells WCT aims to increase).

    Args:
      W: weights, any shape.
      w_max: mapping scale (units of ``W``).
      threshold: fraction of ``w_max``.

    Returns:
      Float scalar array in ``[0, 1]``.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax.mitigation import low_conductance_fraction
      >>> round(float(low_conductance_fraction(jnp.array([[0.1, 0.4], [0.6, -0.9]]), 1.0)), 4)
      0.5
    """
    W = jnp.asarray(W)
    return jnp.mean(jnp.abs(W) / w_max <= threshold)
