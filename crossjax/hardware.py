"""The hardware a layer runs on: tile geometry and wires, devices, mapping, converters.

``HardwareConfig()`` is the ideal crossbar: 64x64 tiles, ideal wires, no device
non-idealities, no quantization; it returns ``x @ W`` exactly. Every part is a
frozen pytree dataclass (``flax.struct``): continuous values are leaves (sweeps
do not recompile, gradients reach them), shapes and switches are static.

Updating nested fields::

    cfg = HardwareConfig().set({"device.g_max": 1e-4, "adc.bits": 8})
    cfg = cfg.set(device__write_noise__sigma=0.02)   # creates WriteNoise() if it was off

``to_dict()`` / ``from_dict()`` give a JSON/TOML-able form (``None`` = off).
"""

from __future__ import annotations

import dataclasses
import typing

import jax
import numpy as np
from flax import struct

from crossjax import config_checks as chk
from crossjax.circuit.cell import Cell, check_cell, check_monotone
from crossjax.circuit.parasitics import Parasitics, check_parasitics
from crossjax.circuit.solver import METHODS
from crossjax.converters import ADCConfig, DACConfig
from crossjax.devices import DeviceConfig
from crossjax.mapping import MappingConfig


@struct.dataclass
class ArrayConfig:
    """One crossbar tile: ``rows`` inputs x ``cols`` outputs (static) and its wires.

    ``parasitics``: ``crossjax.circuit.Parasitics`` (ohms) or ``None`` for ideal
    wires (the circuit solve is then skipped entirely: ``G_eff = G``).

    ``cell``: ``crossjax.circuit.Cell`` (the cell's I-V law and access-transistor
    ``r_series``) or ``None`` for linear cells. Linear cells with ``r_series``
    fold into ``G / (1 + r_series G)``; nonlinear cells (``iv="sinh"``/``"poly"``)
    have no ``G_eff``: every read solves the circuit per input vector, exactly
    (``circuit.solve_nonlinear``; ideal wires: ``I_j = sum_i f(V_i; G_ij)``).
    Its parameters are scalars (or arrays broadcastable to a tile ``(rows, cols)``).
    """

    rows: int = struct.field(pytree_node=False, default=64)
    cols: int = struct.field(pytree_node=False, default=64)
    parasitics: Parasitics | None = None
    cell: Cell | None = None

    def __post_init__(self):
        self.check(include_jax=False)

    def check(self, include_jax: bool = True):
        """Raise ``ValueError`` naming the field for an invalid value."""
        chk.positive_int("array.rows", self.rows)
        chk.positive_int("array.cols", self.cols)
        if self.parasitics is not None:
            if include_jax:
                check_parasitics(self.parasitics)
            elif not isinstance(self.parasitics, Parasitics):
                raise ValueError("array.parasitics must be a crossjax.circuit.Parasitics or None (ideal wires).")
        if self.cell is not None:
            if not isinstance(self.cell, Cell):
                raise ValueError(
                    f"array.cell must be a crossjax.circuit.Cell or None (linear cells), got "
                    f"{type(self.cell).__name__}."
                )
            if include_jax:
                try:
                    check_cell(self.cell, (self.rows, self.cols))
                except ValueError as e:
                    raise ValueError(f"array.{e}") from None


