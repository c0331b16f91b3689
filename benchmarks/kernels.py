"""Benchmark of the crossbar kernels (issue 3, acceptance 6).

Measured in one run, so the ratios compare like with like:

1. A 512x512 weight on 64x64 tiles, 1024 inputs, a *prepared* state with IR
   drop (``G_eff`` from the exact circuit solve, formed once in ``program``):
   ``crossbar.matmul`` vs the plain digital ``x @ W`` (goal <= 3x). Also with an
   8-bit ADC (per-tile column path, one batched einsum over tiles), and the
   one-time ``program`` cost.
2. Monte Carlo: ``jax.vmap`` over S samples of ``program`` + ``matmul`` vs a Python
   loop over the same jitted single-sample function (goal >= 3x): a small layer
   (dispatch-bound, where vmap pays), the 512x512 layer (compute-bound) and the
   512x512 layer with IR drop (``G_eff`` solve per sample dominates).
3. Peak memory: XLA's compiled temporary + output sizes and the process peak RSS.
4. The backend policy (``crossjax.backend``): a 512x512 layer on 64x64 tiles
   with read noise and an 8-bit ADC, and the IR-drop solve, forward and weight
   gradient, in this backend's forms vs the plain forms (``jnp.sum`` of row
   tiles, one einsum, one ``G_eff`` sweep), which a GPU/TPU gets.

``python -m benchmarks.kernels [--quick]``; ``run(quick)`` returns the numbers as a dict.
"""

from __future__ import annotations

import argparse
import json
import platform

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import peak_rss_mib, timeit
from crossjax import backend, circuit, crossbar
from crossjax.devices import ReadNoise, StuckAt, WriteNoise
from crossjax.hardware import HardwareConfig


def _compiled_mib(fn, *args) -> float | None:
    try:
        m = jax.jit(fn).lower(*args).compile().memory_analysis()
        return (m.temp_size_in_bytes + m.output_size_in_bytes) / 2**20
    except Exception:  # memory_analysis is backend dependent
        return None


