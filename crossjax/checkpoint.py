"""Checkpoints of a training run: model, optimizer state, hardware config, step, RNG.

A checkpoint is one msgpack file (``flax.serialization``) holding

* ``arrays``: every leaf of ``nnx.state(model)`` and ``nnx.state(optimizer)``
  (parameters, batch statistics, ``nnx.Rngs`` keys and counters, optimizer
  moments and step), flattened to ``"model/<path>"`` / ``"optimizer/<path>"``
  keys; typed PRNG keys are stored as their raw ``key_data`` (uint32) and
  re-wrapped on restore;
* ``meta``: a JSON document with the step, the hardware config
  (``HardwareConfig.to_dict()``), the data-order seed and anything the caller
  adds (``extra``).

The file is ``{"payload": <msgpack of arrays and meta>, "sha256": <hex>}``:
the content hash is verified on every read, so flipped or truncated bytes
raise ``ValueError`` naming the file instead of loading wrong weights, and
non-finite parameters are refused on restore.

Files are written atomically: the bytes go to a temporary file in the same
directory, are flushed and fsync'ed, and then ``os.replace`` renames it over
the target, so a crash leaves either the old or the new checkpoint, never a
torn one. They get the permissions of any new file (``0666 & ~umask``).
Restoring is template-based: the live model/optimizer give the tree
structure, shapes and dtypes, and a mismatch raises ``ValueError``.

:class:`DirectoryLock` keeps two runs from writing one output directory.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, serialization

FORMAT_VERSION = 2


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + ``os.replace``).

    Args:
      path: the target file; missing parent directories are created, an existing
        file is replaced.
      data: the bytes to write.

    Example:
      >>> import os, tempfile
      >>> from crossjax import checkpoint
      >>> path = os.path.join(tempfile.mkdtemp(), "sub", "blob.bin")
      >>> checkpoint.atomic_write_bytes(path, b"abc")
      >>> open(path, "rb").read(), os.listdir(os.path.dirname(path))   # no temporary file left
      (b'abc', ['blob.bin'])
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(path), dir=directory)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; honour the umask like open()
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically.

    Args:
      path: the target file (see :func:`atomic_write_bytes`).
      text: the text, encoded as UTF-8.

    Example:
      >>> import os, tempfile
      >>> from crossjax import checkpoint
      >>> path = os.path.join(tempfile.mkdtemp(), "results.json")
      >>> checkpoint.atomic_write_text(path, '{"ok": true}')
      >>> open(path, encoding="utf-8").read()
      '{"ok": true}'
    """
    atomic_write_bytes(path, text.encode("utf-8"))


def _is_key(leaf) -> bool:
    return isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _flatten(prefix: str, state) -> dict[str, np.ndarray]:
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        name = prefix + jax.tree_util.keystr(path)
        if _is_key(leaf):
            leaf = jax.random.key_data(leaf)
        out[name] = np.asarray(leaf)
    return out


