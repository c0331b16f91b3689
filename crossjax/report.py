"""The human-readable side of a study: ``report.md`` and PNG plots.

* ``accuracy.png``: per config, the distribution of the Monte Carlo sample
  accuracies (box: quartiles, whiskers: 5th/95th percentiles, dots: samples),
  with the digital accuracy as a dashed line; fine-tuning before/after when
  present.
* ``ir_drop.png``: ``crossjax.circuit.plot_ir_drop`` of the first crossbar
  layer's tile (0, 0), positive array of the differential pair
  (``G = g_min + (g_max - g_min) * u+``, ``crossjax.mapping.map_weights``),
  driven by the first test example (``V = x * v_read / x_max``), under the
  config of the study with the largest wire resistance.

All files are written atomically (temp file + ``os.replace``).
"""
from __future__ import annotations

import io
import os
from typing import Any

import numpy as np

from crossjax.checkpoint import atomic_write_bytes, atomic_write_text

ACCURACY_PNG = "accuracy.png"
IR_DROP_PNG = "ir_drop.png"


def _pct(a: float) -> str:
    return f"{100 * a:.2f}"


def markdown(results: dict[str, Any], plots: list[str]) -> str:
    """``report.md`` text for a results dict (the ``results.json`` schema)."""
    meta = results["meta"]
    dig = results["digital"]["accuracy"]
    lines = [f"# crossjax study: {meta['model']} on {meta['dataset']}", "",
             f"seed {meta['seed']}, total wall time {meta['seconds']:.1f} s, "
             f"{results['digital'].get('test_examples', '?')} test examples; "
             + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()), "",
             f"**Digital test accuracy: {_pct(dig)} %**", "",
             "Accuracies in % over Monte Carlo samples; loss = digital - mean "
             "(percentage points).", "",
             "| config | samples | mean | std | min | p05 | p50 | p95 | max | loss |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for c in results["configs"]:
        a = c["accuracy"]
        lines.append(f"| {c['name']} | {c['samples']} | {_pct(a['mean'])} | "
                     f"{_pct(a['std'])} | {_pct(a['min'])} | {_pct(a['p05'])} | "
                     f"{_pct(a['p50'])} | {_pct(a['p95'])} | {_pct(a['max'])} | "
                     f"{100 * (dig - a['mean']):.2f} |")
    lines += _nonlinearity_lines(results["configs"], dig)
    ft = results.get("finetune")
    if ft:
        b, a = ft["before"], ft["after"]
        rec = ft.get("recovered_fraction")
        lines += ["", f"## Non-ideality-aware fine-tuning under `{ft['config']}`", "",
                  f"{ft['steps']} steps with the non-idealities in the loop; "
                  f"{ft['samples']} Monte Carlo samples (same keys before and after).", "",
                  "| | mean | std | min | p05 | p50 | p95 | max |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for label, s in (("before", b), ("after", a)):
            lines.append(f"| {label} | {_pct(s['mean'])} | {_pct(s['std'])} | "
                         f"{_pct(s['min'])} | {_pct(s['p05'])} | {_pct(s['p50'])} | "
                         f"{_pct(s['p95'])} | {_pct(s['max'])} |")
        lines += ["", f"Digital accuracy after fine-tuning: {_pct(ft['digital_after'])} %. "
                  + ("Recovered fraction of the loss: "
                     f"{100 * rec:.1f} %." if rec is not None else
                     "The config lost no accuracy before fine-tuning.")]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _nonlinearity_lines(configs, digital) -> list[str]:
    """The sinh-cell sweep (configs whose ``hardware.array.cell`` is ``iv="sinh"``): loss per
    ``v0`` from the most linear (largest ``v0``) down, and whether it grows monotonically."""
    sweep = []
    for c in configs:
        cell = ((c.get("hardware") or {}).get("array") or {}).get("cell")
        if cell and cell.get("iv") == "sinh" and not np.ndim(cell.get("v0")):
            sweep.append((float(cell["v0"]), c["name"], digital - c["accuracy"]["mean"]))
    if len(sweep) < 2:
        return []
    sweep.sort(reverse=True)
    losses = [loss for _, _, loss in sweep]
    monotone = all(b >= a for a, b in zip(losses, losses[1:]))
    return ["", "## Cell nonlinearity (sinh I-V, `I = G v0 sinh(V / v0)`)", "",
            "Loss (percentage points) as the cells grow more nonlinear (smaller v0; "
            "the read voltage is the DAC's v_read):", "",
            " -> ".join(f"v0 = {v:g} V: {100 * loss:.2f}" for v, _, loss in sweep), "",
            "The loss " + ("grows monotonically" if monotone else "is **not** monotone")
            + " as v0 falls" + ("." if monotone else " (within the Monte Carlo spread, "
                                "compare the std column).")]


def _save_figure(fig, path: str) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def plot_accuracy(results: dict[str, Any], path: str) -> None:
    """Box-and-dots plot of the per-sample accuracies of every config."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [(c["name"], np.asarray(c["per_sample"])) for c in results["configs"]]
    ft = results.get("finetune")
    if ft:
        series += [(f"{ft['config']}\nbefore FT", np.asarray(ft["per_sample_before"])),
                   (f"{ft['config']}\nafter FT", np.asarray(ft["per_sample_after"]))]
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(series)), 4.5))
    data = [100 * s for _, s in series]
    ax.boxplot(data, whis=(5, 95), showfliers=False)
    rng = np.random.default_rng(0)
    for i, d in enumerate(data, start=1):
        ax.plot(i + rng.uniform(-0.15, 0.15, d.size), d, ".", alpha=0.5, ms=4)
    ax.axhline(100 * results["digital"]["accuracy"], ls="--", c="k", lw=1, label="digital")
    ax.set_xticks(range(1, len(series) + 1), [n for n, _ in series], rotation=45, ha="right",
                  fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{results['meta']['model']} on {results['meta']['dataset']}: "
                 "Monte Carlo accuracy per hardware config")
    ax.legend(loc="lower left")
    _save_figure(fig, path)
    plt.close(fig)


def plot_layer_ir_drop(model, hardware, x_example, path: str) -> None:
    """IR-drop heatmap of the first crossbar layer's tile (0, 0), positive array."""
    import jax.numpy as jnp
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from crossjax import circuit, layers, mapping

    layer = layers.crossbar_layers(model)[0][1]
    W = jnp.asarray(layer.crossbar_weights())
    if W.ndim == 3:  # grouped conv: first group
        W = W[0]
    rows, cols = hardware.array.rows, hardware.array.cols
    u, _ = mapping.map_weights(W, hardware.mapping, rows, cols)
    dev = hardware.device
    G = dev.g_min + (dev.g_max - dev.g_min) * u[0, 0, 0]
    x = jnp.ravel(jnp.asarray(x_example))[:W.shape[0]]
    x = jnp.pad(x, (0, rows - x.shape[0])) if x.shape[0] < rows else x[:rows]
    V = x * hardware.dac.v_read / hardware.dac.x_max
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    circuit.plot_ir_drop(G, V, hardware.array.parasitics, ax=ax)
    p = hardware.array.parasitics
    ax.set_title(f"layer 0, tile (0,0), G+: r_wire_row={float(p.r_wire_row):g} ohm, "
                 f"r_wire_col={float(p.r_wire_col):g} ohm", fontsize=8)
    _save_figure(fig, path)
    plt.close(fig)


def _strongest_wires(spec):
    best, best_r = None, 0.0
    for c in spec.configs:
        p = c.hardware.array.parasitics
        if p is None:
            continue
        r = float(p.r_wire_row) + float(p.r_wire_col)
        if r > best_r:
            best, best_r = c.hardware, r
    return best


def write_report(out: str, results: dict[str, Any], *, model=None, spec=None,
                 x_example=None, plots: bool = True) -> list[str]:
    """Write ``report.md`` (and the plots when ``plots``) into ``out``; returns the plot names."""
    names = []
    if plots:
        plot_accuracy(results, os.path.join(out, ACCURACY_PNG))
        names.append(ACCURACY_PNG)
        hw = _strongest_wires(spec) if spec is not None else None
        if model is not None and hw is not None and x_example is not None:
            plot_layer_ir_drop(model, hw, x_example, os.path.join(out, IR_DROP_PNG))
            names.append(IR_DROP_PNG)
    atomic_write_text(os.path.join(out, "report.md"), markdown(results, names))
    return names
