"""Per-backend choices: one small policy table for the CPU-tuned kernels.

Several kernels were tuned by measurement on XLA CPU (``benchmarks/README.md``).
:func:`policy` names each such choice once per backend, so that a GPU or a TPU
gets the plain form unless a measurement on that backend says otherwise:

=======================  ==============================  =========================
choice                   CPU (today's code)              GPU / TPU (plain form)
=======================  ==============================  =========================
``row_tile_sum``         ``"pairwise"``: halving adds    ``"reduce"``: ``jnp.sum``
                         (``crossbar._sum_row_tiles``)   over the row-tile axis
``tile_product``         ``"flat"``: one flat batched    ``"einsum"``: one einsum
                         matmul (``crossbar.             over the tiles
                         _tile_products``)
``read_noise_generator`` ``"counter"``                   ``"threefry"``
                         (``crossjax.counter_rng``)      (``jax.random.normal``)
``geff_chunk_bytes``     ``4 MiB`` (about an L2 cache,   ``None``: one sweep of
                         ``circuit.solver.CHUNK_BYTES``) all arrays
``openblas_threads``     ``1`` (at import, unless        ``None``: leave it
                         :func:`accelerator_installed`)
``memory_fraction``      ``0.5`` of free host memory     ``0.6`` of free device
                                                         memory
=======================  ==============================  =========================

The kernels read :func:`policy` (of ``jax.default_backend()``) when they are
traced: ``crossbar`` the row-tile sum and the tile product, ``circuit.solver``
the ``G_eff`` chunks, :mod:`crossjax.montecarlo` the memory share (with
:func:`memory_bytes`). ``tests/test_backend.py`` checks that the plain forms
compute what the CPU forms compute (values and gradients). The CPU forms won
by measurement on XLA CPU (``benchmarks/README.md``); the plain forms are
unmeasured on an accelerator so far, and stay plain until a measurement there
says otherwise. ``read_noise_generator`` is recorded only: the generator
changes the numbers drawn (not their distribution), and a study's numbers must
not depend on the machine, so ``device.read_noise.generator`` keeps its
``"counter"`` default on every backend.
"""

from __future__ import annotations

import dataclasses
import os

__all__ = ["Policy", "policy", "plain", "POLICIES", "memory_bytes", "host_memory_bytes", "accelerator_installed"]


@dataclasses.dataclass(frozen=True)
class Policy:
    """The kernel choices for one JAX backend (see the module table).

    Attributes:
      backend: ``"cpu"``, ``"gpu"`` or ``"tpu"``.
      row_tile_sum: ``"pairwise"`` (halving adds, fused by XLA CPU; its
        reduce over a leading axis is several times slower) or ``"reduce"``.
      tile_product: ``"flat"`` (one batched matmul ``(Kt, B, R) @ (Kt, R, P*M)``
        with the batch axes flattened) or ``"einsum"``.
      read_noise_generator: ``"counter"`` or ``"threefry"``.
      geff_chunk_bytes: sweep-state bytes of the arrays whose ``G_eff`` is
        computed at once, ``None`` for one sweep over all arrays.
      openblas_threads: the ``OPENBLAS_NUM_THREADS`` limit, ``None`` to leave it.
      memory_fraction: share of the free memory (:func:`memory_bytes`) that
        Monte Carlo chunks may fill.
    """

    backend: str
    row_tile_sum: str
    tile_product: str
    read_noise_generator: str
    geff_chunk_bytes: int | None
    openblas_threads: int | None
    memory_fraction: float


_PLAIN = dict(
    row_tile_sum="reduce",
    tile_product="einsum",
    read_noise_generator="threefry",
    geff_chunk_bytes=None,
    openblas_threads=None,
    memory_fraction=0.6,
)

#: backend name -> :class:`Policy`
POLICIES = {
    "cpu": Policy(
        "cpu",
        row_tile_sum="pairwise",
        tile_product="flat",
        read_noise_generator="counter",
        geff_chunk_bytes=4 * 2**20,
        openblas_threads=1,
        memory_fraction=0.5,
    ),
    "gpu": Policy("gpu", **_PLAIN),
    "tpu": Policy("tpu", **_PLAIN),
}
_ALIASES = {"cuda": "gpu", "rocm": "gpu"}


