"""Loading safetensors / NumPy state dicts by name into NNX models (crossjax's, a user's, converted ones).

The safetensors files are written here byte by byte from the format's
specification (8-byte little-endian header length, JSON header, raw tensors),
independently of the reader under test.
"""

import json
import struct

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import crossjax
from crossjax import models, state_dict

CODES = {
    np.dtype("<f8"): "F64",
    np.dtype("<f4"): "F32",
    np.dtype("<f2"): "F16",
    np.dtype("<i8"): "I64",
    np.dtype("<i4"): "I32",
    np.dtype("i1"): "I8",
    np.dtype("u1"): "U8",
    np.dtype("?"): "BOOL",
    np.dtype(ml_dtypes.bfloat16): "BF16",
}


def write_safetensors(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        a = np.asarray(a, order="C")  # (ascontiguousarray would make a scalar 1-D)
        raw = a.tobytes()  # little-endian on the machines crossjax runs on
        header[name] = {"dtype": CODES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)  # the format pads the header with spaces to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


class UserNet(nnx.Module):
    """A user's model whose PyTorch twin has modules conv, norm, fc (torch names and layouts)."""

    def __init__(self, rngs):
        self.conv = nnx.Conv(2, 3, (3, 3), rngs=rngs)
        self.norm = nnx.LayerNorm(3, rngs=rngs)
        self.bn = nnx.BatchNorm(3, rngs=rngs)
        self.fc = nnx.Linear(3, 4, rngs=rngs)

    def __call__(self, x):
        return self.fc(self.bn(self.norm(self.conv(x))).mean((1, 2)))


def _torch_dict(net):
    """The state dict PyTorch would hold for ``net`` (weights (out, in, kh, kw) / (out, in))."""
    return {
        "conv.weight": np.asarray(net.conv.kernel[...]).transpose(3, 2, 0, 1),
        "conv.bias": np.asarray(net.conv.bias[...]),
        "norm.weight": np.asarray(net.norm.scale[...]),
        "norm.bias": np.asarray(net.norm.bias[...]),
        "bn.weight": np.asarray(net.bn.scale[...]),
        "bn.bias": np.asarray(net.bn.bias[...]),
        "bn.running_mean": np.asarray(net.bn.mean[...]) + 0.5,
        "bn.running_var": np.asarray(net.bn.var[...]) * 2,
        "bn.num_batches_tracked": np.array(7),
        "fc.weight": np.asarray(net.fc.kernel[...]).T,
        "fc.bias": np.asarray(net.fc.bias[...]),
    }


def test_torch_safetensors_into_a_user_model_and_its_converted_copy(tmp_path):
    src = UserNet(nnx.Rngs(0))
    tensors = _torch_dict(src)
    path = tmp_path / "model.safetensors"
    write_safetensors(path, tensors, metadata={"format": "pt"})
    dst = state_dict.load_state_dict(UserNet(nnx.Rngs(1)), path, layout="torch")
    np.testing.assert_array_equal(dst.conv.kernel[...], src.conv.kernel[...])
    np.testing.assert_array_equal(dst.fc.kernel[...], src.fc.kernel[...])
    np.testing.assert_array_equal(dst.bn.mean[...], tensors["bn.running_mean"])
    x = jax.random.uniform(jax.random.key(0), (2, 5, 5, 2))
    src.bn.mean[...] = tensors["bn.running_mean"]
    src.bn.var[...] = tensors["bn.running_var"]
    src.eval()
    dst.eval()
    np.testing.assert_array_equal(dst(x), src(x))
    # the converted model has the same paths, so the same file loads into it
    analog = state_dict.load_state_dict(crossjax.convert(UserNet(nnx.Rngs(2))), path, layout="torch")
    analog.eval()
    np.testing.assert_array_equal(analog(x), src(x))


def test_nnx_named_npz_into_a_crossjax_model_with_a_mapping(tmp_path):
    src = models.MLP(6, (5,), 3, rngs=nnx.Rngs(0))
    flat = {"/".join(map(str, p)): np.asarray(v[...]) for p, v in nnx.to_flat_state(nnx.state(src, nnx.Param))}
    renamed = {k.replace("layers/", "mlp.").replace("/", "."): v for k, v in flat.items()}
    path = tmp_path / "w.npz"
    np.savez(path, **renamed, extra=np.zeros(1))
    mapping = lambda n: None if n == "extra" else n.replace("mlp.", "layers/")  # noqa: E731
    dst = state_dict.load_state_dict(models.MLP(6, (5,), 3, rngs=nnx.Rngs(1)), path, mapping=mapping)
    x = np.ones((2, 6), np.float32)
    np.testing.assert_array_equal(dst(x), src(x))
    # a dict source and a dict mapping; unlisted names are kept
    dst2 = state_dict.load_state_dict(
        models.MLP(6, (5,), 3, rngs=nnx.Rngs(2)),
        {("w0" if k == "layers/0/kernel" else k): v for k, v in flat.items()},
        mapping={"w0": "layers/0/kernel"},
    )
    np.testing.assert_array_equal(dst2(x), src(x))


def test_bf16_and_partial_loads(tmp_path):
    net = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    w = np.arange(6, dtype=np.float32).reshape(2, 3).astype(ml_dtypes.bfloat16)
    write_safetensors(tmp_path / "a.safetensors", {"weight": w})
    with pytest.raises(ValueError, match="not in the state dict.*bias"):
        state_dict.load_state_dict(net, tmp_path / "a.safetensors", layout="torch")
    state_dict.load_state_dict(net, tmp_path / "a.safetensors", layout="torch", strict=False)
    np.testing.assert_array_equal(net.kernel[...], w.astype(np.float32).T)
    assert net.kernel[...].dtype == jnp.float32


def test_bad_state_dicts_are_refused_naming_them_all(tmp_path):
    net = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="'weight' has shape .* but kernel.*'nope' matches no model variable"):
        state_dict.load_state_dict(
            net, {"weight": np.ones((3, 3)), "nope": np.ones(1), "bias": np.ones(2)}, layout="torch"
        )
    with pytest.raises(ValueError, match="layout"):
        state_dict.load_state_dict(net, {}, layout="pytorch")
    with pytest.raises(ValueError, match="does not exist"):
        state_dict.load_state_dict(net, tmp_path / "missing.safetensors")
    (tmp_path / "w.pt").write_bytes(b"x")
    with pytest.raises(ValueError, match="unknown format"):
        state_dict.load_state_dict(net, tmp_path / "w.pt")
    write_safetensors(tmp_path / "t.safetensors", {"w": np.ones((4, 4), np.float32)})
    raw = (tmp_path / "t.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(raw[:-8])
    with pytest.raises(ValueError, match="byte range"):
        state_dict.read_safetensors(tmp_path / "cut.safetensors")
    (tmp_path / "short.safetensors").write_bytes(raw[:5])
    with pytest.raises(ValueError, match="no header length"):
        state_dict.read_safetensors(tmp_path / "short.safetensors")
    (tmp_path / "big.safetensors").write_bytes(struct.pack("<Q", 10**6) + b"{}")
    with pytest.raises(ValueError, match="truncated"):
        state_dict.read_safetensors(tmp_path / "big.safetensors")
    h = json.dumps({"w": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}).encode()
    (tmp_path / "f8.safetensors").write_bytes(struct.pack("<Q", len(h)) + h + b"\0")
    with pytest.raises(ValueError, match="dtype 'F8_E4M3'"):
        state_dict.read_safetensors(tmp_path / "f8.safetensors")


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        hnp.arrays(
            st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.int8, np.uint8, np.bool_]),
            hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_safetensors_round_trip_any_dtype_and_shape(tmp_path_factory, arrays):
    path = tmp_path_factory.mktemp("st") / "x.safetensors"
    tensors = {f"t{i}": a for i, a in enumerate(arrays)}
    write_safetensors(path, tensors)
    back = state_dict.read_safetensors(path)
    assert back.keys() == tensors.keys()
    for k, a in tensors.items():
        assert back[k].dtype == a.dtype and back[k].shape == a.shape
        np.testing.assert_array_equal(back[k], a)