def _unflatten_into(prefix: str, template, arrays: dict[str, np.ndarray]):
    leaves_with_path, treedef = jax.tree_util.tree_flatten_with_path(template)
    new_leaves = []
    for path, leaf in leaves_with_path:
        name = prefix + jax.tree_util.keystr(path)
        if name not in arrays:
            raise ValueError(
                f"restore_checkpoint: the checkpoint has no entry "
                f"{name!r}; was it written for a different model "
                f"or optimizer? Build the same model/optimizer "
                f"before restoring."
            )
        value = arrays[name]
        if _is_key(leaf):
            restored = jax.random.wrap_key_data(jnp.asarray(value), impl=jax.random.key_impl(leaf))
        else:
            if tuple(value.shape) != tuple(np.shape(leaf)):
                raise ValueError(
                    f"restore_checkpoint: {name!r} has shape "
                    f"{value.shape} in the checkpoint but "
                    f"{np.shape(leaf)} in the live model; build the "
                    f"model with the same sizes"
                )
            if isinstance(leaf, (bool, int, float, complex)):  # python scalars
                restored = type(leaf)(np.asarray(value).item())  # (e.g. config fields)
            else:
                restored = jnp.asarray(value, dtype=leaf.dtype)
        new_leaves.append(restored)
    return jax.tree_util.tree_unflatten(treedef, new_leaves)


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: nnx.Module,
    optimizer: nnx.Optimizer | None = None,
    step: int = 0,
    hardware=None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Atomically save model, optimizer state, step, hardware config and ``extra``.

    ``hardware`` is a ``HardwareConfig`` (stored via ``to_dict()``) or ``None``;
    ``extra`` must be JSON-serialisable. RNG state held in ``nnx.Rngs`` inside
    the model is part of ``nnx.state(model)`` and saved with it.

    Example:
      >>> import os, tempfile
      >>> from flax import nnx
      >>> from crossjax import checkpoint, models, training
      >>> path = os.path.join(tempfile.mkdtemp(), "run.ckpt")
      >>> model = models.MLP(4, (3,), 2, rngs=nnx.Rngs(0))
      >>> opt = training.new_optimizer(model, training.TrainConfig())
      >>> checkpoint.save_checkpoint(path, model=model, optimizer=opt, step=7, extra={"note": "x"})
      >>> fresh = models.MLP(4, (3,), 2, rngs=nnx.Rngs(1))
      >>> meta = checkpoint.restore_checkpoint(path, model=fresh, optimizer=training.new_optimizer(fresh, training.TrainConfig()))
      >>> meta["step"], meta["extra"], bool((fresh.layers[0].kernel[...] == model.layers[0].kernel[...]).all())
      (7, {'note': 'x'}, True)
    """
    arrays = _flatten("model", nnx.state(model))
    if optimizer is not None:
        arrays.update(_flatten("optimizer", nnx.state(optimizer)))
    meta = {
        "format_version": FORMAT_VERSION,
        "step": int(step),
        "hardware": None if hardware is None else hardware.to_dict(),
        "has_optimizer": optimizer is not None,
        "extra": extra or {},
    }
    payload = serialization.msgpack_serialize({"arrays": arrays, "meta": json.dumps(meta)})
    blob = serialization.msgpack_serialize({"payload": payload, "sha256": hashlib.sha256(payload).hexdigest()})
    atomic_write_bytes(path, blob)


def _corrupt(path, why):
    return ValueError(
        f"checkpoint {path!r} is corrupt or truncated ({why}); delete it or pass --overwrite "
        f"(run_study(overwrite=True)) to start afresh."
    )


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """Raw contents ``(arrays, meta)`` of a checkpoint file, its content hash verified.

    Args:
      path: a file :func:`save_checkpoint` wrote.

    Returns:
      ``(arrays, meta)``: ``{"model/<path>" | "optimizer/<path>": np.ndarray}`` (PRNG keys
      as their raw ``uint32`` key data) and the metadata dict (``format_version``,
      ``step``, ``hardware``, ``has_optimizer``, ``extra``).

    Raises:
      FileNotFoundError: no file at ``path``.
      ValueError: the file is corrupt, truncated, of another format version, or
        its bytes do not match the hash written with them.

    Example:
      >>> import os, tempfile
      >>> from flax import nnx
      >>> from crossjax import checkpoint
      >>> path = os.path.join(tempfile.mkdtemp(), "run.ckpt")
      >>> checkpoint.save_checkpoint(path, model=nnx.Linear(3, 2, rngs=nnx.Rngs(0)), step=5)
      >>> arrays, meta = checkpoint.read_checkpoint(path)
      >>> sorted(arrays), arrays["model['kernel'].value"].shape, meta["step"], meta["has_optimizer"]
      (["model['bias'].value", "model['kernel'].value"], (3, 2), 5, False)
      >>> with open(path, "r+b") as f:   # flip the last byte
      ...     _ = f.seek(-1, os.SEEK_END); b = f.read(1); _ = f.seek(-1, os.SEEK_END); _ = f.write(bytes([b[0] ^ 1]))
      >>> checkpoint.read_checkpoint(path)
      Traceback (most recent call last):
      ...
      ValueError: checkpoint ... is corrupt or truncated (...); delete it or pass --overwrite ...
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"read_checkpoint: no checkpoint at path={path!r}")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        outer = serialization.msgpack_restore(raw)
    except Exception as e:  # msgpack raises several types on bad bytes
        raise _corrupt(path, f"unreadable: {type(e).__name__}") from None
    if not isinstance(outer, dict) or set(outer) != {"payload", "sha256"}:
        raise _corrupt(path, "not a crossjax checkpoint of format version 2")
    payload = outer["payload"]
    if not isinstance(payload, bytes) or hashlib.sha256(payload).hexdigest() != outer["sha256"]:
        raise _corrupt(path, "content hash mismatch")
    content = serialization.msgpack_restore(payload)
    meta = json.loads(content["meta"])
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"read_checkpoint: {path!r} has format_version={meta.get('format_version')}, expected {FORMAT_VERSION}"
        )
    return dict(content["arrays"]), meta


