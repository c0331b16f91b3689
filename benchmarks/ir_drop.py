"""What the exact IR drop costs in Monte Carlo and training, against the same runs without it.

The ratios of the faster-exact-solve goals, each against a baseline timed in
the same process (``rram`` preset: 64x64 tiles, 2 % write and 1 % read noise,
stuck cells, 32 levels, 8-bit DAC/ADC, 1 ohm wires; "IR drop off" is the same
config with ideal wires):

- ``mc_mlp_ir_on_vs_off``: one Monte Carlo sample (program + read the digits
  test set) of an MLP 64-256-256-10, ``S`` samples vmapped; goal <= 1.3.
- ``train_mlp_ir_vs_digital``: a batch-64 training step of that MLP with the
  exact IR drop and its exact gradient over its digital step; goal <= 15.
  ``train_mlp_ir_off_vs_digital`` is the same step with ideal wires (what the
  IR drop adds to is not the IR drop).
- full mode: ``mc_vgg11_ir_on_vs_off`` (VGG11 width 1/4, 256 inputs per sample; goal <= 1.1)
  and ``train_vgg11_ir_vs_digital`` (batch 128; goal <= 5).
- ``geff_exponent``: slope of log time vs log n of one n x n ``G_eff``
  (float64, n = 256..1024 in full mode; goal < 3). Quick mode records
  ``geff_exponent_32_128`` instead (the trend, no goal).

``profile`` splits the IR drop's share of each: the ``G_eff`` sweeps alone at
the array counts the model runs them with (one batched sweep of all layers'
tiles when programming a sample; one per layer, with its gradient, in
training), so the note can say where the time goes.

Correctness checks (fail the run): the IR-on Monte Carlo logits and training
loss are finite, and the profiled ``G_eff`` equals the programmed state's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from benchmarks.common import forward_fns, run_from_command_line, slope, timeit, train_steps
from crossjax import circuit, crossbar, data, layers, models, presets

GOALS = {
    "mc_mlp_ir_on_vs_off": 1.3,
    "train_mlp_ir_vs_digital": 15.0,
    "mc_vgg11_ir_on_vs_off": 1.1,
    "train_vgg11_ir_vs_digital": 5.0,
    "geff_exponent": 3.0,
}

SIZES = {  # quick (CI) vs full
    True: dict(samples=4, repeats=5, train_repeats=10, geff_n=(32, 64, 128), vgg=False),
    False: dict(samples=16, repeats=7, train_repeats=20, geff_n=(256, 512, 1024), vgg=True),
}


def _ideal_wires(hw):
    return hw.set({"array.parasitics": None})


def _mc_seconds(model, hw, x, keys, repeats) -> tuple[dict, jax.Array]:
    """Per-sample time of ``len(keys)`` vmapped samples (program + read ``x``), and the logits."""
    state, _, program, analog = forward_fns(model, hw)

    @jax.jit
    def samples(state, keys):
        return jax.vmap(lambda k: analog(state, program(state, hw, k), hw, k, x))(keys)

    t = timeit(lambda: samples(state, keys), repeats=repeats)
    S = keys.shape[0]
    return {k: (v / S if k != "runs" else v) for k, v in t.items()}, samples(state, keys)


def _train_seconds(make_model, hw, x, y, repeats) -> tuple[dict, float]:
    """Median step time of ``make_model()`` trained on ``(x, y)`` (``hw=None``: digital) and the last loss."""
    model = make_model()
    step = train_steps(model, hw)
    opt = nnx.Optimizer(model, optax.sgd(1e-3), wrt=nnx.Param)
    layers.set_mode(model, "digital") if hw is None else layers.set_mode(model, "train", hw)
    key = jax.random.key(1)
    t = timeit(lambda: step(model, opt, x, y, key), repeats=repeats)
    return t, float(step(model, opt, x, y, key))


def _layer_states(model, hw, key) -> list:
    """Each crossbar layer's programmed ``CrossbarState`` (conductances ``g`` (P, Kt, Nt, R, C), as
    a training step writes them, and their ``g_eff``)."""
    out = []
    for i, (_, layer) in enumerate(layers.crossbar_layers(model)):
        out.append(crossbar.program(layer.crossbar_weights(), hw, jax.random.fold_in(key, i)))
    return out


def _profile(model, hw, key, repeats, checks) -> dict:
    """``G_eff`` alone at the model's array counts: all layers in one sweep (a Monte Carlo
    sample's programming), and per layer forward and with its gradient (a training step)."""
    p = hw.array.parasitics
    states = _layer_states(model, hw, key)
    gs = [s.g.reshape((-1,) + s.g.shape[-2:]) for s in states]
    all_g = jnp.concatenate(gs)
    interval = circuit.sweep_interval(all_g, p)
    geff = jax.jit(lambda g: circuit.effective_conductance(g, p, interval=interval))
    out = {
        "arrays_per_layer": [int(g.shape[0]) for g in gs],
        "geff_all_layers_one_sweep": timeit(lambda: geff(all_g), repeats=repeats),
    }
    err = max(
        float(jnp.max(jnp.abs(geff(g) - s.g_eff.reshape(g.shape)))) / float(jnp.max(s.g_eff))
        for g, s in zip(gs, states)
    )
    checks["profile_geff_equals_programmed"] = err < 1e-5
    grad = jax.jit(jax.grad(lambda g, w: jnp.sum(w * circuit.effective_conductance(g, p, interval=interval))))
    per_layer_fwd, per_layer_grad = [], []
    for g in gs:
        w = jax.random.normal(key, g.shape, g.dtype)
        per_layer_fwd.append(timeit(lambda: geff(g), repeats=repeats)["median"])
        per_layer_grad.append(timeit(lambda: grad(g, w), repeats=repeats)["median"])
    out.update(
        geff_per_layer_forward_s=per_layer_fwd,
        geff_per_layer_with_gradient_s=per_layer_grad,
        geff_training_step_s=float(sum(per_layer_grad)),
    )
    return out


