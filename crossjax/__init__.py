"""crossjax: differentiable simulation of DNNs on analog resistive crossbar arrays.

Importing crossjax limits OpenBLAS (which serves JAX's CPU LU factorizations
and triangular solves; the exact IR-drop solve renormalizes with one every
block of rows) to one thread: they are many small (C x C) problems, batched by
XLA, and OpenBLAS threads competing with XLA's own thread pool made them many
times slower on a 2-core machine (README, "Performance notes").
Set ``OPENBLAS_NUM_THREADS`` yourself before importing to override. The limit
is the CPU row of :func:`crossjax.backend.policy` (``openblas_threads``); it is
applied at import, before JAX has chosen a backend, so it is skipped where JAX
will run on an accelerator: ``JAX_PLATFORMS`` names no ``cpu`` first, or
(``JAX_PLATFORMS`` unset) a JAX GPU/TPU plugin is installed
(:func:`crossjax.backend.accelerator_installed`).
"""

import os as _os

from crossjax import backend as _backend

if not _backend.accelerator_installed():
    _os.environ.setdefault("OPENBLAS_NUM_THREADS", str(_backend.POLICIES["cpu"].openblas_threads))


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

from crossjax.config_checks import checked  # noqa: E402  (opt-in run-time checks under jit)

__all__ = ["checked", "convert", "__version__"]


def __getattr__(name):
    # crossjax.convert without importing Flax at ``import crossjax`` time
    if name == "convert":
        from crossjax.conversion import convert

        return convert
    raise AttributeError(f"module 'crossjax' has no attribute {name!r}")
