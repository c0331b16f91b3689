"""The configuration reference (``docs/configuration.md``), generated from the dataclasses.

:func:`render` walks :class:`crossjax.hardware.HardwareConfig` and every
sub-config reachable from it (``dataclasses.fields`` and the type hints, so a
field added to any of them appears on the next run, optional sub-configs whose
default is ``None`` included), then the study configuration
(:class:`crossjax.study.StudySpec`, :class:`crossjax.training.TrainConfig`: the
keys ``crossjax study --config FILE.toml`` accepts). For each field it gives:

* **kind**: ``static`` (``flax.struct.field(pytree_node=False)``: part of the
  pytree structure, a new value compiles anew), ``leaf`` (a pytree leaf: swept
  under ``jit``/``vmap`` without recompiling, ``jax.grad`` reaches it) or
  ``sub-config``;
* **default**, from the dataclass;
* **meaning**, from the class docstring: its ``Attributes:`` / ``Args:``
  section, else an inline ````name````: text entry, else :data:`NOTES`;
* **unit** and **range / choices**: :data:`NOTES`, else the choices the
  class's own validation lists (probed with an invalid string), else a unit or
  bound named in the meaning.

Regenerate after changing a config class::

    python -m crossjax.config_reference --write docs/configuration.md

``python -m crossjax.config_reference --check docs/configuration.md`` exits 1
when the file is stale (``tests/test_docs.py`` runs the same comparison).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import math
import re
import sys
import types
import typing
from typing import Any, Iterator, NamedTuple

from crossjax.hardware import HardwareConfig

REGENERATE = "python -m crossjax.config_reference --write docs/configuration.md"

# Where a class docstring does not say it: (unit, range / choices, meaning), keyed by
# "ClassName.field". Empty strings defer to the docstring / automatic values.
_BITS = "[2, 24] in float32, [2, 53] in float64 (the dtype's exact integers)"
NOTES: dict[str, tuple[str, str, str]] = {
    "HardwareConfig.array": ("", "", "tile geometry and wires"),
    "HardwareConfig.device": ("", "", "the resistive device and its non-idealities"),
    "HardwareConfig.mapping": ("", "", "how weights become conductances"),
    "HardwareConfig.dac": ("", "", "input DAC (inputs -> row voltages)"),
    "HardwareConfig.adc": ("", "", "column ADC (column currents -> digital codes)"),
    "ArrayConfig.rows": ("rows", ">= 1", "inputs (word lines) per crossbar tile"),
    "ArrayConfig.cols": ("columns", ">= 1", "outputs (bit lines) per crossbar tile"),
    "Parasitics.r_wire_row": ("ohm", ">= 0, finite", "row (word-line) wire resistance per cell segment"),
    "Parasitics.r_wire_col": ("ohm", ">= 0, finite", "column (bit-line) wire resistance per cell segment"),
    "Parasitics.r_source": ("ohm", ">= 0, finite", "row driver (source) resistance before the first segment"),
    "Parasitics.r_sink": ("ohm", ">= 0, finite", "column sink resistance into virtual ground"),
    "DeviceConfig.g_min": ("S", ">= 0, < g_max", "lowest programmable conductance (1 / R_off)"),
    "DeviceConfig.g_max": ("S", "> g_min", "highest programmable conductance (1 / R_on)"),
    "DeviceConfig.levels": ("states", "[2, 2**24] in float32, [2, 2**53] in float64, or None", ""),
    "DeviceConfig.write_noise": ("", "", "programming (write) noise, sampled once per programming"),
    "DeviceConfig.range_variation": ("", "", "device-to-device variation of g_min and g_max"),
    "DeviceConfig.stuck": ("", "", "stuck-at-g_min / stuck-at-g_max faults"),
    "DeviceConfig.drift": ("", "", "power-law conductance drift after programming"),
    "DeviceConfig.read_noise": ("", "", "read noise, resampled at every read"),
    "WriteNoise.sigma": (
        "1 (relative)",
        ">= 0",
        "noise strength: std sigma * (g_max - g_min) (gaussian), "
        "G * (1 + sigma n) (proportional) or G * exp(sigma n) (lognormal)",
    ),
    "WriteNoise.kind": ("", "", "noise model: gaussian (absolute, in units of the range), proportional or lognormal"),
    "RangeVariation.sigma_g_min": ("1 (relative)", ">= 0", "relative std of each device's g_min"),
    "RangeVariation.sigma_g_max": ("1 (relative)", ">= 0", "relative std of each device's g_max"),
    "StuckAt.p_min": ("fraction", "[0, 1], p_min + p_max <= 1", "fraction of devices stuck at g_min"),
    "StuckAt.p_max": ("fraction", "[0, 1], p_min + p_max <= 1", "fraction of devices stuck at g_max"),
    "Drift.t": ("s", "> 0", "read time after programming"),
    "Drift.t0": ("s", "> 0", "reference time of the power law"),
    "Drift.nu": ("1", ">= 0", "mean drift exponent: G(t) = G (t / t0)^(-nu_d)"),
    "Drift.nu_std": ("1", ">= 0", "device-to-device std of the drift exponent nu_d"),
    "ReadNoise.sigma": (
        "1 (relative)",
        ">= 0",
        "noise strength: per-cell std sigma * G (proportional) or sigma * (g_max - g_min) (gaussian)",
    ),
    "ReadNoise.kind": ("", "", "noise model: proportional (to G) or gaussian (absolute)"),
    "ReadNoise.generator": (
        "",
        "",
        "the per-read normals: counter (crossjax.counter_rng, cheaper on a CPU) or threefry (jax.random.normal)",
    ),
    "DeviceConfig.pcm": (
        "",
        "",
        "fitted PCM model (Nandakumar 2019 / Joshi 2020): programming noise, "
        "conductance-dependent drift and 1/f read noise at time t; replaces "
        "write_noise and drift",
    ),
    "DeviceConfig.rram": ("", "", "fitted RRAM deviation (Wan 2022) at time t; replaces write_noise"),
    "DeviceConfig.drift_compensation": (
        "",
        "",
        "output factor from a reference read right after programming and one at time t (global or per column)",
    ),
    "PCMModel.t": ("s", ">= 0", "inference time after programming"),
    "PCMModel.t0": ("s", "> 0", "drift reference time: g_prog ((t + t0) / t0)^(-nu)"),
    "PCMModel.prog": (
        "1 (relative)",
        "3 finite numbers",
        "programming std / g_max = prog_scale * max(p0 + p1 x + p2 x^2, 0), x = g_T / g_max",
    ),
    "PCMModel.prog_scale": ("1", ">= 0", "multiplier of the programming std (1 = as published)"),
    "PCMModel.nu_mean": ("1", "4 finite numbers (a, b, lo, hi)", "drift exponent mean clip(a ln x + b, lo, hi)"),
    "PCMModel.nu_std": (
        "1",
        "4 finite numbers (a, b, lo, hi)",
        "drift exponent std clip(a ln x + b, lo, hi); nu = |N(mean, std)|",
    ),
    "PCMModel.q": (
        "1",
        "3 finite numbers (q0, q1, q2)",
        "1/f noise: relative std min(q0 / max(g_prog / g_max, 1e-3)^q1, q2) * sqrt(ln((t + t0 + t_read) / (2 t_read)))",
    ),
    "PCMModel.t_read": ("s", "> 0", "duration of one read (1/f noise integration)"),
    "RRAMModel.t": ("s", ">= 0", "inference time after programming"),
    "RRAMModel.std_scale": ("1", ">= 0", "multiplier of the deviation std (1 = as published)"),
    "RRAMModel.coeffs": (
        "1 (relative)",
        "(len(times), K) finite numbers",
        "deviation std / g_max at each fitted time, ascending powers of x = g_T / g_max",
    ),
    "RRAMModel.times": ("s", "increasing, > 0", "times of the fits (std interpolated in ln t, held outside)"),
    "DriftCompensation.kind": ("", "", "global (one factor per layer) or per_column"),
    "MappingConfig.w_max": ("weight units", "> 0, or None", ""),
    "MappingConfig.slice_bits": ("bits", ">= 1, slice_bits * slices <= 24 (float32) / 53 (float64)", ""),
    "MappingConfig.slices": ("cells", ">= 1 (> 1 needs slice_bits)", ""),
    "DACConfig.bits": ("bits", _BITS + ", or None", ""),
    "DACConfig.v_read": ("V", "> 0", ""),
    "DACConfig.x_max": ("input units", "> 0", ""),
    "DACConfig.slice_bits": ("bits", ">= 1 (needs bits), or None", ""),
    "ADCConfig.bits": ("bits", _BITS + ", or None; int or integer array", ""),
    "ADCConfig.range": (
        "",
        "",
        "full scale of the codes: fixed (i_max); max (the largest current the "
        "column can carry, every input at +-v_read: v_read * sum_i |G_ij|, "
        "so typical reads, far below it, land on a few codes and an 8-bit "
        "max ADC can cost points); calibrated (a percentile of |I| measured "
        "on training data, crossbar.calibrate_adc); granular (the step is one unit "
        "current, one input level through one cell level, and the full scale "
        "2**(bits-1) steps: exact for quantized inputs and weights while the "
        "column sum fits, see crossjax.converters)",
    ),
    "ADCConfig.i_max": ("A", "> 0", ""),
    "ADCConfig.kind": (
        "",
        "uniform, or a name added by converters.register_adc",
        "the conversion law: uniform is the two's-complement quantizer with a straight-through gradient",
    ),
    "ADCConfig.percentile": ("%", "(0, 100]", ""),
    "StudySpec.model": (
        "",
        "",
        "the network: an MLP (widths from hidden), a CIFAR-style VGG / ResNet, "
        "or vit (a vision transformer in plain Flax, converted by crossjax.convert)",
    ),
    "StudySpec.rules": (
        "",
        "",
        "per-layer conversion rules for converted models (vit), first match wins: "
        "match (fnmatch pattern on the module path, e.g. \"head\" or "
        "\"blocks/*/attention/*\") with digital = true, or hardware = {overrides of "
        "the config, e.g. \"adc.bits\" = 6}, or config = {a full hardware table}",
    ),
    "StudySpec.finetune": (
        "",
        "",
        "non-ideality-aware fine-tuning of a copy of the model under one "
        "config, evaluated before and after on the same keys",
    ),
    "StudySpec.hidden": ("units", "list of integers >= 1", ""),
    "StudySpec.samples": ("samples", ">= 1", ""),
    "StudySpec.eval_batch_size": ("examples", ">= 1", ""),
    "StudySpec.max_train": ("examples", ">= 1, or None (all)", ""),
    "StudySpec.max_test": ("examples", ">= 1, or None (all)", ""),
    "StudySpec.chunk_size": ("samples", ">= 1, or None", ""),
    "TrainConfig.steps": ("steps", ">= 1", ""),
    "TrainConfig.batch_size": ("examples", ">= 1", ""),
    "TrainConfig.learning_rate": ("1", "> 0", ""),
    "TrainConfig.final_lr_fraction": (
        "fraction",
        "[0, 1]",
        "the cosine schedule ends at final_lr_fraction * learning_rate",
    ),
    "TrainConfig.weight_decay": ("1", ">= 0", "decoupled weight decay of adamw (unused by adam and sgd)"),
    "TrainConfig.seed": ("", "integer", ""),
    "TrainConfig.checkpoint_every": ("steps", ">= 1", ""),
}

# Units named in a docstring's meaning text.
_UNIT_WORDS = (
    ("volts", "V"),
    ("volt", "V"),
    ("amperes", "A"),
    ("siemens", "S"),
    ("ohms", "ohm"),
    ("seconds", "s"),
    ("1/V^2", "1/V^2"),
    ("1/V", "1/V"),
)


class Field(NamedTuple):
    """One documented field: its dotted ``path`` and what the reference says about it."""

    path: str
    type: str
    default: str
    kind: str  # "static", "leaf", "sub-config" or "sub-config, None = off"
    unit: str
    range: str
    meaning: str


# --------------------------------------------------------------------------- introspection


def _sub_config_class(hint) -> type | None:
    """The dataclass in a field's type hint (``X`` or ``X | None``), else ``None``."""
    for arg in typing.get_args(hint) or (hint,):
        if isinstance(arg, type) and dataclasses.is_dataclass(arg):
            return arg
    return None