def _mlp_goals(size, hw, ratios, checks, timings) -> dict:
    test = data.load_dataset("digits", split="test")
    x = jnp.asarray(test.x.reshape(len(test), -1), jnp.float32)
    y = jnp.asarray(test.y)
    model = models.MLP(64, (256, 256), 10, rngs=nnx.Rngs(0))
    keys = jax.random.split(jax.random.key(0), size["samples"])
    t_off, _ = _mc_seconds(model, _ideal_wires(hw), x, keys, size["repeats"])
    t_on, logits = _mc_seconds(model, hw, x, keys, size["repeats"])
    checks["mc_mlp_ir_on_finite"] = bool(jnp.all(jnp.isfinite(logits)))
    ratios["mc_mlp_ir_on_vs_off"] = t_on["median"] / t_off["median"]

    def make():
        return models.MLP(64, (256, 256), 10, rngs=nnx.Rngs(0))

    xb, yb = x[:64], y[:64]
    t_dig, _ = _train_seconds(make, None, xb, yb, size["train_repeats"])
    t_ioff, _ = _train_seconds(make, _ideal_wires(hw), xb, yb, size["train_repeats"])
    t_ion, loss = _train_seconds(make, hw, xb, yb, size["train_repeats"])
    checks["train_mlp_ir_loss_finite"] = bool(np.isfinite(loss))
    ratios["train_mlp_ir_vs_digital"] = t_ion["median"] / t_dig["median"]
    ratios["train_mlp_ir_off_vs_digital"] = t_ioff["median"] / t_dig["median"]
    timings.update(
        mc_mlp_sample_ir_off=t_off,
        mc_mlp_sample_ir_on=t_on,
        train_mlp_digital=t_dig,
        train_mlp_ir_off=t_ioff,
        train_mlp_ir_on=t_ion,
    )
    prof = _profile(model, hw, jax.random.key(2), size["repeats"], checks)
    # the IR drop's part of each run, and the share of it the G_eff sweeps account for
    prof["mc_ir_part_s"] = t_on["median"] - t_off["median"]
    prof["train_ir_part_s"] = t_ion["median"] - t_ioff["median"]
    return {
        "model": "MLP 64-256-256-10",
        "inputs": int(x.shape[0]),
        "samples": int(keys.shape[0]),
        "train_batch": 64,
        "profile": prof,
    }


