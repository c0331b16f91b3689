"""Tests of crossjax.data: offline digits, tfds loading (mocked), preparing
MNIST/CIFAR from archives in the official layouts, batching."""

import gzip
import io
import pickle
import pickletools
import struct
import tarfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from hypothesis import given, settings
from hypothesis import strategies as st

from crossjax import cli, data


def test_digits_split_is_fixed_disjoint_and_normalised():
    tr = data.load_dataset("digits", split="train")
    te = data.load_dataset("digits", split="test")
    assert (len(tr), len(te)) == (1347, 450)
    assert tr.x.shape == (1347, 64) and tr.x.dtype == np.float32
    assert tr.y.dtype == np.int32 and set(np.unique(te.y)) == set(range(10))
    assert tr.x.min() == 0.0 and tr.x.max() == 1.0
    # pixel values are k/16 exactly
    np.testing.assert_array_equal(tr.x * 16, np.round(tr.x * 16))
    # deterministic across calls
    tr2 = data.load_dataset("digits", split="train")
    np.testing.assert_array_equal(tr.x, tr2.x)
    # disjoint: no test image row appears (with its label) in train, except exact duplicates in the source
    from sklearn.datasets import load_digits

    full = load_digits()
    assert len(tr) + len(te) == len(full.target)
    # stratified: every class has ~25 % in test
    counts = np.bincount(te.y, minlength=10) / np.bincount(full.target, minlength=10)
    assert np.all(np.abs(counts - 0.25) < 0.02)


def test_bad_name_and_split_raise():
    with pytest.raises(ValueError, match="name='nope'"):
        data.load_dataset("nope", split="train")
    with pytest.raises(ValueError, match="split='validation'"):
        data.load_dataset("digits", split="validation")


def test_missing_tfds_data_names_dataset_and_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"'mnist'.*data_dir=.*" + tmp_path.name):
        data.load_dataset("mnist", split="test", data_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"crossjax data prepare cifar10 --source"):
        data.load_dataset("cifar10", split="test", data_dir=str(tmp_path))


@pytest.mark.parametrize("name,shape,classes", [("cifar10", (32, 32, 3), 10), ("mnist", (28, 28, 1), 10)])
def test_tfds_through_mock(name, shape, classes, tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))  # no prepared files there
    with tfds.testing.mock_data(num_examples=12):
        ds = data.load_dataset(name, split="train")
        flat = data.load_dataset(name, split="test", flatten=True)
    assert ds.x.shape == (12, *shape) and ds.x.dtype == np.float32
    assert 0.0 <= ds.x.min() and ds.x.max() <= 1.0
    assert ds.num_classes == classes and ds.y.dtype == np.int32
    assert np.all((ds.y >= 0) & (ds.y < classes))
    assert flat.x.shape == (12, int(np.prod(shape)))


def test_batches_deterministic_cover_and_resume():
    x = np.arange(50, dtype=np.float32)[:, None]
    y = np.arange(50, dtype=np.int32)
    a = [yb for _, yb in data.batches(x, y, 8, seed=3, epoch=1)]
    b = [yb for _, yb in data.batches(x, y, 8, seed=3, epoch=1)]
    c = [yb for _, yb in data.batches(x, y, 8, seed=3, epoch=2)]
    assert len(a) == 6  # 50 // 8, remainder dropped
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))
    seen = np.concatenate(a)
    assert len(np.unique(seen)) == 48  # no repeats within an epoch
    tail = [yb for _, yb in data.batches(x, y, 8, seed=3, epoch=1, start=4)]
    np.testing.assert_array_equal(np.concatenate(tail), np.concatenate(a[4:]))
    last = list(data.batches(x, y, 8, shuffle=False, drop_remainder=False))
    assert len(last) == 7 and len(last[-1][1]) == 2
    with pytest.raises(ValueError, match="batch_size"):
        list(data.batches(x, y, 64))


# --------------------------------------------------------------------------
# Fabricated archives in exactly the official layouts
# --------------------------------------------------------------------------


