"""Exact, differentiable IR-drop solve of a resistive crossbar array.

Public names (``docs/circuit.md``): :class:`Parasitics`, :func:`solve`,
:func:`effective_conductance`, :func:`node_voltages`, :func:`to_spice`,
:class:`Cell` with :func:`solve_nonlinear` (nonlinear cells, 1T1R),
:func:`plot_ir_drop`; :func:`wire_segment_resistance` (a line's ohms per segment from its
geometry and metal, :mod:`.interconnect`). Units: siemens, ohms, volts, amperes.
"""

from .cell import IV_FORMS, RRAM_1T1R, Cell
from .interconnect import copper_resistivity, wire_segment_resistance
from .nonlinear import NonlinearSolution, NotConverged
from .parasitics import Parasitics
from .solver import METHODS, choose_method, effective_conductance, node_voltages, solve, solve_nonlinear, sweep_interval
from .spice import run_ngspice, to_spice


def plot_ir_drop(G, V, parasitics, ax=None, *, quantity="drop"):
    """Heatmap of the IR drop (mV) or the voltage across every cell (V); arguments and result as
    :func:`crossjax.circuit.plot.plot_ir_drop` (matplotlib is imported only when this is called).

    Example:
      >>> import matplotlib; matplotlib.use("Agg")
      >>> import matplotlib.pyplot as plt
      >>> import jax.numpy as jnp
      >>> from crossjax.circuit import Parasitics, plot_ir_drop
      >>> ax = plot_ir_drop(jnp.full((4, 4), 1e-4), jnp.full(4, 0.2), Parasitics(r_wire_row=5.0), quantity="voltage")
      >>> ax.get_title(), bool((ax.images[0].get_array() < 0.2).all())
      ('IR drop: cell voltage, 4x4', True)
      >>> plt.close(ax.figure)
    """
    from .plot import plot_ir_drop as _plot

    return _plot(G, V, parasitics, ax=ax, quantity=quantity)


__all__ = [
    "Parasitics",
    "Cell",
    "IV_FORMS",
    "RRAM_1T1R",
    "solve",
    "solve_nonlinear",
    "NonlinearSolution",
    "NotConverged",
    "effective_conductance",
    "node_voltages",
    "to_spice",
    "run_ngspice",
    "plot_ir_drop",
    "METHODS",
    "choose_method",
    "sweep_interval",
    "copper_resistivity",
    "wire_segment_resistance",
]
