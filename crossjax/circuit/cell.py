"""Crossbar cell models: the current-voltage law of one cell and its series resistance.

Cell ``(i, j)`` carries ``I = f(u; G[i, j])`` between its row and column nodes,
where ``u`` is the voltage across the resistive element and ``G[i, j]`` its
small-signal conductance at 0 V (``docs/circuit.md``, "Topology and units"):

* ``iv="linear"``: ``f = G u``;
* ``iv="sinh"``:   ``f = G v0 sinh(u / v0)`` — the common compact form of
  filamentary RRAM (``v0`` a few tenths of a volt; ``v0 -> inf`` is linear),
  as used by GENIEx (Chakraborty et al., DAC 2020), which showed from HSPICE
  data that a linear crossbar model misjudges CIFAR-100 accuracy loss by
  >= 10 %;
* ``iv="poly"``:   ``f = G (u + c2 u^2 + c3 u^3)`` — a measured polynomial fit,
  ``c2`` (1/V) and ``c3`` (1/V^2) scalars or arrays broadcastable to ``G``
  (a conductance-dependent fit such as Sandia CrossSim 3.2's for the RRAM of
  Milo et al., ``NL2``, ``NL3`` polynomials in ``log10 G`` for |V| <= 0.5 V;
  a symmetric cubic with ``c2 = 0, c3 = -0.25`` is a sublinear cell).

``r_series`` (ohms, scalar or broadcastable to ``G``) sits in series with every
element: the access transistor of a 1T1R cell in its linear (triode) region.
The cell's terminal voltage is ``u + r_series * I``. For linear cells it folds
exactly into ``G / (1 + r_series G)``.

Every numeric field is a pytree leaf (a sweep over ``v0`` does not recompile,
``jax.grad`` reaches them); ``iv`` is static. Values are checked when a circuit
function receives the cell (:func:`check_cell`), not in the constructor (JAX
rebuilds the class while unflattening gradients).
"""

from __future__ import annotations

import math

import flax.struct
import jax.numpy as jnp
import numpy as np

from crossjax import config_checks

IV_FORMS = ("linear", "sinh", "poly")
POLY_INVERSE_STEPS = 12  # elementwise Newton steps inverting a poly law (float64 round-off from |c3 u^2| <= 0.5)


