"""Model-level wrappers: prune every crossbar weight of a Flax NNX model.

The crossbar weights of a model are its ``nnx.Param`` leaves named ``kernel``
with 2 (dense, (K, N)) or 4 (conv, (kh, kw, Cin, Cout)) dimensions; conv
kernels are pruned on their flattened (Cin*kh*kw, Cout) crossbar layout and the
mask is folded back to the kernel shape. Masks are returned as an
``nnx.State`` with the structure of ``nnx.state(model, nnx.Param)`` (all-True
for parameters that are not pruned, e.g. biases), ready for
:func:`crossjax.pruning.apply_masks` and :func:`crossjax.pruning.masked_updates`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from crossjax.layers import crossbar_layers
from crossjax.pruning import structured
from crossjax.pruning.dub import dub_project, dub_regularizer
from crossjax.pruning.masks import apply_masks
from crossjax.pruning.report import crossbar_report
from crossjax.tiling import flatten_kernel, unflatten_kernel

__all__ = [
    "crossbar_layer_paths",
    "crossbar_kernels",
    "prune_model",
    "prune_channels",
    "apply_model_masks",
    "model_report",
    "model_group_lasso",
    "model_dub_regularizer",
    "METHODS",
]

METHODS = ("magnitude", "channel", "column", "row", "tile", "dub")


def _names(path):
    return tuple(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def _is_kernel(path, leaf, layers=None):
    names = _names(path)
    if "kernel" not in names or jnp.ndim(leaf) not in (2, 4):
        return False
    return layers is None or names[: names.index("kernel")] in layers


def crossbar_layer_paths(model):
    """Paths (tuples of str) of the crossbar layers of ``model`` (``CrossbarLinear``,
    ``CrossbarConv`` and the layers :func:`crossjax.convert` made).

    ``None`` when the model has none (then every 2-D/4-D ``kernel`` counts as a
    crossbar weight, e.g. for plain ``nnx.Linear``/``nnx.Conv`` models); digital
    layers next to crossbar layers (a digital classifier head) are left alone.

    Args:
      model: a Flax NNX module.

    Returns:
      Set of layer paths (tuples of str, e.g. ``("conv",)``), or ``None``.

    Example:
      >>> from flax import nnx
      >>> from crossjax.layers import CrossbarLinear
      >>> from crossjax.pruning import crossbar_layer_paths
      >>> model = nnx.Sequential(CrossbarLinear(8, 4, rngs=nnx.Rngs(0)), nnx.Linear(4, 2, rngs=nnx.Rngs(0)))
      >>> crossbar_layer_paths(model)
      {('layers', '0')}
      >>> crossbar_layer_paths(nnx.Linear(8, 4, rngs=nnx.Rngs(0))) is None
      True
    """
    paths = set(_converted_layers(model)) | {tuple(str(k) for k in path) for path, _ in _crossbar_layers(model)}
    return paths or None


def _crossbar_layers(model):
    return crossbar_layers(model)


def _converted_layers(model):
    """``{path: layer}`` of converted layers whose kernel is not already a (K, N) / conv matrix
    (``nnx.LinearGeneral``, ``nnx.Einsum``, 1-D/3-D or grouped convs): pruned on their crossbar matrix."""
    out = {}
    for path, layer in _crossbar_layers(model):
        if hasattr(layer, "kernel_from_matrix"):
            k = layer.kernel[...]
            plain = layer.groups == 1 and (k.ndim == 4 or (k.ndim == 2 and not hasattr(layer, "einsum_str")))
            if not plain:
                out[tuple(str(p) for p in path)] = layer
    return out


def _matrices(layer):
    """The layer's crossbar matrices: ``[(K, N)]``, one per group."""
    W = layer.crossbar_weights()
    return [W] if W.ndim == 2 else list(W)


def _path_name(path):
    return "/".join(n for n in _names(path) if n != "value")