def _type_name(hint) -> str:
    if hint is type(None):
        return "None"
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(hint))
    if origin is not None:
        args = typing.get_args(hint)
        inner = ", ".join("..." if a is Ellipsis else _type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if isinstance(hint, type):
        return "any" if hint is object else hint.__name__
    return str(hint)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def _format_value(v) -> str:
    if v is dataclasses.MISSING:
        return "(required)"
    if dataclasses.is_dataclass(v):
        return f"{type(v).__name__}()"
    if isinstance(v, float):
        return "inf" if math.isinf(v) else f"{v:g}"
    if isinstance(v, tuple):
        return "[" + ", ".join(_format_value(x) for x in v) + "]"
    if isinstance(v, str):
        return f'"{v}"'
    return repr(v)


def _rst_to_md(text: str) -> str:
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"``\1``", text)  # :func:`x` -> ``x``
    return text.replace("``", "`")


def _cell(text: str) -> str:
    """A Markdown table cell: one line, pipes escaped (GitHub reads ``\\|`` as ``|`` in code too)."""
    return text.replace("\n", " ").replace("|", "\\|")


def cell_text(text: str) -> str:
    """A docstring phrase (reStructuredText roles and literals) as one Markdown table cell.

    Args:
      text: the phrase as written in a docstring (roles, double-backquote literals, newlines).

    Returns:
      str: one line (newlines become spaces); ``:role:`x``` and ````x```` become ```x```
      (a leading ``~`` dropped) and ``|`` is escaped as ``\\|``.

    Example:
      >>> from crossjax.config_reference import cell_text
      >>> print(cell_text(":func:`f` takes ``a | b``,\\nin one line"))
      `f` takes `a \\| b`, in one line
    """
    return _cell(_rst_to_md(text))


