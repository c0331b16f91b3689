"""The human-readable side of a study: ``report.md`` and PNG plots.

* ``accuracy.png``: per config, the distribution of the Monte Carlo sample
  accuracies (box: quartiles, whiskers: 5th/95th percentiles, dots: samples),
  with the digital accuracy as a dashed line; fine-tuning before/after when
  present.
* ``ir_drop.png``: ``crossjax.circuit.plot_ir_drop`` of the first crossbar
  layer's tile (0, 0), positive array of the differential pair
  (``G = g_min + (g_max - g_min) * u+``, ``crossjax.mapping.map_weights``),
  driven by the first test example (``V = x * v_read / x_max``), under the
  config of the study with the largest wire resistance: the drop
  ``V_i - U_ij`` in millivolts (linear cells), so the colours show the wires'
  effect rather than the input pattern.

All files are written atomically (temp file + ``os.replace``).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
from typing import Any

import jax.numpy as jnp
import numpy as np

from crossjax import circuit, layers, mapping
from crossjax import config_reference as cr
from crossjax.checkpoint import atomic_write_bytes, atomic_write_text
from crossjax.hardware import HardwareConfig

ACCURACY_PNG = "accuracy.png"
PARETO_PNG = "accuracy_vs_energy.png"
IR_DROP_PNG = "ir_drop.png"
TIME_PNG = "accuracy_vs_time.png"
#: every plot :func:`write_report` may write (what ``--overwrite`` discards with the results)
PLOTS = (ACCURACY_PNG, PARETO_PNG, IR_DROP_PNG, TIME_PNG)
#: hardware fields that hold the time of inference after programming (seconds)
TIME_FIELDS = (("device", "pcm", "t"), ("device", "rram", "t"), ("device", "drift", "t"))


def _pct(a: float) -> str:
    return f"{100 * a:.2f}"


def _interval(a: dict, samples: int | None = None) -> tuple[str, str]:
    """The 95 % interval and standard error cells of an ``accuracy`` summary (in %); a quick
    run's 1 or 2 samples are named beside the number."""
    if a.get("ci95") is None:
        return "n/a (1 sample)", "n/a"
    lo, hi = a["ci95"]
    few = " (2 samples: t = 12.7)" if samples == 2 else ""
    return f"{_pct(lo)} - {_pct(hi)}{few}", _pct(a["se"])


def _stats_row(label: str, a: dict, *extra: str, samples: int | None = None) -> str:
    ci, se = _interval(a, samples)
    return (
        f"| {label} | "
        + " | ".join(extra)
        + (" | " if extra else "")
        + f"{_pct(a['mean'])} | {ci} | {se} | {_pct(a['std'])} | {_pct(a['min'])} | "
        f"{_pct(a['p05'])} | {_pct(a['p50'])} | {_pct(a['p95'])} | {_pct(a['max'])} |"
    )


_STATS_HEAD = "mean | 95 % CI | SE | std | min | p05 | p50 | p95 | max"
_STATS_ALIGN = " ---: |" * 9


def test_set_error(accuracy: float, n: int) -> float:
    """Binomial standard error of an accuracy measured on ``n`` test examples, ``sqrt(p (1 - p) / n)``.

    Example:
      >>> round(test_set_error(0.9, 400), 4)
      0.015
    """
    return float(np.sqrt(accuracy * (1 - accuracy) / n))