class _Py2Pickler(pickle._Pickler):
    """Pickles str and bytes as Python 2 ``str`` (BINSTRING), as the official
    CIFAR batches were written (cPickle, protocol 2): unpickled with
    ``encoding="bytes"`` both come back as bytes, and no global but NumPy's
    appears in the stream."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj):
        raw = obj if isinstance(obj, bytes) else obj.encode("latin1")
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str


def _py2_pickle(obj, legacy=True) -> bytes:
    """``legacy``: NumPy 1's module name, as in the official files (Python 2)."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    raw = buf.getvalue()
    if legacy:  # GLOBAL is a text line, so the name can be swapped in place
        raw = raw.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    globals_ = {a for op, a, _ in pickletools.genops(raw) if op.name == "GLOBAL"}
    assert globals_ <= {
        "numpy.core.multiarray _reconstruct",
        "numpy._core.multiarray _reconstruct",
        "numpy ndarray",
        "numpy dtype",
    }, globals_
    return raw


def _images(rng, n, shape):
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)


def _chw_rows(images_hwc):
    """(N, 32, 32, 3) -> the official (N, 3072) rows: R plane, G plane, B plane."""
    return images_hwc.transpose(0, 3, 1, 2).reshape(len(images_hwc), -1)


def _tar(path, folder, members):
    """A .tar.gz with a directory entry and regular-file members, like the originals."""
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(folder)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(info)
        for name, raw in members.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


def _split_sizes(kind):
    # CIFAR-10 train is 5 batches: 3 images each here; CIFAR-100 train one file
    return {"cifar10": (5, 3, 4), "cifar100": (1, 7, 4)}[kind]


def make_cifar(tmp_path, name, kind, seed=0, archive_name=None):
    """(archive path, {split: (images HWC uint8, labels, coarse labels or None)})."""
    rng = np.random.default_rng(seed)
    batches, per, n_test = _split_sizes(name)
    classes = data.NUM_CLASSES[name]
    folder, train_files, test_file, label_bytes, label_key = data.CIFAR_LAYOUTS[(name, kind)]
    # the layout table is what is under test: restate the official names here
    official = {
        ("cifar10", "python"): ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch"),
        ("cifar10", "binary"): ("cifar-10-batches-bin", [f"data_batch_{i}.bin" for i in range(1, 6)], "test_batch.bin"),
        ("cifar100", "python"): ("cifar-100-python", ["train"], "test"),
        ("cifar100", "binary"): ("cifar-100-binary", ["train.bin"], "test.bin"),
    }
    assert (folder, list(train_files), test_file) == official[(name, kind)]
    members, truth = {}, {"train": [], "test": []}
    for split, files, n in (("train", train_files, per), ("test", [test_file], n_test)):
        for f in files:
            img = _images(rng, n, (32, 32, 3))
            fine = rng.integers(0, classes, size=n)
            coarse = rng.integers(0, 20, size=n) if name == "cifar100" else None
            truth[split].append((img, fine, coarse))
            if kind == "python":
                d = {
                    b"batch_label": f"{f} of 1".encode(),
                    b"data": _chw_rows(img),
                    b"filenames": [f"img_{i}.png".encode() for i in range(n)],
                }
                if name == "cifar10":
                    d[b"labels"] = [int(v) for v in fine]
                else:
                    d[b"fine_labels"] = [int(v) for v in fine]
                    d[b"coarse_labels"] = [int(v) for v in coarse]
                members[f] = _py2_pickle(d, legacy=name == "cifar10")
            else:
                labels = fine[:, None] if name == "cifar10" else np.stack([coarse, fine], axis=1)
                members[f] = np.concatenate([labels.astype(np.uint8), _chw_rows(img)], axis=1).tobytes()
    if kind == "python" and name == "cifar10":
        members["batches.meta"] = _py2_pickle({b"label_names": [b"airplane"] * 10})
    default = {
        ("cifar10", "python"): "c10-py.tar.gz",
        ("cifar10", "binary"): "c10-bin.tar.gz",
        ("cifar100", "python"): "c100-py.tar.gz",
        ("cifar100", "binary"): "c100-bin.tar.gz",
    }
    path = _tar(tmp_path / (archive_name or default[(name, kind)]), folder, members)
    out = {}
    for split, parts in truth.items():
        img = np.concatenate([p[0] for p in parts])
        fine = np.concatenate([p[1] for p in parts])
        coarse = None if name == "cifar10" else np.concatenate([p[2] for p in parts])
        out[split] = (img, fine, coarse)
    return path, out