def _sections(doc: str) -> dict[str, str]:
    """Google-style ``Attributes:`` / ``Args:`` entries of a docstring: name -> text."""
    out: dict[str, str] = {}
    lines = inspect.cleandoc(doc).splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() in ("Attributes:", "Args:"):
            base = len(lines[i]) - len(lines[i].lstrip())
            i += 1
            name = None
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > base):
                m = re.match(r"\s+(\w+)(?:\s*\([^)]*\))?:\s*(.*)", lines[i])
                if m and len(lines[i]) - len(lines[i].lstrip()) <= base + 2:
                    name = m.group(1)
                    out[name] = m.group(2)
                elif name and lines[i].strip():
                    out[name] += " " + lines[i].strip()
                i += 1
        else:
            i += 1
    return out


def _inline(doc: str, names: set[str]) -> dict[str, str]:
    """Inline ````name````: text entries (or ````name```` (static): text) of a docstring's paragraphs."""
    out: dict[str, str] = {}
    for para in re.split(r"\n\s*\n", inspect.cleandoc(doc)):
        text = " ".join(para.split())
        # ``name``: text, ``name`` (static): text, or ``a`` / ``b``: text (shared)
        marks = [
            m
            for m in re.finditer(r"((?:``\w+``\s*/\s*)*``\w+``)(?:\s*\(static\))?:\s", text)
            if set(re.findall(r"``(\w+)``", m.group(1))) <= names
        ]
        for k, m in enumerate(marks):
            end = marks[k + 1].start() if k + 1 < len(marks) else len(text)
            part = text[m.end() : end]
            stop = re.search(r"\.\s+(?=[A-Z`])", part)
            if stop:
                part = part[: stop.start()]
            for name in re.findall(r"``(\w+)``", m.group(1)):
                out.setdefault(name, part.strip().rstrip(";.").strip())
    return out


