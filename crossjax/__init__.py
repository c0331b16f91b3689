"""crossjax: differentiable simulation of DNNs on analog resistive crossbar arrays.

Importing crossjax limits OpenBLAS (which serves JAX's CPU Cholesky and
triangular solves, the core of the exact IR-drop solve) to one thread: the
solves are many small (C x C) factorizations, batched by XLA, and OpenBLAS
threads competing with XLA's own thread pool made them 30-100x slower on a
2-core machine (0.2 s vs 20 s to program a 256x256 layer with wires).
Set ``OPENBLAS_NUM_THREADS`` yourself before importing to override.
"""
import os as _os

_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _limit_loaded_blas() -> None:
    """Apply the same limit to BLAS libraries loaded before crossjax was imported."""
    if _os.environ.get("OPENBLAS_NUM_THREADS") != "1":
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return
    threadpool_limits(limits=1, user_api="blas")


_limit_loaded_blas()

__version__ = "0.1.0"
