"""Seed study 1: sparse DNNs on non-ideal crossbars (Bhattacharjee, Bhatnagar, Panda, DATE 2022,
arXiv 2201.05229), at laptop scale on the offline digits.

Model: ``MLP(64, hidden=(256, 256), 10)`` on 64x64 crossbars, so the layers
span 1x4, 4x4 and 4x1 tiles (quick mode: hidden (64, 64), 1 tile per layer,
1 sample per cell, only the 10-Ohm IR-drop config). Cost: the exact IR-drop
solve of one 64x64 tile pair per Monte Carlo sample dominates (about 1 s per
tile per sample on a busy 2-core CPU), so the full run (24 tiles x 32 samples
x 6 variants x 2 configs) needs an accelerator to finish in minutes. Steps:

1. train dense (Adam, cosine decay);
2. prune the two hidden layers at the same per-layer ``sparsity`` with
   **C/F** (L1-norm channel pruning; the next layer loses the matching input
   rows), **XCS** (whole crossbar columns, ``crossbar_column_mask``) and
   **XRS** (whole crossbar rows, ``crossbar_row_mask``), then fine-tune each
   with its masks fixed (pruned weights stay exactly 0). The output layer (10
   classes) is not pruned by any method (C/F: only its dead input rows);
3. evaluate every variant on ``"ideal"`` (``presets.get("ideal")``, exact
   ``x @ W``) and ``"ir_drop"`` (``presets.get("sparse_dnn_date22")``: 64x64,
   2.5 Ohm wire segments, R_on/R_off 20/200 kOhm, plus 1 % Gaussian
   programming noise so the Monte Carlo samples differ) and ``"ir_drop_r10"``
   (the same with 10 Ohm segments);
4. take the crossbar-pruned model (XCS/XRS) with the highest crossbar
   compression rate (dense crossbars / sparse-mapping crossbars) and apply
   **column rearrangement** (``mitigation.rearrange_columns``: each hidden
   layer's outputs sorted within their 64-column block by descending
   ``sum_k |W_kn|``, heaviest next to the row drivers; the next layer's input
   rows get the same permutation, so the network function is unchanged
   exactly) and **WCT** (each layer rescaled to ``max|W| = 1``, which changes
   no prediction of a ReLU network; fine-tuning with
   ``add_weight_constraint(strength, threshold)``, masks fixed; evaluated with
   the mapping scale pinned, ``mapping.w_max = 1``), with a control ``+ft``: the
   same fine-tuning (steps, seed, masks) without the constraint, so the effect
   of the constraint is separated from that of more training.

Accuracy loss of a variant = its ideal accuracy - its accuracy under the config.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from crossjax import mitigation, presets, pruning
from crossjax.devices import WriteNoise
from crossjax.paper_studies.harness import digits_study, md_table, train_masked

HIDDEN = (256, 256)
TILE = 64
WCT_STRENGTH = 1e-2
WCT_THRESHOLD = 0.5


def settings(quick: bool) -> dict:
    """Training/pruning settings of the full and quick runs."""
    if quick:
        return dict(hidden=(64, 64), train_steps=300, finetune_steps=60, sparsity=0.75,
                    samples=1, configs=("ideal", "ir_drop_r10"), max_test=450)
    return dict(hidden=HIDDEN, train_steps=1500, finetune_steps=300, sparsity=0.75, samples=32,
                configs=("ideal", "ir_drop", "ir_drop_r10"), max_test=None)


def hardware_configs() -> dict:
    """The named hardware configs (see the module docstring)."""
    noisy = presets.get("sparse_dnn_date22").set(
        {"device.write_noise": WriteNoise(sigma=0.01, kind="gaussian")})
    return {"ideal": presets.get("ideal"), "ir_drop": noisy,
            "ir_drop_r10": noisy.set({"array.parasitics.r_wire_row": 10.0,
                                      "array.parasitics.r_wire_col": 10.0})}


def _kernels(model):
    return [layer.kernel[...] for layer in model.layers]


def _masks(model, method: str, sparsity: float):
    """Pure mask tree for ``method`` in {"cf", "xcs", "xrs"} (hidden layers only)."""
    masks = nnx.as_pure(pruning.prune_model(model, "magnitude", TILE, TILE, 0.0))
    W = _kernels(model)
    L = len(W)
    keep_prev = None
    for i in range(L - 1):
        if method == "cf":
            m = pruning.channel_mask(W[i], sparsity)
            keep = m.any(0)
            if keep_prev is not None:
                m = m & keep_prev[:, None]
            keep_prev = keep
        elif method == "xcs":
            m = pruning.crossbar_column_mask(W[i], TILE, TILE, sparsity)
        else:
            m = pruning.crossbar_row_mask(W[i], TILE, TILE, sparsity)
        masks["layers"][i]["kernel"] = m
    if method == "cf":
        masks["layers"][L - 1]["kernel"] = jnp.broadcast_to(keep_prev[:, None], W[L - 1].shape)
    return masks


def rearrange_model(model):
    """Column rearrangement of every hidden layer, undone by the next layer's rows (in place)."""
    layers = model.layers
    for i in range(len(layers) - 1):
        Wp, perm = mitigation.rearrange_columns(layers[i].kernel[...], TILE)
        layers[i].kernel[...] = Wp
        if layers[i].bias is not None:
            layers[i].bias[...] = layers[i].bias[...][perm]
        layers[i + 1].kernel[...] = layers[i + 1].kernel[...][perm, :]
    return model


