"""Network-scale benchmarks: Monte Carlo evaluation and training through crossbars.

Every figure is a ratio against a baseline timed in the same process:

- ``analog_vs_digital``: VGG11 forward pass on a programmed hardware state
  (``rram`` preset: 64x64 tiles, write/read noise, stuck-at faults, finite
  levels, 1 ohm wires with the exact IR-drop ``G_eff``, 8-bit DAC/ADC) over the
  digital forward pass of the same model (the limit is 1x).
- ``analog_prepared_vs_digital``: the same with only what programming fixes
  (write noise, stuck-at faults, levels, exact IR drop, 8-bit DAC): no read
  noise and no ADC, the two per-read effects that need every row tile's
  column currents separately.
- ``program_vs_forward``: programming one hardware sample (mapping, write-time
  non-idealities and the exact per-tile ``G_eff``) over one analog forward batch.
- ``train_vs_digital``: a non-ideality-aware training step (fresh noise and the
  exact IR-drop solve in the loop, gradients by implicit differentiation) over a
  digital training step. Full mode adds ``train_ir_drop_write_vs_digital``: the
  same with the exact IR drop and the write-time effects only (no read noise,
  no ADC), and both at batch 128 (``..._batch128``): the circuit's cost per step
  does not grow with the batch.
- ``vmap_vs_loop``: ``S`` Monte Carlo samples (program + forward) vmapped in one
  jitted call over the same jitted function called ``S`` times in a Python loop.
- ``montecarlo``: samples/s of ``montecarlo.evaluate`` on VGG11 and the bytes
  per sample its chunks were sized by; full mode adds XLA's compiled figure
  (``bytes_per_sample(..., exact=True)``).
- scaling of programming time with tile size, of vmapped sampling (time and
  XLA's compiled memory) with the number of samples and of the forward pass
  with batch size, with fitted exponents (slope of log time vs log size).
- ``study_seconds`` (full mode only): wall time of the whole default
  ``crossjax study`` (MLP on the offline digits) in a fresh process.

``--quick`` (CI) shrinks every size (:data:`SIZES`) so the run takes about
two minutes on 2 CPU cores, most of it compilation.

Correctness checks (``checks``), which fail the run, compare optimized results
with unoptimized references: the ideal crossbar against the digital model, and
vmapped samples against the loop.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from benchmarks.common import forward_fns, peak_rss_mib, run_from_command_line, slope, timeit, train_steps
from crossjax import layers, models, montecarlo, presets
from crossjax.hardware import HardwareConfig


def _compiled_bytes(compiled) -> float:
    """XLA's temporary + output bytes of a compiled function (nan where the
    backend has no memory analysis)."""
    try:
        m = compiled.memory_analysis()
        return float(m.temp_size_in_bytes + m.output_size_in_bytes)
    except (AttributeError, NotImplementedError, TypeError):
        return float("nan")


SIZES = {  # quick (CI) vs full
    True: dict(
        width=0.0625,
        batch=4,
        repeats=5,
        mc_samples=2,
        mlp_hidden=(128,),
        vmap_samples=8,
        tiles=(16, 64),
        samples=(1, 8),
        batches=(4, 8),
        train_batches=(4,),
        train_ir_drop_write=False,
        nl_width=0.0625,
        nl_batch=1,
        nl_repeats=1,
    ),  # nl_*: not run in quick mode
    False: dict(
        width=0.25,
        batch=32,
        repeats=5,
        mc_samples=16,
        mlp_hidden=(256, 256),
        vmap_samples=64,
        tiles=(16, 32, 64, 128, 256),
        samples=(1, 4, 16, 64, 256),
        batches=(8, 32, 128, 512),
        train_batches=(32, 128),
        train_ir_drop_write=True,
        nl_width=0.125,
        nl_batch=2,
        nl_repeats=2,
    ),
}


def _study_seconds() -> float:
    """Wall time of ``crossjax study`` (default preset) in a fresh process."""
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "crossjax.cli", "study", "--out", out, "--quiet", "--no-plots"],
            check=True,
            capture_output=True,
            env=dict(os.environ),
        )
        return time.perf_counter() - t0


def _nonlinear_cells(size, hw, key, ratios, checks, timings) -> dict:
    """VGG11 on the rram preset with nonlinear 1T1R cells (``circuit.RRAM_1T1R``: sinh, v0 0.25 V,
    2 kOhm access transistor; every read an exact per-input Newton solve with the wires) vs the
    same hardware with linear cells: hardware-mode forward, and a training step vs digital."""
    from crossjax.circuit import RRAM_1T1R

    width, batch, repeats = size["nl_width"], size["nl_batch"], size["nl_repeats"]
    nl = hw.set({"array.cell": RRAM_1T1R})
    x = jax.random.normal(key, (batch, 32, 32, 3), jnp.float32)
    y = jax.random.randint(jax.random.key(1), (batch,), 0, 10)
    model = models.vgg11(10, width=width, rngs=nnx.Rngs(0))
    state, digital, program, analog = forward_fns(model, hw)
    prog_lin, prog_nl = program(state, hw, key), program(state, nl, key)
    t_lin = timeit(lambda: analog(state, prog_lin, hw, key, x), repeats=repeats)
    t_nl = timeit(lambda: analog(state, prog_nl, nl, key, x), repeats=repeats)
    y_nl = analog(state, prog_nl, nl, key, x)
    checks["nonlinear_vgg11_finite"] = bool(jnp.all(jnp.isfinite(y_nl)))  # NaN would mean a solve failed
    tmodel = models.vgg11(10, width=width, rngs=nnx.Rngs(0))
    step = train_steps(tmodel, hw)
    opt = nnx.Optimizer(tmodel, optax.sgd(1e-3), wrt=nnx.Param)
    layers.set_mode(tmodel, "digital")
    t_dstep = timeit(lambda: step(tmodel, opt, x, y, key), repeats=repeats)
    layers.set_mode(tmodel, "train", nl)
    t_nstep = timeit(lambda: step(tmodel, opt, x, y, key), repeats=repeats)
    checks["nonlinear_train_loss_finite"] = bool(np.isfinite(float(step(tmodel, opt, x, y, key))))
    timings.update(
        vgg11_nonlinear_forward=t_nl,
        vgg11_linear_forward_same_batch=t_lin,
        train_step_nonlinear=t_nstep,
        train_step_digital_nonlinear_batch=t_dstep,
    )
    ratios["nonlinear_vs_linear_forward"] = t_nl["median"] / t_lin["median"]
    ratios["nonlinear_train_vs_digital"] = t_nstep["median"] / t_dstep["median"]
    return {"model": f"vgg11 width {width}", "batch": batch, "cell": "circuit.RRAM_1T1R", "hardware": "rram preset"}


def run(quick: bool = False) -> dict:
    size = SIZES[quick]
    width, batch, repeats = size["width"], size["batch"], size["repeats"]
    hw = presets.get("rram")
    key = jax.random.key(0)
    x = jax.random.normal(key, (batch, 32, 32, 3), jnp.float32)
    y = jax.random.randint(jax.random.key(1), (batch,), 0, 10)
    out: dict = {"config": {"model": f"vgg11 width {width}", "batch": batch, "hardware": "rram preset"}}
    ratios, checks, timings = {}, {}, {}

    # -- VGG11: analog inference vs digital, programming cost -----------------
    model = models.vgg11(10, width=width, rngs=nnx.Rngs(0))
    state, digital, program, analog = forward_fns(model, hw)
    t_dig = timeit(lambda: digital(state, x), repeats=repeats)
    prog = program(state, hw, key)
    t_prog = timeit(lambda: program(state, hw, key), repeats=repeats)
    t_ana = timeit(lambda: analog(state, prog, hw, key, x), repeats=repeats)
    timings.update(vgg11_digital_forward=t_dig, vgg11_program=t_prog, vgg11_analog_forward=t_ana)
    ratios["analog_vs_digital"] = t_ana["median"] / t_dig["median"]
    # the same programmed hardware (write-time effects, G_eff), read without the per-read effects
    fixed = hw.replace(device=hw.device.replace(read_noise=None), adc=hw.adc.replace(bits=None))
    t_fixed = timeit(lambda: analog(state, prog, fixed, key, x), repeats=repeats)
    timings["vgg11_analog_forward_prepared"] = t_fixed
    ratios["analog_prepared_vs_digital"] = t_fixed["median"] / t_dig["median"]
    ratios["program_vs_forward"] = t_prog["median"] / t_ana["median"]

    ideal = HardwareConfig()
    prog_ideal = program(state, ideal, key)
    y_ideal = analog(state, prog_ideal, ideal, key, x)
    y_dig = digital(state, x)
    err = float(jnp.max(jnp.abs(y_ideal - y_dig)) / (jnp.max(jnp.abs(y_dig)) + 1e-30))
    out["ideal_vs_digital_rel_err"] = err
    checks["ideal_crossbar_equals_digital"] = err < 1e-4  # float32 over ~10 layers

    # -- Monte Carlo samples/s through the library entry point ----------------
    S = size["mc_samples"]
    keys = jax.random.split(key, S)
    montecarlo.evaluate(model, hw, keys, np.asarray(x), np.asarray(y), batch_size=batch, progress=False)
    t0 = time.perf_counter()
    res = montecarlo.evaluate(model, hw, keys, np.asarray(x), np.asarray(y), batch_size=batch, progress=False)
    t_mc = time.perf_counter() - t0
    out["montecarlo"] = {
        "samples": S,
        "seconds": t_mc,
        "samples_per_s": S / t_mc,
        "chunk_size": int(res["chunk_size"]),
        "bytes_per_sample": int(res["bytes_per_sample"]),
    }
    if not quick:  # one more compilation of the network: the figure XLA allocates
        out["montecarlo"]["bytes_per_sample_xla"] = montecarlo.bytes_per_sample(model, hw, x, exact=True)

    # -- training step with IR drop in the loop vs digital ---------------------
    tmodel = models.vgg11(10, width=width, rngs=nnx.Rngs(0))
    step = train_steps(tmodel, hw)
    opt = nnx.Optimizer(tmodel, optax.sgd(1e-3), wrt=nnx.Param)
    for b in size["train_batches"]:
        xt = jax.random.normal(key, (b, 32, 32, 3), jnp.float32)
        yt = jax.random.randint(jax.random.key(1), (b,), 0, 10)
        suffix = "" if b == batch else f"_batch{b}"
        layers.set_mode(tmodel, "digital")
        t_dstep = timeit(lambda: step(tmodel, opt, xt, yt, key), repeats=repeats)
        layers.set_mode(tmodel, "train", hw)
        t_astep = timeit(lambda: step(tmodel, opt, xt, yt, key), repeats=repeats)
        timings.update({f"train_step_digital{suffix}": t_dstep, f"train_step_hardware{suffix}": t_astep})
        ratios[f"train_vs_digital{suffix}"] = t_astep["median"] / t_dstep["median"]
        if size["train_ir_drop_write"]:  # IR drop and the write-time effects, no per-read effects
            layers.set_mode(tmodel, "train", fixed)
            t_fstep = timeit(lambda: step(tmodel, opt, xt, yt, key), repeats=repeats)
            timings[f"train_step_ir_drop_write{suffix}"] = t_fstep
            ratios[f"train_ir_drop_write_vs_digital{suffix}"] = t_fstep["median"] / t_dstep["median"]

    # -- vmap over samples vs a Python loop (MLP on digits-sized inputs) -------
    mlp = models.MLP(64, hidden=size["mlp_hidden"], num_classes=10, rngs=nnx.Rngs(0))
    mstate, _, mprog, mana = forward_fns(mlp, hw)
    xm = jax.random.normal(key, (256, 64), jnp.float32)

    @jax.jit
    def one(k):
        return mana(mstate, mprog(mstate, hw, k), hw, k, xm)

    many = jax.jit(jax.vmap(one))
    S_v = size["vmap_samples"]
    vkeys = jax.random.split(jax.random.key(2), S_v)
    t_vmap = timeit(lambda: many(vkeys), repeats=repeats)
    t_loop = timeit(lambda: [one(k) for k in vkeys], repeats=repeats)
    ratios["vmap_vs_loop_speedup"] = t_loop["median"] / t_vmap["median"]
    v = np.asarray(many(vkeys))
    lp = np.stack([np.asarray(one(k)) for k in vkeys])
    checks["vmap_equals_loop"] = bool(np.allclose(v, lp, rtol=1e-4, atol=1e-5 * np.abs(lp).max()))
    timings.update(mc_vmap=t_vmap, mc_loop=t_loop)

    # -- scaling -----------------------------------------------------------------
    scaling = {}
    tiles = size["tiles"]
    W = jax.random.normal(key, (256, 256), jnp.float32) * 0.1
    from crossjax import crossbar

    t_tiles = []
    for t in tiles:
        cfg = hw.replace(array=hw.array.replace(rows=t, cols=t))
        f = jax.jit(crossbar.program)
        t_tiles.append(timeit(lambda: f(W, cfg, key), repeats=repeats)["median"])
    scaling["program_256x256_vs_tile"] = {"tile": list(tiles), "seconds": t_tiles, "exponent": slope(tiles, t_tiles)}
    samples = size["samples"]
    t_s, mem_s = [], []
    for s in samples:
        ks = jax.random.split(key, s)
        compiled = many.lower(ks).compile()
        t_s.append(timeit(lambda: compiled(ks), repeats=repeats)["median"])
        mem_s.append(_compiled_bytes(compiled))
    scaling["mlp_samples"] = {
        "samples": list(samples),
        "seconds": t_s,
        "exponent": slope(samples, t_s),
        "xla_bytes": mem_s,
        "memory_exponent": slope(samples, mem_s),
        "xla_bytes_per_sample": (mem_s[-1] - mem_s[0]) / (samples[-1] - samples[0]),
    }
    batches = size["batches"]
    t_b = []
    for b in batches:
        xb = jax.random.normal(key, (b, 32, 32, 3), jnp.float32)
        t_b.append(timeit(lambda: analog(state, prog, hw, key, xb), repeats=repeats)["median"])
    scaling["vgg11_analog_batch"] = {"batch": list(batches), "seconds": t_b, "exponent": slope(batches, t_b)}

    if not quick:  # minutes of compilation and Newton solves: not in the CI run (tests check the physics)
        out["nonlinear"] = _nonlinear_cells(size, hw, key, ratios, checks, timings)

    if not quick:
        out["study_seconds"] = _study_seconds()
    out.update(ratios=ratios, checks=checks, timings=timings, scaling=scaling, peak_rss_mib=peak_rss_mib())
    return out


if __name__ == "__main__":
    run_from_command_line(run, __doc__)
