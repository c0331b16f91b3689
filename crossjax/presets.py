"""Named hardware presets.

``get(name)`` returns a ``HardwareConfig``; ``names()`` lists them. Where a
source does not give a value (see ``docs/papers.md``), the preset says so and
the value is a documented assumption, chosen to be typical and kept here in
one place so studies can state it.
"""

from __future__ import annotations

import inspect
from typing import Callable

from crossjax.circuit import RRAM_1T1R
from crossjax.circuit.parasitics import Parasitics
from crossjax.converters import ADCConfig, DACConfig
from crossjax.devices import DeviceConfig, Drift, PCMModel, RangeVariation, ReadNoise, RRAMModel, StuckAt, WriteNoise
from crossjax.hardware import ArrayConfig, HardwareConfig
from crossjax.mapping import MappingConfig


def ideal() -> HardwareConfig:
    """Ideal crossbar: 64x64 tiles, ideal wires, no noise, no quantization (returns ``x @ W``)."""
    return HardwareConfig()


def rram() -> HardwareConfig:
    """Typical passive RRAM array (documented assumption, representative literature values).

    R_on 10 kOhm / R_off 100 kOhm (g 10..100 uS), 32 levels (5 bits per cell),
    Gaussian programming noise 2 % of the range, proportional read noise 1 %,
    0.5 % stuck at g_min and 0.5 % at g_max, 64x64 tiles with 1 Ohm per wire
    segment, 8-bit DAC (v_read 0.2 V) and 8-bit ADC at the column's maximum current.
    """
    return HardwareConfig(
        array=ArrayConfig(rows=64, cols=64, parasitics=Parasitics(r_wire_row=1.0, r_wire_col=1.0)),
        device=DeviceConfig.from_resistance(
            1e4,
            1e5,
            levels=32,
            write_noise=WriteNoise(sigma=0.02, kind="gaussian"),
            read_noise=ReadNoise(sigma=0.01, kind="proportional"),
            stuck=StuckAt(p_min=0.005, p_max=0.005),
        ),
        dac=DACConfig(bits=8, v_read=0.2),
        adc=ADCConfig(bits=8, range="max"),
    )


def rram_1t1r() -> HardwareConfig:
    """The ``rram`` preset with nonlinear 1T1R cells (``circuit.RRAM_1T1R``: sinh I-V,
    ``v0 = 0.25 V``, a 2 kOhm access transistor in series; sources in its docstring).

    Every read is the exact per-input Newton solve with the wires (no ``G_eff``):
    expect each read to cost a circuit solve per input vector and tile.
    """
    return rram().set({"array.cell": RRAM_1T1R})


def pcm() -> HardwareConfig:
    """Typical PCM array (documented assumption after commonly reported PCM behaviour).

    g_max 25 uS, g_min 0.1 uS, continuous programming with proportional write noise
    3 %, read noise 1 %, power-law drift read one hour after programming
    (t = 3600 s, t0 = 1 s) with exponent nu = 0.05 +- 0.02, 64x64 tiles with
    1 Ohm wire segments, 8-bit DAC and ADC.
    """
    return HardwareConfig(
        array=ArrayConfig(rows=64, cols=64, parasitics=Parasitics(r_wire_row=1.0, r_wire_col=1.0)),
        device=DeviceConfig(
            g_min=1e-7,
            g_max=25e-6,
            write_noise=WriteNoise(sigma=0.03, kind="proportional"),
            read_noise=ReadNoise(sigma=0.01, kind="proportional"),
            drift=Drift(t=3600.0, t0=1.0, nu=0.05, nu_std=0.02),
        ),
        dac=DACConfig(bits=8, v_read=0.2),
        adc=ADCConfig(bits=8, range="max"),
    )


def pcm_joshi2020(t: float = 3600.0) -> HardwareConfig:
    """PCM with the statistical model fitted on doped-GST chips (``devices.PCMModel``:
    Nandakumar et al., ICECS 2019; chip data of Joshi et al., Nat. Commun. 11, 2473, 2020),
    read ``t`` seconds after programming (default one hour).

    From the sources: ``g_max = 25 uS``, programming noise, conductance-dependent drift
    (``t0 = 20 s``) and accumulated 1/f read noise as in ``PCMModel``. **Assumptions** (not
    in the source): ``g_min = 0`` (a fully RESET cell), a differential pair per weight,
    64x64 tiles with ideal wires and ideal DAC/ADC (so the study isolates the device model),
    no drift compensation (add ``device.drift_compensation``).
    """
    return HardwareConfig(device=DeviceConfig(g_min=0.0, g_max=25e-6, pcm=PCMModel(t=t)))


def rram_wan2022(t: float = 1.0) -> HardwareConfig:
    """RRAM with the conductance deviation fitted on the chip of Wan et al., Nature 608, 504
    (2022) (``devices.RRAMModel``: polynomial std in ``g / g_max`` at 1 s, 1 day and 2 days),
    read ``t`` seconds after programming (default 1 s).

    From the source: ``g_max = 40 uS`` and the deviation fits. **Assumptions**: ``g_min =
    1 uS`` (a 40:1 window), the deviation between fitted times interpolated in ``ln t``,
    1 % proportional read noise (the source has no 1/f data), a differential pair per
    weight, 64x64 tiles with ideal wires, ideal DAC/ADC.
    """
    return HardwareConfig(
        device=DeviceConfig(
            g_min=1e-6, g_max=40e-6, rram=RRAMModel(t=t), read_noise=ReadNoise(sigma=0.01, kind="proportional")
        )
    )


