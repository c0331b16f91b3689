"""Monte Carlo evaluation of a crossbar model over many hardware samples.

One Monte Carlo sample ``s`` with key ``k_s`` is

    state_s  = program_model(model, hardware, fold_in(k_s, 0))       (once)
    logits_s = model_hardware(x_batch; state_s, read key fold_in(fold_in(k_s, 1), batch))

and the accuracy of sample ``s`` is the fraction of ``argmax(logits_s) == y``.
With ``adc.range="calibrated"`` each sample's ADC full scales are then set once
from ``calibration_x`` (``layers.calibrate_model``, read key
``fold_in(k_s, 2)``), before any evaluation batch.
:func:`evaluate` splits the model with ``nnx.split`` and ``jax.vmap``-s these
two pure functions over the keys; the samples axis is sharded over a 1-D
``jax.sharding.Mesh`` (axis ``"samples"``, default: all ``jax.devices()``) with
``NamedSharding``, the weights and data are replicated. Each sample is
programmed once and its state reused for every data batch (a Python loop over
*batches*, never over samples). When the programmed states and activations of
all samples would not fit in memory, the samples are processed in chunks
(``chunk_size`` samples at a time, a multiple of the device count) chosen from
the bytes one sample needs (:func:`bytes_per_sample`: a traced estimate, and
XLA's compiled memory analysis of one sample when the estimate says memory is
tight).

Results do not depend on sharding or chunking: sample ``s`` always uses key
``keys[s]``.

Across hosts (``jax.distributed``)
----------------------------------
Run the same script in every process (tested: ``tests/test_distributed.py``,
2 and 4 CPU processes on localhost equal one process bit for bit)::

    import jax
    # CPU processes only: jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize()          # coordinator address / process id from the
                                          # cluster environment (SLURM, TPU pods, ...)
                                          # or pass coordinator_address=, num_processes=,
                                          # process_id= explicitly
    res = montecarlo.evaluate(model, hw, keys, x, y)   # default mesh: sample_mesh()
    if montecarlo.is_writer():                          # process 0 writes the results
        ...

``jax.devices()`` then lists the devices of all processes, so the default
mesh splits the samples axis over every device in the job. Every process must
pass the same ``keys`` (make them from the same seed) and the same evaluation
data ``x, y`` (process-local copies: each host loads the full test set itself,
which is replicated across the mesh; only the samples are distributed):
:func:`evaluate` compares checksums of ``keys``, ``x``, ``y`` and the batch and
chunk sizes across processes and raises ``ValueError`` when they differ
(``jax.device_put`` checks the weights and hardware config). Host values are
placed on the global mesh without a transfer between processes
(``jax.make_array_from_callback``: each process fills its own devices). With
``chunk_size=None`` every process sizes a chunk from its own free memory and
all take the smallest. The accuracies (and logits) are gathered to every
process (``jax.experimental.multihost_utils.process_allgather``), so each host
gets the full ``(S,)`` vector; write results from :func:`is_writer` only.
"""

from __future__ import annotations

import functools
import math
import zlib

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from jax.extend import core as jex_core
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from crossjax import backend, layers, readout
from crossjax.distributed import is_writer  # noqa: F401  (public here too: montecarlo.is_writer)

__all__ = [
    "evaluate",
    "digital_accuracy",
    "sample_mesh",
    "bytes_per_sample",
    "needs_calibration",
    "is_writer",
    "memory_budget_bytes",
    "peak_bytes",
]

AXIS = "samples"


def sample_mesh(devices=None) -> Mesh:
    """A 1-D mesh named ``"samples"`` over ``devices`` (default ``jax.devices()``)."""
    return Mesh(np.array(jax.devices() if devices is None else devices), (AXIS,))


