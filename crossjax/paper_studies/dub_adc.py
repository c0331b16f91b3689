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

Datapath (``presets.dub_adc_2024``, the one the paper's bit count assumes): 4-bit
weights as bit slices in 1-bit cells (4 slices, differential pairs subtracted
before conversion), 9-bit signed inputs bit-serial one bit per slice, and a
*granular* ADC whose step is one unit current (one input level through one cell
level, ``converters`` module doc) at a full scale of ``2**(bits-1)`` steps. Every
column current is then an integer number of units, at most ``T`` in magnitude on a
dense column, so ``B0 = ceil(log2 T) + 2`` bits are lossless, and a tile whose
columns hold at most ``T 2^-k`` non-zeros is lossless at ``B0 - k``.

Configs per variant: ``ideal``, ``datapath`` (no ADC: the reference every ADC is
checked against), ``adc8`` (B0 everywhere), ``own_bits`` (every tile at the bits its
densest column needs, ``energy.column_bits(per="tile")``, set per layer with
``layers.set_layer_hardware``), ``adc7`` .. ``adc4`` (uniform bits below B0: the
bound is a worst case and real columns cancel), ``noisy_datapath`` and
``noisy_own_bits`` (the ``rram`` preset's device non-idealities, Monte Carlo), and
for ``magnitude`` also ``dub_bits`` / ``noisy_dub_bits`` (at the D.U.B. network's
per-tile bits: what clipping costs a network whose columns are not balanced).

Measured per variant: tiles per bit count, the cost model's energy, latency and
area (``crossjax.cost.programmed_cost``, ``COST_EXAMPLES`` test inputs) at its own
bits and at B0, the ADC energy ratio vs the dense network at B0 and vs magnitude
pruning, column balance = mean over tiles of the variance of the non-zero counts
of the tile's real columns (of the trained weights, and of the D.U.B. masks:
``mask_column_balance``; a kept weight can stay exactly 0 in fine-tuning when it
feeds a dead ReLU unit, so the weight count can be lower than the mask's), and the
histogram of tile levels k reached. ``summary`` holds the acceptance numbers.
"""

from __future__ import annotations

import numpy as np
from flax import nnx

from crossjax import cost, energy, layers, montecarlo, presets, pruning, tiling
from crossjax.paper_studies import tasks
from crossjax.paper_studies.harness import Setup, error_bar, md_table, paper_study

ROWS, COLS = 64, 16
LAM = 3e-3


def settings(quick: bool, dataset: str = "digits") -> dict:
    """Training/pruning settings of the full and quick runs (CIFAR: VGG11, see :mod:`.tasks`)."""
    if dataset.startswith("cifar"):
        if quick:
            return dict(
                width=0.0625,
                train_steps=60,
                reg_steps=20,
                finetune_steps=10,
                batch_size=32,
                sparsity=0.75,
                samples=2,
                max_test=64,
            )
        return dict(
            width=1.0,
            train_steps=20000,
            reg_steps=4000,
            finetune_steps=4000,
            batch_size=128,
            learning_rate=1e-3,
            sparsity=0.75,
            samples=8,
        )
    if quick:
        return dict(hidden=(64, 64), train_steps=300, reg_steps=100, finetune_steps=60, sparsity=0.75, samples=4)
    return dict(hidden=(256, 256), train_steps=1500, reg_steps=600, finetune_steps=300, sparsity=0.75, samples=32)


def column_balance(W, rows=ROWS, cols=COLS) -> float:
    """Mean over tiles of the (population) variance of the non-zero counts of the tile's real columns."""
    counts = tiling.column_nonzeros(W, rows, cols)  # (Kt, Nt, C)
    real = tiling.real_columns(np.shape(W)[1], cols)
    # column blocks with padding have fewer real columns: one variance per (row tile, column block)
    return float(np.mean(np.concatenate([counts[:, b, real[b]].var(axis=-1) for b in range(real.shape[0])])))


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
    counts = tiling.column_nonzeros(W, ROWS, COLS)
    return counts[:, tiling.real_columns(np.shape(W)[1], COLS)].ravel()


def _max_column_nonzeros(W):
    return tiling.column_nonzeros(W, ROWS, COLS).max(-1)  # (Kt, Nt)


COST_EXAMPLES = 32  # test inputs the cost model averages over
B0 = energy.dense_column_bits(ROWS)  # ceil(log2 T) + 2: a dense column, converted without loss
SWEEP = (B0 - 1, B0 - 2, B0 - 3, B0 - 4)  # uniform bits below B0: where clipping starts in practice


def datapath() -> "presets.HardwareConfig":
    """The paper's datapath (``presets.dub_adc_2024``) without ADC: the reference every ADC is checked against."""
    return presets.get("dub_adc_2024").set({"adc.bits": None})


def noisy(hw):
    """``hw`` with the ``rram`` preset's device non-idealities (10/100 kOhm, 2 % write noise, 1 % read
    noise, 0.5 % + 0.5 % stuck; cells keep their 1 bit)."""
    d = presets.get("rram").device
    return hw.set({"device": d.replace(levels=None)})


def tile_bits(model) -> dict:
    """``{layer name: (Kt, Nt, C) int bits}``: every tile at the bits its densest column needs
    (``energy.column_bits(per="tile")``)."""
    return {
        name: np.asarray(energy.column_bits(layer.crossbar_weights(), ROWS, COLS, per="tile"))
        for name, (_, layer) in zip(layers.layer_names(model), layers.crossbar_layers(model))
    }


def with_bits(model, hw, bits: dict):
    """A copy of ``model`` whose crossbar layers run on ``hw`` with their own ADC ``bits``."""
    m = nnx.clone(model)
    layers.set_layer_hardware(m, {name: hw.set({"adc.bits": b}) for name, b in bits.items()})
    return m


def hardware_cost(model, bits: dict | None, x) -> dict:
    """``crossjax.cost`` of ``model`` on ``dub_adc_2024`` with per-tile ADC ``bits`` (``None``: B0 everywhere)."""
    return cost.programmed_cost(model, presets.get("dub_adc_2024"), x[:COST_EXAMPLES], adc_bits=bits)


def _histogram(bits: dict) -> dict:
    """``{bits: tiles}`` over every layer's tiles (one entry per tile, not per column)."""
    b = np.concatenate([np.asarray(v)[..., 0].ravel() for v in bits.values()])
    return {str(int(k)): int(n) for k, n in zip(*np.unique(b, return_counts=True))}


PLOT = "accuracy_vs_energy.png"  # the plot run() writes into out


@paper_study("dub_adc", settings, files=(PLOT,))
def run(ds: Setup) -> dict:
    st, seed, dataset = ds.settings, ds.seed, ds.dataset
    rs, x, y = ds.run, ds.x, ds.y
    paper = presets.get("dub_adc_2024")
    hws = {
        "ideal": presets.get("ideal").set({"array.rows": ROWS, "array.cols": COLS}),
        "datapath": datapath(),
        f"adc{B0}": paper,
    }

    def magnitude_make():
        m = nnx.clone(ds.dense())
        masks = pruning.prune_model(m, "magnitude", ROWS, COLS, st["sparsity"])
        ds.fit(m, st["finetune_steps"], seed=seed + 1, masks=masks)
        return m

    def dub_make():
        m = nnx.clone(ds.dense())
        reg = lambda p: LAM * pruning.model_dub_regularizer(p, ROWS, COLS)  # noqa: E731
        ds.fit(m, st["reg_steps"], seed=seed + 2, regularizer=reg)
        pruning.apply_model_masks(m, pruning.prune_model(m, "magnitude", ROWS, COLS, st["sparsity"]))
        masks = pruning.prune_model(m, "dub", ROWS, COLS)
        kernel_masks = [np.asarray(pruning.flatten_kernel(k)) for k in pruning.crossbar_kernels(masks).values()]
        structural["mask_column_balance"] = float(np.mean([column_balance(k) for k in kernel_masks]))
        lv = [
            int(v)
            for k in kernel_masks
            for v in np.floor(np.log2(ROWS / np.maximum(_max_column_nonzeros(k), 1))).ravel()
        ]
        structural["mask_levels"] = {str(k): lv.count(k) for k in sorted(set(lv))}
        structural["mask_column_counts"] = sorted({int(c) for k in kernel_masks for c in _column_counts(k)})
        # saved before the model file exists: a run killed between the two never
        # finds the model without its mask statistics
        rs.results.setdefault("pending", {})["dub"] = dict(structural)
        rs.save()
        ds.fit(m, st["finetune_steps"], seed=seed + 3, masks=masks)
        return m

    structural = {}
    makers = {"dense": None, "magnitude": magnitude_make, "dub": dub_make}
    fns = {v: ds.dense if make is None else (lambda v=v, make=make: ds.variant(v, make)) for v, make in makers.items()}
    bits = {}
    for v in makers:
        if v not in rs.results["variants"]:
            m = fns[v]()
            levels = tile_levels(m)
            rs.results["variants"][v] = {
                "crossbars": pruning.model_report(m, ROWS, COLS)["total"],
                "column_balance": float(np.mean([column_balance(W) for W in tasks.kernels(m)])),
                "levels": {str(k): levels.count(k) for k in sorted(set(levels))},
                "digital_accuracy": montecarlo.digital_accuracy(m, x, y),
                "bits": _histogram(tile_bits(m)),
                "cost": hardware_cost(m, tile_bits(m), x),
                "cost_b0": hardware_cost(m, None, x),
            }
            if v == "dub":
                saved = rs.results.get("pending", {}).get("dub")
                if saved is None:
                    raise ValueError(
                        f"dub_adc: {rs.out!r} holds the D.U.B. model but not its mask statistics; "
                        "delete model_dub.ckpt (or the directory) and rerun."
                    )
                rs.results["variants"][v].update(saved)
            rs.save()
        bits[v] = lambda v=v: tile_bits(fns[v]())

    def own(v, hw, which=None):  # the variant's model on hw with the per-tile bits of `which` (itself)
        return lambda: with_bits(fns[v](), hw, bits[which or v]())

    S = rs.samples
    for v in makers:
        for c, hw in hws.items():
            rs.cell(v, c, hw, fns[v], x, y)
        rs.cell(v, "own_bits", paper, own(v, paper), x, y, layer_bits=lambda v=v: _histogram(bits[v]()))
        for b in SWEEP:
            rs.cell(v, f"adc{b}", paper.set({"adc.bits": b}), fns[v], x, y)
        rs.cell(v, "noisy_datapath", noisy(datapath()), fns[v], x, y, samples=S)
        rs.cell(
            v,
            "noisy_own_bits",
            noisy(paper),
            own(v, noisy(paper)),
            x,
            y,
            samples=S,
            layer_bits=lambda v=v: _histogram(bits[v]()),
        )
    dub_hist = lambda: _histogram(bits["dub"]())  # noqa: E731
    rs.cell("magnitude", "dub_bits", paper, own("magnitude", paper, "dub"), x, y, layer_bits=dub_hist)
    rs.cell(
        "magnitude",
        "noisy_dub_bits",
        noisy(paper),
        own("magnitude", noisy(paper), "dub"),
        x,
        y,
        samples=S,
        layer_bits=dub_hist,
    )

    variants = rs.results["variants"]
    adc_j = {v: variants[v]["cost"]["energy_breakdown_J"]["adc"] for v in makers}
    dense_adc = variants["dense"]["cost_b0"]["energy_breakdown_J"]["adc"]
    for v in makers:  # ADC energy per inference: the dense network at B0 vs this variant at its own bits
        variants[v]["energy"] = {"dense_J": dense_adc, "pruned_J": adc_j[v], "improvement": dense_adc / adc_j[v]}
    rs.results["summary"] = summary = _summary(rs, makers, adc_j)
    rs.save()
    _plot(rs, list(makers), len(y))
    return rs.finish(_report(rs, st, dataset, ds.task.model, makers, summary))


def _summary(rs, makers, adc_j) -> dict:
    """The acceptance numbers: lossless ADCs, D.U.B.'s energy ratios, magnitude pruning at D.U.B.'s bits."""
    out = {}
    for v in makers:
        cells = {c["config"]: c for c in rs.results["configs"] if c["variant"] == v}
        ref = cells["datapath"]["accuracy"]["mean"]
        out[v] = {
            "datapath": ref,
            "loss_b0": ref - cells[f"adc{B0}"]["accuracy"]["mean"],
            "loss_own_bits": ref - cells["own_bits"]["accuracy"]["mean"],
            "adc_vs_dense": rs.results["variants"]["dense"]["cost_b0"]["energy_breakdown_J"]["adc"] / adc_j[v],
            "adc_vs_magnitude": adc_j["magnitude"] / adc_j[v],
        }
    cells = {c["config"]: c for c in rs.results["configs"] if c["variant"] == "magnitude"}
    out["magnitude"]["loss_dub_bits"] = out["magnitude"]["datapath"] - cells["dub_bits"]["accuracy"]["mean"]
    return out


def _acc(rs, v, c):
    rec = rs.record(v, c)
    if rec is None:
        return "-"
    a = rec["accuracy"]
    return f"{100 * a['mean']:.2f}" + (f" +- {100 * a['se']:.2f}" if a.get("se") is not None else "")


def _report(rs, st, dataset, model, makers, summary) -> str:
    variants = rs.results["variants"]
    rows = []
    for v in makers:
        r, k = variants[v], variants[v]["cost"]
        rows.append(
            [
                v,
                float(r["crossbars"]["sparsity"]),
                100 * r["digital_accuracy"],
                _acc(rs, v, "ideal"),
                _acc(rs, v, "datapath"),
                _acc(rs, v, f"adc{B0}"),
                _acc(rs, v, "own_bits"),
                _acc(rs, v, "dub_bits"),
                " ".join(f"{b}b:{n}" for b, n in r["bits"].items()),
                _acc(rs, v, "noisy_datapath"),
                _acc(rs, v, "noisy_own_bits"),
                _acc(rs, v, "noisy_dub_bits"),
                1e9 * k["energy_breakdown_J"]["adc"],
                summary[v]["adc_vs_dense"],
                summary[v]["adc_vs_magnitude"],
                1e9 * k["energy_J"],
                1e6 * k["latency_s"],
                k["area_mm2"],
            ]
        )
    sweep = [[v] + [_acc(rs, v, f"adc{b}") for b in (B0, *SWEEP)] for v in makers]
    return (
        f"# D.U.B. pruning for ADC efficiency, {dataset}, {model}, {ROWS}x{COLS} tiles\n\n"
        f"Datapath (`dub_adc_2024`): 4-bit weights in 1-bit cells (4 slices), differential pairs "
        f"subtracted before conversion, 8-bit inputs bit-serial one signed bit per slice, ADC step at "
        f"one unit current (`adc.range=\"granular\"`): a dense column is exact at "
        f"ceil(log2 T) + 2 = {B0} bits. lambda = {LAM}, sparsity before snapping {st['sparsity']}. "
        f"Accuracies in %; `datapath`: no ADC (the reference); `own bits`: every tile at the bits its "
        f"densest column needs; `D.U.B. bits`: the magnitude-pruned network at the D.U.B. network's "
        f"per-tile bits; `noisy`: `rram` device non-idealities, {rs.samples} Monte Carlo samples "
        f"(+- standard error of the mean).\n\n"
        + md_table(
            [
                "variant",
                "sparsity",
                "digital",
                "ideal",
                "datapath",
                f"ADC {B0} b",
                "own bits",
                "D.U.B. bits",
                "tile bits",
                "noisy, no ADC",
                "noisy, own bits",
                "noisy, D.U.B. bits",
                "ADC energy (nJ)",
                "ADC x vs dense",
                "ADC x vs magnitude",
                "energy (nJ)",
                "latency (us)",
                "area (mm2)",
            ],
            rows,
        )
        + "\nEnergy, latency, area: `crossjax.cost` on the datapath with the variant's own bits (ADC "
        "Walden law; every component). `ADC x vs dense`: the dense network's ADC energy at "
        f"{B0} bits over this variant's.\n\n"
        f"## Uniform ADC bits (every tile), accuracy %\n\nThe bound is a worst case (all inputs and "
        f"weights of a column of one sign); real columns cancel, so clipping starts lower.\n\n"
        + md_table(["variant"] + [f"{b} bits" for b in (B0, *SWEEP)], sweep)
    )


def _plot(rs, variants, n_test):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    points = [(v, "own_bits", rs.results["variants"][v]["cost"]) for v in variants]
    points.append(("dense", f"adc{B0}", rs.results["variants"]["dense"]["cost_b0"]))
    for v, c, k in points:
        rec = rs.record(v, c)
        ax.errorbar(
            1e9 * k["energy_breakdown_J"]["adc"],
            100 * rec["accuracy"]["mean"],
            yerr=100 * error_bar(rec, n_test),
            marker="o",
            capsize=3,
            ls="none",
            label=f"{v}, {c}",
        )
    ax.set_xlabel("ADC energy per inference (nJ)")
    ax.set_ylabel("test accuracy on the datapath (%)")
    ax.set_title(
        f"{rs.results['meta']['model']} on {rs.results['meta']['dataset']}: accuracy vs ADC energy"
        + ("\n(error bars: test-set binomial standard error)" if n_test else ""),
        fontsize=9,
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    rs.save_plot(fig, PLOT)
