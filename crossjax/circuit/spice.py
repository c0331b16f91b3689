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


def _cell_expression(cell, g, c2, c3, v):
    """The element current ``f(v; g)`` as an ngspice B-source expression of the voltage ``v``."""
    if cell.iv == "sinh":
        v0 = f"{float(cell.v0):.17g}"
        return f"{g:.17g}*{v0}*sinh({v}/{v0})"
    return f"{g:.17g}*({v}+{c2:.17g}*{v}*{v}+{c3:.17g}*{v}*{v}*{v})"


def to_spice(G, V, parasitics, cell=None) -> str:
    """Netlist (str) of one array ``G`` (R, C) S driven by ``V`` (R,) V; ngspice runs it as is.

    ``i(vm<j>)`` (current through the 0 V meter from sink ``j`` to ground) is the
    column current of :func:`crossjax.circuit.solve`. With a nonlinear
    :class:`crossjax.circuit.Cell` each cell is a behavioural current source
    ``B`` whose current is ``f(V(element))``; a non-zero ``r_series`` is a
    resistor from the row node to the element's node ``m<i>_<j>`` (also for
    linear cells, so the netlist is the circuit as drawn, not the folded ``G``).

    Args:
      G: conductances (R, C), siemens, array-like.
      V: input voltages (R,), volts, array-like.
      parasitics: :class:`crossjax.circuit.Parasitics` (ohms).
      cell: optional :class:`crossjax.circuit.Cell` (default linear).

    Returns:
      The SPICE netlist (str), ending in ``.op`` and ``.end``.

    Example:
      >>> from crossjax.circuit import Cell, Parasitics, to_spice
      >>> net = to_spice([[1e-4]], [0.2], Parasitics(r_wire_row=1.0), cell=Cell(iv="sinh", v0=0.25))
      >>> "sinh" in net
      True
    """
    from .cell import check_cell

    # NumPy float64 throughout (not the solver's jnp checks): without x64, jnp would round
    # the netlist's values to float32
    G, V = _real("G", G), _real("V", V)
    if G.ndim != 2:
        raise ValueError(
            f"G must be a single array (R, C) for to_spice, got shape {G.shape}; write one netlist per array."
        )
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
    cell = check_cell(cell, G.shape)
    if cell.iv == "sinh" and np.ndim(cell.v0):
        raise ValueError("cell.v0 must be a scalar for to_spice; write one netlist per v0.")
    c2, c3, rs = (np.broadcast_to(_real(f"cell.{n}", getattr(cell, n)), G.shape) for n in ("c2", "c3", "r_series"))
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
                top = f"r{i}_{j}"
                if rs[i, j] > 0:
                    top = f"m{i}_{j}"
                    lines.append(f"RT{i}_{j} r{i}_{j} {top} {rs[i, j]:.17g}")
                if cell.is_linear:
                    lines.append(f"RC{i}_{j} {top} c{i}_{j} {1.0 / G[i, j]:.17g}")
                else:
                    expr = _cell_expression(cell, G[i, j], c2[i, j], c3[i, j], f"V({top},c{i}_{j})")
                    lines.append(f"BC{i}_{j} {top} c{i}_{j} I={expr}")
    for j in range(C):
        for i in range(R):
            nxt = f"c{i + 1}_{j}" if i < R - 1 else f"b{j}"
            _branch(lines, f"WC{i}_{j}", f"c{i}_{j}", nxt, p["r_wire_col"])
        _branch(lines, f"K{j}", f"b{j}", f"s{j}", p["r_sink"])
        lines.append(f"VM{j} s{j} 0 0")
    # ngspice's default Newton stop (reltol=1e-3, vntol=1e-6 V) leaves nonlinear netlists
    # ~3e-9 from their exact solution at 32x32; these tolerances make it a 1e-11 reference
    lines += [".options noacct reltol=1e-9 vntol=1e-12 abstol=1e-18", ".op", ".end", ""]
    return "\n".join(lines)


def ngspice_available() -> bool:
    """Whether the ``ngspice`` binary is on ``PATH`` (:func:`run_ngspice` needs it).

    Returns:
      ``True`` when ``ngspice`` is found.

    Example:
      >>> isinstance(ngspice_available(), bool)
      True
    """
    return shutil.which("ngspice") is not None


def run_ngspice(netlist: str, columns: int, *, timeout: float = 120.0) -> np.ndarray:
    """Run ``netlist`` in ngspice batch mode; return the column currents (A), shape (columns,).

    Args:
      netlist: a netlist from :func:`to_spice`.
      columns: the array's column count ``C`` (int).
      timeout: seconds before ngspice is stopped.

    Returns:
      Column currents (columns,), amperes, float64 NumPy.

    Raises:
      RuntimeError: ngspice is not on ``PATH`` or its output is not understood.

    Example:
      >>> import numpy as np
      >>> from crossjax.circuit import Parasitics, solve
      >>> G, V, p = np.full((2, 3), 1e-4), np.array([1.0, 0.5]), Parasitics(r_wire_row=1.0, r_wire_col=2.0)
      >>> I = run_ngspice(to_spice(G, V, p), 3)  # doctest: +SKIP
      >>> bool(np.allclose(I, solve(G, V, p), rtol=1e-5))  # doctest: +SKIP
      True
    """
    exe = shutil.which("ngspice")
    if exe is None:
        raise RuntimeError("ngspice not found on PATH; install it (apt-get install ngspice).")
    control = "\n".join([".control", "set numdgt=16", "op", *[f"print i(vm{j})" for j in range(columns)], ".endc"])
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
