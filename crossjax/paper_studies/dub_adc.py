"""Seed study 2: D.U.B. pruning for ADC efficiency (Ibrayev, Garg, Chakraborty, Roy,
arXiv 2403.13082), at laptop scale on the offline digits, at the paper's scale on CIFAR.

Network (:mod:`.tasks`): ``MLP(64, hidden, 10)`` on digits (full: hidden (256,
256); quick: (64, 64)), VGG11 on CIFAR-10/100 (``dataset=``; conv layers count
one conversion per output position in the energy), on the
``"dub_adc_2024"`` tiling, T = 64 rows x 16 columns (``ROWS`` x ``COLS``). Variants:

* ``dense``: trained digitally;
* ``magnitude``: per-layer unstructured magnitude pruning to ``sparsity``,
  fine-tuned with masks fixed (the plain-pruning baseline);
* ``dub``: from ``dense``, training with ``lam * sum_tiles Var_+(H(columns))``
  (``pruning.model_dub_regularizer``, H the Hoyer-square, one-sided variance),
  then magnitude pruning to ``sparsity`` to create the zeros, the D.U.B.
  projection (``prune_model(..., "dub")``: each tile's sparsity snapped to
  ``L_k = 1 - 2^-k`` and every column of the tile pruned to it), fine-tuned
  with masks fixed.

Measured per variant: accuracy on ``"ideal"`` and on ``"adc8"``
(``presets.get("dub_adc_2024")``: 4 one-bit slices, 8-bit ADC; deterministic,
1 sample), ADC energy per inference with ``crossjax.energy.model_adc_energy``
(per-tile bits, Walden law ``E = e_step 2^b``; improvement = dense / pruned),
column balance = mean over tiles of the variance of the non-zero counts of the
tile's real columns (of the trained weights, and of the D.U.B. masks:
``mask_column_balance``; a kept weight can stay exactly 0 in fine-tuning when it
feeds a dead ReLU unit, so the weight count can be lower than the mask's), and
the histogram of tile levels k reached, and the cost model's energy, latency and area
per inference (``crossjax.cost.programmed_cost`` on ``adc8`` with every tile's ADC at the bits
its densest column needs, ``energy.column_bits(per="tile")``: the dense network at 8 bits, the
pruned ones lower; ``COST_EXAMPLES`` test inputs).
"""
from __future__ import annotations

import numpy as np
from flax import nnx

from crossjax import cost, energy, layers, montecarlo, presets, pruning
from crossjax.paper_studies import tasks
from crossjax.paper_studies.harness import error_bar, md_table, setup, train_masked

ROWS, COLS = 64, 16
LAM = 3e-3


def settings(quick: bool, dataset: str = "digits") -> dict:
    """Training/pruning settings of the full and quick runs (CIFAR: VGG11, see :mod:`.tasks`)."""
    if dataset.startswith("cifar"):
        if quick:
            return dict(width=0.0625, train_steps=60, reg_steps=20, finetune_steps=10, batch_size=32,
                        sparsity=0.75, samples=1, max_test=64)
        return dict(width=1.0, train_steps=20000, reg_steps=4000, finetune_steps=4000, batch_size=128,
                    learning_rate=1e-3, sparsity=0.75, samples=1)
    if quick:
        return dict(hidden=(64, 64), train_steps=300, reg_steps=100, finetune_steps=60,
                    sparsity=0.75, samples=1)
    return dict(hidden=(256, 256), train_steps=1500, reg_steps=600, finetune_steps=300,
                sparsity=0.75, samples=1)