def _check_data(x, y, batch_size):
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if np.ndim(y) != 1:
        raise ValueError(f"y must be a 1-D array of integer labels, got shape {np.shape(y)}")
    if np.shape(x)[0] != np.shape(y)[0] or np.shape(x)[0] == 0:
        raise ValueError(
            f"x and y must hold the same, non-zero number of examples, got {np.shape(x)[0]} and {np.shape(y)[0]}"
        )


def _batches(n, batch_size):
    """``(start, size)`` of each batch; the last batch is padded to ``batch_size``."""
    return [(s, min(batch_size, n - s)) for s in range(0, n, batch_size)]


def _pad_batch(a, start, size, batch_size):
    b = a[start : start + size]
    if size < batch_size:
        b = np.concatenate([b, np.repeat(b[-1:], batch_size - size, axis=0)], axis=0)
    return b


# ---------------------------------------------------------------------------
# the pure per-sample functions
# ---------------------------------------------------------------------------
def _program_fn(graphdef):
    def program(state, hardware, key):
        model = nnx.merge(graphdef, state)
        return layers.program_model(model, hardware, jax.random.fold_in(key, 0))

    return program


def _forward_fn(graphdef):
    def forward(state, program, hardware, key, batch_index, x):
        model = nnx.merge(graphdef, state)
        model.eval()
        layers.load_program(model, program)
        layers.set_mode(model, "hardware", hardware)
        read_key = jax.random.fold_in(jax.random.fold_in(key, 1), batch_index)
        return layers.run(model, x, read_key)

    return forward


def _calibrate_fn(graphdef):
    def calibrate(state, program, hardware, key, x):
        model = nnx.merge(graphdef, state)
        model.eval()
        layers.load_program(model, program)
        layers.set_mode(model, "hardware", hardware)
        layers.calibrate_model(model, x, rngs=nnx.Rngs(hardware=jax.random.fold_in(key, 2)))
        return nnx.state(model, layers.CrossbarVariable)

    return calibrate


def needs_calibration(hardware) -> bool:
    """Whether ``hardware`` has an ADC whose full scale is calibrated from data."""
    return readout.plan(hardware).needs_calibration


@functools.lru_cache(maxsize=16)
def _compiled(graphdef, sharded):
    """Jitted, vmapped (program, forward, calibrate) for one model structure and sharding.

    Cached so that evaluating many hardware configs of the same model (a study's
    sweep over noise strengths, wire resistances) reuses one compilation when
    only continuous config values (pytree leaves) change.
    """
    program = jax.jit(jax.vmap(_program_fn(graphdef), in_axes=(None, None, 0)), out_shardings=sharded)
    forward = jax.jit(jax.vmap(_forward_fn(graphdef), in_axes=(None, 0, None, 0, None, None)), out_shardings=sharded)
    calibrate = jax.jit(jax.vmap(_calibrate_fn(graphdef), in_axes=(None, 0, None, 0, None)), out_shardings=sharded)
    return program, forward, calibrate


def _tree_bytes(tree) -> int:
    return int(sum(math.prod(a.shape) * np.dtype(a.dtype).itemsize for a in jax.tree.leaves(tree)))


def _var_bytes(v) -> int:
    aval = getattr(v, "aval", None)
    try:
        return math.prod(aval.shape) * np.dtype(aval.dtype).itemsize
    except (AttributeError, TypeError):  # tokens, key types
        return 0


def _sub_jaxprs(eqn):
    """The jaxprs an equation runs (pjit, custom_jvp/vjp, scan and while bodies, cond branches)."""
    for p in eqn.params.values():
        for q in p if isinstance(p, (tuple, list)) else (p,):
            if isinstance(q, jex_core.ClosedJaxpr):
                yield q.jaxpr
            elif isinstance(q, jex_core.Jaxpr):
                yield q