@flax.struct.dataclass
class Cell:
    """The cell model: ``iv`` law, its parameters, and the series resistance.

    Args:
      iv: ``"linear"`` (default), ``"sinh"`` or ``"poly"`` (static).
      v0: sinh voltage scale, volts, > 0 (``inf`` for linear and poly cells).
      c2: quadratic coefficient of ``poly``, 1/V.
      c3: cubic coefficient of ``poly``, 1/V^2.
      r_series: series (access transistor) resistance, ohms, >= 0.

    Example:
      >>> from crossjax.circuit import Cell
      >>> Cell(iv="sinh", v0=0.25, r_series=2e3).is_linear
      False
    """

    iv: str = flax.struct.field(pytree_node=False, default="linear")
    v0: float = math.inf
    c2: float = 0.0
    c3: float = 0.0
    r_series: float = 0.0

    @property
    def is_linear(self) -> bool:
        """True for ``iv="linear"`` (any ``r_series``): then ``I = V @ G_eff`` holds."""
        return self.iv == "linear"

    def series_folded(self, G):
        """Linear cells in series with ``r_series``: the exact two-terminal conductance
        ``G / (1 + r_series G)`` (``G`` itself when ``r_series`` is concretely 0).

        Example:
          >>> round(float(Cell(r_series=1e3).series_folded(1e-3)), 9)   # 1 kOhm + 1 kOhm
          0.0005
        """
        rs = config_checks.concrete(self.r_series)
        if rs is not None and not np.any(rs):
            return G
        G = jnp.asarray(G)
        return G / (1 + jnp.asarray(self.r_series, G.dtype) * G)

    # ------------------------------------------------------------ the law f = G h(u)
    def shape_function(self, u):
        """``h(u)`` (volts) with ``f = G h(u)``."""
        if self.iv == "sinh":
            return self.v0 * jnp.sinh(u / self.v0)
        if self.iv == "poly":
            return u * (1 + u * (self.c2 + self.c3 * u))
        return u

    def slope(self, u):
        """``h'(u)`` (dimensionless): the cell's differential conductance is ``G h'(u)``."""
        if self.iv == "sinh":
            return jnp.cosh(u / self.v0)
        if self.iv == "poly":
            return 1 + u * (2 * self.c2 + 3 * self.c3 * u)
        return jnp.ones_like(u)

    def current(self, G, u):
        """Element current ``f(u; G) = G h(u)`` (A) for element voltage ``u`` (V)."""
        return G * self.shape_function(u)

    def voltage(self, G, I, span):
        """Element voltage ``u = f^-1(I; G)`` (V) for ``G > 0`` (0 where ``G == 0``).

        Closed form for linear (``I / G``) and sinh (``v0 asinh(I / (G v0))``);
        ``poly`` by elementwise Newton from the linear guess, kept within
        ``|u| <= span`` (volts), where the law is increasing (:func:`check_monotone`).
        """
        Gs = jnp.where(G > 0, G, 1)
        if self.iv == "sinh":
            u = self.v0 * jnp.arcsinh(I / (Gs * self.v0))
        elif self.iv == "poly":
            y = I / Gs
            u = jnp.clip(y, -span, span)
            for _ in range(POLY_INVERSE_STEPS):  # quadratic convergence from u = y on a mild cubic
                u = jnp.clip(u - (self.shape_function(u) - y) / self.slope(u), -span, span)
        else:
            u = I / Gs
        return jnp.where(G > 0, u, 0)

    def cocontent(self, G, u):
        """``Phi = u f(u) - int_0^u f`` (W): the element's term of the circuit's convex co-content,
        ``dPhi/dI = u`` (Legendre transform; its minimum over the currents is Kirchhoff's solution)."""
        if self.iv == "sinh":
            x = u / self.v0
            return G * self.v0 * (u * jnp.sinh(x) - 2 * self.v0 * jnp.sinh(x / 2) ** 2)
        if self.iv == "poly":
            return G * u * u * (0.5 + u * (2 * self.c2 / 3 + 0.75 * self.c3 * u))
        return 0.5 * G * u * u

    def parameter_sensitivities(self, G, u):
        """``(df/dv0, df/dc2, df/dc3)`` at ``u`` (A/V, A V, A V^2); zeros where the law lacks them."""
        zero = jnp.zeros_like(u)
        if self.iv == "sinh":
            x = u / self.v0
            return G * (jnp.sinh(x) - x * jnp.cosh(x)), zero, zero
        if self.iv == "poly":
            return zero, G * u * u, G * u * u * u
        return zero, zero, zero


LINEAR = Cell()

#: Nonlinear 1T1R RRAM: a sinh cell with ``v0 = 0.25`` V (filamentary RRAM, "a few
#: tenths of a volt", GENIEx, Chakraborty et al., DAC 2020) behind an access
#: transistor in its triode region, 2 kOhm (a 1T1R cell's access transistor in its linear
#: region adds a series resistance in the kOhm range). A starting point, not a fit to one chip.
RRAM_1T1R = Cell(iv="sinh", v0=0.25, r_series=2e3)


