"""The read-out plan: which stages turn a layer's inputs into its digital outputs.

Every read of a crossbar runs the same pipeline::

    x --encoding (DAC)--> V slices --array physics--> I per tile column
      --read noise--> --ADC--> digital partial sums --recombination--> y

but which form each stage takes follows from the hardware config (and, for a
fresh sample in training, from how many inputs share it). :func:`plan` makes
that decision once per ``(config, inputs)`` and returns a :class:`ReadoutPlan`
of small static stage objects, in the spirit of lineax's solver objects: the
kernels in :mod:`crossjax.crossbar` (and the layers and Monte Carlo around
them) dispatch on the plan and never re-derive it. Plans are frozen and
hashable (a ``jit`` static argument): a config whose continuous values change
(a sweep over ``v0`` or wire resistance) keeps its plan and its compilation.

Stages:

* :class:`Encoding` -- ``"amplitude"`` (one slice, ``V = v_read q / n``),
  ``"bit_serial"`` (``dac.slice_bits``: one slice per digit, converted and
  shift-added) or ``"pulse_width"`` (``dac.encoding``: ``n`` unit-time
  segments, the column charge integrated before the ADC). With linear cells
  all three apply the same product, so a pulse-width read of linear cells
  runs as one amplitude slice (exactly equal, :mod:`crossjax.converters`).
* :class:`ArrayPhysics` -- ``"folded"``: the whole layer is ``q(x) @ W_eff``
  (no per-tile columns needed); ``"products"``: per-tile column currents
  ``V @ G_eff``; ``"linear_solve"``: a per-input circuit solve of ``G`` (few
  inputs per conductance sample, as in training); ``"nonlinear_solve"``: the
  exact per-input Newton solve of nonlinear cells (``array.cell``), which
  have no ``G_eff``.
* :class:`ReadNoise` -- ``"summed"``: one Gaussian per output (no per-tile
  conversion, so the tiles' independent noise adds exactly); ``"per_tile"``.
* :class:`Conversion` -- the column ADC and its full-scale rule.

Example:
  >>> from crossjax.hardware import HardwareConfig
  >>> from crossjax import readout
  >>> readout.plan(HardwareConfig()).is_linear
  True
  >>> p = readout.plan(HardwareConfig().set({"adc.bits": 8}))
  >>> p.physics.kind, p.adc.range
  ('products', 'max')
"""

from __future__ import annotations

import dataclasses

import numpy as np

from crossjax import circuit
from crossjax import config_checks as chk
from crossjax.hardware import HardwareConfig

__all__ = ["Encoding", "ArrayPhysics", "ReadNoise", "Conversion", "ReadoutPlan", "plan"]


@dataclasses.dataclass(frozen=True)
class Encoding:
    """How inputs become row voltages.

    Attributes:
      kind: ``"amplitude"``, ``"bit_serial"`` or ``"pulse_width"``.
      elementwise: the DAC maps each input on its own (ideal or fixed range), so
        ``q(x)`` may be applied before any linear operation (a convolution).
      integrates: the column integrates every slice before one conversion
        (pulse width); bit-serial slices are converted one by one.
    """

    kind: str = "amplitude"
    elementwise: bool = True
    integrates: bool = False


@dataclasses.dataclass(frozen=True)
class ArrayPhysics:
    """How column currents follow from the row voltages.

    Attributes:
      kind: ``"folded"``, ``"products"``, ``"linear_solve"`` or ``"nonlinear_solve"``
        (the module docstring).
      method: the regime of a solve: ``"iterative"`` (CG per input; Newton with CG
        steps for nonlinear cells) or ``"elementwise"`` (nonlinear cells with ideal
        wires and a series resistance known to be zero: ``I_j = sum_i f(V_i; G_ij)``),
        else ``None``.
    """

    kind: str = "folded"
    method: str | None = None

    @property
    def per_input(self) -> bool:
        """The currents come from a circuit solve per input vector (no ``G_eff``)."""
        return self.kind in ("linear_solve", "nonlinear_solve")

    @property
    def nonlinear(self) -> bool:
        return self.kind == "nonlinear_solve"


@dataclasses.dataclass(frozen=True)
class ReadNoise:
    """Gaussian read noise: ``"summed"`` (one draw per output) or ``"per_tile"``."""

    kind: str = "per_tile"


