"""The datasets and networks the seed studies run on, and the network surgery they share.

* ``"digits"`` (offline, the default): ``MLP(64, hidden, 10)``, laptop scale;
* ``"mnist"``: ``MLP(784, hidden, 10)``;
* ``"cifar10"`` / ``"cifar100"`` (tfds, where the data is prepared): VGG11, the
  papers' network (conv3x3-BN-ReLU blocks on crossbars, ``width`` from the
  study's settings; ``width=1`` is the standard network).

A network is a chain of crossbar layers in forward order (:func:`chain`): each
:class:`Link` is ``(path, layer, bn)`` with the batch norm that normalizes the
layer's outputs (``None`` for MLP layers). The last link is the classifier,
which the studies never prune. The surgery below keeps the network function:
pruning masks cover a C/F-pruned channel's batch norm too (so the channel is
exactly 0 downstream), the column rearrangement permutes a layer's outputs
together with their bias or batch norm and the next layer's inputs, and the
scale normalization moves each layer's scale into its bias or batch-norm
statistics.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax.numpy as jnp
from flax import nnx

from crossjax import data as data_lib
from crossjax import mitigation, models, pruning
from crossjax.paper_studies import DATASETS


@dataclasses.dataclass(frozen=True)
class Task:
    """One dataset and the network a study trains on it."""

    dataset: str
    train: data_lib.Dataset
    test: data_lib.Dataset
    model: str  # description for results.json
    build: Callable[[], nnx.Module]  # a fresh, untrained network
    input_hw: int  # image side (conv output positions), 1 for an MLP


def load(dataset: str, st: dict, seed: int, data_dir: str | None = None) -> Task:
    """The :class:`Task` of ``dataset`` with the study settings ``st`` (``hidden`` for an
    MLP, ``width`` for VGG11)."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    train = data_lib.load_dataset(dataset, split="train", data_dir=data_dir)
    test = data_lib.load_dataset(dataset, split="test", data_dir=data_dir)
    rngs = lambda: nnx.Rngs(params=seed, hardware=seed + 1)  # noqa: E731
    if dataset in ("digits", "mnist"):
        k = train.x.reshape(len(train), -1).shape[1]
        hidden = tuple(st["hidden"])
        return Task(
            dataset,
            train,
            test,
            f"mlp{(k, *hidden, train.num_classes)}",
            lambda: models.MLP(k, hidden=hidden, num_classes=train.num_classes, rngs=rngs()),
            1,
        )
    width = st["width"]
    return Task(
        dataset,
        train,
        test,
        f"vgg11 width {width:g}",
        lambda: models.vgg11(train.num_classes, in_channels=train.x.shape[-1], width=width, rngs=rngs()),
        train.x.shape[1],
    )


class Link(NamedTuple):
    path: tuple  # attribute path of the crossbar layer in the model
    layer: nnx.Module  # CrossbarLinear or CrossbarConv
    bn: nnx.Module | None  # the batch norm on its outputs, if any


def chain(model) -> list[Link]:
    """The crossbar layers of an MLP or a VGG in forward order (classifier last)."""
    if isinstance(model, models.MLP):
        return [Link(("layers", i), layer, None) for i, layer in enumerate(model.layers)]
    if isinstance(model, models.VGG):
        convs = [Link(("features", i, "conv"), block.conv, block.bn) for i, block in enumerate(model.features)]
        return convs + [Link(("classifier",), model.classifier, None)]
    raise ValueError(
        f"the seed studies run on MLP and VGG networks, got {type(model).__name__} "
        "(a ResNet's skip connections have no single next layer for C/F pruning)"
    )


def positions(model, input_hw: int) -> dict[str, int]:
    """Input vectors per inference of every crossbar kernel (conv output positions), by kernel name."""
    out = {}
    if isinstance(model, models.VGG):
        side, i = input_hw, 0
        for v in models.VGG_CONFIGS[model.config_name]:
            if v == "M":
                side //= 2
            else:
                out[f"features/{i}/conv/kernel"] = side * side
                i += 1
    return out


def _set(tree, path, value):
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = value