def peak_bytes(jaxpr) -> int:
    """Peak bytes of the arrays ``jaxpr`` creates, if each is freed after its last use.

    Walks the equations in order keeping the live intermediates; an equation
    that runs a sub-jaxpr adds that jaxpr's own peak while it runs (a scan body
    once: XLA reuses the body's buffers across iterations). The inputs are not
    counted. An estimate of what XLA allocates, not a bound: XLA fuses most
    elementwise chains so that their arrays never exist, but its buffer
    schedule may keep arrays alive longer than their last use.

    Args:
      jaxpr: a ``jax.core.Jaxpr`` (``jax.make_jaxpr(f)(*args).jaxpr``).

    Returns:
      The peak, in bytes.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from crossjax import montecarlo
      >>> jaxpr = jax.make_jaxpr(lambda v: jnp.sin(v) * 2)(jnp.ones(1000, jnp.float32)).jaxpr
      >>> montecarlo.peak_bytes(jaxpr)   # sin's 4000 bytes are live while the product is made
      8000
    """
    last_use = {}
    for i, eqn in enumerate(jaxpr.eqns):
        for v in eqn.invars:
            if isinstance(v, jex_core.Var):
                last_use[v] = i
    for v in jaxpr.outvars:
        if isinstance(v, jex_core.Var):
            last_use[v] = len(jaxpr.eqns)
    live, peak, size = 0, 0, {}
    for i, eqn in enumerate(jaxpr.eqns):
        out = sum(_var_bytes(v) for v in eqn.outvars)
        inner = max((peak_bytes(sub) for sub in _sub_jaxprs(eqn)), default=0)
        peak = max(peak, live + inner + out)
        for v in eqn.outvars:
            if last_use.get(v, -1) > i:
                size[v] = _var_bytes(v)
                live += size[v]
        for v in {v for v in eqn.invars if isinstance(v, jex_core.Var)}:
            if v in size and last_use[v] == i:
                live -= size.pop(v)
    return peak


def bytes_per_sample(model: nnx.Module, hardware, x_batch, *, exact: bool = False) -> int:
    """Bytes one Monte Carlo sample needs: its programmed state plus the larger
    of the working memory of programming it and of one forward pass over
    ``x_batch``. The weights and data, shared by all samples, are not counted.

    ``exact=False`` traces only (nothing is compiled or run): the peak of live
    arrays in the traced jaxprs (:func:`peak_bytes`), which ignores XLA's
    fusion and buffer scheduling. On CPU, XLA's compiled figure was 0.22x-1.35x
    of it (VGG11, ResNet18, MLP; 2 to 134 MiB per sample): a guide, not a bound.

    ``exact=True`` compiles one sample's program and forward and reads XLA's
    memory analysis (output + temporary buffers). It includes the fixed overhead
    of a compiled function: ``S`` vmapped samples needed at most ``S`` times this
    in every case measured. Backends without a memory analysis fall back to the
    trace.
    """
    graphdef, state = nnx.split(model)
    key = jax.random.key(0)
    program, forward = _program_fn(graphdef), _forward_fn(graphdef)
    program_jaxpr, prog = jax.make_jaxpr(program, return_shape=True)(state, hardware, key)
    if exact:
        try:
            mp = jax.jit(program).lower(state, hardware, key).compile().memory_analysis()
            mf = jax.jit(forward).lower(state, prog, hardware, key, 0, x_batch).compile().memory_analysis()
            return int(
                mp.output_size_in_bytes + max(mp.temp_size_in_bytes, mf.temp_size_in_bytes) + mf.output_size_in_bytes
            )
        except (AttributeError, NotImplementedError, TypeError):  # no memory analysis on this backend
            pass
    forward_jaxpr = jax.make_jaxpr(forward)(state, prog, hardware, key, 0, x_batch)
    return _tree_bytes(prog) + max(peak_bytes(program_jaxpr.jaxpr), peak_bytes(forward_jaxpr.jaxpr))


# A chunk is sized from the traced estimate alone when this multiple of it fits
# (XLA's figure was at most 1.35x the trace); otherwise from the compiled one.
TRACE_MARGIN = 2