def check_cell(cell, G_shape=None) -> Cell:
    """``cell`` (``None`` means linear) validated; raises ``ValueError`` naming the field and the fix.

    Concrete values only (traced leaves are skipped): ``v0 > 0`` and finite for
    ``sinh``; ``c2``, ``c3`` finite; ``r_series >= 0`` and finite; array
    fields broadcastable to ``G_shape``.

    Args:
      cell: a :class:`Cell` or ``None``.
      G_shape: optional shape of the conductances ``G`` (..., R, C) that array
        fields must broadcast to.

    Returns:
      The validated :class:`Cell` (``LINEAR`` for ``None``).

    Raises:
      ValueError: not a :class:`Cell`, an unknown ``iv``, or a bad field.

    Example:
      >>> check_cell(None).is_linear, check_cell(RRAM_1T1R, (2, 3)).iv
      (True, 'sinh')
    """
    if cell is None:
        return LINEAR
    if not isinstance(cell, Cell):
        raise ValueError(
            f"cell must be a crossjax.circuit.Cell, got {type(cell).__name__}; "
            "build one with Cell(iv='sinh', v0=0.25) or pass None for linear cells."
        )
    if cell.iv not in IV_FORMS:
        raise ValueError(f"cell.iv must be one of {IV_FORMS}, got {cell.iv!r}.")
    for name in ("v0", "c2", "c3", "r_series"):
        a = config_checks.concrete(getattr(cell, name))
        if a is None:
            continue
        if G_shape is not None and a.ndim:
            try:
                np.broadcast_shapes(a.shape, tuple(G_shape))
            except ValueError:
                raise ValueError(
                    f"cell.{name} has shape {a.shape}, which does not broadcast to G's shape "
                    f"{tuple(G_shape)}; pass a scalar or an array of G's (trailing) shape."
                ) from None
        if name == "v0":
            if cell.iv == "sinh" and not (np.all(np.isfinite(a)) and np.all(a > 0)):
                raise ValueError(
                    f"cell.v0 must be finite and > 0 volts for iv='sinh', got {a!r}; "
                    "typical RRAM values are 0.1-0.3 V (use iv='linear' for a linear cell)."
                )
            if cell.iv == "sinh" and np.any(a < 1e-3):
                raise ValueError(
                    f"cell.v0 = {a.min():.3g} V is below 1 mV: sinh(V / v0) overflows at "
                    "read voltages; use v0 >= 1e-3 V."
                )
        elif not np.all(np.isfinite(a)):
            raise ValueError(f"cell.{name} must be finite, got {a!r}.")
        if name == "r_series" and np.any(a < 0):
            raise ValueError(f"cell.r_series must be >= 0 ohms, got min {a.min():.3g}; use 0 for no access device.")
    return cell


def check_monotone(cell: Cell, span) -> None:
    """Refuse a ``poly`` law whose slope ``h'(u)`` is not positive on ``|u| <= span`` (volts).

    Kirchhoff's solution is unique, and Newton's steps well defined, only for
    increasing I-V laws; a passive array keeps every element voltage within
    the span of its inputs (and 0 V).

    Args:
      cell: a :class:`Cell` (only ``iv="poly"`` is checked).
      span: largest ``|u|`` to check, volts (``None`` skips the check).

    Returns:
      ``None``.

    Raises:
      ValueError: the ``poly`` slope ``1 + 2 c2 u + 3 c3 u^2`` is not positive
        somewhere on ``|u| <= span``.

    Example:
      >>> check_monotone(Cell(iv="poly", c2=0.1, c3=0.05), 1.0)
      >>> check_monotone(Cell(iv="poly", c3=-1.0), 1.0)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
        ...
      ValueError: cell: the poly law 1 + 2 c2 u + 3 c3 u^2 is not increasing for |u| <= 1 V ...
    """
    if cell.iv != "poly":
        return
    c2, c3 = (config_checks.concrete(getattr(cell, n)) for n in ("c2", "c3"))
    if c2 is None or c3 is None or span is None:
        return
    u = np.linspace(-float(span), float(span), 201)
    c2b, c3b = np.broadcast_arrays(np.asarray(c2, float), np.asarray(c3, float))
    slope = 1 + u[:, None] * (2 * c2b.reshape(-1)[None, :] + 3 * c3b.reshape(-1)[None, :] * u[:, None])
    if np.any(slope <= 0):
        raise ValueError(
            f"cell: the poly law 1 + 2 c2 u + 3 c3 u^2 is not increasing for |u| <= {float(span):.3g} V "
            f"(min slope {slope.min():.3g}); a cell whose current falls with voltage has no unique "
            "operating point: refit c2/c3 or lower the read voltage."
        )
