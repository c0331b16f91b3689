"""Tests of crossjax.energy: formulas against direct NumPy references and D.U.B. consistency."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from crossjax import energy as E
from crossjax import pruning as P


def test_conversion_energy_laws():
    b = np.arange(1, 11)
    np.testing.assert_allclose(E.conversion_energy(b), 10e-15 * 2.0**b, rtol=1e-12)
    np.testing.assert_allclose(E.conversion_energy(b, E.ADCEnergyModel(2e-15, "linear")), 2e-15 * b)
    np.testing.assert_allclose(E.conversion_energy(b, E.ADCEnergyModel(1e-18, "schreier")), 1e-18 * 4.0**b)
    with pytest.raises(ValueError, match="law"):
        E.ADCEnergyModel(law="flashy")
    with pytest.raises(ValueError, match="e_step"):
        E.ADCEnergyModel(e_step=-1.0)


def test_dense_bits_and_reduction():
    assert [E.dense_column_bits(t) for t in (32, 64, 100, 128, 256)] == [7, 8, 9, 9, 10]
    T = 64
    nz = np.arange(0, T + 1)
    ref = [max(k for k in range(7) if n <= T * 2.0**-k) for n in nz]
    np.testing.assert_array_equal(E.bits_reduction(jnp.asarray(nz), T), ref)
    assert int(E.bits_reduction(32, 64)) == 1 and int(E.bits_reduction(33, 64)) == 0
    assert int(E.bits_reduction(1, 64)) == 6


def _np_bits(W, R, C, per):
    K, N = W.shape
    Kt, Nt = math.ceil(K / R), math.ceil(N / C)
    Wp = np.zeros((Kt * R, Nt * C))
    Wp[:K, :N] = W
    b0 = math.ceil(math.log2(R)) + 2
    out = np.zeros((Kt, Nt, C), int)
    for a in range(Kt):
        for b in range(Nt):
            t = Wp[a * R : (a + 1) * R, b * C : (b + 1) * C]
            ks = [max(k for k in range(int(math.log2(R)) + 1) if (t[:, j] != 0).sum() <= R / 2**k) for j in range(C)]
            real = [b * C + j < N for j in range(C)]
            if per == "tile":
                ks = [min(k for k, r in zip(ks, real) if r)] * C
            out[a, b] = b0 - np.array(ks)
    return out


@pytest.mark.parametrize("per", ["tile", "column"])
def test_column_bits_and_energy_match_numpy(per):
    rng = np.random.default_rng(0)
    W = rng.standard_normal((50, 13))
    W[rng.random(W.shape) < 0.8] = 0.0
    R, C, nv = 16, 4, 9
    bits = _np_bits(W, R, C, per)
    np.testing.assert_array_equal(E.column_bits(jnp.asarray(W), R, C, per), bits)
    real = np.zeros((4, 4, 4), bool)
    real.reshape(4, 16)[:, :13] = True
    e_ref = nv * (10e-15 * 2.0**bits)[real].sum()
    np.testing.assert_allclose(E.layer_adc_energy(jnp.asarray(W), R, C, nv, per=per), e_ref, rtol=1e-12)
    e_dense = nv * 4 * 13 * 10e-15 * 2.0**6
    np.testing.assert_allclose(E.adc_energy_improvement(jnp.asarray(W), R, C, nv, per=per), e_dense / e_ref, rtol=1e-12)
    assert int(E.layer_conversions(jnp.asarray(W), R, C, nv)) == nv * 4 * 13
    Wp = np.zeros((64, 16))
    Wp[:50, :13] = W
    n_nonempty = sum((Wp[a * 16 : (a + 1) * 16, j] != 0).any() for a in range(4) for j in range(13))
    assert int(E.layer_conversions(jnp.asarray(W), R, C, nv, 2, skip_empty_columns=True)) == 2 * nv * n_nonempty


def test_dub_snapped_tiles_get_level_bits():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((128, 24))
    W[rng.random(W.shape) < 0.85] = 0.0
    mask, level = P.dub_project(jnp.asarray(W), 64, 8)
    Wm = jnp.where(mask, jnp.asarray(W), 0.0)
    bits = np.asarray(E.column_bits(Wm, 64, 8, "tile"))
    np.testing.assert_array_equal(bits, 8 - np.asarray(level)[..., None].repeat(8, -1))
    assert float(E.adc_energy_improvement(Wm, 64, 8)) > 1.0
    assert float(E.adc_energy_improvement(jnp.asarray(W), 64, 8, per="dense")) == 1.0


def test_model_adc_energy_sums_layers():
    rng = np.random.default_rng(2)
    k1 = rng.standard_normal((3, 3, 4, 8)) * (rng.random((3, 3, 4, 8)) < 0.2)
    k2 = rng.standard_normal((40, 10))
    out = E.model_adc_energy({"conv": k1, "fc": k2}, 16, 4, {"conv": 25})
    e1 = float(E.layer_adc_energy(P.flatten_kernel(jnp.asarray(k1)), 16, 4, 25))
    np.testing.assert_allclose(out["layers"]["conv"]["pruned"], e1, rtol=1e-12)
    np.testing.assert_allclose(out["pruned"], e1 + out["layers"]["fc"]["pruned"], rtol=1e-12)
    # dense fc (40 x 10): row blocks of 16, 16 and 8 real rows; the last needs 1 bit less
    np.testing.assert_allclose(out["layers"]["fc"]["improvement"], 3 * 64 / (2 * 64 + 32), rtol=1e-12)
    assert out["improvement"] > 1.0
    with pytest.raises(ValueError, match="n_vectors"):
        E.model_adc_energy({"fc": k2}, 16, 4, {"conv": 3})
