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