def run(quick: bool = False) -> dict:
    dtype = jnp.float32
    K = N = 512
    B = 1024
    rng = np.random.default_rng(0)
    W = jnp.asarray(rng.normal(size=(K, N)) / np.sqrt(K), dtype)
    x = jnp.asarray(rng.normal(size=(B, K)), dtype)
    wires = circuit.Parasitics(r_wire_row=1.0, r_wire_col=1.0)
    cfg = HardwareConfig().set({"array.parasitics": wires})
    cfg_adc = cfg.set({"adc.bits": 8, "dac.bits": 8})
    repeats = 3 if quick else 10
    out: dict = {
        "device": jax.devices()[0].device_kind,
        "platform": platform.machine(),
        "dtype": "float32",
        "K": K,
        "N": N,
        "inputs": B,
        "tile": [64, 64],
    }

    # --- 1. prepared state vs digital -------------------------------------------------------
    digital = jax.jit(lambda x, W: x @ W)
    analog = jax.jit(crossbar.matmul)
    t_prog = timeit(lambda: crossbar.program(W, cfg), repeats=2 if quick else 3)
    state = crossbar.program(W, cfg)
    state_adc = crossbar.program(W, cfg_adc)
    t_dig = timeit(lambda: digital(x, W), repeats=repeats)
    t_ana = timeit(lambda: analog(x, state, cfg, None), repeats=repeats)
    t_adc = timeit(lambda: analog(x, state_adc, cfg_adc, None), repeats=repeats)
    ir_drop = float(jnp.linalg.norm(crossbar.matmul(x, state, cfg) - x @ W) / jnp.linalg.norm(x @ W))
    out["matmul"] = {
        "digital_s": t_dig["median"],
        "analog_ir_drop_s": t_ana["median"],
        "analog_ir_drop_adc8_s": t_adc["median"],
        "ratio_analog_vs_digital": t_ana["median"] / t_dig["median"],
        "ratio_analog_adc8_vs_digital": t_adc["median"] / t_dig["median"],
        "program_with_geff_s": t_prog["median"],
        "relative_ir_drop_error": ir_drop,
        "mem_digital_mib": _compiled_mib(lambda x, W: x @ W, x, W),
        "mem_analog_mib": _compiled_mib(lambda x, s: crossbar.matmul(x, s, cfg, jax.random.key(0)), x, state),
        "mem_analog_adc8_mib": _compiled_mib(
            lambda x, s: crossbar.matmul(x, s, cfg_adc, jax.random.key(0)), x, state_adc
        ),
    }

    # --- 2. Monte Carlo: vmap vs Python loop ------------------------------------------------
    # per sample: program (write noise, stuck-at) then matmul (read noise, 8-bit ADC)
    S = 8 if quick else 32
    noisy = HardwareConfig().set(
        {
            "device.write_noise": WriteNoise(0.03),
            "device.stuck": StuckAt(0.01, 0.01),
            "device.read_noise": ReadNoise(0.01),
            "adc.bits": 8,
        }
    )
    cases = (  # (name, K=N, inputs, samples, config)
        ("small_128x128_32_inputs", 128, 32, 32, noisy),
        ("512x512_256_inputs", 512, 256, S, noisy),
        ("512x512_256_inputs_ir_drop", 512, 256, 2 if quick else 8, noisy.set({"array.parasitics": wires})),
    )
    out["monte_carlo"] = {}
    for name, n, m, s, c in cases:
        Wm, xm = W[:n, :n], x[:m, :n]
        keys = jax.random.split(jax.random.key(1), s)
        one = jax.jit(lambda W, x, k, c=c: crossbar.matmul(x, crossbar.program(W, c, k), c, jax.random.fold_in(k, 7)))
        many = jax.jit(jax.vmap(one, in_axes=(None, None, 0)))
        t_v = timeit(lambda: many(Wm, xm, keys), repeats=2 if quick else 3)
        t_l = timeit(lambda: [one(Wm, xm, k) for k in keys], repeats=2 if quick else 3)
        np.testing.assert_allclose(
            np.asarray(many(Wm, xm, keys)[-1]), np.asarray(one(Wm, xm, keys[-1])), rtol=2e-4, atol=2e-4
        )
        out["monte_carlo"][name] = {
            "samples": s,
            "vmap_s": t_v["median"],
            "loop_s": t_l["median"],
            "speedup_vmap_vs_loop": t_l["median"] / t_v["median"],
            "mem_vmap_mib": _compiled_mib(jax.vmap(one, in_axes=(None, None, 0)), Wm, xm, keys),
            "mem_one_sample_mib": _compiled_mib(one, Wm, xm, keys[0]),
        }
    # --- 4. this backend's kernel forms vs the plain forms -----------------------------------
    out["backend_forms"] = _backend_forms(W, x[:256], cfg_adc.set({"device.read_noise": ReadNoise(0.01)}), repeats)
    out["peak_rss_mib"] = peak_rss_mib()
    out["ratios"] = {
        "plain_vs_backend_forms_adc8_grad": out["backend_forms"]["ratio_plain_vs_policy_adc8_grad"],
        "plain_vs_backend_forms_geff_1024_arrays": out["backend_forms"]["ratio_plain_vs_policy_geff"],
        "matmul_ir_drop_vs_digital": out["matmul"]["ratio_analog_vs_digital"],
        "matmul_ir_drop_adc8_vs_digital": out["matmul"]["ratio_analog_adc8_vs_digital"],
        **{f"mc_vmap_speedup_{k}": v["speedup_vmap_vs_loop"] for k, v in out["monte_carlo"].items()},
    }
    # (vmap == loop is asserted above for every case; a mismatch crashes the run)
    out["checks"] = {"ir_drop_changes_result": out["matmul"]["relative_ir_drop_error"] > 1e-4}
    return out


def _backend_forms(W, x, cfg, repeats) -> dict:
    """Forward + weight gradient of a tiled layer (read noise, ADC) and a ``G_eff`` sweep of
    1024 64x64 arrays, timed under ``backend.policy()`` and under the plain forms."""
    name = jax.default_backend()
    own = backend.POLICIES[name]
    plain = backend.plain(name)
    G = jnp.asarray(np.random.default_rng(5).uniform(1e-6, 1e-4, (1024, 64, 64)), W.dtype)
    wires = cfg.array.parasitics
    res, values = {"policy": own.backend}, {}
    for label, pol in (("policy", own), ("plain", plain)):
        backend.POLICIES[name] = pol
        try:
            key = jax.random.key(0)
            step = jax.jit(
                jax.value_and_grad(lambda W: jnp.sum(crossbar.matmul(x, crossbar.program(W, cfg), cfg, key) ** 2))
            )
            geff = jax.jit(lambda G: circuit.effective_conductance(G, wires))
            res[f"{label}_adc8_grad_s"] = timeit(lambda: step(W), repeats=repeats)["median"]
            res[f"{label}_geff_s"] = timeit(lambda: geff(G), repeats=max(2, repeats // 3))["median"]
            values[label] = (np.asarray(step(W)[1]), np.asarray(geff(G)))
        finally:
            backend.POLICIES[name] = own
    for a, b in zip(values["policy"], values["plain"]):  # the same numbers either way
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6 * float(np.abs(a).max()))
    res["ratio_plain_vs_policy_adc8_grad"] = res["plain_adc8_grad_s"] / res["policy_adc8_grad_s"]
    res["ratio_plain_vs_policy_geff"] = res["plain_geff_s"] / res["policy_geff_s"]
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and Monte Carlo samples")
    args = ap.parse_args()
    print(json.dumps(run(args.quick), indent=2))


if __name__ == "__main__":
    main()
