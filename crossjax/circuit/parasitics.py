"""Wire and terminal resistances of a crossbar array (ohms).

Topology (``docs/circuit.md``, "Topology and units"): row ``i`` is driven at
``V[i]`` through ``r_source`` and one ``r_wire_row`` segment before cell
``(i, 0)``, with one ``r_wire_row`` segment between neighbouring cells and an
open far end; column ``j`` runs from cell ``(0, j)`` through one ``r_wire_col``
segment per cell and finally ``r_sink`` into virtual ground (0 V).
Zero means ideal.
"""

from __future__ import annotations

import flax.struct
import numpy as np

from crossjax import config_checks

FIELDS = ("r_wire_row", "r_wire_col", "r_source", "r_sink")


@flax.struct.dataclass
class Parasitics:
    """Parasitic resistances in ohms; every field is a pytree leaf.

    Because the fields are leaves, ``jax.grad`` reaches them and a sweep over
    wire resistances does not recompile. Values are validated when a circuit
    function receives them (:func:`check_parasitics`), not in the constructor:
    JAX rebuilds this class while unflattening gradients, which may be
    negative.
    """

    r_wire_row: float = 0.0
    r_wire_col: float = 0.0
    r_source: float = 0.0
    r_sink: float = 0.0

    def transposed(self) -> "Parasitics":
        """The same network seen from the sinks: rows and columns swap roles."""
        return Parasitics(
            r_wire_row=self.r_wire_col, r_wire_col=self.r_wire_row, r_source=self.r_sink, r_sink=self.r_source
        )


def check_parasitics(parasitics) -> None:
    """Raise ``ValueError`` for a non-``Parasitics`` or a negative/non-finite resistance.

    Only concrete values are checked; under ``jit`` traced leaves are skipped.

    Args:
      parasitics: the value to check, a :class:`Parasitics` of scalar
        resistances (ohms).

    Returns:
      ``None``.

    Raises:
      ValueError: not a :class:`Parasitics`, a non-scalar field, or a
        negative/non-finite resistance.

    Example:
      >>> check_parasitics(Parasitics(r_wire_row=1.0, r_wire_col=2.0))
      >>> check_parasitics(Parasitics(r_wire_row=-1.0))
      Traceback (most recent call last):
        ...
      ValueError: parasitics.r_wire_row must be >= 0 ohms, got -1.0; use 0 for an ideal wire.
    """
    if not isinstance(parasitics, Parasitics):
        raise ValueError(
            f"parasitics must be a crossjax.circuit.Parasitics, got {type(parasitics).__name__}; "
            "build one with Parasitics(r_wire_row=..., r_wire_col=..., r_source=..., r_sink=...)."
        )
    for name in FIELDS:
        value = getattr(parasitics, name)
        a = config_checks.concrete(value)
        if a is None:
            continue
        if a.ndim != 0:
            raise ValueError(
                f"parasitics.{name} must be a scalar (ohms), got shape {a.shape}; "
                "vmap over Parasitics to sweep resistances."
            )
        if not np.isfinite(a):
            raise ValueError(f"parasitics.{name} must be finite, got {value!r}; pass a finite resistance in ohms.")
        if a < 0:
            raise ValueError(f"parasitics.{name} must be >= 0 ohms, got {value!r}; use 0 for an ideal wire.")