def crossbar_kernels(params, layers=None):
    """``{path: kernel}`` of the crossbar weights in a parameter tree (e.g. ``nnx.state(model, nnx.Param)``).

    ``layers``: optional set of layer paths (:func:`crossbar_layer_paths`) to restrict to.

    Args:
      params: parameter tree; its 2-D ``(K, N)`` and 4-D ``(kh, kw, Cin, Cout)``
        leaves named ``kernel`` are the crossbar weights.
      layers: optional set of layer paths; ``None`` keeps every such kernel.

    Returns:
      Dict from the ``"/"``-joined path (e.g. ``"conv/kernel"``) to the kernel
      array, in its own shape (conv kernels are not flattened).

    Example:
      The digital head is dropped when ``layers`` names the crossbar layers:

      >>> from flax import nnx
      >>> from crossjax.layers import CrossbarLinear
      >>> from crossjax.pruning import crossbar_kernels, crossbar_layer_paths
      >>> model = nnx.Sequential(CrossbarLinear(8, 4, rngs=nnx.Rngs(0)), nnx.Linear(4, 2, rngs=nnx.Rngs(0)))
      >>> params = nnx.state(model, nnx.Param)
      >>> {name: k.shape for name, k in crossbar_kernels(params).items()}
      {'layers/0/kernel': (8, 4), 'layers/1/kernel': (4, 2)}
      >>> list(crossbar_kernels(params, crossbar_layer_paths(model)))
      ['layers/0/kernel']
    """
    return {_path_name(p): x for p, x in jax.tree_util.tree_leaves_with_path(params) if _is_kernel(p, x, layers)}


def _layer_mask(kernel, method, sparsity, rows, cols, max_level):
    if method == "magnitude":
        return structured.magnitude_mask(kernel, sparsity)
    if method == "channel":
        return structured.channel_mask(kernel, sparsity)
    W = flatten_kernel(kernel)
    if method == "column":
        m = structured.crossbar_column_mask(W, rows, cols, sparsity)
    elif method == "row":
        m = structured.crossbar_row_mask(W, rows, cols, sparsity)
    elif method == "tile":
        m = structured.tile_mask(W, rows, cols, sparsity)
    else:
        m, _ = dub_project(W, rows, cols, max_level)
    return unflatten_kernel(m, kernel.shape)


