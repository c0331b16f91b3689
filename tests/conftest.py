"""Test configuration.

- float64 is enabled globally so exactness checks are meaningful; float32 paths
  stay tested by passing float32 arrays explicitly (JAX keeps their dtype even
  with x64 enabled).
- OpenBLAS (behind JAX's CPU Cholesky / triangular solves) is limited to one
  thread: on a small, shared machine its spinning threads made those calls
  50-1000x slower. Set before numpy/jax are imported.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)


import gc  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs(request):
    """In a slow run (``-m slow``), drop JAX's compiled programs after every test module:
    one process for all slow tests otherwise held 6.5 GB of them by its end (peak RSS,
    2026-12-03). The default run keeps them: its modules share compiled programs."""
    yield
    markexpr = request.config.getoption("markexpr", "") or ""
    if "slow" in markexpr and "not slow" not in markexpr:
        jax.clear_caches()
        gc.collect()