def policy(backend: str | None = None) -> Policy:
    """The :class:`Policy` of ``backend``.

    Args:
      backend: ``"cpu"``, ``"gpu"`` (``"cuda"``, ``"rocm"``) or ``"tpu"``; default
        ``jax.default_backend()`` (this initializes JAX's backends).

    Returns:
      The frozen :class:`Policy` of that backend.

    Raises:
      ValueError: an unknown backend name.

    Example:
      >>> from crossjax import backend
      >>> backend.policy("cpu").row_tile_sum, backend.policy("cpu").geff_chunk_bytes   # 4 MiB
      ('pairwise', 4194304)
      >>> backend.policy("cuda") is backend.policy("gpu")
      True
    """
    if backend is None:
        import jax

        backend = jax.default_backend()
    if not isinstance(backend, str):
        raise ValueError(f"backend must be a string such as 'cpu', 'gpu' or 'tpu', got {backend!r}")
    name = _ALIASES.get(backend.lower(), backend.lower())
    if name not in POLICIES:
        raise ValueError(
            f"backend={backend!r} has no policy; choose one of {', '.join(POLICIES)} (or 'cuda'/'rocm' for 'gpu')"
        )
    return POLICIES[name]


def plain(backend: str) -> Policy:
    """The plain forms (a GPU's and a TPU's today) under the name ``backend``, with
    ``backend``'s own memory share: for comparing the forms on one machine.

    Args:
      backend: a name :func:`policy` knows.

    Returns:
      A :class:`Policy` with the plain kernel forms.

    Example:
      >>> from crossjax import backend
      >>> p = backend.plain("cpu")
      >>> p.backend, p.row_tile_sum, p.tile_product, p.memory_fraction   # CPU's memory share
      ('cpu', 'reduce', 'einsum', 0.5)
    """
    own = policy(backend)
    return Policy(own.backend, **{**_PLAIN, "memory_fraction": own.memory_fraction})


def host_memory_bytes() -> int:
    """Free physical host memory in bytes (``sysconf``; 8 GiB where it is unknown).

    Returns:
      Bytes of free physical memory.

    Example:
      >>> from crossjax import backend
      >>> backend.host_memory_bytes() > 0
      True
    """
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def memory_bytes(device, local_devices=None) -> int:
    """Free memory of ``device`` in bytes.

    An accelerator's own figure where the backend reports one
    (``device.memory_stats()["bytes_limit"] - ["bytes_in_use"]``); otherwise
    (XLA CPU reports none) the free host memory shared by the local devices of
    the same platform (forced host devices share one memory).

    Args:
      device: a ``jax.Device`` (anything with ``platform`` and ``memory_stats()``).
      local_devices: the devices that share the host's memory (default
        ``jax.local_devices()``); only used when the device reports nothing.

    Returns:
      Free bytes (``>= 0``).

    Example:
      >>> from crossjax import backend
      >>> class Device:   # an accelerator that reports its memory
      ...     platform = "gpu"
      ...     def memory_stats(self):
      ...         return {"bytes_limit": 100, "bytes_in_use": 40}
      >>> backend.memory_bytes(Device())
      60
    """
    try:
        stats = device.memory_stats() or {}
    except Exception:  # backends without memory stats raise (Unimplemented) or return None
        stats = {}
    if "bytes_limit" in stats:
        return max(0, int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)))
    if local_devices is None:
        import jax

        local_devices = jax.local_devices()
    platform = getattr(device, "platform", None)
    n_local = max(1, sum(1 for d in local_devices if getattr(d, "platform", None) == platform))
    return host_memory_bytes() // n_local


def accelerator_installed() -> bool:
    """Whether JAX will (probably) run on an accelerator, decided without starting JAX.

    ``JAX_PLATFORMS``, where set, decides: its first entry is not ``cpu``.
    Otherwise: a JAX accelerator plugin is installed (the ``jax_plugins``
    entry points or namespace package, as JAX discovers them, or ``libtpu``).

    Returns:
      ``True`` where JAX's default backend will be a GPU or TPU.

    Example:
      >>> from crossjax import backend
      >>> isinstance(backend.accelerator_installed(), bool)   # machine-dependent value
      True
    """
    platforms = os.environ.get("JAX_PLATFORMS", "").strip()
    if platforms:
        return platforms.split(",")[0].strip().lower() != "cpu"
    import importlib.metadata
    import importlib.util

    try:
        if importlib.metadata.entry_points(group="jax_plugins"):
            return True
    except Exception:  # a broken metadata entry must not break the import of crossjax
        pass
    try:
        import pkgutil

        import jax_plugins  # namespace package of the CUDA / ROCm plugins

        if any(pkgutil.iter_modules(jax_plugins.__path__)):
            return True
    except ImportError:
        pass
    return importlib.util.find_spec("libtpu") is not None
