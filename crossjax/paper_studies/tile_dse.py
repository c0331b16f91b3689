"""Seed study 3: dense vs sparse mapping and tile size on tiled RRAM (Lammie et al., ISCAS 2022,
arXiv 2201.06703), at laptop scale on the offline digits, at the paper's scale on CIFAR.

Network (:mod:`.tasks`): ``MLP(64, hidden, 10)`` on digits (full: hidden (256,
256), tiles 16..256; quick: hidden (64, 64), tiles 16 and 64, configs ``ideal``
and ``dse+wires``), VGG11 on CIFAR-10/100 (``dataset=``; full width, where the
data is prepared). For every tile size ``T`` (``T x T`` crossbars):

1. ``dense``: the digitally trained network (trained once);
2. ``xcs``: the dense network with ``sparsity`` of its hidden layers' crossbar
   columns removed at this tile size (``pruning.crossbar_column_mask``: whole
   ``T``-row column segments, the structure a sparse mapping can skip),
   fine-tuned with the masks fixed (pruned weights stay exactly 0);
3. mappings (``mapping.layout``): ``dense`` programs every tile of the grid,
   zeros included; ``sparse`` skips the all-zero crossbar columns and packs the
   rest, per row block, into ``ceil(nnz / T)`` crossbars, undone digitally
   (docs/papers.md: the paper's exact definition is not known; this is the
   column-compaction scheme of ``crossjax.pruning.report``).

Every (variant, mapping, T) cell is evaluated on ``"ideal"`` (exact ``x @ W``),
``"dse"`` (``presets.get("dse_iscas22")`` at tile ``T``: 1T1R, no IR drop,
32 levels, 10 % device-to-device variation of R_on/R_off, 1 % stuck devices,
8-bit ADC) and ``"dse+wires"`` (the same passive, with 1 Ohm wire segments and
the exact IR-drop solve), with ``samples`` Monte Carlo samples per stochastic
cell. The ADC full scales are calibrated per sample on ``CALIBRATION``
training inputs (99.99th percentile of each column's current,
``layers.calibrate_model``): the preset's worst-case range (all inputs at the
DAC's full scale) clips hidden layers whose activations exceed it, which would
swamp the mapping effects this study looks for. Costs per cell: crossbars (dense or sparse
count), ADC conversions per inference (both arrays of the differential pair;
the sparse mapping converts only non-empty columns) and ADC energy (Walden
law at the preset's 8 bits, ``crossjax.energy``), and the cost model's energy, latency and area
per inference with their breakdown (``crossjax.cost.model_cost`` of the network programmed on
``dse`` at that tile size and mapping, read energy from the programmed conductances and the
DAC voltages of ``COST_EXAMPLES`` test inputs; the dense mapping builds and reads every tile,
the sparse one only its packed columns).

Accuracy loss of a cell = its ideal accuracy - its accuracy under the config.
``pareto``: the cells no other cell beats in accuracy (under the last config) at no
more energy, area, or energy, latency and area together (``cost.pareto_front``),
plotted in ``PARETO_PLOT``.
"""

from __future__ import annotations

import numpy as np
from flax import nnx

from crossjax import circuit, cost, energy, presets, pruning
from crossjax.paper_studies import tasks
from crossjax.paper_studies.harness import Setup, error_bar, md_table, paper_study

CELLS = (("dense", "dense"), ("xcs", "dense"), ("xcs", "sparse"))  # (variant, mapping)
CALIBRATION = 256  # training inputs that calibrate the ADC ranges
# conversions per crossbar column: each array of the differential pair has its own ADC
# (the preset's mapping.subtract="digital"; "analog" pair subtraction would make it 1)
ADC_CONVERSIONS = presets.get("dse_iscas22").mapping.read_arrays