def prune_model(model, method, rows, cols, sparsity=0.0, max_level=None):
    """Boolean mask tree for every crossbar kernel of ``model`` (layer-wise, same sparsity).

    ``method``: one of :data:`METHODS` (``"column"`` = XCS, ``"row"`` = XRS,
    ``"dub"`` = D.U.B. projection, which ignores ``sparsity`` and snaps each
    tile to its level from the current zeros).

    Args:
      model: a Flax NNX module; only its crossbar layers are pruned
        (:func:`crossbar_layer_paths`).
      method: one of :data:`METHODS`.
      rows: tile rows ``R``.
      cols: tile columns ``C`` (both unused by ``"magnitude"`` and ``"channel"``).
      sparsity: fraction of the groups of each layer to prune, in ``[0, 1]``.
      max_level: highest D.U.B. level (``"dub"`` only; :func:`crossjax.pruning.dub_levels`).

    Returns:
      ``nnx.State`` with the structure of ``nnx.state(model, nnx.Param)``: a bool
      keep mask of each parameter's shape (all True where not pruned).

    Raises:
      ValueError: unknown ``method``.

    Example:
      Tile pruning removes 2 of the crossbar layer's 4 tiles (16 weights) and
      leaves the digital head alone:

      >>> from flax import nnx
      >>> from crossjax.layers import CrossbarLinear
      >>> from crossjax.pruning import prune_model
      >>> model = nnx.Sequential(CrossbarLinear(8, 4, rngs=nnx.Rngs(0)), nnx.Linear(4, 2, rngs=nnx.Rngs(0)))
      >>> masks = prune_model(model, "tile", rows=4, cols=2, sparsity=0.5)
      >>> int((~masks["layers"][0]["kernel"][...]).sum()), bool(masks["layers"][1]["kernel"][...].all())
      (16, True)
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    params = nnx.state(model, nnx.Param)
    layers = crossbar_layer_paths(model)
    converted = _converted_layers(model)

    def leaf(path, x):
        names = _names(path)
        owner = names[: names.index("kernel")] if "kernel" in names else None
        if owner in converted:  # pruned on its crossbar matrices, mask in the kernel's shape
            layer = converted[owner]
            masks = [_layer_mask(W, method, sparsity, rows, cols, max_level) for W in _matrices(layer)]
            return layer.kernel_from_matrix(masks[0] if layer.groups == 1 else jnp.stack(masks)).astype(bool)
        if _is_kernel(path, x, layers):
            return _layer_mask(x, method, sparsity, rows, cols, max_level)
        return jnp.ones(jnp.shape(x), bool)

    return jax.tree_util.tree_map_with_path(leaf, params)


def prune_channels(model, sparsity, followers=None):
    """C/F pruning of every crossbar layer by L1 norm, plus the inputs of the layers that read them.

    ``followers``: ``{layer: next_layer}`` by layer path (e.g. ``{"conv1": "conv2"}``,
    nested paths joined with "/"): the next layer's kernel loses the inputs of
    the pruned channels (its Cin axis, or its channel-major flattened rows; see
    :func:`input_channel_mask`). Returns the mask tree (as :func:`prune_model`).

    Args:
      model: a Flax NNX module.
      sparsity: fraction of each crossbar layer's output channels to prune, in ``[0, 1]``.
      followers: optional ``{layer path: next layer path}``, ``"/"``-joined.

    Returns:
      Bool mask tree with the structure of ``nnx.state(model, nnx.Param)``.

    Example:
      Half of ``l1``'s 4 outputs are pruned, and ``l2`` loses the matching inputs (rows):

      >>> from flax import nnx
      >>> from crossjax.pruning import prune_channels
      >>> class Net(nnx.Module):
      ...     def __init__(self, rngs):
      ...         self.l1 = nnx.Linear(4, 4, rngs=rngs)
      ...         self.l2 = nnx.Linear(4, 3, rngs=rngs)
      >>> masks = prune_channels(Net(nnx.Rngs(0)), 0.5, followers={"l1": "l2"})
      >>> m1, m2 = masks["l1"]["kernel"][...], masks["l2"]["kernel"][...]
      >>> int(m1.any(0).sum()), bool((m1.any(0) == m2.any(1)).all())
      (2, True)
    """
    masks = prune_model(model, "channel", 1, 1, sparsity)
    followers = followers or {}

    def get(tree, name):
        for part in name.split("/"):
            # nnx.Sequential / list children are keyed by int; paths spell them as digits
            key = int(part) if part.isdigit() and part not in tree and int(part) in tree else part
            if key not in tree:
                raise ValueError(
                    f"prune_channels: followers names {name!r}, which is not a layer path of the model "
                    f"(no {part!r}); use the '/'-joined paths of crossbar_layer_paths(model)"
                )
            tree = tree[key]
        return tree["kernel"]

    for prev, nxt in followers.items():
        m_prev, m_next = get(masks, prev), get(masks, nxt)
        keep = m_prev[...].reshape(-1, m_prev[...].shape[-1]).any(0)
        k_next = get(nnx.state(model, nnx.Param), nxt)[...]
        m_next[...] = m_next[...] & structured.input_channel_mask(keep, k_next)
    return masks


def apply_model_masks(model, masks):
    """Zero the masked-out parameters of ``model`` in place (``nnx.update``).

    Args:
      model: a Flax NNX module (modified in place).
      masks: mask tree of its parameters (:func:`prune_model`).

    Returns:
      ``None``.

    Example:
      >>> from flax import nnx
      >>> from crossjax.pruning import apply_model_masks, prune_model
      >>> model = nnx.Linear(4, 2, rngs=nnx.Rngs(0))
      >>> apply_model_masks(model, prune_model(model, "magnitude", 1, 1, sparsity=0.5))
      >>> int((model.kernel[...] == 0).sum())
      4
    """
    nnx.update(model, apply_masks(nnx.state(model, nnx.Param), masks))


def model_report(model, rows, cols):
    """Per-layer :class:`CrossbarReport` dicts and model totals (``"total"``) of the current weights.

    Args:
      model: a Flax NNX module; its crossbar kernels are counted on their
        flattened ``(K, N)`` matrices.
      rows: tile rows ``R``.
      cols: tile columns ``C``.

    Returns:
      ``{"layers": {name: CrossbarReport.as_dict()}, "total": {...}}`` (plain
      Python numbers); the totals sum the counts, and their ``sparsity`` and
      ``compression`` are recomputed from the summed counts.

    Example:
      >>> from flax import nnx
      >>> from crossjax.pruning import apply_model_masks, model_report, prune_model
      >>> model = nnx.Linear(8, 4, rngs=nnx.Rngs(0))
      >>> apply_model_masks(model, prune_model(model, "column", 4, 2, sparsity=0.5))
      >>> rep = model_report(model, 4, 2)
      >>> list(rep["layers"]), rep["total"]["weights"], rep["total"]["nonzeros"], rep["total"]["sparsity"]
      (['kernel'], 32, 16, 0.5)
    """
    layers = {
        name: crossbar_report(flatten_kernel(k), rows, cols).as_dict()
        for name, k in crossbar_kernels(nnx.state(model, nnx.Param), crossbar_layer_paths(model)).items()
    }
    for path, layer in _converted_layers(model).items():
        name = "/".join(path) + "/kernel"
        layers.pop(name, None)
        for g, W in enumerate(_matrices(layer)):
            layers[name if layer.groups == 1 else f"{name}[{g}]"] = crossbar_report(W, rows, cols).as_dict()
    keys = ("weights", "nonzeros", "tiles_dense", "tiles_nonempty", "tiles_sparse", "columns_dense", "columns_nonempty")
    total = {k: sum(r[k] for r in layers.values()) for k in keys}
    total["sparsity"] = 1.0 - total["nonzeros"] / max(total["weights"], 1)
    total["compression"] = total["tiles_dense"] / max(total["tiles_sparse"], 1)
    return {"layers": layers, "total": total}


def model_group_lasso(params, rows, cols, group="column", layers=None):
    """Sum of :func:`group_lasso` over the crossbar kernels of a parameter tree (differentiable).

    ``layers``: :func:`crossbar_layer_paths` of the model, to skip digital layers.

    Args:
      params: parameter tree (e.g. ``nnx.state(model, nnx.Param)``).
      rows: tile rows ``R``.
      cols: tile columns ``C``.
      group: ``"column"``, ``"row"``, ``"tile"`` (on the flattened kernels) or
        ``"channel"`` (on the kernels as they are), as in :func:`group_lasso`.
      layers: optional set of layer paths; ``None`` counts every 2-D/4-D kernel.

    Returns:
      Scalar penalty, in the units of the weights.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from crossjax.pruning import group_lasso, model_group_lasso
      >>> model = nnx.Linear(8, 4, rngs=nnx.Rngs(0))
      >>> penalty = model_group_lasso(nnx.state(model, nnx.Param), 4, 2)
      >>> bool(jnp.allclose(penalty, group_lasso(model.kernel[...], 4, 2)))
      True
    """
    return sum(
        structured.group_lasso(k if group == "channel" else flatten_kernel(k), rows, cols, group)
        for k in crossbar_kernels(params, layers).values()
    )


def model_dub_regularizer(params, rows, cols, eps=1e-8, layers=None):
    """Sum of :func:`dub_regularizer` over the crossbar kernels of a parameter tree.

    Args:
      params: parameter tree (e.g. ``nnx.state(model, nnx.Param)``).
      rows: tile rows ``T``.
      cols: tile columns ``C``.
      eps: the Hoyer-square denominator guard.
      layers: optional set of layer paths (:func:`crossbar_layer_paths`); ``None``
        counts every 2-D/4-D kernel.

    Returns:
      Scalar penalty, dimensionless; differentiable in ``params``.

    Example:
      A plain ``nnx.Linear`` has one crossbar kernel (its bias is not one):

      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from crossjax.pruning import dub_regularizer, model_dub_regularizer
      >>> model = nnx.Linear(8, 4, rngs=nnx.Rngs(0))
      >>> params = nnx.state(model, nnx.Param)
      >>> bool(jnp.allclose(model_dub_regularizer(params, 4, 2), dub_regularizer(model.kernel[...], 4, 2)))
      True
    """
    return sum(dub_regularizer(flatten_kernel(k), rows, cols, eps) for k in crossbar_kernels(params, layers).values())