def _docs(cls) -> dict[str, str]:
    doc = cls.__doc__ or ""
    names = {f.name for f in dataclasses.fields(cls)}
    found = _inline(doc, names)
    found.update({k: v for k, v in _sections(doc).items() if k in names})
    return found


def _probe_choices(cls, name: str) -> list | None:
    """The choices ``cls``'s validation lists for string field ``name`` (``None``: not found)."""
    try:
        cls(**{name: "\x00not-a-choice"})
    except ValueError as e:
        m = re.search(r"must be one of (\[[^\]]*\]|\([^)]*\))", str(e))
        if m:
            try:
                return list(ast.literal_eval(m.group(1)))
            except (ValueError, SyntaxError):
                return None
    except Exception:  # noqa: BLE001 - a constructor that cannot take the probe
        return None
    return None


def _auto_range(meaning: str) -> str:
    m = re.search(r"(>=|>|<=|<)\s*-?\d[\d.e+-]*", meaning)
    if m:
        return m.group(0)
    m = re.search(r"\b(?:in|lie in) ([\[(][^\])]*[\])])", meaning)
    return m.group(1) if m else ""


def _auto_unit(meaning: str) -> str:
    for word, unit in _UNIT_WORDS:
        if re.search(rf"(?<![\w/]){re.escape(word)}(?!\w)", meaning):
            return unit
    return ""