def normalize_scales(model):
    """Rescale each layer to ``max|W| = 1`` (biases by the running product), in place.

    ReLU is positively homogeneous, so the logits are multiplied by one
    positive constant and no prediction changes.
    """
    running = 1.0
    for layer in model.layers:
        c = 1.0 / jnp.max(jnp.abs(layer.kernel[...]))
        running = running * c
        layer.kernel[...] = layer.kernel[...] * c
        if layer.bias is not None:
            layer.bias[...] = layer.bias[...] * running
    return model


def run(out, *, quick=False, seed=0, samples=None, progress=True) -> dict:
    """Run (or resume) the study into ``out``; returns the results dict."""
    st = settings(quick)
    S = samples or st["samples"]
    ds = digits_study("sparse_crossbars", out, st, quick=quick, seed=seed, samples=S, progress=progress)
    rs, train, x, y, build = ds.run, ds.train, ds.x, ds.y, ds.build
    hws = hardware_configs()
    cfg_names = st["configs"]

    def lazy(variant, make):
        return lambda: ds.variant(variant, make)

    dense_fn = ds.dense

    def pruned(method):
        def make():
            m = build()
            nnx.update(m, nnx.state(dense_fn(), nnx.Param))
            masks = _masks(m, method, st["sparsity"])
            train_masked(m, train, steps=st["finetune_steps"], learning_rate=1e-3,
                         seed=seed + 1, masks=masks)
            return m
        return make

    variants = {"dense": dense_fn}
    for method in ("cf", "xcs", "xrs"):
        variants[method] = lazy(method, pruned(method))
    for v, fn in variants.items():
        if v not in rs.results["variants"]:
            rep = pruning.model_report(fn(), TILE, TILE)["total"]
            rs.results["variants"][v] = {"crossbars": rep}
            rs.save()
        for c in cfg_names:
            rs.cell(v, c, hws[c], fn, x, y)

    comp = {v: rs.results["variants"][v]["crossbars"]["compression"] for v in ("xcs", "xrs")}
    best = max(comp, key=lambda v: (comp[v], v))

    def rearranged():
        m = build()
        nnx.update(m, nnx.state(variants[best](), nnx.Param))
        return rearrange_model(m)

    def wct():
        m = build()
        nnx.update(m, nnx.state(variants[best](), nnx.Param))
        normalize_scales(m)
        params = nnx.as_pure(nnx.state(m, nnx.Param))
        kmask = jax.tree_util.tree_map_with_path(
            lambda path, _: str(getattr(path[-1], "key", path[-1])) == "kernel", params)
        masks = nnx.as_pure(pruning.prune_model(m, "magnitude", TILE, TILE, 0.0))
        for i, layer in enumerate(m.layers):
            masks["layers"][i]["kernel"] = layer.kernel[...] != 0
        tx = mitigation.add_weight_constraint(WCT_STRENGTH, WCT_THRESHOLD, mask=kmask)
        train_masked(m, train, steps=st["finetune_steps"], learning_rate=1e-3,
                     seed=seed + 2, masks=masks, pre=(tx,))
        return m

    def finetuned():  # control of WCT: the same rescaling and fine-tuning without the constraint
        m = build()
        nnx.update(m, nnx.state(variants[best](), nnx.Param))
        normalize_scales(m)
        masks = nnx.as_pure(pruning.prune_model(m, "magnitude", TILE, TILE, 0.0))
        for i, layer in enumerate(m.layers):
            masks["layers"][i]["kernel"] = layer.kernel[...] != 0
        train_masked(m, train, steps=st["finetune_steps"], learning_rate=1e-3,
                     seed=seed + 2, masks=masks)
        return m

    mit = {f"{best}+rearranged": lazy(f"{best}+rearranged", rearranged),
           f"{best}+wct": lazy(f"{best}+wct", wct),
           f"{best}+ft": lazy(f"{best}+ft", finetuned)}
    for v, fn in mit.items():
        if v not in rs.results["variants"]:
            m = fn()
            rep = pruning.model_report(m, TILE, TILE)["total"]
            low = float(np.mean([mitigation.low_conductance_fraction(
                layer.kernel[...], jnp.max(jnp.abs(layer.kernel[...])) if "wct" not in v else 1.0,
                WCT_THRESHOLD) for layer in m.layers]))
            rs.results["variants"][v] = {"crossbars": rep, "low_conductance_fraction": low}
            if v.endswith("rearranged"):
                ref, got = variants[best](), m
                rs.results["variants"][v]["max_logit_change"] = float(
                    jnp.max(jnp.abs(ref(jnp.asarray(x)) - got(jnp.asarray(x)))))
            rs.save()
        for c in cfg_names:
            hw = hws[c].set({"mapping.w_max": 1.0}) if v.endswith("wct") else hws[c]
            rs.cell(v, c, hw, fn, x, y)

    rs.results["most_compressed"] = best
    rows, summary = [], {}
    for v in [*variants, *mit]:
        rep = rs.results["variants"][v]["crossbars"]
        ideal = rs.mean(v, "ideal")
        row = [v, float(rep["sparsity"]), float(rep["compression"]), rep["tiles_dense"],
               rep["tiles_sparse"], ideal]
        summary[v] = {"ideal": ideal}
        for c in cfg_names[1:]:
            acc = rs.mean(v, c)
            cell = rs._cells[f"{v}@{c}"]["accuracy"]
            row += [acc, cell["std"], ideal - acc]
            summary[v][c] = {"accuracy": acc, "loss": ideal - acc}
        rows.append(row)
    rs.results["summary"] = summary
    header = ["variant", "sparsity", "compression", "crossbars dense", "crossbars sparse", "ideal acc"]
    for c in cfg_names[1:]:
        header += [f"{c} acc", f"{c} std", f"{c} loss"]
    md = (f"# Sparse DNNs on non-ideal crossbars (DATE 2022), digits, MLP {(64, *st['hidden'], 10)}, "
          f"{TILE}x{TILE} tiles\n\nSamples per stochastic cell: {S}; hidden-layer sparsity "
          f"{st['sparsity']}; most compressed crossbar-pruned model: {best}.\n\n"
          + md_table(header, rows))
    _plot(rs, [*variants, *mit], cfg_names)
    return rs.finish(md)


def _plot(rs, variants, cfg_names):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4))
    w = 0.8 / len(cfg_names)
    for j, c in enumerate(cfg_names):
        cells = [rs._cells[f"{v}@{c}"]["accuracy"] for v in variants]
        ax.bar(np.arange(len(variants)) + j * w, [a["mean"] for a in cells], w,
               yerr=[a["std"] for a in cells], label=c)
    ax.set_xticks(np.arange(len(variants)) + w * (len(cfg_names) - 1) / 2, variants, rotation=20)
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    import os
    fig.savefig(os.path.join(rs.out, "accuracy.png"), dpi=100)
    plt.close(fig)