def markdown(results: dict[str, Any], plots: list[str]) -> str:
    """``report.md`` text for a results dict (the ``results.json`` schema).

    Args:
      results: the study's results (``docs/results.md``): ``meta`` (``model``, ``dataset``,
        ``seed``, ``seconds``, ``versions``), ``digital.accuracy`` and per config ``name``,
        ``samples`` and ``accuracy`` (:func:`crossjax.study.summarize`); optional
        ``finetune``, ``cost``, ``hardware`` and ``meta.conversion`` add their sections.
      plots: file names of the plots to link under ``## Plots`` (none: no section).

    Returns:
      The Markdown text (``str``, ending in a newline).

    Example:
      >>> from crossjax import report, study
      >>> results = {
      ...     "meta": {"model": "mlp", "dataset": "digits", "seed": 0, "seconds": 1.0, "versions": {"jax": "0"}},
      ...     "digital": {"accuracy": 0.9},
      ...     "configs": [{"name": "ideal", "samples": 2, "accuracy": study.summarize([0.88, 0.9]),
      ...                  "per_sample": [0.88, 0.9]}],
      ... }
      >>> text = report.markdown(results, ["accuracy.png"])
      >>> text.splitlines()[0], "![accuracy.png](accuracy.png)" in text
      ('# crossjax study: mlp on digits', True)
    """
    meta = results["meta"]
    dig = results["digital"]["accuracy"]
    n_test = results["digital"].get("test_examples")
    lines = [
        f"# crossjax study: {meta['model']} on {meta['dataset']}",
        "",
        f"seed {meta['seed']}, wall time {meta['seconds']:.1f} s (all runs into this directory; "
        f"`results.json` `meta.seconds`), {n_test or '?'} test examples; "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        "",
        f"**Digital test accuracy: {_pct(dig)} %**",
        "",
    ]
    if n_test:
        lines += [
            f"Test-set sampling error: +- {_pct(test_set_error(dig, n_test))} % (binomial standard "
            f"error of an accuracy over {n_test} examples). Every config is scored on the same "
            "examples, so this error is common to all rows and largely cancels in the losses; the "
            "intervals below are over Monte Carlo samples only.",
            "",
        ]
    lines += [
        "All numbers in %. Over the Monte Carlo samples of a config: mean, its 95 % confidence "
        "interval (Student's t) and standard error (SE), the samples' std and percentiles; "
        "loss = digital - mean (percentage points; its interval is digital minus the mean's).",
        "",
        f"| config | samples | {_STATS_HEAD} | loss |",
        "| --- | ---: |" + _STATS_ALIGN + " ---: |",
    ]
    for c in results["configs"]:
        lines.append(
            _stats_row(c["name"], c["accuracy"], str(c["samples"]), samples=c["samples"])
            + f" {100 * (dig - c['accuracy']['mean']):.2f} |"
        )
    lines += _nonlinearity_lines(results["configs"], dig)
    lines += _time_lines(results["configs"], dig)
    lines += cost_lines(results["configs"])
    ft = results.get("finetune")
    if ft:
        b, a = ft["before"], ft["after"]
        rec = ft.get("recovered_fraction")
        row = next((c for c in results["configs"] if c["name"] == ft["config"]), None)
        lines += [
            "",
            f"## Non-ideality-aware fine-tuning under `{ft['config']}`",
            "",
            f"{ft['steps']} steps with the non-idealities in the loop; "
            f"{ft['samples']} Monte Carlo samples (same keys before and after).",
            "",
            f"| | {_STATS_HEAD} |",
            "| --- |" + _STATS_ALIGN,
        ]
        lines += [_stats_row(label, s, samples=ft["samples"]) for label, s in (("before", b), ("after", a))]
        if row is not None and abs(row["accuracy"]["mean"] - b["mean"]) > 0:
            lines += [
                "",
                f"'before' is the same network as the `{ft['config']}` row above "
                f"({_pct(row['accuracy']['mean'])} %) on its own Monte Carlo keys (the keys of "
                "'after', so the comparison is paired): the two differ by sampling alone.",
            ]
        lines += [
            "",
            f"Digital accuracy after fine-tuning: {_pct(ft['digital_after'])} %. "
            + (
                f"Recovered fraction of the loss: {100 * rec:.1f} %."
                if rec is not None
                else "The config lost no accuracy before fine-tuning."
            ),
        ]
    lines += config_definitions([(c["name"], c.get("hardware")) for c in results["configs"]])
    lines += conversion_lines(results["meta"].get("conversion"), results["meta"].get("spec", {}).get("rules", []))
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


ENERGY_PARTS = ("array", "dac", "adc", "digital")
AREA_PARTS = ("cells", "dac", "adc", "digital")