def describe(cls, prefix: str = "") -> list[Field]:
    """The fields of dataclass ``cls`` (not its sub-configs' fields), paths under ``prefix``.

    Args:
      cls: a config dataclass, e.g. :class:`crossjax.hardware.DACConfig`.
      prefix: put before every field name, dot included (``"dac."``; ``""``: the bare names).

    Returns:
      list of :class:`Field`, one per dataclass field in declaration order. A sub-config field
      is one row of kind ``"sub-config"`` (``"sub-config, None = off"`` when its default is
      ``None``); its own fields are not listed (:func:`walk` reaches its class). Unit, range and
      meaning come from :data:`NOTES`, else the class docstring, the choices its validation
      lists, or a unit or bound named in the meaning.

    Example:
      >>> from crossjax.config_reference import describe
      >>> from crossjax.hardware import DACConfig, HardwareConfig
      >>> rows = {r.path: r for r in describe(DACConfig, "dac.")}
      >>> r = rows["dac.v_read"]
      >>> r.type, r.default, r.kind, r.unit, r.range
      ('float', '0.2', 'leaf', 'V', '> 0')
      >>> rows["dac.range"].kind, rows["dac.range"].range
      ('static', '"fixed" / "max"')
      >>> {r.path: r.kind for r in describe(HardwareConfig)}["dac"]
      'sub-config'
    """
    hints = typing.get_type_hints(cls)
    docs = _docs(cls)
    rows = []
    for f in dataclasses.fields(cls):
        unit, rng, meaning = NOTES.get(f"{cls.__name__}.{f.name}", ("", "", ""))
        meaning = meaning or docs.get(f.name, "")
        meaning = re.sub(r"\s*\(?\bstatic\)?\.?\s*$", "", meaning).rstrip(" .;")
        hint = hints.get(f.name, object)
        sub = _sub_config_class(hint)
        default = _default(f)
        if sub is not None:
            kind = "sub-config, None = off" if default is None else "sub-config"
        else:
            kind = "static" if f.metadata.get("pytree_node", True) is False else "leaf"
        if not rng and sub is None:
            if _type_name(hint) in ("str", "str | None"):
                choices = _probe_choices(cls, f.name) or re.findall(r'``"(\w+)"``', docs.get(f.name, ""))
                if choices:
                    rng = " / ".join(f'"{c}"' for c in choices)
            rng = rng or _auto_range(meaning)
        unit = unit or (_auto_unit(meaning) if sub is None else "")
        rows.append(
            Field(
                prefix + f.name,
                _type_name(hint),
                _format_value(default),
                kind,
                unit,
                rng,
                meaning or "(undocumented: add it to the class docstring)",
            )
        )
    return rows