def _idx(array, code=0x08):
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.asarray(array, dtype=dtype).tobytes()


def make_mnist(directory, gz=True, seed=0, n=(6, 4)):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    truth = {}
    for split, prefix, count in (("train", "train", n[0]), ("test", "t10k", n[1])):
        img = _images(rng, count, (28, 28))
        lab = rng.integers(0, 10, size=count).astype(np.uint8)
        truth[split] = (img[..., None], lab, None)
        for part, arr, idx in (("images", img, 3), ("labels", lab, 1)):
            raw = _idx(arr)
            assert int.from_bytes(raw[:4], "big") == {"images": 2051, "labels": 2049}[part]
            fname = f"{prefix}-{part}-idx{idx}-ubyte"
            if gz:
                (directory / (fname + ".gz")).write_bytes(gzip.compress(raw))
            else:
                (directory / fname).write_bytes(raw)
    return directory, truth


SOURCES = [
    ("cifar10", "python"),
    ("cifar10", "binary"),
    ("cifar100", "python"),
    ("cifar100", "binary"),
    ("mnist", "idx-gz"),
    ("mnist", "idx"),
]


def _make(tmp_path, name, kind):
    if name == "mnist":
        return make_mnist(tmp_path / "mnist-src", gz=kind == "idx-gz")
    return make_cifar(tmp_path, name, kind)


@pytest.mark.parametrize("name,kind", SOURCES, ids=lambda v: str(v))
def test_prepare_round_trips_pixels_and_labels(tmp_path, name, kind):
    source, truth = _make(tmp_path, name, kind)
    root = tmp_path / "data"
    paths = data.prepare(name, source, root, verify=False)
    assert paths == {s: root / "crossjax" / name / f"{s}.npz" for s in ("train", "test")}
    assert not list((root / "crossjax" / name).glob("*.tmp"))  # written atomically
    for split in ("train", "test"):
        img, fine, coarse = truth[split]
        ds = data.load_dataset(name, split=split, data_dir=str(root))
        assert ds.x.shape == (len(img), *data.IMAGE_SHAPES[name]) and ds.x.dtype == np.float32
        assert ds.y.dtype == np.int32 and ds.num_classes == data.NUM_CLASSES[name]
        np.testing.assert_array_equal(ds.x, img.astype(np.float32) / 255.0)
        np.testing.assert_array_equal(ds.y, fine)
        flat = data.load_dataset(name, split=split, data_dir=str(root), flatten=True)
        assert flat.x.shape == (len(img), int(np.prod(data.IMAGE_SHAPES[name])))
        if coarse is not None:
            with np.load(paths[split]) as z:
                np.testing.assert_array_equal(z["coarse_label"], coarse)


@pytest.mark.parametrize("kind", ["python", "binary"])
def test_cifar_channel_major_rows_become_hwc(tmp_path, kind):
    """Row element c*1024 + h*32 + w of the archive is pixel (h, w, channel c)."""
    path, truth = make_cifar(tmp_path, "cifar10", kind)
    img = truth["test"][0]
    row = _chw_rows(img)[2]
    for c, h, w in [(0, 0, 1), (1, 5, 7), (2, 31, 30), (0, 17, 3)]:
        assert row[c * 1024 + h * 32 + w] == img[2, h, w, c]
    data.prepare("cifar10", path, tmp_path, verify=False)
    ds = data.load_dataset("cifar10", split="test", data_dir=str(tmp_path))
    for c, h, w in [(0, 0, 1), (1, 5, 7), (2, 31, 30), (0, 17, 3)]:
        assert ds.x[2, h, w, c] == np.float32(row[c * 1024 + h * 32 + w]) / np.float32(255)