@dataclasses.dataclass(frozen=True)
class Conversion:
    """The column ADC: full scale ``"fixed"``, ``"max"`` or ``"calibrated"`` (``adc.range``)."""

    range: str = "max"

    @property
    def calibrated(self) -> bool:
        """The full scale is measured on data (``crossbar.calibrate_adc``)."""
        return self.range == "calibrated"


@dataclasses.dataclass(frozen=True)
class ReadoutPlan:
    """The stages of one read (static, hashable).

    Attributes:
      encoding: :class:`Encoding`.
      physics: :class:`ArrayPhysics`.
      noise: :class:`ReadNoise` or ``None``.
      adc: :class:`Conversion` or ``None`` (ideal read-out).
    """

    encoding: Encoding
    physics: ArrayPhysics
    noise: ReadNoise | None
    adc: Conversion | None

    @property
    def is_linear(self) -> bool:
        """``y = q(x) @ W_eff`` with an elementwise input quantizer ``q`` (``q(0) = 0``):
        no ADC, no read noise, an elementwise DAC and ``G_eff`` (linear cells)."""
        return self.physics.kind == "folded" and self.noise is None and self.encoding.elementwise

    @property
    def folds_weights(self) -> bool:
        """The read uses the folded ``W_eff`` ``(K, N)`` (with summed read noise or without noise)."""
        return self.physics.kind == "folded"

    @property
    def forms_g_eff(self) -> bool:
        """The read needs ``G_eff`` (a per-input solve works on ``G`` itself)."""
        return not self.physics.per_input

    @property
    def needs_calibration(self) -> bool:
        """The ADC's full scale is calibrated from data before reading."""
        return self.adc is not None and self.adc.calibrated


def _encoding(config: HardwareConfig, nonlinear: bool) -> Encoding:
    dac = config.dac
    elementwise = dac.bits is None or dac.range == "fixed"
    if dac.encoding == "pulse_width" and nonlinear:
        return Encoding("pulse_width", elementwise, integrates=True)
    if dac.slice_bits is not None:
        return Encoding("bit_serial", elementwise)
    # amplitude, or pulse width through linear cells (the same product, one slice)
    return Encoding("amplitude", elementwise)


def plan(config: HardwareConfig, *, programmed: bool = True, inputs: int | None = None) -> ReadoutPlan:
    """The read-out plan of ``config``.

    Args:
      config: the hardware (static decisions only; leaves may be traced).
      programmed: reading a programmed state (``crossbar.program``: ``G_eff``
        prepared once for many inputs). ``False``: a fresh sample read once
        (``crossbar.analog_matmul``, training), where ``config.method``
        decides whether ``G_eff`` is formed or each input is solved.
      inputs: input vectors sharing one conductance sample (for
        ``config.method="auto"`` with ``programmed=False``; see
        ``circuit.choose_method``).

    Returns:
      :class:`ReadoutPlan`.

    Example:
      >>> from crossjax.hardware import HardwareConfig
      >>> from crossjax.circuit import Cell, Parasitics
      >>> cfg = HardwareConfig().set({"array.parasitics": Parasitics(r_wire_row=1.0)})
      >>> plan(cfg, programmed=False, inputs=1).physics.kind
      'linear_solve'
      >>> plan(cfg.set({"array.cell": Cell(iv="sinh", v0=0.25)})).physics.kind
      'nonlinear_solve'
    """
    nonlinear = config.has_nonlinear_cells
    noise = config.device.read_noise is not None
    if nonlinear:
        series = chk.concrete(config.array.cell.r_series)  # traced (a swept leaf): not known to be 0
        elementwise = not config.has_wires and series is not None and not np.any(series)
        physics = ArrayPhysics("nonlinear_solve", "elementwise" if elementwise else "iterative")
    else:
        method = None
        if not programmed and config.has_wires:
            method = config.method
            if method == "auto":
                method = circuit.choose_method(max(1, int(inputs or 1)))
        if method == "iterative":
            physics = ArrayPhysics("linear_solve", "iterative")
        elif config.adc.bits is None and not (noise and config.mapping.reference_columns):
            # without per-tile conversion the whole read folds into W_eff (read noise, if
            # any, summed per output; the offset scheme's shared reference column
            # correlates outputs, so its noise stays per tile)
            physics = ArrayPhysics("folded")
        else:
            physics = ArrayPhysics("products")
    return ReadoutPlan(
        encoding=_encoding(config, nonlinear),
        physics=physics,
        noise=(ReadNoise("summed" if physics.kind == "folded" else "per_tile") if noise else None),
        adc=None if config.adc.bits is None else Conversion(config.adc.range),
    )
