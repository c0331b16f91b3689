"""Timing and memory helpers, and the jitted model functions, shared by the benchmark scripts.

Every benchmark reports the median (and min/max) of ``repeats`` timed runs after
``warmup`` untimed runs, each run ending with ``jax.block_until_ready`` so
asynchronous dispatch is not mistaken for speed.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from typing import Any, Callable

import jax
import numpy as np
import optax
from flax import nnx

from crossjax import layers


def timeit(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1) -> dict:
    """Median/min/max wall time in seconds of ``fn()`` over ``repeats`` runs."""
    for _ in range(warmup):
        jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "runs": repeats}


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux ``ru_maxrss`` is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def slope(xs, ys) -> float:
    """Least-squares slope of log(y) vs log(x): the empirical scaling exponent."""
    return float(np.polyfit(np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float)), 1)[0])


def forward_fns(model, hardware):
    """Jitted pure functions (program, analog forward, digital forward) of a split model."""
    model.eval()
    layers.set_mode(model, "digital")
    graphdef, state = nnx.split(model)

    @jax.jit
    def digital(state, x):
        return nnx.merge(graphdef, state)(x)

    @jax.jit
    def program(state, hw, key):
        return layers.program_model(nnx.merge(graphdef, state), hw, key)

    @jax.jit
    def analog(state, prog, hw, key, x):
        m = nnx.merge(graphdef, state)
        layers.load_program(m, prog)
        layers.set_mode(m, "hardware", hw)
        return m(x, rngs=nnx.Rngs(hardware=key))

    return state, digital, program, analog


def train_steps(model, hardware, lr=1e-3):
    """Jitted digital and hardware-aware training steps on (model, optimizer)."""

    def loss_fn(m, x, y, rngs):
        logits = m(x, rngs=rngs)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @nnx.jit
    def step(m, opt, x, y, key):
        loss, grads = nnx.value_and_grad(loss_fn)(m, x, y, nnx.Rngs(hardware=key))
        opt.update(m, grads)
        return loss

    return step


def run_from_command_line(run: Callable[[bool], dict], doc: str) -> None:
    """``python benchmarks/NAME.py [--quick]``: call ``run(quick)`` and print its JSON."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(json.dumps(run(args.quick), indent=2, default=float))
