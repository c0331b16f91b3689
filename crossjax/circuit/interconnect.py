"""Wire resistance of a crossbar line from its geometry and metal: what ``Parasitics.r_wire_row``
and ``r_wire_col`` are at a stated technology node.

One segment is the line between two neighbouring cells, a length of one cell pitch
``L`` of a wire ``w`` wide and ``h = AR w`` thick:

    R_seg = rho(w, h) * L / (w h)        (ohms; a 4F^2 cross-point cell: w = F, L = 2F)

Below ~100 nm the resistivity of copper exceeds its bulk value ``rho_0`` because
electrons scatter at grain boundaries and surfaces within a mean free path
``lambda`` (39 nm at room temperature). Grain boundaries, after Mayadas and
Shatzkes (Phys. Rev. B 1, 1382 (1970)), with grains of size ``d`` (taken equal to
the width) reflecting a fraction ``R``:

    rho_gb = rho_0 / (3 [1/3 - a/2 + a^2 - a^3 ln(1 + 1/a)]),    a = (lambda / d) R / (1 - R)

surfaces, after Fuchs and Sondheimer in the thin-wire form of Steinhoegl et al.
(Phys. Rev. B 66, 075414 (2002)), with a fraction ``p`` of specular reflections:

    rho_s = rho_0 (1 + 3/8 (1 - p) lambda (1/w + 1/h))

and the two add by Matthiessen's rule, ``rho = rho_gb + rho_s - rho_0``. The
defaults ``R = 0.43`` and ``p = 0.52`` are Sun et al.'s fit to nanometric copper
(Phys. Rev. B 81, 155454 (2010)); no liner or barrier is subtracted from the cross
section (a 2-3 nm barrier raises ``R_seg`` further at the smallest nodes).

At ``F = 22`` nm with ``AR = 2`` this gives ``rho = 5.6 uOhm cm`` (3.3x bulk) and
``R_seg = 2.5`` Ohm, the value of ``presets.sparse_dnn_date22``.
"""

from __future__ import annotations

import math

__all__ = ["CU_RESISTIVITY", "CU_MEAN_FREE_PATH", "copper_resistivity", "wire_segment_resistance"]

CU_RESISTIVITY = 1.68e-8  # ohm m, bulk copper at 20 C
CU_MEAN_FREE_PATH = 39e-9  # m, electrons in bulk copper at room temperature


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0 (metres for lengths), got {value!r}")


def _fraction(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")


def copper_resistivity(
    width: float, thickness: float, *, reflection: float = 0.43, specularity: float = 0.52, grain: float | None = None
) -> float:
    """Resistivity of a narrow copper wire, grain-boundary and surface scattering included
    (module doc).

    Args:
      width, thickness: cross section (m).
      reflection: grain-boundary reflection coefficient ``R`` in [0, 1).
      specularity: fraction ``p`` of specular surface reflections in [0, 1).
      grain: mean grain size (m); default the width.

    Returns:
      resistivity (ohm m), ``>= CU_RESISTIVITY``.

    Raises:
      ValueError: a non-positive size or a coefficient outside [0, 1).

    Example:
      >>> round(copper_resistivity(22e-9, 44e-9) * 1e8, 2)   # uOhm cm
      5.56
      >>> round(copper_resistivity(1e-5, 1e-5) / CU_RESISTIVITY, 3)   # wide: bulk
      1.006
    """
    _positive("width", width)
    _positive("thickness", thickness)
    _fraction("reflection", reflection)
    _fraction("specularity", specularity)
    grain = width if grain is None else grain
    _positive("grain", grain)
    lam = CU_MEAN_FREE_PATH
    a = lam / grain * reflection / (1.0 - reflection)
    gb = 1.0 if a == 0 else 1.0 / (3.0 * (1.0 / 3 - a / 2 + a**2 - a**3 * math.log1p(1.0 / a)))
    surface = 1.0 + 3.0 / 8.0 * (1.0 - specularity) * lam * (1.0 / width + 1.0 / thickness)
    return CU_RESISTIVITY * (gb + surface - 1.0)


def wire_segment_resistance(
    width: float, *, pitch: float | None = None, aspect_ratio: float = 2.0, **resistivity
) -> float:
    """Resistance of one crossbar wire segment (the line between two neighbouring cells) of
    copper: ``rho(w, AR w) * pitch / (AR w^2)``.

    Args:
      width: line width ``w`` (m), the feature size ``F`` of a 4F^2 cross-point array.
      pitch: cell pitch, the segment's length (m); default ``2 * width``.
      aspect_ratio: thickness / width.
      **resistivity: ``reflection``, ``specularity``, ``grain`` of :func:`copper_resistivity`.

    Returns:
      ohms per segment (``Parasitics.r_wire_row`` / ``r_wire_col``).

    Example:
      >>> round(wire_segment_resistance(22e-9), 2)
      2.53
      >>> round(wire_segment_resistance(22e-9, pitch=88e-9), 2)   # a 1T1R cell twice as wide
      5.06
    """
    _positive("width", width)
    _positive("aspect_ratio", aspect_ratio)
    pitch = 2.0 * width if pitch is None else pitch
    _positive("pitch", pitch)
    h = aspect_ratio * width
    return copper_resistivity(width, h, **resistivity) * pitch / (width * h)