def sparse_dnn_date22() -> HardwareConfig:
    """Seed study 1: sparse DNNs on non-ideal crossbars (Bhattacharjee, Bhatnagar, Panda,
    DATE 2022, arXiv 2201.05229).

    Source gives 64x64 crossbars; device and circuit values are NOT known, so
    this preset is a documented assumption focused on IR drop (the study's
    non-ideality): R_on 20 kOhm / R_off 200 kOhm, 2.5 Ohm wire segments (a copper
    line of a 4F^2 array at the 22 nm node, ``circuit.wire_segment_resistance(22e-9)``
    = 2.53 Ohm), ideal terminals, ideal converters and devices otherwise.
    """
    return HardwareConfig(
        array=ArrayConfig(rows=64, cols=64, parasitics=Parasitics(r_wire_row=2.5, r_wire_col=2.5)),
        device=DeviceConfig.from_resistance(2e4, 2e5),
    )


def dub_adc_2024() -> HardwareConfig:
    """Seed study 2: D.U.B. pruning for ADC efficiency (Ibrayev, Garg, Chakraborty, Roy,
    arXiv 2403.13082), on the datapath its ADC bit count assumes.

    From the source: tiles of T = 64 rows; a dense column needs ``ceil(log2 T) + 2
    = 8`` ADC bits, a tile whose columns hold at most ``T 2^-k`` non-zeros ``k``
    fewer. The datapath that makes this count exact (a documented assumption, the
    source does not give slice widths): weights quantized to 4 magnitude bits
    stored one bit per cell (``slice_bits=1, slices=4``: a tile of T/q = 16 logical
    columns spans 4 arrays of 64x16 per polarity), each differential pair
    subtracted before its conversion (``subtract="analog"``, so ``g_min`` cancels),
    8-bit inputs applied bit-serially one signed bit per slice (``dac.bits=9,
    slice_bits=1``, range per input vector). Every column current is then an
    integer number of unit currents in ``[-T, T]``, which a two's-complement ADC
    with its step at one unit (``adc.range="granular"``) converts without loss at
    exactly ``log2 T + 2`` bits (``T`` itself needs the extra bit); per-column
    weight scales; ideal devices and wires.
    """
    return HardwareConfig(
        array=ArrayConfig(rows=64, cols=16),
        mapping=MappingConfig(slice_bits=1, slices=4, subtract="analog", weight_scale="column"),
        dac=DACConfig(bits=9, slice_bits=1, range="max"),
        adc=ADCConfig(bits=8, range="granular"),
    )


def dse_iscas22() -> HardwareConfig:
    """Seed study 3: dense vs sparse mapping DSE on tiled 1T1R RRAM (Lammie et al.,
    ISCAS 2022, arXiv 2201.06703).

    From docs/papers.md: differential mapping, 128x128 tiles (its simulator's default),
    per-tile ADC, finite conductance states, stuck-at faults, device-to-device
    variation of R_on 10 kOhm +- 1 kOhm and R_off 100 kOhm +- 10 kOhm (relative 10 %),
    no IR drop (1T1R). Not known (documented assumption): 32 states, 8-bit ADC,
    1 % of devices stuck (half at g_min, half at g_max).
    """
    return HardwareConfig(
        array=ArrayConfig(rows=128, cols=128),
        device=DeviceConfig.from_resistance(
            1e4,
            1e5,
            levels=32,
            range_variation=RangeVariation(sigma_g_min=0.1, sigma_g_max=0.1),
            stuck=StuckAt(p_min=0.005, p_max=0.005),
        ),
        adc=ADCConfig(bits=8, range="max"),
    )


_PRESETS: dict[str, Callable[[], HardwareConfig]] = {
    "ideal": ideal,
    "rram": rram,
    "rram_1t1r": rram_1t1r,
    "pcm": pcm,
    "pcm_joshi2020": pcm_joshi2020,
    "rram_wan2022": rram_wan2022,
    "sparse_dnn_date22": sparse_dnn_date22,
    "dub_adc_2024": dub_adc_2024,
    "dse_iscas22": dse_iscas22,
}


def names() -> list[str]:
    """Names accepted by :func:`get`, sorted.

    Example:
      >>> {"ideal", "rram", "pcm_joshi2020", "rram_wan2022"} <= set(names())
      True
    """
    return sorted(_PRESETS)


def describe(name: str) -> str:
    """What preset ``name`` models and where its values come from (its factory's docstring).

    Example:
      >>> describe("sparse_dnn_date22").splitlines()[0]
      'Seed study 1: sparse DNNs on non-ideal crossbars (Bhattacharjee, Bhatnagar, Panda,'
    """
    if name not in _PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {names()}.")
    return inspect.cleandoc(_PRESETS[name].__doc__ or "")


def get(name: str) -> HardwareConfig:
    """The hardware preset ``name``.

    Args:
      name: one of :func:`names`.

    Returns:
      A fresh ``HardwareConfig`` (change it with ``.set({...})``).

    Raises:
      ValueError: an unknown name (the message lists the known ones).

    Example:
      >>> hw = get("rram").set({"adc.bits": 6})
      >>> hw.adc.bits, hw.array.rows
      (6, 64)
    """
    if name not in _PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {names()}.")
    return _PRESETS[name]()