def _to_host(a) -> np.ndarray:
    """A (possibly multi-host sharded) array as a full NumPy array on every process."""
    if jax.process_count() > 1 and not a.is_fully_addressable:
        return np.asarray(multihost_utils.process_allgather(a, tiled=True))
    return np.asarray(a)


def memory_budget_bytes(device) -> int:
    """Bytes the samples may fill on ``device``: the backend policy's share
    (:func:`crossjax.backend.policy`: 60 % on an accelerator, 50 % on CPU) of
    its free memory (:func:`crossjax.backend.memory_bytes`: the device's own
    figure where the backend reports one, else the host's, shared by the local
    devices). :func:`evaluate` sizes its chunks by it unless given ``memory_budget``.

    Args:
      device: a ``jax.Device``.

    Returns:
      The budget in bytes.

    Example:
      >>> import jax
      >>> from crossjax import montecarlo
      >>> montecarlo.memory_budget_bytes(jax.devices()[0]) > 0
      True
    """
    return int(backend.policy(device.platform).memory_fraction * backend.memory_bytes(device))


def _is_key(a) -> bool:
    return isinstance(a, jax.Array) and jnp.issubdtype(a.dtype, jax.dtypes.prng_key)


def _put(tree, sharding):
    """``jax.device_put(tree, sharding)``, also for a sharding that spans processes.

    Single-process (``sharding.is_fully_addressable``): exactly ``device_put``.
    Across processes ``device_put`` takes host values (NumPy arrays, Python
    scalars, uncommitted arrays) that every process holds equally (it checks
    that, one collective per leaf); typed PRNG keys go through their key data
    and committed arrays through NumPy first.
    """
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)

    def leaf(a):
        if _is_key(a):
            return jax.random.wrap_key_data(leaf(jax.random.key_data(a)), impl=jax.random.key_impl(a))
        if isinstance(a, jax.Array) and (a.committed or not a.is_fully_addressable):
            if not a.is_fully_addressable:
                return jax.device_put(a, sharding)  # a reshard between global shardings
            a = np.asarray(a)
        return jax.device_put(a, sharding)

    return jax.tree.map(leaf, tree)


def _put_host(a: np.ndarray, sharding):
    """A host array every process holds equally as a global array (no check, no collective)."""
    if sharding.is_fully_addressable:
        return jax.device_put(a, sharding)
    return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])


def _put_keys(k, sharding):
    """Keys ``(S,)`` (typed) or ``(S, 2)`` (raw ``uint32``) on ``sharding``."""
    if sharding.is_fully_addressable:
        return jax.device_put(k, sharding)
    if _is_key(k):
        data = _put_host(np.asarray(jax.random.key_data(k)), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(k))
    return _put_host(np.asarray(k), sharding)


def _check_no_lu_deadlock(local, configs) -> None:
    """Refuse the IR-drop solve on several CPU devices of one process.

    With ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (N > 1) the
    sharded programming step of an IR-drop config never returns on jaxlib
    0.10.2: gdb shows every device's thread waiting in the LAPACK LU kernel
    (``jax::LuDecompositionKernel`` -> ``ParallelBatchMap`` ->
    ``BlockingCounter::Wait``) with XLA's worker threads idle (2 and 4 host
    devices, float32 and float64, every run). One CPU device per process works.
    """
    cpu = [d for d in local if d.platform == "cpu"]
    if len(cpu) > 1 and any(c.has_wires for c in configs):
        raise ValueError(
            f"montecarlo.evaluate: IR drop (hardware.array.parasitics) on {len(cpu)} CPU devices of one process "
            f"deadlocks in jaxlib {jax.__version__}'s batched LU kernel; use one CPU device per process: "
            "drop --devices (or XLA_FLAGS=--xla_force_host_platform_device_count), pass "
            "mesh=montecarlo.sample_mesh(jax.local_devices()[:1]), or run one process per device under "
            "jax.distributed (README: Monte Carlo across hosts)"
        )


