"""Heatmap of the voltage across every cell of one array: where IR drop bites."""
from __future__ import annotations

import numpy as np

from .solver import node_voltages


def plot_ir_drop(G, V, parasitics, ax=None):
    """Plot ``U = v_row - v_col`` (volts) of every cell of ``G`` (R, C) driven by ``V`` (R,).

    With ideal wires ``U[i, j] = V[i]``; the colour bar shows how far the wires
    pull each cell below its input. Returns the matplotlib ``Axes``.
    """
    import matplotlib.pyplot as plt

    G = np.asarray(G)
    V = np.asarray(V)
    if G.ndim != 2 or V.shape != (G.shape[0],):
        raise ValueError(f"plot_ir_drop needs G (R, C) and V (R,), got G {G.shape} and V {V.shape}.")
    v_row, v_col = node_voltages(G, V, parasitics)
    U = np.asarray(v_row - v_col)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    im = ax.imshow(U, cmap="viridis", aspect="auto", origin="upper")
    ax.figure.colorbar(im, ax=ax, label="cell voltage v_row - v_col (V)")
    ax.set_xlabel("column j (sink at the bottom)")
    ax.set_ylabel("row i (driver on the left)")
    ax.set_title(f"IR drop: cell voltage, {G.shape[0]}x{G.shape[1]}")
    return ax