def walk(cls, prefix: str = "") -> Iterator[tuple[str, type, dataclasses.Field | None]]:
    """``(path, class, None)`` for ``cls`` and, depth first, every sub-config class reachable from it.

    Args:
      cls: a config dataclass, e.g. :class:`crossjax.hardware.HardwareConfig`.
      prefix: the path of ``cls`` itself, without a trailing dot (``""``: the top level).

    Returns:
      An iterator of ``(path, class, None)`` tuples: ``cls`` at ``prefix`` first, then the
      class of every sub-config field (``prefix.name``, or ``name`` at the top level), depth
      first in field order, optional sub-configs (default ``None``) included. The third item
      is ``None`` for every class, sub-configs included (look the field up in its parent's
      ``dataclasses.fields``).

    Example:
      >>> from crossjax.config_reference import walk
      >>> from crossjax.hardware import HardwareConfig
      >>> [path for path, _, _ in walk(HardwareConfig)][:4]
      ['', 'array', 'array.parasitics', 'array.cell']
      >>> next(c for p, c, _ in walk(HardwareConfig) if p == "device.write_noise").__name__
      'WriteNoise'
      >>> {f for _, _, f in walk(HardwareConfig)}
      {None}
    """
    yield prefix, cls, None
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        sub = _sub_config_class(hints.get(f.name, object))
        if sub is not None:
            yield from walk(sub, f"{prefix}.{f.name}" if prefix else f.name)


def leaf_paths(cls=None) -> list[str]:
    """Every dotted field path of ``cls`` (default ``HardwareConfig``) that is not a sub-config.

    Args:
      cls: a config dataclass; ``None``: :class:`crossjax.hardware.HardwareConfig`.

    Returns:
      list of str: the paths, in :func:`walk` order, the fields of optional sub-configs
      (default ``None``) included.

    Example:
      >>> from crossjax.config_reference import leaf_paths
      >>> from crossjax.hardware import DACConfig
      >>> leaf_paths()[:3]
      ['method', 'array.rows', 'array.cols']
      >>> "device.write_noise.sigma" in leaf_paths(), "device.write_noise" in leaf_paths()
      (True, False)
      >>> leaf_paths(DACConfig)[:2]
      ['bits', 'v_read']
    """
    if cls is None:
        cls = HardwareConfig
    out = []
    for path, c, _ in walk(cls):
        hints = typing.get_type_hints(c)
        for f in dataclasses.fields(c):
            if _sub_config_class(hints.get(f.name, object)) is None:
                out.append(f"{path}.{f.name}" if path else f.name)
    return out


# --------------------------------------------------------------------------- rendering


def _summary(cls) -> str:
    doc = inspect.cleandoc(cls.__doc__ or "")
    return _rst_to_md(doc.split("\n\n")[0].replace("\n", " ").strip())


def _table(rows: list[Field], *, unit: bool = True) -> list[str]:
    head = ["field", "type", "default", "kind"] + (["unit"] if unit else []) + ["range / choices", "meaning"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"`{r.path}`", f"`{r.type}`", f"`{r.default}`", r.kind]
        cells += ([r.unit or "-"] if unit else []) + [_rst_to_md(r.range) or "-", _rst_to_md(r.meaning)]
        out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return out


def _hardware_section() -> list[str]:
    lines = [
        "## Hardware: `crossjax.hardware.HardwareConfig`",
        "",
        "`HardwareConfig()` is the ideal crossbar (returns `x @ W` exactly). Set any field by its "
        "dotted path: `HardwareConfig().set({\"device.g_max\": 1e-4})` or "
        "`.set(device__write_noise__sigma=0.02)` in Python; in a study TOML file, as nested "
        "tables under `[[configs]]`'s `hardware` (below). Setting a field of an optional "
        "sub-config that is off (`None`) switches it on with the defaults listed for it; "
        "setting the sub-config itself to `None` switches it off.",
        "",
    ]
    for path, cls, _ in walk(HardwareConfig):
        parent_opt = ""
        if path:
            parent, _, name = path.rpartition(".")
            owner = next(c for p, c, _ in walk(HardwareConfig) if p == parent)
            f = next(f for f in dataclasses.fields(owner) if f.name == name)
            if _default(f) is None:
                parent_opt = " (optional: `None` = off, the default)"
        title = f"`{path}`: `{cls.__name__}`{parent_opt}" if path else "`HardwareConfig` (top level)"
        lines += [f"### {title}", "", _summary(cls), ""]
        lines += _table(describe(cls, f"{path}." if path else ""))
        lines.append("")
    return lines