def restore_checkpoint(path: str | os.PathLike, *, model: nnx.Module, optimizer: nnx.Optimizer | None = None) -> dict:
    """Restore ``model`` (and ``optimizer``) in place from ``path``.

    Returns the metadata dict: ``step``, ``hardware`` (a dict, or ``None``;
    rebuild with ``HardwareConfig.from_dict``), ``extra``.

    Args:
      path: a file :func:`save_checkpoint` wrote.
      model: the live model, built with the same structure, shapes and dtypes
        (its variables are replaced).
      optimizer: the live optimizer to restore too, or ``None``.

    Returns:
      The metadata dict (``format_version``, ``step``, ``hardware``,
      ``has_optimizer``, ``extra``).

    Raises:
      ValueError: see :func:`read_checkpoint`; non-finite model values; an entry
        or shape that does not fit the live model/optimizer; an ``optimizer``
        given for a checkpoint saved without one.

    Example:
      >>> import os, tempfile
      >>> from flax import nnx
      >>> from crossjax import checkpoint
      >>> path = os.path.join(tempfile.mkdtemp(), "run.ckpt")
      >>> model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
      >>> checkpoint.save_checkpoint(path, model=model, step=5, extra={"note": "x"})
      >>> fresh = nnx.Linear(3, 2, rngs=nnx.Rngs(1))
      >>> meta = checkpoint.restore_checkpoint(path, model=fresh)
      >>> meta["step"], meta["extra"], bool((fresh.kernel[...] == model.kernel[...]).all())
      (5, {'note': 'x'}, True)
    """
    arrays, meta = read_checkpoint(path)
    for name, value in arrays.items():
        a = np.asarray(value)
        if name.startswith("model") and np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
            raise ValueError(
                f"restore_checkpoint: {os.fspath(path)!r} holds non-finite values in {name!r} "
                "(a diverged run?); delete it or pass --overwrite to retrain."
            )
    nnx.update(model, _unflatten_into("model", nnx.state(model), arrays))
    if optimizer is not None:
        if not meta.get("has_optimizer"):
            raise ValueError(f"restore_checkpoint: {os.fspath(path)!r} holds no optimizer state; pass optimizer=None")
        nnx.update(optimizer, _unflatten_into("optimizer", nnx.state(optimizer), arrays))
    return meta


