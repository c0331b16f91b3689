"""Timing and memory helpers shared by the benchmark scripts.

Every benchmark reports the median (and min/max) of ``repeats`` timed runs after
``warmup`` untimed runs, each run ending with ``jax.block_until_ready`` so
asynchronous dispatch is not mistaken for speed.
"""
from __future__ import annotations

import resource
import statistics
import time
from typing import Any, Callable

import jax


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