@pytest.mark.parametrize("name", ["cifar10", "mnist"])
def test_prepared_matches_the_tfds_path(tmp_path, monkeypatch, name):
    """Same shapes, dtypes, range and class count as the tfds path; prepared files win."""
    source, truth = _make(tmp_path, name, "binary" if name == "cifar10" else "idx-gz")
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "empty"))
    with tfds.testing.mock_data(num_examples=5):
        ref = data.load_dataset(name, split="test")
        data.prepare(name, source, verify=False)  # default data_dir = $TFDS_DATA_DIR
        ds = data.load_dataset(name, split="test")
    assert (tmp_path / "empty" / "crossjax" / name / "test.npz").is_file()
    assert len(ds) == len(truth["test"][0]) != len(ref)  # read from the prepared files
    assert ds.x.shape[1:] == ref.x.shape[1:] and ds.x.dtype == ref.x.dtype
    assert ds.y.dtype == ref.y.dtype and ds.num_classes == ref.num_classes
    assert 0.0 <= ds.x.min() and ds.x.max() <= 1.0


def test_cifar_extracted_folder_and_download_dir(tmp_path):
    path, truth = make_cifar(tmp_path, "cifar100", "python")
    with tarfile.open(path) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    for source in (tmp_path / "x", tmp_path / "x" / "cifar-100-python"):
        data.prepare("cifar100", source, tmp_path / "d", verify=False)
        ds = data.load_dataset("cifar100", split="train", data_dir=str(tmp_path / "d"))
        np.testing.assert_array_equal(ds.y, truth["train"][1])
    # a download directory holding the archive under its official name
    (tmp_path / "dl").mkdir()
    make_cifar(tmp_path / "dl", "cifar10", "binary", archive_name="cifar-10-binary.tar.gz")
    with pytest.raises(ValueError, match="MD5"):
        data.prepare("cifar10", tmp_path / "dl", tmp_path / "d")
    data.prepare("cifar10", tmp_path / "dl", tmp_path / "d", verify=False)


@pytest.mark.parametrize("official", ["cifar-10-python.tar.gz", "cifar-100-binary.tar.gz"])
def test_checksum_of_an_official_name_is_checked(tmp_path, official):
    name = "cifar10" if "-10-" in official else "cifar100"
    kind = "python" if "python" in official else "binary"
    path, _ = make_cifar(tmp_path, name, kind, archive_name=official)
    with pytest.raises(ValueError, match=rf"{official} has MD5 {data.KNOWN_ARCHIVES[official][1]}.*--no-verify"):
        data.prepare(name, path, tmp_path / "d")
    assert not (tmp_path / "d").exists()
    data.prepare(name, path, tmp_path / "d", verify=False)


def test_mnist_checksum_and_official_counts(tmp_path):
    source, _ = make_mnist(tmp_path / "gz", gz=True)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz has MD5"):
        data.prepare("mnist", source, tmp_path / "d")
    plain, _ = make_mnist(tmp_path / "plain", gz=False)  # no known checksum for plain files
    with pytest.raises(ValueError, match=r"holds 6 train examples.*official archive 60000.*--no-verify"):
        data.prepare("mnist", plain, tmp_path / "d")
    data.prepare("mnist", plain, tmp_path / "d", verify=False)


def test_prepare_rejects_wrong_layouts(tmp_path):
    c10, _ = make_cifar(tmp_path, "cifar10", "python")
    with pytest.raises(ValueError, match=r"holds 'cifar10'.*name='cifar10'"):
        data.prepare("cifar100", c10, tmp_path / "d", verify=False)
    with pytest.raises(ValueError, match=r"name='nope'"):
        data.prepare("nope", c10, tmp_path / "d")
    with pytest.raises(ValueError, match=r"digits"):
        data.prepare("digits", c10, tmp_path / "d")
    with pytest.raises(ValueError, match=r"does not exist.*cifar-10-python.tar.gz"):
        data.prepare("cifar10", tmp_path / "missing.tar.gz", tmp_path / "d")
    not_tar = tmp_path / "junk.tar.gz"
    not_tar.write_bytes(b"not an archive")
    with pytest.raises(ValueError, match=r"junk.tar.gz is not a readable .tar.gz"):
        data.prepare("cifar10", not_tar, tmp_path / "d")
    other = _tar(tmp_path / "other.tar.gz", "something-else", {"a": b"x"})
    with pytest.raises(ValueError, match=r"none of the folders"):
        data.prepare("cifar10", other, tmp_path / "d")
    # a member missing
    partial = _tar(tmp_path / "partial.tar.gz", "cifar-10-batches-bin", {"test_batch.bin": b""})
    with pytest.raises(ValueError, match=r"no member 'cifar-10-batches-bin/data_batch_1.bin'"):
        data.prepare("cifar10", partial, tmp_path / "d", verify=False)
    with pytest.raises(ValueError, match="must be a directory for 'mnist'"):
        data.prepare("mnist", c10, tmp_path / "d")
    assert not (tmp_path / "d").exists()  # nothing written on any error


