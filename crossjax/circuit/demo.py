"""``python -m crossjax.circuit.demo``: a small IR-drop example printed to the terminal."""

from __future__ import annotations

import numpy as np


def main() -> None:
    """Print the demo: the summed column current of a random 32x32 array (cells 1e-6..1e-4 S, every
    row at 0.2 V) and its loss against the ideal crossbar for wire resistances of 0, 1, 5 and 20
    ohms per segment, then ``G_eff / G`` of the four corner cells at 5 ohms.

    Turns on ``jax_enable_x64`` for the whole process (the solves run in float64).

    Returns:
      None; the table goes to stdout.

    Example:
      Not run as a doctest: it switches every later JAX computation in the process to float64.

      >>> from crossjax.circuit import demo
      >>> demo.main()  # doctest: +SKIP
      32x32 array, cells 1e-6..1e-4 S, all rows at 0.2 V
      r_wire (ohm)   sum I (uA)  loss vs ideal
               0.0    10637.885          0.00%
               1.0    10248.812          3.66%
               5.0     8960.747         15.77%
              20.0     6182.127         41.89%
      G_eff / G at 5 ohm, corners (driver-near/sink-near):
        cell ( 0, 0): 0.8701
        cell ( 0,31): 0.7826
        cell (31, 0): 0.9858
        cell (31,31): 0.8891
    """
    import jax

    jax.config.update("jax_enable_x64", True)
    from crossjax.circuit import Parasitics, effective_conductance, solve

    rng = np.random.default_rng(0)
    R, C = 32, 32
    G = rng.uniform(1e-6, 1e-4, (R, C))  # siemens
    V = np.full(R, 0.2)  # volts
    print(f"{R}x{C} array, cells 1e-6..1e-4 S, all rows at 0.2 V")
    print(f"{'r_wire (ohm)':>12} {'sum I (uA)':>12} {'loss vs ideal':>14}")
    ideal = (V @ G).sum()
    for r in (0.0, 1.0, 5.0, 20.0):
        p = Parasitics(r_wire_row=r, r_wire_col=r, r_source=0.0, r_sink=0.0)
        I = np.asarray(solve(G, V, p))
        loss = 1 - I.sum() / ideal
        print(f"{r:12.1f} {I.sum() * 1e6:12.3f} {0.0 if abs(loss) < 1e-12 else loss:14.2%}")
    Geff = np.asarray(effective_conductance(G, Parasitics(r_wire_row=5.0, r_wire_col=5.0)))
    print("G_eff / G at 5 ohm, corners (driver-near/sink-near):")
    for i, j in ((0, 0), (0, C - 1), (R - 1, 0), (R - 1, C - 1)):
        print(f"  cell ({i:2d},{j:2d}): {Geff[i, j] / G[i, j]:.4f}")


if __name__ == "__main__":
    main()