@struct.dataclass
class HardwareConfig:
    """Everything a crossbar kernel needs.

    ``method`` (static): circuit regime of ``crossbar.analog_matmul`` with wires:
    ``"direct"`` forms ``G_eff``; ``"iterative"`` solves per input; ``"auto"``
    picks by inputs per conductance sample (``crossjax.circuit.choose_method``).
    ``crossbar.program`` always forms ``G_eff`` (it serves many inputs).
    """

    array: ArrayConfig = ArrayConfig()
    device: DeviceConfig = DeviceConfig()
    mapping: MappingConfig = MappingConfig()
    dac: DACConfig = DACConfig()
    adc: ADCConfig = ADCConfig()
    method: str = struct.field(pytree_node=False, default="auto")

    def __post_init__(self):
        self.check(include_jax=False)

    def check(self, include_jax: bool = True) -> "HardwareConfig":
        """Validate every part (concrete values; JAX arrays too unless ``include_jax=False``)."""
        for name, cls in (
            ("array", ArrayConfig),
            ("device", DeviceConfig),
            ("mapping", MappingConfig),
            ("dac", DACConfig),
            ("adc", ADCConfig),
        ):
            part = getattr(self, name)
            if not isinstance(part, cls):
                raise ValueError(f"config.{name} must be a {cls.__name__}, got {type(part).__name__}.")
            part.check(include_jax)
        chk.choice("config.method", self.method, METHODS)
        if include_jax and self.array.cell is not None:
            v = chk.concrete(self.dac.v_read)
            try:  # a passive array keeps every cell within the read voltage
                check_monotone(self.array.cell, None if v is None else float(np.max(v)))
            except ValueError as e:
                raise ValueError(f"array.{e}") from None
        return self

    # --- what needs randomness -------------------------------------------------
    @property
    def program_is_stochastic(self) -> bool:
        """``program`` samples write-time non-idealities (needs a key)."""
        return self.device.write_stochastic

    @property
    def read_is_stochastic(self) -> bool:
        """``matmul`` samples read noise (needs a key)."""
        return self.device.read_noise is not None

    @property
    def has_wires(self) -> bool:
        return self.array.parasitics is not None

    @property
    def has_nonlinear_cells(self) -> bool:
        """``array.cell`` is a nonlinear law: reads solve the circuit per input (no ``G_eff``)."""
        return self.array.cell is not None and not self.array.cell.is_linear

    # --- nested updates and serialization ------------------------------------------
    def set(self, updates: dict | None = None, **kwargs) -> "HardwareConfig":
        """Copy with nested fields replaced: keys ``"a.b.c"`` in ``updates`` or ``a__b__c=`` keywords.

        A sub-config that is ``None`` (off) is created with its defaults first;
        a value ``None`` switches a sub-config off.
        """
        items = dict(updates or {})
        items.update({k.replace("__", "."): v for k, v in kwargs.items()})
        out = self
        for path, value in items.items():
            out = _replace_path(out, path.split("."), value, path)
        return out

    def to_dict(self) -> dict:
        """JSON-able nested dict (arrays become lists, ``None`` = off)."""
        return _to_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "HardwareConfig":
        """Inverse of :meth:`to_dict`; missing keys take defaults, unknown keys raise ``ValueError``."""
        return _from_dict(cls, d, "config")


def _field_class(cls, name: str):
    hints = typing.get_type_hints(cls)
    hint = hints[name]
    for arg in typing.get_args(hint) or (hint,):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def _replace_path(obj, parts, value, full):
    name = parts[0]
    names = {f.name for f in dataclasses.fields(obj)}
    if name not in names:
        raise ValueError(f"unknown config field {full!r}: {type(obj).__name__} has {sorted(names)}.")
    if len(parts) == 1:
        return obj.replace(**{name: value})
    sub = getattr(obj, name)
    if sub is None:
        sub_cls = _field_class(type(obj), name)
        if sub_cls is None:
            raise ValueError(f"config field {full!r}: {name} is not a sub-config.")
        sub = sub_cls()
    return obj.replace(**{name: _replace_path(sub, parts[1:], value, full)})


def _leaf(v):
    if isinstance(v, (jax.Array, np.ndarray, np.generic)):
        a = np.asarray(v)
        return a.item() if a.ndim == 0 else a.tolist()
    return v


def _to_dict(obj):
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if isinstance(obj, Cell) and f.name == "v0" and obj.iv != "sinh":
            continue  # unused (inf by default), and JSON has no infinity
        out[f.name] = _to_dict(v) if dataclasses.is_dataclass(v) else _leaf(v)
    return out


def _from_dict(cls, d, where):
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be a table/dict, got {type(d).__name__}.")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)} in {where}; allowed: {sorted(names)}.")
    kw = {}
    for k, v in d.items():
        sub = _field_class(cls, k)
        if sub is not None and isinstance(v, dict):
            kw[k] = _from_dict(sub, v, f"{where}.{k}")
        elif isinstance(v, list):
            kw[k] = np.asarray(v)
        else:
            kw[k] = v
    return cls(**kw)