def cost_lines(configs) -> list[str]:
    """The "Energy, latency and area" section: ``configs[].cost`` (``crossjax.cost.programmed_cost``).

    Args:
      configs: config records of a results dict; those with a ``cost`` (``energy_J``,
        ``energy_breakdown_J`` per part of :data:`ENERGY_PARTS`, ``latency_s``, ``interval_s``,
        ``area_mm2``; or ``unavailable``: the reason) get a row, the others none.

    Returns:
      Markdown lines (a leading blank line, heading, table), ``[]`` when no config is costed.
      Energy in nJ (shares in %), latency and interval in us, area in mm2.

    Example:
      >>> from crossjax import report
      >>> cost = {"energy_J": 2e-9, "latency_s": 1e-6, "interval_s": 5e-7, "area_mm2": 0.1,
      ...         "energy_breakdown_J": {"array": 1e-9, "dac": 5e-10, "adc": 2.5e-10, "digital": 2.5e-10}}
      >>> report.cost_lines([{"name": "a", "accuracy": {"mean": 0.9}, "cost": cost}])[-1]
      '| a | 90.00 | 2 | 50.0 | 25.0 | 12.5 | 12.5 | 1 | 0.5 | 0.1 |'
      >>> report.cost_lines([{"name": "a", "accuracy": {"mean": 0.9}}])
      []
    """
    rows = [c for c in configs if c.get("cost")]
    if not rows:
        return []
    lines = [
        "",
        "## Energy, latency and area per inference",
        "",
        "`crossjax.cost` on the programmed network (one Monte Carlo sample) and the DAC voltages of "
        "the first test inputs: the drivers' read power (wires included), DAC, ADC and digital "
        "periphery (default figures: ISAAC-like 32 nm periphery, 8-column ADC sharing at 1.28 GS/s, "
        "100 ns reads; an ideal DAC is costed as 8 bits, an ideal ADC as none). Latency: layers "
        "in sequence; interval: the slowest layer (layer-pipelined).",
        "",
        "| config | accuracy % | energy (nJ) | "
        + " | ".join(f"{p} %" for p in ENERGY_PARTS)
        + " | latency (us) | interval (us) | area (mm2) |",
        "| --- |" + " ---: |" * (5 + len(ENERGY_PARTS)),
    ]
    for c in rows:
        k = c["cost"]
        if "unavailable" in k:
            lines.append(
                f"| {c['name']} | {_pct(c['accuracy']['mean'])} | n/a: {k['unavailable']} |"
                + " |" * (3 + len(ENERGY_PARTS))
            )
            continue
        e = k["energy_J"]
        shares = " | ".join(f"{100 * k['energy_breakdown_J'][p] / e:.1f}" for p in ENERGY_PARTS)
        lines.append(
            f"| {c['name']} | {_pct(c['accuracy']['mean'])} | {1e9 * e:.3g} | {shares} | "
            f"{1e6 * k['latency_s']:.3g} | {1e6 * k['interval_s']:.3g} | {k['area_mm2']:.3g} |"
        )
    return lines


def plot_pareto(results: dict[str, Any], path: str) -> bool:
    """Accuracy (mean, 95 % interval) vs energy per inference of every costed config, the
    Pareto front (no other config both more accurate and cheaper) joined; False if none.

    Args:
      results: a results dict (``configs[].cost.energy_J`` in joules, ``configs[].accuracy``).
      path: the PNG file to write (atomically).

    Returns:
      ``True`` when the plot was written, ``False`` (nothing written) when no config has
      an energy.

    Example:
      >>> import os, tempfile
      >>> from crossjax import report
      >>> results = {"meta": {"model": "mlp", "dataset": "digits"}, "digital": {"accuracy": 0.9},
      ...            "configs": [{"name": "a", "accuracy": {"mean": 0.85}, "cost": {"energy_J": 2e-9}},
      ...                        {"name": "b", "accuracy": {"mean": 0.8}, "cost": {"energy_J": 1e-9}}]}
      >>> path = os.path.join(tempfile.mkdtemp(), "pareto.png")
      >>> report.plot_pareto(results, path), os.path.exists(path)
      (True, True)
      >>> report.plot_pareto({**results, "configs": []}, path)
      False
    """
    pts = [
        (c["name"], c["cost"]["energy_J"], c["accuracy"])
        for c in results["configs"]
        if c.get("cost") and "energy_J" in c["cost"]
    ]
    if not pts:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, e, a in pts:
        lo, hi = a.get("ci95") or (a["mean"], a["mean"])
        ax.errorbar(
            [1e9 * e],
            [100 * a["mean"]],
            yerr=[[100 * (a["mean"] - lo)], [100 * (hi - a["mean"])]],
            marker="o",
            capsize=3,
        )
        ax.annotate(name, (1e9 * e, 100 * a["mean"]), fontsize=7, xytext=(4, 4), textcoords="offset points")
    front = sorted((e, a["mean"]) for _, e, a in pts)
    best, line = -1.0, []
    for e, m in front:
        if m > best:
            best = m
            line.append((e, m))
    ax.plot([1e9 * e for e, _ in line], [100 * m for _, m in line], "k--", lw=1, label="Pareto front")
    ax.axhline(100 * results["digital"]["accuracy"], ls=":", c="gray", lw=1, label="digital")
    ax.set_xscale("log")
    ax.set_xlabel("energy per inference (nJ, crossjax.cost)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{results['meta']['model']} on {results['meta']['dataset']}: accuracy vs energy")
    ax.legend(loc="lower right", fontsize=8)
    save_figure(fig, path)
    return True


