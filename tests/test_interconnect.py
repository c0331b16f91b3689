"""Wire resistance from geometry: the scattering model's limits, monotonicity and bad input."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossjax import circuit
from crossjax.circuit import interconnect as ic


def test_wide_wires_are_bulk_copper_and_segments_are_rho_l_over_a():
    w = 20e-6
    assert ic.copper_resistivity(w, w) == pytest.approx(ic.CU_RESISTIVITY, rel=3e-3)
    assert circuit.wire_segment_resistance(w, pitch=1e-3, aspect_ratio=1.0) == pytest.approx(
        ic.CU_RESISTIVITY * 1e-3 / w**2, rel=3e-3
    )


def test_mayadas_shatzkes_asymptotes():
    # surfaces switched off (specular p -> 1 is excluded; wide, thick wire), grains small or large
    lam, big = ic.CU_MEAN_FREE_PATH, 1.0
    for R in (0.05, 0.3):
        a_small = lam / 1e-5 * R / (1 - R)  # large grains: rho / rho0 -> 1 + 3a/2
        rho = ic.copper_resistivity(big, big, reflection=R, grain=1e-5) / ic.CU_RESISTIVITY
        assert rho - 1 == pytest.approx(1.5 * a_small, rel=2e-2)
        a_big = lam / 1e-10 * R / (1 - R)  # tiny grains: rho / rho0 -> 4a/3 + 16/15 + O(1/a)
        rho = ic.copper_resistivity(big, big, reflection=R, grain=1e-10) / ic.CU_RESISTIVITY
        assert rho == pytest.approx(4 * a_big / 3 + 16 / 15, rel=1e-3)


def test_surface_term_without_grain_boundaries():
    w, h, p = 30e-9, 60e-9, 0.2
    rho = ic.copper_resistivity(w, h, reflection=0.0, specularity=p) / ic.CU_RESISTIVITY
    assert rho == pytest.approx(1 + 3 / 8 * (1 - p) * ic.CU_MEAN_FREE_PATH * (1 / w + 1 / h), rel=1e-12)


def test_stated_technology_node():
    # 22 nm, aspect ratio 2, 4F^2 pitch: the study's starting point, about 3.3x bulk
    assert ic.copper_resistivity(22e-9, 44e-9) / ic.CU_RESISTIVITY == pytest.approx(3.31, abs=0.02)
    assert circuit.wire_segment_resistance(22e-9) == pytest.approx(2.53, abs=0.01)


@settings(max_examples=40, deadline=None)
@given(w=st.floats(5e-9, 1e-6), f=st.floats(1.05, 4.0), ar=st.floats(0.5, 3.0))
def test_property_narrower_wires_resist_more(w, f, ar):
    assert ic.copper_resistivity(w, ar * w) > ic.copper_resistivity(f * w, f * ar * w) >= ic.CU_RESISTIVITY
    assert circuit.wire_segment_resistance(w, aspect_ratio=ar) > circuit.wire_segment_resistance(f * w, aspect_ratio=ar)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"width": 0.0}, "width"),
        ({"width": -1e-9}, "width"),
        ({"width": math.nan}, "width"),
        ({"width": True}, "width"),
        ({"width": 22e-9, "pitch": 0.0}, "pitch"),
        ({"width": 22e-9, "aspect_ratio": -2.0}, "aspect_ratio"),
        ({"width": 22e-9, "reflection": 1.0}, "reflection"),
        ({"width": 22e-9, "specularity": -0.1}, "specularity"),
        ({"width": 22e-9, "grain": 0.0}, "grain"),
    ],
)
def test_bad_input_names_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        circuit.wire_segment_resistance(**kwargs)