def check_fingerprint(path: str | os.PathLike, fingerprint: str | None, *, label: str = "checkpoint") -> dict:
    """The metadata of checkpoint ``path`` once it is known to be the run's own.

    A study tags everything it saves with its fingerprint (``extra["fingerprint"]``,
    ``crossjax.study.fingerprint_of``); a file written by another run is refused.

    Args:
      path: a checkpoint file.
      fingerprint: the fingerprint the file must carry.
      label: who asks, for the error message.

    Returns:
      The metadata dict (as :func:`restore_checkpoint` returns it).

    Raises:
      ValueError: the file is corrupt (see :func:`read_checkpoint`) or carries another fingerprint.

    Example:
      >>> import os, tempfile
      >>> from flax import nnx
      >>> from crossjax import checkpoint
      >>> path = os.path.join(tempfile.mkdtemp(), "model.ckpt")
      >>> checkpoint.save_model(path, nnx.Linear(3, 2, rngs=nnx.Rngs(0)), "f00d")
      >>> checkpoint.check_fingerprint(path, "f00d")["extra"]
      {'fingerprint': 'f00d'}
      >>> checkpoint.check_fingerprint(path, "beef", label="resume")
      Traceback (most recent call last):
      ...
      ValueError: resume: ... was written by a run with other arguments (fingerprint 'f00d', this run 'beef'); ...
    """
    _, meta = read_checkpoint(path)
    saved = (meta.get("extra") or {}).get("fingerprint")
    if saved != fingerprint:
        raise ValueError(
            f"{label}: {os.fspath(path)!r} was written by a run with other arguments (fingerprint "
            f"{saved!r}, this run {fingerprint!r}); delete it, choose another out directory or pass "
            "--overwrite."
        )
    return meta


def save_model(path: str | os.PathLike, model: nnx.Module, fingerprint: str, **extra) -> None:
    """Save a trained model (no optimizer) tagged with its run's ``fingerprint``: the model file of
    every study (a paper study's ``model_<variant>.ckpt``); ``extra``: JSON-able notes.

    Example:
      >>> import os, tempfile
      >>> from flax import nnx
      >>> from crossjax import checkpoint, models
      >>> path = os.path.join(tempfile.mkdtemp(), "model_dense.ckpt")
      >>> checkpoint.save_model(path, models.MLP(4, (3,), 2, rngs=nnx.Rngs(0)), "f00d")
      >>> m = checkpoint.load_model(path, models.MLP(4, (3,), 2, rngs=nnx.Rngs(1)), "f00d")
    """
    save_checkpoint(path, model=model, extra={"fingerprint": fingerprint, **extra})


def load_model(path: str | os.PathLike, model: nnx.Module, fingerprint: str) -> nnx.Module:
    """Load a model :func:`save_model` wrote into ``model`` (the same architecture); returns it.

    Raises ``ValueError`` naming the file when it is corrupt or truncated, was
    written by another run (``fingerprint``), does not fit ``model`` or holds
    non-finite weights.

    Args:
      path: a file :func:`save_model` wrote.
      model: a model of the same architecture (its variables are replaced).
      fingerprint: the run's fingerprint the file must carry.

    Returns:
      ``model``, restored in place.

    Example:
      >>> import os, tempfile
      >>> from flax import nnx
      >>> from crossjax import checkpoint
      >>> path = os.path.join(tempfile.mkdtemp(), "model.ckpt")
      >>> trained = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
      >>> checkpoint.save_model(path, trained, "f00d", epochs=2)
      >>> m = checkpoint.load_model(path, nnx.Linear(3, 2, rngs=nnx.Rngs(1)), "f00d")
      >>> bool((m.kernel[...] == trained.kernel[...]).all())
      True
    """
    check_fingerprint(path, fingerprint, label="load_model")
    restore_checkpoint(path, model=model)
    return model


class DirectoryLock:
    """Exclusive lock on an output directory (``DIR/.lock``, ``fcntl.flock``), held while
    a study writes there. A second run fails at once with ``ValueError`` naming the
    process that holds it; the lock is released when the holder exits, even if killed.

    Example:
      >>> import tempfile
      >>> from crossjax.checkpoint import DirectoryLock
      >>> with DirectoryLock(tempfile.mkdtemp()):
      ...     pass
    """

    def __init__(self, directory: str | os.PathLike):
        self.path = os.path.join(os.fspath(directory), ".lock")
        self._fd = None

    def __enter__(self) -> "DirectoryLock":
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ValueError(
                f"output directory {os.path.dirname(self.path)!r} is in use by {holder}; "
                "wait for it to finish or choose another --out."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} on {os.uname().nodename}".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        import fcntl

        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