def conversion_lines(table, rules) -> list[str]:
    """The "Layers on crossbars" section of a converted model (``conversion.conversion_table``).

    Args:
      table: rows ``{"path", "type", "as"}`` (the layer's module path, Flax type and what
        it runs as); empty or ``None``: no section.
      rules: the conversion rules (JSON-able dicts), listed after the table when any.

    Returns:
      Markdown lines (a leading blank line, heading, table), ``[]`` without a table.

    Example:
      >>> from crossjax import report
      >>> lines = report.conversion_lines([{"path": "head", "type": "Linear", "as": "CrossbarLinear"}], [])
      >>> lines[1], lines[-1]
      ('## Layers on crossbars', '| `head` | Linear | CrossbarLinear |')
      >>> report.conversion_lines([], [])
      []
    """
    if not table:
        return []
    lines = [
        "",
        "## Layers on crossbars",
        "",
        "The model is plain Flax converted by `crossjax.convert`; per layer, what it runs on "
        "(rules by module path, first match wins):",
        "",
        "| layer | Flax type | runs as |",
        "|---|---|---|",
    ]
    lines += [f"| `{r['path']}` | {r['type']} | {r['as']} |" for r in table]
    if rules:
        lines += ["", "Rules:", ""] + [f"{i}. `{json.dumps(r, sort_keys=True)}`" for i, r in enumerate(rules)]
    return lines


