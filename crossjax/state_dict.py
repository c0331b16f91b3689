"""Pretrained weights from elsewhere: safetensors / NumPy state dicts into any NNX model.

A *state dict* is a flat ``{name: array}`` mapping, as PyTorch, JAX and
Hugging Face checkpoints store them. :func:`read_state_dict` reads one from

* ``.safetensors`` (the Hugging Face format: an 8-byte little-endian header
  length, a JSON header ``{name: {"dtype", "shape", "data_offsets"}}`` and the
  raw little-endian tensor bytes; read here with NumPy, no PyTorch, no extra
  dependency; dtypes F64/F32/F16/BF16, I64..I8, U64..U8, BOOL),
* ``.npz`` (``numpy.savez``),

and :func:`load_state_dict` writes it into an ``nnx.Module`` (a crossjax model,
a user's model, or one converted by :func:`crossjax.convert`) by name:

* ``layout="nnx"``: names are the model's parameter paths joined by ``"/"`` or
  ``"."`` (``"blocks/0/attention/query/kernel"``), values in Flax layout;
* ``layout="torch"``: PyTorch module names and layouts. ``"a.b.weight"`` goes to
  ``a/b/kernel`` (Linear weights ``(out, in)`` are transposed to ``(in, out)``;
  conv weights ``(out, in/G, *k)`` to ``(*k, in/G, out)``), to ``a/b/scale``
  (norms) or ``a/b/embedding`` (embeddings), whichever the model has;
  ``"running_mean"`` / ``"running_var"`` go to ``mean`` / ``var``;
  ``"num_batches_tracked"`` is ignored.

``mapping`` renames first: a dict ``{source name: model path}`` or a function
``name -> model path`` (return ``None`` to skip a tensor). Every model
parameter must be given (``strict=True``) and every tensor must land somewhere,
with its shape; otherwise a ``ValueError`` names them all.

Example:
  >>> import numpy as np, tempfile, os
  >>> from flax import nnx
  >>> from crossjax import state_dict
  >>> model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
  >>> path = os.path.join(tempfile.mkdtemp(), "w.npz")
  >>> np.savez(path, **{"weight": np.ones((2, 3)), "bias": np.zeros(2)})   # torch layout
  >>> _ = state_dict.load_state_dict(model, path, layout="torch")
  >>> model.kernel[...].shape
  (3, 2)
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Mapping

import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = ["read_state_dict", "read_safetensors", "load_state_dict", "LAYOUTS"]

LAYOUTS = ("nnx", "torch")

_SAFETENSORS_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U64": "<u8",
    "U32": "<u4",
    "U16": "<u2",
    "U8": "u1",
    "BOOL": "?",
}


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{name: array}`` of a ``.safetensors`` file (format: huggingface/safetensors README).

    Args:
      path: the ``.safetensors`` file.

    Returns:
      ``{name: array}`` in file order, each a NumPy copy with the tensor's shape and
      dtype (``BF16`` as ``ml_dtypes.bfloat16``); the ``__metadata__`` entry is skipped.

    Raises:
      ValueError: the file is truncated, its header is not the format's JSON, or a
        tensor's byte range does not match its dtype and shape.

    Example:
      >>> import json, os, struct, tempfile
      >>> import numpy as np
      >>> from crossjax import state_dict
      >>> header = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}).encode()
      >>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
      >>> with open(path, "wb") as f:   # 8-byte header length, JSON header, raw bytes
      ...     _ = f.write(struct.pack("<Q", len(header)) + header + np.arange(4, dtype="<f4").tobytes())
      >>> w = state_dict.read_safetensors(path)["w"]
      >>> w.tolist(), str(w.dtype)
      ([[0.0, 1.0], [2.0, 3.0]], 'float32')
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path!r} is not a safetensors file: {len(raw)} bytes, no header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise ValueError(
            f"{path!r} is not a safetensors file (or is truncated): header of {n} bytes in a {len(raw)}-byte file"
        )
    try:
        header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path!r}: the safetensors header is not JSON ({e})") from None
    data = memoryview(raw)[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, stop) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path!r}: tensor {name!r} has a malformed header entry {info!r}") from None
        if dtype == "BF16":
            import ml_dtypes  # ships with jax

            np_dtype = np.dtype(ml_dtypes.bfloat16)
        elif dtype in _SAFETENSORS_DTYPES:
            np_dtype = np.dtype(_SAFETENSORS_DTYPES[dtype])
        else:
            raise ValueError(
                f"{path!r}: tensor {name!r} has dtype {dtype!r}, which crossjax does not read "
                f"(known: {sorted(_SAFETENSORS_DTYPES) + ['BF16']})"
            )
        count = int(np.prod(shape, dtype=np.int64))
        if not 0 <= start <= stop <= len(data) or stop - start != count * np_dtype.itemsize:
            raise ValueError(
                f"{path!r}: tensor {name!r} ({dtype}, shape {list(shape)}) has byte range "
                f"[{start}, {stop}) that does not fit its size or the file"
            )
        out[name] = np.frombuffer(data[start:stop], dtype=np_dtype).reshape(shape).copy()
    return out


def read_state_dict(source) -> dict[str, np.ndarray]:
    """``{name: array}`` from a ``.safetensors`` / ``.npz`` path or a mapping of arrays.

    Args:
      source: a path ending in ``.safetensors`` or ``.npz``, or a mapping
        ``{name: array-like}``.

    Returns:
      ``{name: np.ndarray}`` (a mapping's keys as strings, its values as NumPy arrays).

    Raises:
      ValueError: the file does not exist or has another extension (or see
        :func:`read_safetensors`).

    Example:
      >>> import os, tempfile
      >>> import numpy as np
      >>> from crossjax import state_dict
      >>> path = os.path.join(tempfile.mkdtemp(), "w.npz")
      >>> np.savez(path, kernel=np.ones((3, 2)))
      >>> {k: v.shape for k, v in state_dict.read_state_dict(path).items()}
      {'kernel': (3, 2)}
      >>> type(state_dict.read_state_dict({"bias": [0.0, 1.0]})["bias"]).__name__
      'ndarray'
    """
    if isinstance(source, Mapping):
        return {str(k): np.asarray(v) for k, v in source.items()}
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise ValueError(f"state dict {path!r} does not exist (give a .safetensors or .npz file, or a dict)")
    if path.endswith(".safetensors"):
        return read_safetensors(path)
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    raise ValueError(f"state dict {path!r}: unknown format; use .safetensors or .npz")


def _torch_array(target_name: str, value: np.ndarray) -> np.ndarray:
    """A PyTorch-layout weight in Flax layout for ``target_name`` (``.../kernel``)."""
    if not target_name.endswith("kernel") or value.ndim < 2:
        return value
    if value.ndim == 2:  # Linear (out, in) -> (in, out)
        return value.T
    # conv (out, in/G, *k) -> (*k, in/G, out)
    return np.transpose(value, (*range(2, value.ndim), 1, 0))


_TORCH_LEAVES = {
    "weight": ("kernel", "scale", "embedding"),
    "bias": ("bias",),
    "running_mean": ("mean",),
    "running_var": ("var",),
}


def load_state_dict(
    model: nnx.Module,
    source,
    *,
    layout: str = "nnx",
    mapping: Mapping[str, str] | Callable[[str], str | None] | None = None,
    strict: bool = True,
) -> nnx.Module:
    """Write a state dict into ``model``'s variables by name (in place; returns ``model``).

    Args:
      model: any ``nnx.Module``.
      source: a ``.safetensors`` / ``.npz`` path or a ``{name: array}`` mapping.
      layout: ``"nnx"`` (names are model paths, Flax layouts) or ``"torch"``
        (PyTorch names and layouts; the module docstring).
      mapping: renames source names before matching: a dict (names it does not
        list are kept) or a function (``None`` skips the tensor).
      strict: every ``nnx.Param`` of the model must be loaded.

    Returns:
      ``model``, its variables replaced (cast to each variable's dtype).

    Raises:
      ValueError: unknown layout; a tensor without a matching variable, a shape
        mismatch, or (``strict``) parameters left unloaded, all named at once.

    Example:
      >>> import numpy as np
      >>> from flax import nnx
      >>> from crossjax import state_dict
      >>> model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
      >>> sd = {"layer.w": np.ones((3, 2)), "layer.b": np.zeros(2)}
      >>> _ = state_dict.load_state_dict(model, sd, mapping={"layer.w": "kernel", "layer.b": "bias"})
      >>> round(float(model.kernel[...].sum()), 4), str(model.kernel[...].dtype)
      (6.0, 'float32')
      >>> _ = state_dict.load_state_dict(model, {"kernel": np.ones((2, 3))})
      Traceback (most recent call last):
      ...
      ValueError: load_state_dict: 'kernel' has shape (2, 3) but kernel has (3, 2); ...
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    tensors = read_state_dict(source)
    targets = {
        "/".join(str(p) for p in path): (path, var)
        for path, var in nnx.to_flat_state(nnx.state(model, nnx.Variable))
        if not isinstance(var, (nnx.RngState,))
    }
    updates, problems, loaded = {}, [], set()
    for name, value in tensors.items():
        if mapping is not None:
            name = mapping(name) if callable(mapping) else mapping.get(name, name)
            if name is None:
                continue
        if layout == "torch" and name.split(".")[-1] == "num_batches_tracked":
            continue
        parts = name.replace(".", "/").split("/")
        candidates = ["/".join(parts)]
        if layout == "torch" and parts[-1] in _TORCH_LEAVES:
            candidates = ["/".join([*parts[:-1], leaf]) for leaf in _TORCH_LEAVES[parts[-1]]]
        hit = next((c for c in candidates if c in targets), None)
        if hit is None:
            problems.append(f"{name!r} matches no model variable (tried {candidates})")
            continue
        path, var = targets[hit]
        target_shape = np.shape(var.get_value())
        if layout == "torch":
            value = _torch_array(hit, value)
        if tuple(value.shape) != tuple(target_shape):
            problems.append(f"{name!r} has shape {tuple(value.shape)} but {hit} has {tuple(target_shape)}")
            continue
        updates[hit] = (path, var.replace(jnp.asarray(value, dtype=var.get_value().dtype)))
        loaded.add(hit)
    if strict:
        params = {"/".join(str(p) for p in path) for path, _ in nnx.to_flat_state(nnx.state(model, nnx.Param))}
        missing = sorted(params - loaded)
        if missing:
            problems.append(f"parameters not in the state dict: {missing} (pass strict=False to keep them)")
    if problems:
        raise ValueError("load_state_dict: " + "; ".join(problems))
    if updates:
        nnx.update(model, nnx.from_flat_state([u for u in updates.values()]))
    return model
