"""Seed study 1: sparse DNNs on non-ideal crossbars (Bhattacharjee, Bhatnagar, Panda, DATE 2022,
arXiv 2201.05229), at laptop scale on the offline digits, at the paper's scale on CIFAR.

Network (:mod:`.tasks`): ``MLP(64, hidden=(256, 256), 10)`` on digits, on 64x64
crossbars, so the layers span 1x4, 4x4 and 4x1 tiles (quick mode: hidden (64,
64), 1 tile per layer, 1 sample per cell, only the 10-Ohm IR-drop config);
VGG11 on CIFAR-10/100 (``dataset=``; full width where the data is prepared).
The full digits run (24 tiles x 32 samples x 7 variants x 4 configs) takes
about 2 minutes on 2 CPU cores for the linear configs plus about 40 for
``ir_drop_1t1r``, whose every read is a Newton solve per input and tile. Steps:

1. train dense (Adam, cosine decay);
2. prune every hidden layer at the same per-layer ``sparsity`` with
   **C/F** (L1-norm channel pruning; the next layer loses the matching input
   rows or channels, the channel's batch norm goes too), **XCS** (whole
   crossbar columns, ``crossbar_column_mask``) and **XRS** (whole crossbar
   rows, ``crossbar_row_mask``), then fine-tune each with its masks fixed
   (pruned weights stay exactly 0). The classifier is not pruned by any method
   (C/F: only its dead inputs);
3. evaluate every variant on ``"ideal"`` (``presets.get("ideal")``, exact
   ``x @ W``) and ``"ir_drop"`` (``presets.get("sparse_dnn_date22")``: 64x64,
   2.5 Ohm wire segments, R_on/R_off 20/200 kOhm, plus 1 % Gaussian
   programming noise so the Monte Carlo samples differ), ``"ir_drop_r10"``
   (the same with 10 Ohm segments) and, in the full digits run,
   ``"ir_drop_1t1r"`` (the ``ir_drop`` array with nonlinear 1T1R cells,
   ``circuit.RRAM_1T1R``: sinh I-V with ``v0 = 0.25`` V behind a 2 kOhm access
   transistor; the exact per-input Newton solve with the wires);
4. take the crossbar-pruned model (XCS/XRS) with the highest crossbar
   compression rate (dense crossbars / sparse-mapping crossbars) and apply
   **column rearrangement** (``mitigation.rearrange_columns``: each hidden
   layer's outputs sorted within their 64-column block by descending
   ``sum_k |W_kn|``, heaviest next to the row drivers; the next layer's input
   rows (and a batch norm its channels) get the same permutation, so the
   network function is unchanged exactly) and **WCT** (each layer rescaled to
   ``max|W| = 1``, which changes no prediction, ``tasks.normalize_scales``; fine-tuning with
   ``add_weight_constraint(strength, threshold)``, masks fixed; evaluated with
   the mapping scale pinned, ``mapping.w_max = 1``), with a control ``+ft``: the
   same fine-tuning (steps, seed, masks) without the constraint, so the effect
   of the constraint is separated from that of more training.

Cost per variant: energy per inference and area (``crossjax.cost.programmed_cost``) in the
sparse layout, so a compressed network is priced for the crossbars it needs (ideal wires:
the read power without IR drop).

Accuracy loss of a variant = its ideal accuracy - its accuracy under the config.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from crossjax import circuit, cost, mitigation, presets, pruning
from crossjax.devices import WriteNoise
from crossjax.paper_studies import tasks
from crossjax.paper_studies.harness import error_bar, md_table, setup, train_masked

HIDDEN = (256, 256)
TILE = 64
WCT_STRENGTH = 1e-2
WCT_THRESHOLD = 0.5


def settings(quick: bool, dataset: str = "digits") -> dict:
    """Training/pruning settings of the full and quick runs (CIFAR: VGG11, see :mod:`.tasks`)."""
    if dataset.startswith("cifar"):
        if quick:
            return dict(width=0.0625, train_steps=60, finetune_steps=10, batch_size=32, sparsity=0.75,
                        samples=1, configs=("ideal", "ir_drop_r10"), max_test=64)
        return dict(width=1.0, train_steps=20000, finetune_steps=2000, batch_size=128, learning_rate=1e-3,
                    sparsity=0.75, samples=32, configs=("ideal", "ir_drop", "ir_drop_r10"), max_test=None)
    if quick:
        return dict(hidden=(64, 64), train_steps=300, finetune_steps=60, sparsity=0.75,
                    samples=1, configs=("ideal", "ir_drop_r10"), max_test=450)
    return dict(hidden=HIDDEN, train_steps=1500, finetune_steps=300, sparsity=0.75, samples=32,
                configs=("ideal", "ir_drop", "ir_drop_r10", "ir_drop_1t1r"), max_test=None)


def hardware_configs() -> dict:
    """The named hardware configs (see the module docstring)."""
    noisy = presets.get("sparse_dnn_date22").set(
        {"device.write_noise": WriteNoise(sigma=0.01, kind="gaussian")})
    return {"ideal": presets.get("ideal"), "ir_drop": noisy,
            "ir_drop_r10": noisy.set({"array.parasitics.r_wire_row": 10.0,
                                      "array.parasitics.r_wire_col": 10.0}),
            "ir_drop_1t1r": noisy.set({"array.cell": circuit.RRAM_1T1R})}


def _logits(model, x):
    """Logits in eval mode (batch norm on its running statistics), the model itself untouched."""
    m = nnx.clone(model)
    m.eval()
    return m(jnp.asarray(x))


COST_EXAMPLES = 8  # test inputs the cost model averages over


def hardware_cost(model, x) -> dict:
    """``crossjax.cost`` of ``model`` on ``sparse_dnn_date22`` in the sparse layout (the crossbars a
    pruned network needs) with ideal wires (the read power without IR drop, a little higher)."""
    hw = presets.get("sparse_dnn_date22").set({"mapping.layout": "sparse", "array.parasitics": None})
    return cost.programmed_cost(model, hw, x[:COST_EXAMPLES])


PLOT = "accuracy.png"  # the plot run() writes into out


def run(out, *, quick=False, seed=0, samples=None, progress=True, dataset="digits", data_dir=None,
        overwrite=False) -> dict:
    """Run (or resume) the study into ``out``; returns the results dict (``overwrite``: discard
    an earlier run's files there and start afresh, see :class:`.harness.StudyRun`)."""
    st = settings(quick, dataset)
    S = samples or st["samples"]
    ds = setup("sparse_crossbars", out, st, quick=quick, seed=seed, samples=S, progress=progress,
               dataset=dataset, data_dir=data_dir,
               overwrite=overwrite, files=(PLOT,))
    rs, train, x, y = ds.run, ds.train, ds.x, ds.y
    batch = st.get("batch_size", 64)
    hws = hardware_configs()
    cfg_names = st["configs"]

    def lazy(variant, make):
        return lambda: ds.variant(variant, make)

    def pruned(method):
        def make():
            m = nnx.clone(ds.dense())
            train_masked(m, train, steps=st["finetune_steps"], learning_rate=1e-3, seed=seed + 1,
                         batch_size=batch, masks=tasks.structured_masks(m, method, st["sparsity"], TILE))
            return m
        return make

    variants = {"dense": ds.dense}
    for method in ("cf", "xcs", "xrs"):
        variants[method] = lazy(method, pruned(method))
    for v, fn in variants.items():
        if v not in rs.results["variants"]:
            rep = pruning.model_report(fn(), TILE, TILE)["total"]
            rs.results["variants"][v] = {"crossbars": rep, "cost": hardware_cost(fn(), x)}
            rs.save()
        for c in cfg_names:
            rs.cell(v, c, hws[c], fn, x, y)

    comp = {v: rs.results["variants"][v]["crossbars"]["compression"] for v in ("xcs", "xrs")}
    best = max(comp, key=lambda v: (comp[v], v))

    def rearranged():
        return tasks.rearrange(nnx.clone(variants[best]()), TILE)

    def retrained(constraint):  # WCT, or its control without the constraint
        m = tasks.normalize_scales(nnx.clone(variants[best]()))
        pre = ()
        if constraint:
            params = nnx.as_pure(nnx.state(m, nnx.Param))
            kmask = jax.tree_util.tree_map_with_path(
                lambda path, _: str(getattr(path[-1], "key", path[-1])) == "kernel", params)
            pre = (mitigation.add_weight_constraint(WCT_STRENGTH, WCT_THRESHOLD, mask=kmask),)
        train_masked(m, train, steps=st["finetune_steps"], learning_rate=1e-3, seed=seed + 2,
                     batch_size=batch, masks=tasks.nonzero_masks(m, TILE), pre=pre)
        return m

    mit = {f"{best}+rearranged": lazy(f"{best}+rearranged", rearranged),
           f"{best}+wct": lazy(f"{best}+wct", lambda: retrained(True)),
           f"{best}+ft": lazy(f"{best}+ft", lambda: retrained(False))}
    for v, fn in mit.items():
        if v not in rs.results["variants"]:
            m = fn()
            rep = pruning.model_report(m, TILE, TILE)["total"]
            low = float(np.mean([mitigation.low_conductance_fraction(
                W, jnp.max(jnp.abs(W)) if "wct" not in v else 1.0, WCT_THRESHOLD) for W in tasks.kernels(m)]))
            rs.results["variants"][v] = {"crossbars": rep, "low_conductance_fraction": low,
                                         "cost": hardware_cost(m, x)}
            if v.endswith("rearranged"):
                rs.results["variants"][v]["max_logit_change"] = float(
                    jnp.max(jnp.abs(_logits(variants[best](), x) - _logits(m, x))))
            rs.save()
        for c in cfg_names:
            hw = hws[c].set({"mapping.w_max": 1.0}) if v.endswith("wct") else hws[c]
            rs.cell(v, c, hw, fn, x, y)

    rs.results["most_compressed"] = best
    rows, summary = [], {}
    for v in [*variants, *mit]:
        rep = rs.results["variants"][v]["crossbars"]
        ideal = rs.mean(v, "ideal")
        k = rs.results["variants"][v]["cost"]
        row = [v, float(rep["sparsity"]), float(rep["compression"]), rep["tiles_dense"],
               rep["tiles_sparse"], 1e9 * k["energy_J"], k["area_mm2"], ideal]
        summary[v] = {"ideal": ideal}
        for c in cfg_names[1:]:
            acc = rs.mean(v, c)
            cell = rs._cells[f"{v}@{c}"]["accuracy"]
            row += [acc, cell["std"], ideal - acc]
            summary[v][c] = {"accuracy": acc, "loss": ideal - acc}
        rows.append(row)
    rs.results["summary"] = summary
    header = ["variant", "sparsity", "compression", "crossbars dense", "crossbars sparse", "energy (nJ)",
              "area (mm2)", "ideal acc"]
    for c in cfg_names[1:]:
        header += [f"{c} acc", f"{c} std", f"{c} loss"]
    md = (f"# Sparse DNNs on non-ideal crossbars (DATE 2022), {dataset}, {ds.task.model}, "
          f"{TILE}x{TILE} tiles\n\nSamples per stochastic cell: {S}; hidden-layer sparsity "
          f"{st['sparsity']}; most compressed crossbar-pruned model: {best}. Energy per inference and "
          f"area: `crossjax.cost` in the sparse layout (ideal wires, {COST_EXAMPLES} test inputs).\n\n"
          + md_table(header, rows))
    _plot(rs, [*variants, *mit], cfg_names)
    return rs.finish(md)


def _plot(rs, variants, cfg_names):
    import os

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 4))
    w = 0.8 / len(cfg_names)
    lowest = 1.0
    for j, c in enumerate(cfg_names):
        cells = [rs._cells[f"{v}@{c}"] for v in variants]
        means = [100 * r["accuracy"]["mean"] for r in cells]
        lowest = min(lowest, min(r["accuracy"]["min"] for r in cells))
        ax.bar(np.arange(len(variants)) + j * w, means, w, label=f"{c} ({cells[0]['samples']} samples)",
               yerr=[100 * error_bar(r) for r in cells], capsize=2)
    ax.set_xticks(np.arange(len(variants)) + w * (len(cfg_names) - 1) / 2, variants, rotation=20)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(max(0.0, 100 * lowest - 5), 100)
    ax.set_title(f"{rs.results['meta']['model']} on {rs.results['meta']['dataset']}: accuracy per variant "
                 "and config\n(error bars: 95 % interval of the mean over Monte Carlo samples)", fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(rs.out, PLOT), dpi=100)
    plt.close(fig)