def settings(quick: bool, dataset: str = "digits") -> dict:
    """Training/pruning settings of the full and quick runs (CIFAR: VGG11, see :mod:`.tasks`)."""
    if dataset.startswith("cifar"):
        if quick:
            return dict(
                width=0.0625,
                tiles=(16, 64),
                train_steps=60,
                finetune_steps=10,
                batch_size=32,
                sparsity=0.5,
                samples=2,
                max_test=64,
                configs=("ideal", "dse+wires"),
            )
        return dict(
            width=1.0,
            tiles=(16, 32, 64, 128, 256),
            train_steps=20000,
            finetune_steps=2000,
            batch_size=128,
            learning_rate=1e-3,
            sparsity=0.5,
            samples=32,
            max_test=None,
            configs=("ideal", "dse", "dse+wires"),
        )
    if quick:
        return dict(
            hidden=(64, 64),
            tiles=(16, 64),
            train_steps=300,
            finetune_steps=60,
            sparsity=0.5,
            samples=2,
            max_test=450,
            configs=("ideal", "dse+wires"),
        )
    return dict(
        hidden=(256, 256),
        tiles=(16, 32, 64, 128, 256),
        train_steps=1500,
        finetune_steps=300,
        sparsity=0.5,
        samples=32,
        max_test=None,
        configs=("ideal", "dse", "dse+wires"),
    )


def hardware_configs(tile: int, mapping: str) -> dict:
    """The named configs of one cell (see the module docstring)."""
    base = presets.get("dse_iscas22").set(
        {"array.rows": tile, "array.cols": tile, "mapping.layout": mapping, "adc.range": "calibrated"}
    )
    wires = circuit.Parasitics(r_wire_row=1.0, r_wire_col=1.0)
    ideal = presets.get("ideal").set({"array.rows": tile, "array.cols": tile, "mapping.layout": mapping})
    return {"ideal": ideal, "dse": base, "dse+wires": base.set({"array.parasitics": wires})}


def costs(model, tile: int, mapping: str, input_hw: int = 1) -> dict:
    """Crossbars, ADC conversions and ADC energy per inference of ``model`` mapped at ``tile``
    (conv layers convert once per output position of an ``input_hw``-sided image)."""
    report = pruning.model_report(model, tile, tile)["total"]
    kernels = pruning.crossbar_kernels(nnx.state(model, nnx.Param))
    vectors = tasks.positions(model, input_hw)
    sparse = mapping == "sparse"
    conversions = sum(
        int(
            energy.layer_conversions(
                pruning.flatten_kernel(k), tile, tile, vectors.get(name, 1), ADC_CONVERSIONS, sparse
            )
        )
        for name, k in kernels.items()
    )
    e = energy.model_adc_energy(
        kernels, tile, tile, vectors, per="dense", conversions_per_column=ADC_CONVERSIONS, skip_empty_columns=sparse
    )
    return {
        "crossbars": int(report["tiles_sparse"] if sparse else report["tiles_dense"]),
        "crossbars_dense": int(report["tiles_dense"]),
        "sparsity": float(report["sparsity"]),
        "adc_conversions": conversions,
        "adc_energy_J": e["pruned"],
    }


COST_EXAMPLES = 32  # test inputs the cost model averages the read energy over


def hardware_cost(model, tile: int, mapping: str, x) -> dict:
    """Energy and latency per inference and area (``crossjax.cost``) of ``model`` programmed on
    ``dse`` at ``tile`` and ``mapping`` (every column the layout holds is connected; 1T1R cells,
    as the preset models, whose ``array.cell`` leaves the access transistor implicit)."""
    figures = cost.CostConfig(skip_empty=False, array=cost.ArrayCost(cell_type="1T1R"))
    return cost.programmed_cost(model, hardware_configs(tile, mapping)["dse"], x[:COST_EXAMPLES], cost=figures)


PLOT = "tile_dse.png"  # the plots run() writes into out
PARETO_PLOT = "pareto.png"


