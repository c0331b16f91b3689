"""Heatmap of the voltage across every cell of one array: where IR drop bites."""

from __future__ import annotations

import numpy as np

from .solver import node_voltages


def plot_ir_drop(G, V, parasitics, ax=None, *, quantity="drop"):
    """Heatmap of the IR drop of every cell of ``G`` (R, C) driven by ``V`` (R,).

    ``quantity="drop"`` (default) plots ``V[i] - U[i, j]`` in millivolts, how far
    the wires pull each cell below its input, with ``U = v_row - v_col`` the
    voltage across the cell (zero everywhere with ideal wires); ``"voltage"``
    plots ``U`` itself in volts (which mostly shows the input pattern).

    Args:
      G: (R, C) conductances in siemens.
      V: (R,) row input voltages in volts.
      parasitics: the wires, ``crossjax.circuit.Parasitics`` (ohms).
      ax: matplotlib ``Axes`` to draw into (default: a new figure).
      quantity: ``"drop"`` or ``"voltage"``.

    Returns:
      The matplotlib ``Axes``.

    Example:
      >>> import matplotlib; matplotlib.use("Agg")
      >>> import jax.numpy as jnp
      >>> from crossjax.circuit import Parasitics, plot_ir_drop
      >>> ax = plot_ir_drop(jnp.full((4, 4), 1e-4), jnp.full(4, 0.2), Parasitics(r_wire_row=5.0))
      >>> bool(ax.images[0].get_array().max() > 0)
      True
    """
    import matplotlib.pyplot as plt

    G = np.asarray(G)
    V = np.asarray(V)
    if G.ndim != 2 or V.shape != (G.shape[0],):
        raise ValueError(f"plot_ir_drop needs G (R, C) and V (R,), got G {G.shape} and V {V.shape}.")
    if quantity not in ("drop", "voltage"):
        raise ValueError(f"quantity must be 'drop' or 'voltage', got {quantity!r}.")
    v_row, v_col = node_voltages(G, V, parasitics)
    U = np.asarray(v_row - v_col)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    if quantity == "drop":
        im = ax.imshow(1e3 * (V[:, None] - U), cmap="magma", aspect="auto", origin="upper")
        label, what = "IR drop V_i - (v_row - v_col) (mV)", "drop below the input"
    else:
        im = ax.imshow(U, cmap="viridis", aspect="auto", origin="upper")
        label, what = "cell voltage v_row - v_col (V)", "cell voltage"
    ax.figure.colorbar(im, ax=ax, label=label)
    ax.set_xlabel("column j (sink at the bottom)")
    ax.set_ylabel("row i (driver on the left)")
    ax.set_title(f"IR drop: {what}, {G.shape[0]}x{G.shape[1]}")
    return ax