def _allgather(value: np.ndarray) -> np.ndarray:
    """``value`` of every process stacked on a leading axis (a collective: every process calls it)."""
    return np.asarray(multihost_utils.process_allgather(value))


def _check_same_inputs(keys, x, y, batch_size, chunk_size) -> None:
    """Raise ``ValueError`` unless every process passed the same keys, data and sizes."""
    kd = np.asarray(jax.random.key_data(keys) if _is_key(keys) else keys)
    mine = np.array(
        [
            zlib.crc32(np.ascontiguousarray(kd).tobytes()),
            zlib.crc32(np.ascontiguousarray(x).tobytes()),
            zlib.crc32(np.ascontiguousarray(y).tobytes()),
            kd.shape[0],
            x.shape[0],
            batch_size,
            -1 if chunk_size is None else chunk_size,
        ],
        dtype=np.int64,
    )
    every = _allgather(mine)
    names = ("keys", "x", "y", "len(keys)", "len(x)", "batch_size", "chunk_size")
    differ = [n for n, col in zip(names, every.T) if (col != col[0]).any()]
    if differ:
        raise ValueError(
            f"montecarlo.evaluate across {jax.process_count()} processes: {', '.join(differ)} differ between "
            "processes; every process must pass the same keys (split from the same seed), the same "
            "evaluation data x, y and the same batch_size / chunk_size (only the samples are distributed)"
        )