@paper_study("tile_dse", settings, files=(PLOT, PARETO_PLOT))
def run(ds: Setup) -> dict:
    st, seed, dataset = ds.settings, ds.seed, ds.dataset
    S = ds.run.samples
    rs, train, x, y = ds.run, ds.train, ds.x, ds.y

    def xcs_make(tile):
        def make():
            m = nnx.clone(ds.dense())
            ds.fit(m, st["finetune_steps"], seed=seed + 1, masks=tasks.structured_masks(m, "xcs", st["sparsity"], tile))
            return m

        return make

    names = st["configs"]
    for tile in st["tiles"]:
        variants = {"dense": ds.dense, "xcs": lambda tile=tile: ds.variant(f"xcs{tile}", xcs_make(tile))}
        for v, mapping in CELLS:
            cell = f"{v}/{mapping}/T{tile}"
            if cell not in rs.results["variants"]:
                rs.results["variants"][cell] = {
                    "variant": v,
                    "mapping": mapping,
                    "tile": tile,
                    **costs(variants[v](), tile, mapping, ds.task.input_hw),
                    **hardware_cost(variants[v](), tile, mapping, x),
                }
                rs.save()
            hws = hardware_configs(tile, mapping)
            for c in names:
                rs.cell(cell, c, hws[c], variants[v], x, y, calibration_x=train.x[:CALIBRATION])

    rows = []
    for tile in st["tiles"]:
        for v, mapping in CELLS:
            cell = f"{v}/{mapping}/T{tile}"
            info = rs.results["variants"][cell]
            ideal = rs.mean(cell, "ideal")
            row = [
                tile,
                v,
                mapping,
                info["sparsity"],
                info["crossbars"],
                info["adc_conversions"],
                info["adc_energy_J"] * 1e12,
                info["energy_J"] * 1e9,
                info["latency_s"] * 1e6,
                info["area_mm2"],
                ideal,
            ]
            for c in names[1:]:
                a = rs.record(cell, c)["accuracy"]
                row += [a["mean"], a["std"], ideal - a["mean"]]
            rows.append(row)
    header = [
        "T",
        "variant",
        "mapping",
        "sparsity",
        "crossbars",
        "ADC conversions",
        "ADC energy (pJ)",
        "energy (nJ)",
        "latency (us)",
        "area (mm2)",
        "ideal acc",
    ]
    for c in names[1:]:
        header += [f"{c} acc", f"{c} std", f"{c} loss"]
    parts = ("array", "dac", "adc", "digital")
    breakdown = [
        [t, v, mapping]
        + [100 * info["energy_breakdown_J"][k] / info["energy_J"] for k in parts]
        + [100 * info["area_breakdown_mm2"][k] / info["area_mm2"] for k in ("cells", "dac", "adc", "digital")]
        for t in st["tiles"]
        for v, mapping in CELLS
        for info in [rs.results["variants"][f"{v}/{mapping}/T{t}"]]
    ]
    md = (
        f"# Dense vs sparse mapping and tile size (ISCAS 2022), {dataset}, {ds.task.model}\n\n"
        f"Samples per stochastic cell: {S}; XCS sparsity of the hidden layers {st['sparsity']}; "
        f"configs: `dse` = preset dse_iscas22 at each tile size (ADC ranges calibrated on {CALIBRATION} "
        f"training inputs), `dse+wires` = the same with 1 Ohm wire segments (exact IR drop).\n\n"
        + md_table(header, rows)
        + "\n\nWhere the energy and the area go (% of the totals above; `crossjax.cost` defaults: "
        "ISAAC-like 32 nm periphery, 8-bit ADCs shared by 8 columns at 1.28 GS/s, 100 ns reads, "
        "layers run in sequence):\n\n"
        + md_table(
            ["T", "variant", "mapping"]
            + [f"energy {k} %" for k in parts]
            + [f"area {k} %" for k in ("cells", "dac", "adc", "digital")],
            breakdown,
        )
    )
    rs.results["pareto"] = pareto = _pareto(rs, st["tiles"], names[-1])
    rs.save()
    md += (
        f"\n\nPareto-optimal designs under `{names[-1]}` (no other cell has at least its accuracy at no "
        f"more cost and is better in one; `crossjax.cost.pareto_front`): accuracy vs energy "
        f"{', '.join(pareto['energy'])}; accuracy vs area {', '.join(pareto['area'])}; accuracy, "
        f"energy, latency and area together {', '.join(pareto['all'])} (`{PARETO_PLOT}`).\n"
    )
    _plot(rs, st["tiles"], names[1:])
    _plot_pareto(rs, pareto)
    return rs.finish(md)