def column_balance(W, rows=ROWS, cols=COLS) -> float:
    """Mean over tiles of the (population) variance of the non-zero counts of the tile's real columns."""
    W = np.asarray(W)
    K, N = W.shape
    Kt, Nt = -(-K // rows), -(-N // cols)
    nz = np.zeros((Kt * rows, Nt * cols))
    nz[:K, :N] = W != 0
    counts = nz.reshape(Kt, rows, Nt, cols).sum(1)                  # (Kt, Nt, C)
    real = np.zeros(Nt * cols, bool)
    real[:N] = True
    real = real.reshape(Nt, cols)
    out = []
    for b in range(Nt):   # at most a few column blocks; vectorised over row tiles
        c = counts[:, b, real[b]]
        out.append(c.var(axis=-1))
    return float(np.mean(np.concatenate(out)))


def tile_levels(model) -> list[int]:
    """k per tile of every layer: the largest k with every column <= T 2^-k non-zeros."""
    levels = []
    for W in tasks.kernels(model):
        nz_max = _max_column_nonzeros(np.asarray(W))
        k = np.floor(np.log2(ROWS / np.maximum(nz_max, 1))).astype(int)
        levels += k.ravel().tolist()
    return levels


def _column_counts(W):
    """Non-zero counts of the real columns of every tile (flat)."""
    W = np.asarray(W)
    K, N = W.shape
    Kt, Nt = -(-K // ROWS), -(-N // COLS)
    nz = np.zeros((Kt * ROWS, Nt * COLS))
    nz[:K, :N] = W != 0
    real = np.zeros(Nt * COLS, bool)
    real[:N] = True
    return nz.reshape(Kt, ROWS, Nt * COLS).sum(1)[:, real].ravel()


def _max_column_nonzeros(W):
    K, N = W.shape
    Kt, Nt = -(-K // ROWS), -(-N // COLS)
    nz = np.zeros((Kt * ROWS, Nt * COLS))
    nz[:K, :N] = W != 0
    return nz.reshape(Kt, ROWS, Nt, COLS).sum(1).max(-1)            # (Kt, Nt)


COST_EXAMPLES = 32  # test inputs the cost model averages over


def hardware_cost(model, x) -> dict:
    """``crossjax.cost`` of ``model`` on ``dub_adc_2024`` with per-tile D.U.B. ADC bits."""
    bits = {".".join(map(str, path)): energy.column_bits(layer.crossbar_weights(), ROWS, COLS, per="tile")
            for path, layer in layers.crossbar_layers(model)}
    return cost.programmed_cost(model, presets.get("dub_adc_2024"), x[:COST_EXAMPLES], adc_bits=bits)


PLOT = "accuracy_vs_energy.png"  # the plot run() writes into out


def run(out, *, quick=False, seed=0, samples=None, progress=True, dataset="digits", data_dir=None,
        overwrite=False) -> dict:
    """Run (or resume) the study into ``out``; returns the results dict (``overwrite``: discard
    an earlier run's files there and start afresh, see :class:`.harness.StudyRun`)."""
    st = settings(quick, dataset)
    ds = setup("dub_adc", out, st, quick=quick, seed=seed, samples=samples or st["samples"],
               progress=progress, dataset=dataset, data_dir=data_dir,
               overwrite=overwrite, files=(PLOT,))
    rs, train, x, y = ds.run, ds.train, ds.x, ds.y
    batch = st.get("batch_size", 64)
    hws = {"ideal": presets.get("ideal").set({"array.rows": ROWS, "array.cols": COLS}),
           "adc8": presets.get("dub_adc_2024")}

    def magnitude_make():
        m = nnx.clone(ds.dense())
        masks = pruning.prune_model(m, "magnitude", ROWS, COLS, st["sparsity"])
        train_masked(m, train, steps=st["finetune_steps"], learning_rate=1e-3, seed=seed + 1,
                     batch_size=batch, masks=masks)
        return m

    def dub_make():
        m = nnx.clone(ds.dense())
        reg = lambda p: LAM * pruning.model_dub_regularizer(p, ROWS, COLS)  # noqa: E731
        train_masked(m, train, steps=st["reg_steps"], learning_rate=1e-3, seed=seed + 2,
                     batch_size=batch, regularizer=reg)
        pruning.apply_model_masks(m, pruning.prune_model(m, "magnitude", ROWS, COLS, st["sparsity"]))
        masks = pruning.prune_model(m, "dub", ROWS, COLS)
        kernel_masks = [np.asarray(pruning.flatten_kernel(k)) for k in pruning.crossbar_kernels(masks).values()]
        structural["mask_column_balance"] = float(np.mean([column_balance(k) for k in kernel_masks]))
        lv = [int(v) for k in kernel_masks for v in np.floor(np.log2(
            ROWS / np.maximum(_max_column_nonzeros(k), 1))).ravel()]
        structural["mask_levels"] = {str(k): lv.count(k) for k in sorted(set(lv))}
        structural["mask_column_counts"] = sorted({int(c) for k in kernel_masks
                                                   for c in _column_counts(k)})
        # saved before the model file exists: a run killed between the two never
        # finds the model without its mask statistics
        rs.results.setdefault("pending", {})["dub"] = dict(structural)
        rs.save()
        train_masked(m, train, steps=st["finetune_steps"], learning_rate=1e-3, seed=seed + 3,
                     batch_size=batch, masks=masks)
        return m

    structural = {}
    makers = {"dense": None, "magnitude": magnitude_make, "dub": dub_make}
    for v, make in makers.items():
        fn = ds.dense if make is None else (lambda v=v, make=make: ds.variant(v, make))
        if v not in rs.results["variants"]:
            m = fn()
            kernels = pruning.crossbar_kernels(nnx.state(m, nnx.Param))
            e = energy.model_adc_energy(kernels, ROWS, COLS, tasks.positions(m, ds.task.input_hw))
            levels = tile_levels(m)
            rs.results["variants"][v] = {
                "crossbars": pruning.model_report(m, ROWS, COLS)["total"],
                "energy": {"dense_J": e["dense"], "pruned_J": e["pruned"],
                           "improvement": e["improvement"]},
                "column_balance": float(np.mean([column_balance(W) for W in tasks.kernels(m)])),
                "levels": {str(k): levels.count(k) for k in sorted(set(levels))},
                "digital_accuracy": montecarlo.digital_accuracy(m, x, y),
                "cost": hardware_cost(m, x)}
            if v == "dub":
                saved = rs.results.get("pending", {}).get("dub")
                if saved is None:
                    raise ValueError(f"dub_adc: {rs.out!r} holds the D.U.B. model but not its mask statistics; "
                                     "delete model_dub.npz (or the directory) and rerun.")
                rs.results["variants"][v].update(saved)
            rs.save()
        for c, hw in hws.items():
            rs.cell(v, c, hw, fn, x, y)

    rows = []
    d_ideal = rs.mean("dense", "ideal")
    for v in makers:
        r = rs.results["variants"][v]
        k = r["cost"]
        rows.append([v, float(r["crossbars"]["sparsity"]), rs.mean(v, "ideal"),
                     d_ideal - rs.mean(v, "ideal"), rs.mean(v, "adc8"),
                     float(r["energy"]["improvement"]), 1e9 * k["energy_J"],
                     100 * k["energy_breakdown_J"]["adc"] / k["energy_J"], 1e6 * k["latency_s"], k["area_mm2"],
                     r["column_balance"], " ".join(f"k{k}:{n}" for k, n in r["levels"].items())])
    md = (f"# D.U.B. pruning for ADC efficiency, {dataset}, {ds.task.model}, "
          f"{ROWS}x{COLS} tiles\n\nlambda = {LAM}, sparsity before snapping {st['sparsity']}; "
          f"energy: Walden law, per-tile ADC bits.\n\n"
          + md_table(["variant", "sparsity", "ideal acc", "drop vs dense", "adc8 acc",
                      "ADC energy improvement", "energy (nJ)", "ADC %", "latency (us)", "area (mm2)",
                      "column-count variance", "tile levels"], rows)
          + "\n\nenergy, latency, area: `crossjax.cost` on `adc8` with per-tile bits (all components: array "
            "read, DAC, ADC, digital periphery; defaults of `crossjax.cost.CostConfig`).\n")
    _plot(rs, list(makers), len(y))
    return rs.finish(md)


def _plot(rs, variants, n_test):
    import os

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for v in variants:
        rec = rs._cells[f"{v}@ideal"]
        ax.errorbar(rs.results["variants"][v]["energy"]["improvement"], 100 * rec["accuracy"]["mean"],
                    yerr=100 * error_bar(rec, n_test), marker="o", capsize=3, ls="none", label=v)
    ax.set_xlabel("ADC energy improvement over the dense network (x)")
    ax.set_ylabel("test accuracy, ideal crossbar (%)")
    ax.set_title(f"{rs.results['meta']['model']} on {rs.results['meta']['dataset']}: accuracy vs ADC energy"
                 + ("\n(error bars: test-set binomial standard error)" if n_test else ""), fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(rs.out, PLOT), dpi=100)
    plt.close(fig)
