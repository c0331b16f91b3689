"""SPICE netlist of the crossbar circuit and a small ngspice operating-point runner.

Node names: ``r<i>_<j>`` row node of cell (i, j), ``c<i>_<j>`` column node,
``d<i>`` driver, ``s<j>`` sink terminal. Each sink is measured by a 0 V source
``VM<j>`` to ground, whose current is the column current. A zero resistance is
written as a 0 V source (ngspice distorts tiny resistors), a zero conductance
as an omitted cell.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

import numpy as np

from .parasitics import check_parasitics


def _real(name, x):
    """``x`` as float64 NumPy, refusing complex and boolean data instead of dropping parts of it."""
    a = np.asarray(x)
    if np.iscomplexobj(a) or a.dtype == bool or not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{name} must be real numbers, got dtype {a.dtype}; convert explicitly.")
    return a.astype(np.float64)


def _branch(lines, name, a, b, r):
    if r == 0.0:
        lines.append(f"V{name} {a} {b} 0")
    else:
        lines.append(f"R{name} {a} {b} {r:.17g}")


def to_spice(G, V, parasitics) -> str:
    """Netlist (str) of one array ``G`` (R, C) S driven by ``V`` (R,) V; ngspice runs it as is.

    ``i(vm<j>)`` (current through the 0 V meter from sink ``j`` to ground) is the
    column current of :func:`crossjax.circuit.solve`.
    """
    # NumPy float64 throughout (not the solver's jnp checks): without x64, jnp would round
    # the netlist's values to float32
    G, V = _real("G", G), _real("V", V)
    if G.ndim != 2:
        raise ValueError(f"G must be a single array (R, C) for to_spice, got shape {G.shape}; "
                         "write one netlist per array.")
    R, C = G.shape
    if V.shape != (R,):
        raise ValueError(f"V must have shape ({R},) for to_spice, got {V.shape}.")
    if not np.all(np.isfinite(G)):
        raise ValueError("G must be finite; found NaN or inf conductances.")
    if np.any(G < 0):
        raise ValueError(f"G must be >= 0 siemens, found min {G.min():.3g}; clip conductances at 0.")
    if not np.all(np.isfinite(V)):
        raise ValueError("V must be finite; found NaN or inf input voltages.")
    check_parasitics(parasitics)
    p = {k: float(np.asarray(getattr(parasitics, k))) for k in ("r_wire_row", "r_wire_col", "r_source", "r_sink")}
    lines = [f"* crossjax crossbar {R}x{C}"]
    for i in range(R):
        lines.append(f"VD{i} d{i} 0 {V[i]:.17g}")
        _branch(lines, f"S{i}", f"d{i}", f"a{i}", p["r_source"])
        prev = f"a{i}"
        for j in range(C):
            _branch(lines, f"WR{i}_{j}", prev, f"r{i}_{j}", p["r_wire_row"])
            prev = f"r{i}_{j}"
            if G[i, j] > 0:
                lines.append(f"RC{i}_{j} r{i}_{j} c{i}_{j} {1.0 / G[i, j]:.17g}")
    for j in range(C):
        for i in range(R):
            nxt = f"c{i + 1}_{j}" if i < R - 1 else f"b{j}"
            _branch(lines, f"WC{i}_{j}", f"c{i}_{j}", nxt, p["r_wire_col"])
        _branch(lines, f"K{j}", f"b{j}", f"s{j}", p["r_sink"])
        lines.append(f"VM{j} s{j} 0 0")
    lines += [".options noacct", ".op", ".end", ""]
    return "\n".join(lines)


def ngspice_available() -> bool:
    return shutil.which("ngspice") is not None


def run_ngspice(netlist: str, columns: int, *, timeout: float = 120.0) -> np.ndarray:
    """Run ``netlist`` in ngspice batch mode; return the column currents (A), shape (columns,)."""
    exe = shutil.which("ngspice")
    if exe is None:
        raise RuntimeError("ngspice not found on PATH; install it (apt-get install ngspice).")
    control = "\n".join([".control", "set numdgt=16", "op",
                         *[f"print i(vm{j})" for j in range(columns)], ".endc"])
    text = netlist.replace(".end\n", control + "\n.end\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "crossbar.cir")
        with open(path, "w") as f:
            f.write(text)
        out = subprocess.run([exe, "-b", path], capture_output=True, text=True, timeout=timeout)
    values = {}
    for m in re.finditer(r"i\(vm(\d+)\)\s*=\s*([-+0-9.eE]+)", out.stdout):
        values[int(m.group(1))] = float(m.group(2))
    if len(values) != columns:
        raise RuntimeError(f"ngspice output not understood:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return np.array([values[j] for j in range(columns)])