def _rewrite_member(path, member, fn):
    with tarfile.open(path) as tar:
        members = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
        folder = member.split("/", 1)[0]
    members[member.split("/", 1)[1]] = fn(members[member.split("/", 1)[1]])
    return _tar(path, folder, members)


def test_prepare_rejects_bad_records_and_labels(tmp_path):
    path, _ = make_cifar(tmp_path, "cifar10", "binary")
    _rewrite_member(path, "cifar-10-batches-bin/data_batch_3.bin", lambda raw: raw[:-5])
    with pytest.raises(ValueError, match=r"data_batch_3.bin: 9214 bytes is not a whole number of 3073-byte"):
        data.prepare("cifar10", path, tmp_path / "d", verify=False)

    path, _ = make_cifar(tmp_path, "cifar100", "binary")
    _rewrite_member(
        path, "cifar-100-binary/test.bin", lambda raw: bytes([0, 100]) + raw[2:]
    )  # fine label 100 of 100 classes
    with pytest.raises(ValueError, match=r"test.bin: label 100 out of range \[0, 100\)"):
        data.prepare("cifar100", path, tmp_path / "d", verify=False)

    path, _ = make_cifar(tmp_path, "cifar10", "python")

    def short_labels(raw):
        d = pickle.loads(raw, encoding="bytes")
        d[b"labels"] = d[b"labels"][:-1]
        return _py2_pickle(d)

    _rewrite_member(path, "cifar-10-batches-py/test_batch", short_labels)
    with pytest.raises(ValueError, match=r"test_batch: 4 images but 3 labels"):
        data.prepare("cifar10", path, tmp_path / "d", verify=False)

    path, _ = make_cifar(tmp_path, "cifar100", "python")
    _rewrite_member(
        path,
        "cifar-100-python/train",
        lambda raw: _py2_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}),
    )
    with pytest.raises(ValueError, match=r"train: the CIFAR batch has no b'fine_labels'"):
        data.prepare("cifar100", path, tmp_path / "d", verify=False)

    src, _ = make_mnist(tmp_path / "m1")
    (src / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(np.arange(5, dtype=np.uint8))))
    with pytest.raises(ValueError, match=r"MNIST test has 4 images but 5 labels"):
        data.prepare("mnist", src, tmp_path / "d", verify=False)
    (src / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(np.array([1, 2, 10, 3], np.uint8))))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte.gz: label 10 out of range"):
        data.prepare("mnist", src, tmp_path / "d", verify=False)
    # images and labels swapped: the magic number says so
    src, _ = make_mnist(tmp_path / "m2")
    a, b = src / "train-images-idx3-ubyte.gz", src / "train-labels-idx1-ubyte.gz"
    ra, rb = a.read_bytes(), b.read_bytes()
    a.write_bytes(rb), b.write_bytes(ra)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz has magic number 2049.*2051"):
        data.prepare("mnist", src, tmp_path / "d", verify=False)
    (src / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(np.zeros((2, 32, 32), np.uint8))))
    with pytest.raises(ValueError, match=r"images of shape \(32, 32\)"):
        data.prepare("mnist", src, tmp_path / "d", verify=False)
    (src / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match=r"not a readable gzip file"):
        data.prepare("mnist", src, tmp_path / "d", verify=False)
    (src / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(ValueError, match=r"has no train-images-idx3-ubyte.gz"):
        data.prepare("mnist", src, tmp_path / "d", verify=False)
    assert not (tmp_path / "d").exists()


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch pwned",))


@pytest.mark.parametrize("payload", ["os.system", "object-array", "subclass"])
def test_cifar_unpickling_refuses_other_globals(tmp_path, monkeypatch, payload):
    monkeypatch.chdir(tmp_path)
    path, _ = make_cifar(tmp_path, "cifar10", "python")
    evil = {
        "os.system": _Evil(),
        "object-array": np.array([1, "a"], dtype=object),
        "subclass": np.ma.masked_array(np.zeros((1, 3072), np.uint8)),
    }[payload]
    _rewrite_member(
        path, "cifar-10-batches-py/data_batch_1", lambda raw: pickle.dumps({b"data": evil, b"labels": [0]}, protocol=2)
    )
    with pytest.raises(ValueError, match=r"data_batch_1: not an official CIFAR python batch.*refusing"):
        data.prepare("cifar10", path, tmp_path / "d", verify=False)
    assert not (tmp_path / "pwned").exists()


def test_write_is_atomic_on_failure(tmp_path, monkeypatch):
    path, _ = make_cifar(tmp_path, "cifar10", "binary")
    data.prepare("cifar10", path, tmp_path / "d", verify=False)
    out = data.prepared_path("cifar10", "train", tmp_path / "d")
    before = out.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    other, _ = make_cifar(tmp_path, "cifar10", "binary", seed=1, archive_name="b.tar.gz")
    with pytest.raises(OSError, match="disk full"):
        data.prepare("cifar10", other, tmp_path / "d", verify=False)
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["test.npz", "train.npz"]


def test_corrupt_prepared_file_is_an_error_not_a_fallback(tmp_path):
    path, _ = make_cifar(tmp_path, "cifar10", "binary")
    paths = data.prepare("cifar10", path, tmp_path, verify=False)
    paths["test"].write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"test.npz is not a readable prepared dataset.*crossjax data prepare cifar10"):
        data.load_dataset("cifar10", split="test", data_dir=str(tmp_path))
    with np.load(paths["train"]) as z:
        arrays = dict(z)
    np.savez(paths["test"], **{**arrays, "name": np.array("cifar100")})
    with pytest.raises(ValueError, match=r"holds dataset 'cifar100'"):
        data.load_dataset("cifar10", split="test", data_dir=str(tmp_path))


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(0, 4), min_size=1, max_size=4),
    code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]),
    seed=st.integers(0, 2**32 - 1),
    cut=st.integers(1, 3),
)
def test_read_idx_round_trip(shape, code, seed, cut):
    dtype = np.dtype(
        {0x08: np.uint8, 0x09: np.int8, 0x0B: np.int16, 0x0C: np.int32, 0x0D: np.float32, 0x0E: np.float64}[code]
    )
    rng = np.random.default_rng(seed)
    if dtype.kind == "f":
        a = rng.standard_normal(shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    raw = _idx(a, code)
    b = data.read_idx(raw)
    assert b.shape == a.shape and b.dtype == dtype and b.dtype.isnative
    np.testing.assert_array_equal(b, a)
    with pytest.raises(ValueError, match="bytes"):
        data.read_idx(raw + b"\0" * cut)
    if a.size:
        with pytest.raises(ValueError, match="truncated"):
            data.read_idx(raw[:-cut])


def test_read_idx_rejects_non_idx():
    with pytest.raises(ValueError, match="not an idx file"):
        data.read_idx(b"\x1f\x8b\x08\x00rest")  # a gzip header: forgot to decompress
    with pytest.raises(ValueError, match="truncated or empty"):
        data.read_idx(bytes([0, 0, 8, 3, 0, 0]))


def test_cli_data_prepare(tmp_path, capsys):
    path, truth = make_cifar(tmp_path, "cifar10", "python")
    rc = cli.main(
        ["data", "prepare", "cifar10", "--source", str(path), "--data-dir", str(tmp_path / "d"), "--no-verify"]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "cifar10 train: 15 examples" in out and "test.npz" in out
    ds = data.load_dataset("cifar10", split="train", data_dir=str(tmp_path / "d"))
    np.testing.assert_array_equal(ds.y, truth["train"][1])
    rc = cli.main(
        ["data", "prepare", "cifar10", "--source", str(path), "--data-dir", str(tmp_path / "d")]
    )  # verify: subset counts refused
    err = capsys.readouterr().err
    assert rc == 2 and "crossjax data: error:" in err and "--no-verify" in err
    with pytest.raises(SystemExit):
        cli.main(["data", "prepare", "cifar10"])  # --source is required