def _study_section() -> list[str]:
    from crossjax import data, presets, study, training

    default = study.get_preset("default")
    lines = [
        "## Study: `crossjax study --config FILE.toml`",
        "",
        "A TOML file overrides the preset (`--preset`, default `default`); command-line flags "
        "override the file (`--samples`, `--dataset`, `--train-steps`, `--chunk-size`, "
        "`--no-finetune`). Top-level keys are the fields of `crossjax.study.StudySpec`; "
        "unknown keys are refused with the list of known ones. The `default` column is "
        "`StudySpec()`'s; `preset default` is what `--preset default` uses.",
        "",
    ]
    spec_rows = describe(study.StudySpec)
    extra = {"dataset": " / ".join(f'"{n}"' for n in data.names()), "model": " / ".join(f'"{n}"' for n in study.MODELS)}
    lines += [
        "### Top-level keys",
        "",
        "| key | type | default | preset default | range / choices | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for r in spec_rows:
        val = getattr(default, r.path)
        if r.path == "configs":
            shown = f"{len(val)} configs: " + ", ".join(f"`{c.name}`" for c in val)
            rng, meaning = (
                "array of tables `[[configs]]`",
                ("the named hardware configs (replace the preset's list; one must be named `ideal`)"),
            )
        elif r.path == "train":
            shown = f"steps={val.steps}, batch_size={val.batch_size}, learning_rate={val.learning_rate:g}"
            rng, meaning = "table `[train]` (keys below)", _rst_to_md(r.meaning)
        elif r.path == "rules":
            shown = f"{len(val)} rules"
            rng, meaning = "array of tables `[[rules]]`", _rst_to_md(r.meaning)
        elif r.path == "finetune":
            shown = f"config=`{val.config}`, steps={val.train.steps}" if val else "None"
            rng, meaning = "table `[finetune]` (keys below), or `finetune = false`", _rst_to_md(r.meaning)
        else:
            shown = f"`{_format_value(val)}`"
            rng = extra.get(r.path) or _rst_to_md(r.range) or "-"
            meaning = _rst_to_md(r.meaning)
        cells = [f"`{r.path}`", f"`{r.type}`", f"`{r.default}`", shown, rng, meaning]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += [
        "",
        "### `[train]` and `[finetune.train]`: `crossjax.training.TrainConfig`",
        "",
        _summary(training.TrainConfig) + " Keys not given keep the preset's values.",
        "",
    ]
    train_rows = [
        r._replace(
            range=r.range or (" / ".join(f'"{o}"' for o in training.OPTIMIZERS) if r.path == "optimizer" else "")
        )
        for r in describe(training.TrainConfig)
    ]
    lines += _table(train_rows)
    lines += [
        "",
        "### `[finetune]`",
        "",
        "| key | type | meaning |",
        "|---|---|---|",
        "| `config` | `str` | name of the `[[configs]]` entry whose non-idealities are in the loop |",
        "| `train` | table | `TrainConfig` keys (above) for the fine-tuning run |",
        "",
        "`finetune = false` (or an empty table) switches fine-tuning off.",
        "",
        "### `[[configs]]`: one named hardware config each",
        "",
        "| key | type | meaning |",
        "|---|---|---|",
        "| `name` | `str` | required, unique; one config must be named `ideal` |",
        "| `samples` | `int` | Monte Carlo samples of this config (default: the study's "
        "`samples`, or 1 when the config is deterministic) |",
        "| `keys` | `str` | the name its Monte Carlo keys come from (default: its own `name`); "
        "configs with one `keys` program the same chips, e.g. one chip read at several times |",
        "| `hardware` | table | nested `HardwareConfig` fields by path, e.g. "
        "`hardware = { device = { write_noise = { sigma = 0.05 } }, adc = { bits = 6 } }`; "
        "unspecified fields keep their defaults |",
        "| `hardware.preset` | `str` | start from a named preset instead of the ideal "
        "crossbar: " + ", ".join(f"`{n}`" for n in presets.names()) + " |",
        "",
        "Example:",
        "",
        "```toml",
        "samples = 16",
        "hidden = [64]",
        "",
        "[train]",
        "steps = 600",
        "",
        "[[configs]]",
        'name = "ideal"',
        "",
        "[[configs]]",
        'name = "rram_wires"',
        'hardware = { preset = "rram", array = { parasitics = { r_wire_row = 2.0, r_wire_col = 2.0 } } }',
        "",
        "[finetune]",
        'config = "rram_wires"',
        "train = { steps = 60 }",
        "```",
        "",
    ]
    return lines


def render() -> str:
    """The whole ``docs/configuration.md`` text.

    Returns:
      str: the Markdown, ending in one newline: a table per hardware config class (in
      :func:`walk` order), then the study's keys (``StudySpec``, ``[train]``, ``[finetune]``,
      ``[[configs]]``).

    Example:
      >>> from crossjax.config_reference import render
      >>> text = render()
      >>> text.splitlines()[0], text.endswith("\\n"), "| `dac.v_read` | `float` |" in text
      ('# Configuration reference', True, True)
    """
    lines = [
        "# Configuration reference",
        "",
        f"<!-- Generated by crossjax/config_reference.py; do not edit. Regenerate: {REGENERATE} -->",
        "",
        "Every field of the hardware configuration and of the study configuration, read "
        "from the dataclasses themselves.",
        "",
        "Kinds: **leaf** is a pytree leaf: a new value, or a `vmap` over values, runs the "
        "compiled kernel again without recompiling, and `jax.grad` reaches it. **static** "
        "(`flax.struct.field(pytree_node=False)`) is part of the pytree structure: shapes, bit "
        "counts and switches; each new value compiles anew. **sub-config** is a nested "
        "dataclass; `None = off` means its default is `None` (the non-ideality is absent) and "
        "switching it on or off changes the structure (a recompile). Units: siemens (S), "
        "ohms (ohm), volts (V), amperes (A), seconds (s); `1 (relative)` is dimensionless. "
        "Bit-count ranges depend on the working dtype (float32 unless `jax_enable_x64`).",
        "",
        "See also `docs/results.md` (what a study writes).",
        "",
    ]
    lines += _hardware_section()
    lines += _study_section()
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m crossjax.config_reference [--write PATH | --check PATH]``: print, write or check the reference.

    Args:
      argv: the arguments (default ``sys.argv[1:]``): none prints :func:`render`'s text to
        stdout; ``--write PATH`` writes it to PATH and prints ``wrote PATH``; ``--check PATH``
        compares PATH with it.

    Returns:
      The exit status: 0, or 1 when the ``--check`` file is missing or differs (stderr then
      names :data:`REGENERATE`). Bad arguments exit through argparse (``SystemExit(2)``).

    Example:
      >>> import contextlib, io, os, tempfile
      >>> from crossjax import config_reference
      >>> path = os.path.join(tempfile.mkdtemp(), "configuration.md")
      >>> with contextlib.redirect_stdout(io.StringIO()) as out:
      ...     rc = config_reference.main(["--write", path])
      >>> rc, out.getvalue() == f"wrote {path}\\n"
      (0, True)
      >>> config_reference.main(["--check", path])
      0
      >>> with contextlib.redirect_stderr(io.StringIO()) as err:
      ...     rc = config_reference.main(["--check", path + ".old"])
      >>> rc, "is stale" in err.getvalue()
      (1, True)
    """
    p = argparse.ArgumentParser(
        prog="python -m crossjax.config_reference", description="Generate the configuration reference (Markdown)."
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--write", metavar="PATH", help="write it to PATH (e.g. docs/configuration.md)")
    g.add_argument("--check", metavar="PATH", help="exit 1 if PATH differs from the generated text")
    args = p.parse_args(argv)
    text = render()
    if args.write:
        with open(args.write, "w") as f:
            f.write(text)
        print(f"wrote {args.write}")
    elif args.check:
        try:
            with open(args.check) as f:
                same = f.read() == text
        except FileNotFoundError:
            same = False
        if not same:
            print(f"{args.check} is stale; regenerate it with: {REGENERATE}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