def _flat(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def _hardware_reference():
    """``(defaults, fields)``: every hardware leaf path's default (its sub-config switched on with
    its own defaults) and its :class:`crossjax.config_reference.Field`."""
    defaults, fields = {}, {}
    for path, cls, _ in cr.walk(HardwareConfig):
        prefix = f"{path}." if path else ""
        try:
            obj = cls()
        except (TypeError, ValueError):
            obj = None
        for f in cr.describe(cls, prefix):
            fields[f.path] = f
        if obj is not None and dataclasses.is_dataclass(obj):
            for k, v in _flat(
                {
                    f.name: getattr(obj, f.name)
                    for f in dataclasses.fields(obj)
                    if not dataclasses.is_dataclass(getattr(obj, f.name))
                },
                prefix,
            ):
                defaults[k] = _plain(v)
    return defaults, fields


def _plain(v):
    """A leaf as JSON reads it back (tuples and arrays as lists), so defaults and files compare."""
    if isinstance(v, (tuple, list, np.ndarray)):
        return [_plain(x) for x in v]
    return v.item() if isinstance(v, np.generic) else v


def _value(v, unit: str) -> str:
    if isinstance(v, float):
        v = f"{v:g}"
    elif isinstance(v, str):
        v = f'"{v}"'
    unit = {"": "", "-": "", "1": "", "1 (relative)": " (relative)"}.get(unit, f" {unit}")
    return f"{v}{unit}"


def config_definitions(configs) -> list[str]:
    """``report.md`` lines defining every config: each field that differs from the ideal crossbar
    (``HardwareConfig()``), with its value and unit, then what each of those fields means
    (from ``docs/configuration.md``'s source, :mod:`crossjax.config_reference`).

    Args:
      configs: ``(name, hardware)`` pairs, ``hardware`` as ``HardwareConfig.to_dict()`` writes it
        (``None``: skipped). Names repeated with the same hardware are listed once.

    Returns:
      Markdown lines (a leading blank line and a ``## Configs`` heading), ``[]`` when none.

    Example:
      >>> from crossjax import report
      >>> from crossjax.hardware import HardwareConfig
      >>> adc6 = HardwareConfig().set({"adc.bits": 6}).to_dict()
      >>> lines = report.config_definitions([("adc6", adc6), ("ideal", HardwareConfig().to_dict())])
      >>> lines[1], lines[5]
      ('## Configs', '- **adc6**: `adc.bits` = 6 bits; `adc.range` = "max"; `adc.kind` = "uniform"')
      >>> lines[6]
      '- **ideal**: the ideal crossbar (exact `x @ W`)'
    """

    defaults, fields = _hardware_reference()
    ideal = {k: _plain(v) for k, v in _flat(HardwareConfig().to_dict())}
    seen, rows, used = set(), [], []
    for name, hw in configs:
        if not hw or name in seen:
            continue
        seen.add(name)
        leaves = [(path, _plain(v)) for path, v in _flat(hw) if v is not None]
        changed = {path for path, v in leaves if v != ideal.get(path, defaults.get(path))}
        switched_on = {path.rpartition(".")[0] for path, _ in leaves if path not in ideal}
        groups = switched_on | {path.rpartition(".")[0] for path in changed}  # sub-configs that matter
        on, shown = [], set()
        for path, v in leaves:  # a changed field, or a choice (kind, range, ...) of such a sub-config
            if path in changed or (isinstance(v, str) and path.rpartition(".")[0] in groups):
                unit = fields[path].unit if path in fields else ""
                on.append(f"`{path}` = {_value(v, unit)}")
                shown.add(path.rpartition(".")[0])
                if path not in used:
                    used.append(path)
        on += [f"`{g}` on (its defaults)" for g in sorted(switched_on - shown)]
        off = [p for p, v in _flat(hw) if v is None and ideal.get(p) is not None]
        on += [f"`{p}` off" for p in off]
        rows.append(f"- **{name}**: " + ("; ".join(on) if on else "the ideal crossbar (exact `x @ W`)"))
    if not rows:
        return []
    out = [
        "",
        "## Configs",
        "",
        "What each config switches on, relative to the ideal crossbar `HardwareConfig()` "
        "(every other field at its default; all fields: `docs/configuration.md`):",
        "",
        *rows,
    ]
    if used:
        out += ["", "| field | unit | meaning |", "| --- | --- | --- |"]
        out += [f"| `{p}` | {fields[p].unit or '-'} | {cr.cell_text(fields[p].meaning)} |" for p in used if p in fields]
    return out


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
    return [
        "",
        "## Cell nonlinearity (sinh I-V, `I = G v0 sinh(V / v0)`)",
        "",
        "Loss (percentage points) as the cells grow more nonlinear (smaller v0; the read voltage is the DAC's v_read):",
        "",
        " -> ".join(f"v0 = {v:g} V: {100 * loss:.2f}" for v, _, loss in sweep),
        "",
        "The loss "
        + ("grows monotonically" if monotone else "is **not** monotone")
        + " as v0 falls"
        + ("." if monotone else " (within the Monte Carlo spread, compare the std column)."),
    ]


def time_sweeps(configs) -> dict[str, list[tuple[float, dict]]]:
    """Configs that differ only in the time of inference (:data:`TIME_FIELDS`), grouped:
    ``label -> [(t, config record), ...]`` by time, for groups of >= 2 times. The label is
    the first member's name without a trailing ``_t...`` part.

    Args:
      configs: config records of a results dict (``name`` and ``hardware`` as
        ``HardwareConfig.to_dict()`` writes it).

    Returns:
      ``{label: [(t, record), ...]}``, ``t`` in seconds after programming, ascending;
      ``{}`` when no two configs differ only in their time.

    Example:
      >>> from crossjax import report
      >>> configs = [{"name": f"drift_t{t:g}", "hardware": {"device": {"drift": {"t": t, "nu": 0.05}}}}
      ...            for t in (100.0, 1.0)]
      >>> {label: [t for t, _ in members] for label, members in report.time_sweeps(configs).items()}
      {'drift': [1.0, 100.0]}
    """
    import copy

    groups: dict[str, list] = {}
    for c in configs:
        hw = c.get("hardware") or {}
        for path in TIME_FIELDS:
            node = hw
            for k in path[:-1]:
                node = (node or {}).get(k)
            if isinstance(node, dict) and isinstance(node.get(path[-1]), (int, float)):
                rest = copy.deepcopy(hw)
                sub = rest
                for k in path[:-1]:
                    sub = sub[k]
                t = float(sub.pop(path[-1]))
                groups.setdefault(json.dumps(rest, sort_keys=True), []).append((t, c))
                break
    out = {}
    for members in groups.values():
        if len({t for t, _ in members}) >= 2:
            members.sort(key=lambda m: m[0])
            out[re.sub(r"_t[^_]*$", "", members[0][1]["name"])] = members
    return out


def _time_label(t: float) -> str:
    for unit, sec in (("y", 3.1536e7), ("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if t >= sec:
            return f"{t / sec:.3g} {unit}"
    return f"{t:g} s"


def _time_lines(configs, digital) -> list[str]:
    sweeps = time_sweeps(configs)
    if not sweeps:
        return []
    times = sorted({t for members in sweeps.values() for t, _ in members})
    lines = [
        "",
        "## Accuracy vs time after programming",
        "",
        "Mean accuracy in % (95 % interval over the samples) per time of inference; configs of one "
        "row differ only in the time. Rows whose configs share Monte Carlo keys read the same "
        "programmed chips at every time.",
        "",
        "| configs | " + " | ".join(_time_label(t) for t in times) + " |",
        "| --- |" + " ---: |" * len(times),
    ]
    for label, members in sweeps.items():
        by_t = {t: c for t, c in members}
        cells = []
        for t in times:
            c = by_t.get(t)
            if c is None:
                cells.append("-")
                continue
            ci, _ = _interval(c["accuracy"])
            cells.append(f"{_pct(c['accuracy']['mean'])} ({ci})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", f"Digital: {_pct(digital)} %."]
    return lines


def plot_time_sweeps(results: dict[str, Any], path: str) -> bool:
    """Accuracy (mean, 95 % interval) vs time after programming, log axis; ``False``: no sweep.

    Args:
      results: a results dict; its sweeps are found by :func:`time_sweeps`.
      path: the PNG file to write (atomically).

    Returns:
      ``True`` when the plot was written, ``False`` (nothing written) without a time sweep.

    Example:
      >>> import os, tempfile
      >>> from crossjax import report, study
      >>> configs = [{"name": f"drift_t{t:g}", "accuracy": study.summarize([a, a - 0.02]),
      ...             "hardware": {"device": {"drift": {"t": t, "nu": 0.05}}}} for t, a in ((1.0, 0.9), (100.0, 0.8))]
      >>> results = {"meta": {"model": "mlp", "dataset": "digits"}, "digital": {"accuracy": 0.92}, "configs": configs}
      >>> path = os.path.join(tempfile.mkdtemp(), "time.png")
      >>> report.plot_time_sweeps(results, path), os.path.exists(path)
      (True, True)
    """
    sweeps = time_sweeps(results["configs"])
    if not sweeps:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, members in sweeps.items():
        t = np.array([m[0] for m in members])
        mean = np.array([100 * m[1]["accuracy"]["mean"] for m in members])
        ci = [m[1]["accuracy"].get("ci95") for m in members]
        err = np.array([[100 * (a - c[0]), 100 * (c[1] - a)] if c else [0, 0] for a, c in zip(mean / 100, ci)]).T
        ax.errorbar(t, mean, yerr=err, marker="o", capsize=3, label=label)
    ax.axhline(100 * results["digital"]["accuracy"], ls="--", c="k", lw=1, label="digital")
    ax.set_xscale("log")
    ax.set_xlabel("time after programming (s)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(
        f"{results['meta']['model']} on {results['meta']['dataset']}: accuracy vs time "
        "(error bars: 95 % interval over samples)",
        fontsize=9,
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    save_figure(fig, path)
    return True


def save_figure(fig, path: str, dpi: int = 110, bbox_inches: str | None = "tight") -> None:
    """Write matplotlib figure ``fig`` as a PNG to ``path`` atomically, then close it.

    A killed run leaves the previous plot or none, never half a file.

    Args:
      fig: a ``matplotlib.figure.Figure``.
      path: the PNG's path.
      dpi: resolution.
      bbox_inches: ``"tight"`` crops to the drawn content (legends outside the
        axes included); ``None`` keeps the figure's size.

    Example:
      >>> import os, tempfile
      >>> import matplotlib
      >>> matplotlib.use("Agg")
      >>> import matplotlib.pyplot as plt
      >>> from crossjax import report
      >>> fig, ax = plt.subplots()
      >>> _ = ax.plot([0, 1])
      >>> path = os.path.join(tempfile.mkdtemp(), "line.png")
      >>> report.save_figure(fig, path)
      >>> open(path, "rb").read(4)[1:], plt.fignum_exists(fig.number)
      (b'PNG', False)
    """
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches=bbox_inches)
    atomic_write_bytes(path, buf.getvalue())
    plt.close(fig)


def plot_accuracy(results: dict[str, Any], path: str) -> None:
    """Box-and-dots plot of the per-sample accuracies of every config.

    Box: quartiles, whiskers: 5th/95th percentiles, dots: the samples (in %), the digital
    accuracy dashed; fine-tuning's before/after samples as two more boxes when present.

    Args:
      results: a results dict (``configs[].per_sample`` accuracies as fractions,
        ``digital.accuracy``, optional ``finetune``).
      path: the PNG file to write (atomically).

    Example:
      >>> import os, tempfile
      >>> from crossjax import report
      >>> results = {"meta": {"model": "mlp", "dataset": "digits"}, "digital": {"accuracy": 0.9},
      ...            "configs": [{"name": "noise", "per_sample": [0.85, 0.87, 0.86]}]}
      >>> path = os.path.join(tempfile.mkdtemp(), "accuracy.png")
      >>> report.plot_accuracy(results, path)
      >>> os.path.exists(path)
      True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [(c["name"], np.asarray(c["per_sample"])) for c in results["configs"]]
    ft = results.get("finetune")
    if ft:
        series += [
            (f"{ft['config']}\nbefore FT", np.asarray(ft["per_sample_before"])),
            (f"{ft['config']}\nafter FT", np.asarray(ft["per_sample_after"])),
        ]
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(series)), 4.5))
    data = [100 * s for _, s in series]
    ax.boxplot(data, whis=(5, 95), showfliers=False)
    rng = np.random.default_rng(0)
    for i, d in enumerate(data, start=1):
        ax.plot(i + rng.uniform(-0.15, 0.15, d.size), d, ".", alpha=0.5, ms=4)
    ax.axhline(100 * results["digital"]["accuracy"], ls="--", c="k", lw=1, label="digital")
    ax.set_xticks(range(1, len(series) + 1), [n for n, _ in series], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(
        f"{results['meta']['model']} on {results['meta']['dataset']}: Monte Carlo accuracy per hardware config"
    )
    ax.legend(loc="lower left")
    save_figure(fig, path)


def plot_layer_ir_drop(model, hardware, x_example, path: str) -> None:
    """IR-drop heatmap of the first crossbar layer's tile (0, 0), positive array.

    ``G = g_min + (g_max - g_min) * u+`` (``crossjax.mapping.map_weights``), driven by the
    first ``rows`` values of ``x_example`` (zero-padded) as row voltages
    ``V = x * v_read / x_max``; the colours are the drop ``V_i - U_ij`` in millivolts
    (``crossjax.circuit.plot_ir_drop``).

    Args:
      model: a model with crossbar layers (its first one is drawn; grouped: group 0).
      hardware: the ``HardwareConfig`` (``array.parasitics`` set: the wires).
      x_example: one input example (flattened).
      path: the PNG file to write (atomically).

    Example:
      >>> import os, tempfile
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from crossjax import models, report
      >>> from crossjax.hardware import HardwareConfig
      >>> hw = HardwareConfig().set({"array.parasitics.r_wire_row": 5.0, "array.parasitics.r_wire_col": 5.0})
      >>> path = os.path.join(tempfile.mkdtemp(), "ir_drop.png")
      >>> report.plot_layer_ir_drop(models.MLP(8, (4,), 2, rngs=nnx.Rngs(0)), hw, jnp.ones(8), path)
      >>> os.path.exists(path)
      True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layer = layers.crossbar_layers(model)[0][1]
    W = jnp.asarray(layer.crossbar_weights())
    if W.ndim == 3:  # grouped conv: first group
        W = W[0]
    rows, cols = hardware.array.rows, hardware.array.cols
    u, _ = mapping.map_weights(W, hardware.mapping, rows, cols)
    dev = hardware.device
    G = dev.g_min + (dev.g_max - dev.g_min) * u[0, 0, 0]
    x = jnp.ravel(jnp.asarray(x_example))[: W.shape[0]]
    x = jnp.pad(x, (0, rows - x.shape[0])) if x.shape[0] < rows else x[:rows]
    V = x * hardware.dac.v_read / hardware.dac.x_max
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    circuit.plot_ir_drop(G, V, hardware.array.parasitics, ax=ax)  # the drop V_i - U_ij in mV
    p = hardware.array.parasitics
    n = min(rows, int(np.prod(np.shape(x_example))), W.shape[0])
    ax.set_title(
        f"IR drop (mV), layer 0, tile (0,0), positive array; wires {float(p.r_wire_row):g} / "
        f"{float(p.r_wire_col):g} ohm per row / column segment\n"
        f"input: test example 0, its first {n} values as row voltages "
        f"(V = x * {float(hardware.dac.v_read):g} V / {float(hardware.dac.x_max):g})",
        fontsize=8,
    )
    save_figure(fig, path)


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


def write_report(
    out: str,
    results: dict[str, Any],
    *,
    model=None,
    spec=None,
    x_example=None,
    plots: bool = True,
    before_markdown=None,
) -> list[str]:
    """Write ``report.md`` (and the plots when ``plots``) into ``out``; returns the plot names.

    ``before_markdown()`` (optional) runs after the plots and before the text is rendered
    (the study stamps its final wall time there, so the report quotes the saved figure).

    Args:
      out: the study's directory (it must exist).
      results: the results dict (see :func:`markdown`).
      model: the trained model, for ``ir_drop.png`` (with ``spec`` and ``x_example``).
      spec: the study's spec; ``ir_drop.png`` uses its config with the largest wire
        resistance (none with wires: no such plot).
      x_example: one test input, for ``ir_drop.png``.
      plots: write the plots (``accuracy.png`` always, the others when they have data).
      before_markdown: optional function of no arguments (see above).

    Returns:
      The names of the plots written (a subset of :data:`PLOTS`), linked from ``report.md``.

    Example:
      >>> import os, tempfile
      >>> from crossjax import report, study
      >>> results = {
      ...     "meta": {"model": "mlp", "dataset": "digits", "seed": 0, "seconds": 1.0, "versions": {"jax": "0"}},
      ...     "digital": {"accuracy": 0.9},
      ...     "configs": [{"name": "ideal", "samples": 2, "accuracy": study.summarize([0.88, 0.9]),
      ...                  "per_sample": [0.88, 0.9]}],
      ... }
      >>> out = tempfile.mkdtemp()
      >>> report.write_report(out, results), sorted(os.listdir(out))
      (['accuracy.png'], ['accuracy.png', 'report.md'])
    """
    names = []
    if plots:
        plot_accuracy(results, os.path.join(out, ACCURACY_PNG))
        names.append(ACCURACY_PNG)
        if plot_pareto(results, os.path.join(out, PARETO_PNG)):
            names.append(PARETO_PNG)
        if plot_time_sweeps(results, os.path.join(out, TIME_PNG)):
            names.append(TIME_PNG)
        hw = _strongest_wires(spec) if spec is not None else None
        if model is not None and hw is not None and x_example is not None:
            plot_layer_ir_drop(model, hw, x_example, os.path.join(out, IR_DROP_PNG))
            names.append(IR_DROP_PNG)
    if before_markdown is not None:
        before_markdown()
    atomic_write_text(os.path.join(out, "report.md"), markdown(results, names))
    return names