def _pareto(rs, tiles, config) -> dict:
    """The Pareto-optimal cells under ``config``: accuracy vs energy, vs area, and vs energy,
    latency and area together."""
    cells = [f"{v}/{m}/T{t}" for t in tiles for v, m in CELLS]
    info = [rs.results["variants"][c] for c in cells]
    acc = np.array([-rs.mean(c, config) for c in cells])
    cost_of = {k: np.array([i[k] for i in info]) for k in ("energy_J", "latency_s", "area_mm2")}

    def front(*keys):
        keep = cost.pareto_front(np.stack([cost_of[k] for k in keys] + [acc], axis=1))
        return [c for c, k in zip(cells, keep) if k]

    return {
        "config": config,
        "energy": front("energy_J"),
        "area": front("area_mm2"),
        "all": front("energy_J", "latency_s", "area_mm2"),
    }


def _plot_pareto(rs, pareto):
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = pareto["config"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, scale, unit, front in (
        (axes[0], "energy_J", 1e9, "energy per inference (nJ)", pareto["energy"]),
        (axes[1], "area_mm2", 1.0, "area (mm2)", pareto["area"]),
    ):
        for v, mapping in CELLS:
            cells = [n for n, i in rs.results["variants"].items() if (i["variant"], i["mapping"]) == (v, mapping)]
            xs = [scale * rs.results["variants"][n][key] for n in cells]
            ys = [100 * rs.mean(n, c) for n in cells]
            ax.scatter(xs, ys, label=f"{v}, {mapping} mapping")
            for n, px, py in zip(cells, xs, ys):
                ax.annotate(
                    f"T{rs.results['variants'][n]['tile']}",
                    (px, py),
                    fontsize=7,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
        pts = sorted((scale * rs.results["variants"][n][key], 100 * rs.mean(n, c)) for n in front)
        ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", color="k", lw=1, label="Pareto front")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # the minor labels overlap
        ax.set_xlabel(unit)
        ax.set_ylabel(f"test accuracy on {c} (%)")
    axes[0].legend(fontsize=8)
    rs.save_plot(fig, PARETO_PLOT, "accuracy vs cost per tile size and mapping")


def _plot(rs, tiles, configs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(configs) + 1, figsize=(4 * (len(configs) + 1), 3.8))
    for ax, c in zip(axes, configs):
        for v, mapping in CELLS:
            recs = [rs.record(f"{v}/{mapping}/T{t}", c) for t in tiles]
            ax.errorbar(
                tiles,
                [100 * r["accuracy"]["mean"] for r in recs],
                yerr=[100 * error_bar(r) for r in recs],
                marker="o",
                capsize=3,
                label=f"{v}, {mapping} mapping",
            )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("tile size T")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{c} ({recs[0]['samples']} samples)", fontsize=9)
    ax = axes[-1]
    for v, mapping in CELLS:
        ax.plot(
            tiles,
            [rs.results["variants"][f"{v}/{mapping}/T{t}"]["crossbars"] for t in tiles],
            marker="o",
            label=f"{v}, {mapping} mapping",
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("tile size T")
    ax.set_ylabel("crossbars")
    ax.set_title("crossbars needed", fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, bbox_to_anchor=(0.5, -0.02))
    rs.save_plot(
        fig,
        PLOT,
        "tile-size DSE (error bars: 95 % interval of the mean over Monte Carlo samples)",
        rect=(0, 0.08, 1, 0.95),
    )
