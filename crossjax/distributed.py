"""Several processes (hosts) as one job: start-up, the writing process, broadcasts.

crossjax uses JAX's own multi-process runtime (``jax.distributed``): after
:func:`initialize`, ``jax.devices()`` lists the devices of every process, and
:func:`crossjax.montecarlo.evaluate` shards its samples over all of them.
Everything else a study does is decided by process 0 and sent to the others,
so the processes never disagree on what to run and only process 0 touches the
output directory:

- process 0 reads (or starts) ``results.json`` and sends it to every process
  (:func:`broadcast_json`), or sends the error that stopped it, which every
  process then raises;
- process 0 trains (resuming from its checkpoint), the others receive the
  trained variables (:func:`broadcast_variables`), bit for bit;
- the Monte Carlo samples run on every process's devices; every process gets
  the full accuracies; process 0 writes the files.

So the other processes need no shared file system, and a killed job restarted
with the same arguments resumes from what process 0 wrote.
"""

from __future__ import annotations

import json

import jax
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils

__all__ = ["initialize", "is_writer", "is_multiprocess", "broadcast_json", "broadcast_variables"]


def initialize(
    coordinator_address: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> int:
    """Join (or start) a multi-process JAX job; call before any JAX computation.

    CPU processes need a collectives implementation, so this selects Gloo
    (``jax_cpu_collectives_implementation``; it changes nothing on a GPU or
    TPU), then calls ``jax.distributed.initialize``. With no arguments JAX
    reads the cluster environment (SLURM, Open MPI, TPU pods, Kubernetes) and
    ``JAX_COORDINATOR_ADDRESS``.

    Args:
      coordinator_address: ``"host:port"`` of process 0's coordinator.
      num_processes: the number of processes in the job.
      process_id: this process's index, ``0 <= process_id < num_processes``.

    Returns:
      ``jax.process_count()``.

    Raises:
      ValueError: a count or index out of range, or only some of the three
        given where the environment cannot supply the rest.

    Example:
      >>> from crossjax import distributed
      >>> # distributed.initialize("10.0.0.1:12345", num_processes=4, process_id=rank)
    """
    for name, value in (("num_processes", num_processes), ("process_id", process_id)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"num_processes must be >= 1, got {num_processes}")
    if num_processes is not None and process_id is not None and process_id >= num_processes:
        raise ValueError(f"process_id={process_id} must be below num_processes={num_processes}")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id
        )
    except (ValueError, RuntimeError) as e:
        raise ValueError(
            f"jax.distributed.initialize failed ({e}); pass --coordinator HOST:PORT, "
            "--num-processes N and --process-id I (or run under SLURM/MPI, which JAX "
            "detects), before any JAX computation"
        ) from None
    return jax.process_count()


def is_multiprocess() -> bool:
    """Whether this process is one of several (``jax.process_count() > 1``).

    Returns:
      ``False`` in a single-process run.

    Example:
      >>> from crossjax import distributed
      >>> distributed.is_multiprocess()
      False
    """
    return jax.process_count() > 1


def is_writer() -> bool:
    """Whether this process writes results: ``jax.process_index() == 0``
    (always true in a single-process run).

    Returns:
      ``True`` on process 0 only.

    Example:
      >>> from crossjax import distributed
      >>> distributed.is_writer()
      True
    """
    return jax.process_index() == 0


def _broadcast(tree):
    """Process 0's leaves (NumPy arrays of the same shape and dtype everywhere) on every process.

    ``broadcast_one_to_all`` sums the source's values with zeros; sent as raw
    bytes (``uint8``) the sum is exact for every dtype (a float sum would turn
    ``-0.0`` into ``0.0``)."""
    leaves, treedef = jax.tree.flatten(tree)
    raw = [np.ascontiguousarray(a).reshape(-1).view(np.uint8) for a in leaves]
    got = multihost_utils.broadcast_one_to_all(raw)
    return jax.tree.unflatten(treedef, [np.asarray(g).view(a.dtype).reshape(a.shape) for g, a in zip(got, leaves)])


def broadcast_json(obj=None):
    """Process 0's JSON-able ``obj`` on every process (a collective: every process calls it).

    Args:
      obj: the value to send (read on process 0 only; the others pass anything).

    Returns:
      Process 0's ``obj`` (decoded from JSON: tuples become lists), on every
      process; ``obj`` itself in a single-process run.

    Example:
      >>> from crossjax import distributed
      >>> distributed.broadcast_json({"step": 3, "done": (1, 2)})   # one process: obj itself
      {'step': 3, 'done': (1, 2)}
    """
    if not is_multiprocess():
        return obj
    data = np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8) if is_writer() else np.zeros(0, np.uint8)
    n = int(_broadcast(np.array(data.size, dtype=np.int64)))
    if not is_writer():
        data = np.zeros(n, np.uint8)
    return json.loads(_broadcast(data).tobytes().decode())


def broadcast_variables(model, *filters) -> None:
    """Give every process process 0's variables of ``model`` (in place; a collective).

    The variables are copied bit for bit; the model structure (of the
    variables selected) must be the same on every process.

    Args:
      model: an ``nnx.Module`` built the same way on every process.
      *filters: ``nnx`` filters of the variables to copy; default
        ``nnx.Param, nnx.BatchStat`` (what training changes).

    Example:
      >>> from flax import nnx
      >>> from crossjax import distributed
      >>> model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
      >>> before = model.kernel[...]
      >>> distributed.broadcast_variables(model)   # one process: nothing to copy
      >>> bool((model.kernel[...] == before).all())
      True
    """
    if not is_multiprocess():
        return

    state = nnx.state(model, nnx.Any(*(filters or (nnx.Param, nnx.BatchStat))))
    nnx.update(model, jax.tree.map(jax.numpy.asarray, _broadcast(jax.tree.map(np.asarray, state))))