def _vgg_goals(hw, ratios, checks, timings) -> dict:
    key = jax.random.key(0)
    x = jax.random.normal(key, (256, 32, 32, 3), jnp.float32)  # a sample reads many inputs, as Monte Carlo does
    model = models.vgg11(10, width=0.25, rngs=nnx.Rngs(0))
    keys = jax.random.split(key, 2)
    t_off, _ = _mc_seconds(model, _ideal_wires(hw), x, keys, 3)
    t_on, logits = _mc_seconds(model, hw, x, keys, 3)
    checks["mc_vgg11_ir_on_finite"] = bool(jnp.all(jnp.isfinite(logits)))
    ratios["mc_vgg11_ir_on_vs_off"] = t_on["median"] / t_off["median"]
    xt = jax.random.normal(key, (128, 32, 32, 3), jnp.float32)
    yt = jax.random.randint(jax.random.key(1), (128,), 0, 10)

    def make():
        return models.vgg11(10, width=0.25, rngs=nnx.Rngs(0))

    t_dig, _ = _train_seconds(make, None, xt, yt, 3)
    t_ion, loss = _train_seconds(make, hw, xt, yt, 3)
    checks["train_vgg11_ir_loss_finite"] = bool(np.isfinite(loss))
    ratios["train_vgg11_ir_vs_digital"] = t_ion["median"] / t_dig["median"]
    timings.update(
        mc_vgg11_sample_ir_off=t_off, mc_vgg11_sample_ir_on=t_on, train_vgg11_digital=t_dig, train_vgg11_ir_on=t_ion
    )
    return {"model": "VGG11 width 1/4", "mc_inputs": 256, "train_batch": 128}


def _geff_scaling(sizes, repeats, ratios, timings, name="geff_exponent") -> dict:
    p = circuit.Parasitics(r_wire_row=1.0, r_wire_col=1.0)
    seconds = []
    for n in sizes:
        G = jax.random.uniform(jax.random.key(n), (n, n), jnp.float64, 1e-5, 1e-4)
        f = jax.jit(lambda g: circuit.effective_conductance(g, p, interval=circuit.sweep_interval(G, p)))
        seconds.append(timeit(lambda: f(G), repeats=repeats)["median"])
    ratios[name] = slope(sizes, seconds)
    timings["geff_float64"] = dict(zip(map(str, sizes), seconds))
    return {"n": list(sizes), "seconds": seconds}


def run(quick: bool = False) -> dict:
    jax.config.update("jax_enable_x64", True)  # the float64 scaling; the networks stay float32
    size = SIZES[quick]
    hw = presets.get("rram")
    ratios, checks, timings = {}, {}, {}
    out = {"hardware": "rram preset (ideal wires for 'IR drop off')"}
    out["mlp"] = _mlp_goals(size, hw, ratios, checks, timings)
    if size["vgg"]:
        out["vgg11"] = _vgg_goals(hw, ratios, checks, timings)
    # the goal is for n = 256..1024 (full mode); the quick sizes only show the trend
    out["geff_scaling"] = _geff_scaling(
        size["geff_n"], 3, ratios, timings, "geff_exponent_32_128" if quick else "geff_exponent"
    )
    out["goals"] = {
        k: {"measured": ratios[k], "goal": g, "met": ratios[k] < g if k == "geff_exponent" else ratios[k] <= g}
        for k, g in GOALS.items()
        if k in ratios
    }
    print("\n| goal | measured | target |\n| --- | --- | --- |")
    for k, v in out["goals"].items():
        print(f"| {k} | {v['measured']:.3g} | {'<' if k == 'geff_exponent' else '<='} {v['goal']:g} |")
    out.update(ratios=ratios, checks=checks, timings=timings)
    return out


if __name__ == "__main__":
    run_from_command_line(run, __doc__)