def evaluate(
    model: nnx.Module,
    hardware,
    keys: jax.Array,
    x,
    y,
    *,
    batch_size: int = 256,
    mesh: Mesh | None = None,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
    return_logits: bool = False,
    progress: bool = True,
    calibration_x=None,
) -> dict:
    """Accuracy of ``model`` on ``(x, y)`` for each of ``S = len(keys)`` hardware samples.

    Args:
      model: an nnx model built from crossbar layers (its mode and programmed
        state are ignored and left untouched; batch norm runs in eval mode).
      hardware: the ``HardwareConfig`` every sample is drawn from.
      keys: ``(S,)`` PRNG keys, one per Monte Carlo sample.
      x, y: evaluation inputs ``(n, ...)`` and integer labels ``(n,)``
        (host arrays; batches are moved to the devices one at a time).
      batch_size: examples per forward pass (the last batch is padded and masked).
      mesh: 1-D mesh whose single axis shards the samples (default: all devices).
      chunk_size: samples evaluated at once (a multiple of the mesh size);
        default: as many as fit ``memory_budget`` (default: 60 % of free
        accelerator memory, 50 % of free host memory on CPU) by
        :func:`bytes_per_sample`: all ``S`` when twice the traced estimate
        fits, else by the compiled (``exact=True``) figure.
      return_logits: also return the logits ``(S, n, classes)``.
      progress: show a tqdm bar over chunks x batches.
      calibration_x: inputs ``(m, ...)`` that set the ADC full scales of every
        sample when ``hardware.adc.range == "calibrated"`` (required then; use
        training data, not the evaluation set).

    Returns:
      ``{"accuracy": (S,) np.ndarray, "chunk_size": int, "bytes_per_sample": int}``
      (the figure the chunk was sized by, traced or compiled) and ``"logits"``
      when asked.

    Example:
      >>> import jax, numpy as np
      >>> from flax import nnx
      >>> from crossjax import hardware, models, montecarlo
      >>> model = models.MLP(8, (4,), 3, rngs=nnx.Rngs(0))
      >>> x = np.random.default_rng(0).normal(size=(32, 8)).astype(np.float32)
      >>> y = np.asarray(model(x).argmax(-1))   # labels: the digital predictions
      >>> noisy = hardware.HardwareConfig().set({"device.write_noise.sigma": 0.02})
      >>> res = montecarlo.evaluate(model, noisy, jax.random.split(jax.random.key(0), 4), x, y, progress=False)
      >>> res["accuracy"].shape, bool(np.all(res["accuracy"] > 0.5))   # 4 chips, each near the digital labels
      ((4,), True)
    """
    _check_data(x, y, batch_size)
    keys = jnp.asarray(keys)
    if keys.ndim != 1 and not (keys.ndim == 2 and keys.dtype == jnp.uint32):
        raise ValueError(f"keys must be a 1-D array of PRNG keys (jax.random.split(key, S)), got shape {keys.shape}")
    if not layers.crossbar_layers(model):
        raise ValueError("model: has no crossbar layers to evaluate on hardware")
    layers.check_hardware(hardware)
    configs = [c for c in layers.layer_configs(model, hardware) if c is not None]  # a layer's own config wins
    calibrating = any(needs_calibration(c) for c in configs)
    if calibrating and calibration_x is None:
        raise ValueError(
            "hardware.adc.range='calibrated' needs calibration data: pass calibration_x "
            "(e.g. a batch of training inputs)"
        )
    S = keys.shape[0]
    if S == 0:
        raise ValueError("keys is empty: pass at least one PRNG key (jax.random.split(key, S) with S >= 1).")
    mesh = sample_mesh() if mesh is None else mesh
    if len(mesh.axis_names) != 1:
        raise ValueError(f"mesh must be 1-D (one axis for the samples), got axes {mesh.axis_names}")
    axis = mesh.axis_names[0]
    n_dev = mesh.devices.size
    x = np.asarray(x)
    y = np.asarray(y)
    n = x.shape[0]
    batch_size = min(batch_size, n)

    graphdef, state = nnx.split(model)
    replicated = NamedSharding(mesh, P())
    sharded = NamedSharding(mesh, P(axis))
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None (sized by memory), got {chunk_size!r}")
    local = [d for d in mesh.devices.flat if d.process_index == jax.process_index()]
    if not local:
        raise ValueError(
            f"mesh has no device of this process ({jax.process_index()}); build it from "
            "jax.devices() (every process's devices: the default) or from this process's own devices"
        )
    _check_no_lu_deadlock(local, configs)
    multi = not sharded.is_fully_addressable  # the mesh spans processes (jax.distributed)
    if multi:
        _check_same_inputs(keys, x, y, batch_size, chunk_size)
    per_sample = bytes_per_sample(model, hardware, x[:batch_size])
    if chunk_size is None:
        budget = memory_budget_bytes(local[0]) * n_dev if memory_budget is None else int(memory_budget)
        if TRACE_MARGIN * per_sample * (S + (-S) % n_dev) > budget:  # tight: ask XLA
            per_sample = bytes_per_sample(model, hardware, x[:batch_size], exact=True)
        chunk_size = max(1, budget // max(per_sample, 1))
        if multi:  # processes may see different free memory: all take the smallest chunk
            chunk_size = int(_allgather(np.array(chunk_size, dtype=np.int64)).min())
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    chunk_size = min(chunk_size, S + (-S) % n_dev)
    chunk_size = max(n_dev, chunk_size - chunk_size % n_dev)
    state = _put(state, replicated)
    hardware = _put(hardware, replicated)

    program, forward, calibrate = _compiled(graphdef, sharded)
    if calibrating:
        calibration_x = _put_host(np.asarray(calibration_x), replicated)

    batches = _batches(n, batch_size)
    n_chunks = -(-S // chunk_size)
    correct = np.zeros(S, dtype=np.int64)
    logits_out = [] if return_logits else None
    from tqdm.auto import tqdm

    bar = tqdm(total=n_chunks * len(batches), desc="monte carlo", unit="batch", disable=not progress or not is_writer())
    for c in range(n_chunks):
        lo, hi = c * chunk_size, min(S, (c + 1) * chunk_size)
        k = keys[lo:hi]
        if hi - lo < chunk_size:  # pad with copies of the last key, discarded below
            k = jnp.concatenate([k, jnp.repeat(k[-1:], chunk_size - (hi - lo), axis=0)], axis=0)
        k = _put_keys(k, sharded)
        prog = program(state, hardware, k)
        if calibrating:
            prog = calibrate(state, prog, hardware, k, calibration_x)
        chunk_logits = []
        for b, (start, size) in enumerate(batches):
            xb = _put_host(_pad_batch(x, start, size, batch_size), replicated)
            logits = forward(state, prog, hardware, k, b, xb)
            _check_finite(_to_host(jnp.all(jnp.isfinite(logits), axis=-1))[: hi - lo, :size], lo, start)
            pred = _to_host(jnp.argmax(logits, axis=-1))[: hi - lo, :size]
            correct[lo:hi] += (pred == y[start : start + size]).sum(axis=1)
            if return_logits:
                chunk_logits.append(_to_host(logits)[: hi - lo, :size])
            bar.update(1)
        if return_logits:
            logits_out.append(np.concatenate(chunk_logits, axis=1))
        del prog
    bar.close()
    out = {"accuracy": correct / n, "chunk_size": chunk_size, "bytes_per_sample": per_sample}
    if return_logits:
        out["logits"] = np.concatenate(logits_out, axis=0)
    return out


class NonFiniteLogits(ValueError):
    """The network produced NaN or infinite logits: an accuracy from them would be meaningless."""


def _check_finite(finite, sample0, example0):
    """Raise :class:`NonFiniteLogits` naming the first sample and example whose logits are not finite."""
    if not finite.all():
        s, e = np.argwhere(~finite)[0]
        raise NonFiniteLogits(
            f"logits are NaN or infinite for Monte Carlo sample {sample0 + s} (example {example0 + e}) and "
            f"{int((~finite).sum()) - 1} more in this batch; no accuracy is reported. Check the hardware config "
            "(ADC full scale, device range, wire resistances) or run the forward under crossjax.checked."
        )


def digital_accuracy(model: nnx.Module, x, y, batch_size: int = 256) -> float:
    """Accuracy of ``model`` with every crossbar layer in digital mode (``x @ W``),
    batch norm in eval mode; any ``nnx.Module`` (a plain Flax model too). The model
    itself is not modified.

    Args:
      model: an nnx model.
      x, y: inputs ``(n, ...)`` and integer labels ``(n,)``.
      batch_size: examples per forward pass.

    Returns:
      The fraction of ``y`` predicted, in [0, 1]; ``montecarlo.NonFiniteLogits``
      is raised instead of scoring NaN logits.

    Example:
      >>> import numpy as np
      >>> from flax import nnx
      >>> from crossjax import models, montecarlo
      >>> model = models.MLP(8, (4,), 3, rngs=nnx.Rngs(0))
      >>> x = np.ones((10, 8), np.float32)
      >>> montecarlo.digital_accuracy(model, x, np.asarray(model(x).argmax(-1)))
      1.0
    """
    _check_data(x, y, batch_size)
    graphdef, state = nnx.split(model)

    @jax.jit
    def predict(state, xb):
        m = nnx.merge(graphdef, state)
        m.eval()
        if layers.crossbar_layers(m):
            layers.set_mode(m, "digital")
        logits = m(xb)
        return jnp.argmax(logits, axis=-1), jnp.all(jnp.isfinite(logits), axis=-1)

    x, y = np.asarray(x), np.asarray(y)
    n = x.shape[0]
    batch_size = min(batch_size, n)
    correct = 0
    for start, size in _batches(n, batch_size):
        pred, finite = predict(state, _pad_batch(x, start, size, batch_size))
        _check_finite(np.asarray(finite)[None, :size], 0, start)
        correct += int((np.asarray(pred)[:size] == y[start : start + size]).sum())
    return correct / n