def structured_masks(model, method: str, sparsity: float, tile: int) -> dict:
    """Pure mask tree (all parameters) pruning every hidden crossbar layer at ``sparsity``.

    ``method``: ``"cf"`` (channel/filter by L1 norm; the next layer loses the
    matching inputs and the channel's batch norm is zeroed too), ``"xcs"``
    (whole crossbar columns of ``tile`` rows) or ``"xrs"`` (whole crossbar rows
    of ``tile`` columns), on the flattened ``(Cin*kh*kw, Cout)`` layout.
    """
    if method not in ("cf", "xcs", "xrs"):
        raise ValueError(f"method must be 'cf', 'xcs' or 'xrs', got {method!r}")
    masks = nnx.as_pure(pruning.prune_model(model, "magnitude", tile, tile, 0.0))  # all True
    links = chain(model)
    keep_prev = None
    for link in links[:-1]:
        K = link.layer.kernel[...]
        if method == "cf":
            m = pruning.channel_mask(K, sparsity)
            keep = m.reshape(-1, K.shape[-1]).any(0)
            if keep_prev is not None:
                m = m & pruning.input_channel_mask(keep_prev, K)
            for name in ("scale", "bias") if link.bn is not None else ():
                _set(masks, (*link.path[:-1], "bn", name), keep)
            if link.bn is None and link.layer.bias is not None:
                _set(masks, (*link.path, "bias"), keep)
            keep_prev = keep
        else:
            group = pruning.crossbar_column_mask if method == "xcs" else pruning.crossbar_row_mask
            m = pruning.unflatten_kernel(group(pruning.flatten_kernel(K), tile, tile, sparsity), K.shape)
        _set(masks, (*link.path, "kernel"), m)
    if keep_prev is not None:
        last = links[-1]
        _set(masks, (*last.path, "kernel"), pruning.input_channel_mask(keep_prev, last.layer.kernel[...]))
    return masks


def nonzero_masks(model, tile: int) -> dict:
    """Pure mask tree keeping exactly the current non-zero crossbar weights (fine-tuning a pruned model)."""
    masks = nnx.as_pure(pruning.prune_model(model, "magnitude", tile, tile, 0.0))
    for link in chain(model):
        _set(masks, (*link.path, "kernel"), link.layer.kernel[...] != 0)
    return masks


def _permute_inputs(layer, perm):
    """Permute the input channels (rows of a dense kernel, Cin of a conv kernel) of ``layer``."""
    k = layer.kernel[...]
    layer.kernel[...] = k[perm, :] if k.ndim == 2 else k[:, :, perm, :]


def rearrange(model, tile: int):
    """Crossbar column rearrangement of every hidden layer, undone by the next layer (in place).

    Each hidden layer's outputs are sorted within their ``tile``-column block by
    descending ``sum_k |W_kn|`` (``mitigation.rearrange_columns``); the same
    permutation is applied to the layer's bias or batch norm (parameters and
    running statistics) and to the next layer's inputs, so the network function
    is unchanged.
    """
    links = chain(model)
    for link, nxt in zip(links[:-1], links[1:]):
        K = link.layer.kernel[...]
        Wp, perm = mitigation.rearrange_columns(pruning.flatten_kernel(K), tile)
        link.layer.kernel[...] = pruning.unflatten_kernel(Wp, K.shape)
        if link.layer.bias is not None:
            link.layer.bias[...] = link.layer.bias[...][perm]
        if link.bn is not None:
            for var in (link.bn.scale, link.bn.bias, link.bn.mean, link.bn.var):
                var[...] = var[...][perm]
        _permute_inputs(nxt.layer, perm)
    return model


def normalize_scales(model):
    """Rescale every crossbar layer to ``max|W| = 1`` without changing the predictions (in place).

    A layer scaled by ``c`` on inputs scaled by ``s`` gives outputs scaled by
    ``s * c``: its bias is scaled by ``s * c`` too, and either its batch norm's
    running mean and variance absorb the scale (outputs unchanged up to the
    norm's ``eps``) or, without batch norm, ReLU (positively homogeneous) passes
    it on to the next layer. The logits end up multiplied by one positive
    constant, so no prediction changes.
    """
    running = 1.0
    for link in chain(model):
        c = 1.0 / jnp.max(jnp.abs(link.layer.kernel[...]))
        link.layer.kernel[...] = link.layer.kernel[...] * c
        running = running * c
        if link.layer.bias is not None:
            link.layer.bias[...] = link.layer.bias[...] * running
        if link.bn is not None:
            mean, var = link.bn.mean[...], link.bn.var[...]
            link.bn.mean[...] = (mean * running).astype(mean.dtype)
            link.bn.var[...] = (var * running**2).astype(var.dtype)
            running = 1.0
    return model


def kernels(model) -> list:
    """The flattened ``(K, N)`` crossbar matrices of the chain, in forward order."""
    return [pruning.flatten_kernel(link.layer.kernel[...]) for link in chain(model)]
