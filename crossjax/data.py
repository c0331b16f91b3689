"""Datasets for crossbar studies: offline digits, MNIST, CIFAR-10/100.

``load_dataset(name, split=...)`` returns a :class:`Dataset` of NumPy arrays
(``x`` float32 features, ``y`` int32 labels). Nothing here imports TensorFlow.

* ``"digits"`` (offline default, ships with scikit-learn): the UCI 8x8
  handwritten digits, 1797 images, 10 classes. Features are the 64 pixel
  intensities ``x = p / 16`` with ``p`` in ``{0..16}``, so ``x`` lies in
  ``[0, 1]`` (a 64-row crossbar input with ``x_max = 1``). The split is fixed
  and deterministic: a stratified 75 % / 25 % split,
  ``sklearn.model_selection.train_test_split(test_size=0.25,
  stratify=y, random_state=0)`` -> 1347 train / 450 test images.
* ``"mnist"``, ``"cifar10"``, ``"cifar100"``: images are returned
  ``(N, H, W, C)`` (``(N, 28, 28, 1)`` or ``(N, 32, 32, 3)``) with
  ``x = pixel / 255`` in ``[0, 1]``; ``flatten=True`` gives ``(N, H*W*C)`` for
  MLPs; ``y`` is the class (the *fine* label of CIFAR-100), exactly as tfds
  gives them. Two sources, looked up in this order under ``data_dir``
  (default :func:`default_data_dir`):

  1. ``DATA_DIR/crossjax/NAME/{train,test}.npz``, written by :func:`prepare`
     (``crossjax data prepare NAME --source PATH``) from the official archives
     a user downloads (CIFAR python or binary ``.tar.gz``, MNIST idx files).
     No TensorFlow needed.
  2. ``tfds.data_source(name, split=split, data_dir=data_dir, download=False)``
     (random-access ArrayRecord files, built with ``tfds build NAME
     --file_format=array_record``, which needs TensorFlow).

  Missing data raises ``FileNotFoundError`` naming the dataset, ``data_dir``
  and the ``crossjax data prepare`` command — nothing is downloaded silently.

``batches`` iterates over minibatches in a deterministic order given by
``(seed, epoch)``, so a training run can be resumed at any step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import io
import os
import pathlib
import pickle
import struct
import tarfile
import tempfile
from typing import Callable, Iterator

import numpy as np

#: Number of classes of each known dataset.
NUM_CLASSES = {"digits": 10, "mnist": 10, "cifar10": 10, "cifar100": 100}
TFDS_DATASETS = ("mnist", "cifar10", "cifar100")
SPLITS = ("train", "test")

# Fixed split of the offline digits (see module docstring).
DIGITS_TEST_FRACTION = 0.25
DIGITS_SPLIT_SEED = 0


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One split of a dataset: ``x`` (N, ...) float32 in [0, 1], ``y`` (N,) int32."""

    name: str
    split: str
    x: np.ndarray
    y: np.ndarray
    num_classes: int

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def flatten(self) -> "Dataset":
        """The same data with features flattened to ``(N, prod(feature_shape))``."""
        return dataclasses.replace(self, x=self.x.reshape(len(self), -1))

    def take(self, n: int) -> "Dataset":
        """The first ``n`` examples (a fixed subset, e.g. for quick runs)."""
        return dataclasses.replace(self, x=self.x[:n], y=self.y[:n])


def names() -> tuple[str, ...]:
    """Names accepted by :func:`load_dataset`.

    Returns:
      A tuple of the dataset names, the keys of :data:`NUM_CLASSES`.

    Example:
      >>> from crossjax import data
      >>> data.names()
      ('digits', 'mnist', 'cifar10', 'cifar100')
    """
    return tuple(NUM_CLASSES)


def load_dataset(name: str, *, split: str, data_dir: str | None = None, flatten: bool = False) -> Dataset:
    """Load ``split`` ("train" or "test") of dataset ``name``.

    MNIST and CIFAR are read from the files :func:`prepare` wrote under
    ``data_dir`` if they exist, otherwise through tfds (see the module
    docstring); both give identical arrays.

    Args:
      name: one of :func:`names`.
      split: ``"train"`` or ``"test"``.
      data_dir: directory holding prepared datasets (``crossjax/NAME/*.npz``
        and/or tfds ones); default :func:`default_data_dir`.
      flatten: return features as ``(N, prod(feature_shape))``.

    Returns:
      A :class:`Dataset`: ``x`` float32 in [0, 1] (images ``(N, H, W, C)``),
      ``y`` int32 classes.

    Raises ``ValueError`` for an unknown name or split (or a corrupt prepared
    file) and ``FileNotFoundError`` (naming the dataset, ``data_dir`` and the
    ``crossjax data prepare`` command) when the dataset is not prepared.

    Example:
      >>> ds = load_dataset("digits", split="test")
      >>> ds.x.shape, ds.num_classes
      ((450, 64), 10)
    """
    if name not in NUM_CLASSES:
        raise ValueError(f"load_dataset: unknown dataset name={name!r}; choose one of {names()}")
    if split not in SPLITS:
        raise ValueError(f"load_dataset: unknown split={split!r} for dataset {name!r}; choose one of {SPLITS}")
    if name == "digits":
        ds = _load_digits(split)
    else:
        path = prepared_path(name, split, data_dir)
        if path.is_file():
            ds = _load_prepared(name, split, path)
        else:
            ds = _load_tfds(name, split, data_dir)
    return ds.flatten() if flatten else ds


def _load_digits(split: str) -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int32)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=DIGITS_TEST_FRACTION, stratify=y, random_state=DIGITS_SPLIT_SEED
    )
    if split == "train":
        return Dataset("digits", split, x_tr, y_tr, 10)
    return Dataset("digits", split, x_te, y_te, 10)


def _images_to_dataset(name: str, split: str, images: np.ndarray, labels: np.ndarray) -> Dataset:
    """uint8 images ``(N, H, W[, C])`` and labels -> the normalised Dataset."""
    if images.ndim == 3:  # (N, H, W) -> (N, H, W, 1)
        images = images[..., None]
    x = images.astype(np.float32) / 255.0
    y = np.asarray(labels, dtype=np.int32)
    return Dataset(name, split, x, y, NUM_CLASSES[name])


def _load_tfds(name: str, split: str, data_dir: str | None) -> Dataset:
    where = data_dir if data_dir is not None else "the default tfds data_dir"
    try:
        import tensorflow_datasets as tfds

        source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
        n = len(source)
        records = [source[i] for i in range(n)]
    except Exception as err:  # tfds raises assorted types for missing data
        raise FileNotFoundError(
            f"load_dataset: dataset {name!r} (split {split!r}) is not prepared "
            f"in data_dir={where!r}: no {prepared_path(name, split, data_dir)} "
            f"and no tfds dataset ({type(err).__name__}: {err}). Download "
            f"{_download_hint(name)} and run `crossjax data prepare {name} "
            f"--source PATH --data-dir DIR` (no TensorFlow needed), or, with "
            f"TensorFlow installed, `tfds build {name} "
            f"--file_format=array_record --data_dir=DIR`; then pass "
            f"data_dir=DIR (--data-dir DIR), or use the offline dataset "
            f"'digits'."
        ) from err
    if n == 0:
        raise FileNotFoundError(f"load_dataset: dataset {name!r} split {split!r} in data_dir={where!r} is empty")
    images = np.stack([np.asarray(r["image"]) for r in records])
    labels = np.asarray([int(r["label"]) for r in records], dtype=np.int32)
    return _images_to_dataset(name, split, images, labels)


def num_batches(n: int, batch_size: int, *, drop_remainder: bool = True) -> int:
    """Batches per epoch of ``n`` examples.

    Args:
      n: examples in the epoch.
      batch_size: examples per batch, a positive integer.
      drop_remainder: do not count a last short batch.

    Returns:
      ``n // batch_size`` with ``drop_remainder``, else ``ceil(n / batch_size)``.

    Raises:
      ValueError: ``batch_size <= 0``.

    Example:
      >>> from crossjax import data
      >>> data.num_batches(10, 4), data.num_batches(10, 4, drop_remainder=False)
      (2, 3)
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size={batch_size} must be a positive integer")
    full, rest = divmod(n, batch_size)
    return full if (drop_remainder or rest == 0) else full + 1


def epoch_permutation(n: int, *, seed: int, epoch: int) -> np.ndarray:
    """The example order of ``epoch``: a permutation of ``range(n)``.

    Depends only on ``(seed, epoch)`` (NumPy ``PCG64`` seeded with both), so
    any step of a run can be reproduced without replaying earlier epochs.

    Args:
      n: examples.
      seed: the run's data seed.
      epoch: the epoch.

    Returns:
      ``(n,)`` integer array, a permutation of ``range(n)``.

    Example:
      >>> from crossjax import data
      >>> p = data.epoch_permutation(10, seed=0, epoch=3)
      >>> sorted(p.tolist()) == list(range(10)), bool((p == data.epoch_permutation(10, seed=0, epoch=3)).all())
      (True, True)
      >>> bool((p == data.epoch_permutation(10, seed=0, epoch=4)).all())  # another epoch, another order
      False
    """
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


def batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    seed: int = 0,
    epoch: int = 0,
    shuffle: bool = True,
    drop_remainder: bool = True,
    start: int = 0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(x_batch, y_batch)`` for one epoch, beginning at batch ``start``.

    With ``shuffle`` the order is :func:`epoch_permutation` ``(seed, epoch)``;
    without it, the stored order. ``drop_remainder`` drops a last short batch
    (fixed shapes, so jitted steps compile once).

    Args:
      x: ``(N, ...)`` features.
      y: ``(N, ...)`` labels (``(N,)`` classes).
      batch_size: examples per batch.
      seed, epoch: the order (:func:`epoch_permutation`).
      shuffle: permute the examples; ``False``: the stored order.
      drop_remainder: drop a last batch of fewer than ``batch_size`` examples.
      start: the first batch yielded (to resume an epoch).

    Yields:
      ``(x_batch, y_batch)``: ``(batch_size, ...)`` slices of ``x`` and ``y`` (the last
      one shorter without ``drop_remainder``).

    Raises:
      ValueError: ``x`` and ``y`` differ in length, or ``drop_remainder`` leaves no batch.

    Example:
      >>> from crossjax import data
      >>> ds = data.load_dataset("digits", split="train")  # 1347 examples
      >>> xb, yb = next(data.batches(ds.x, ds.y, 128, seed=0, epoch=0))
      >>> xb.shape, yb.shape
      ((128, 64), (128,))
      >>> epoch = list(data.batches(ds.x, ds.y, 128, seed=0, epoch=0))
      >>> len(epoch)  # 1347 // 128 full batches
      10
      >>> resumed = list(data.batches(ds.x, ds.y, 128, seed=0, epoch=0, start=8))  # the same batches 8 and 9
      >>> len(resumed), bool((resumed[0][1] == epoch[8][1]).all())
      (2, True)
    """
    n = int(x.shape[0])
    if int(y.shape[0]) != n:
        raise ValueError(f"batches: x has {n} examples but y has {y.shape[0]}")
    nb = num_batches(n, batch_size, drop_remainder=drop_remainder)
    if nb == 0:
        raise ValueError(
            f"batches: batch_size={batch_size} exceeds the {n} examples with drop_remainder=True; lower it"
        )
    order = epoch_permutation(n, seed=seed, epoch=epoch) if shuffle else np.arange(n)
    for b in range(start, nb):
        idx = order[b * batch_size : (b + 1) * batch_size]
        yield x[idx], y[idx]


# --------------------------------------------------------------------------
# Preparing MNIST / CIFAR from the official archives (no TensorFlow)
# --------------------------------------------------------------------------

#: Image shape ``(H, W, C)`` of each archive dataset, as tfds gives it.
IMAGE_SHAPES = {"mnist": (28, 28, 1), "cifar10": (32, 32, 3), "cifar100": (32, 32, 3)}

#: Examples per split in the official archives (checked unless verify=False).
OFFICIAL_COUNTS = {
    "mnist": {"train": 60000, "test": 10000},
    "cifar10": {"train": 50000, "test": 10000},
    "cifar100": {"train": 50000, "test": 10000},
}

#: Official archives: file name -> (dataset, MD5 published with the dataset).
KNOWN_ARCHIVES = {
    "cifar-10-python.tar.gz": ("cifar10", "c58f30108f718f92721af3b95e74349a"),
    "cifar-10-binary.tar.gz": ("cifar10", "c32a1d4ab5d03f1284b67883e8d87530"),
    "cifar-100-python.tar.gz": ("cifar100", "eb9058c3a382ffc7106e4002c42a8d85"),
    "cifar-100-binary.tar.gz": ("cifar100", "03b5dce01913d631647c71ecec9e9cb8"),
    "train-images-idx3-ubyte.gz": ("mnist", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train-labels-idx1-ubyte.gz": ("mnist", "d53e105ee54ea40749a09fcbcd1e9432"),
    "t10k-images-idx3-ubyte.gz": ("mnist", "9fb629c4189551a2d022fa330f9573f3"),
    "t10k-labels-idx1-ubyte.gz": ("mnist", "ec29112dd5afa0611ce80d1b7f02629c"),
}

#: Version of the ``crossjax/NAME/{train,test}.npz`` layout.
PREPARED_FORMAT = 1

_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
_MNIST_URL = "https://yann.lecun.com/exdb/mnist/ (or a mirror)"

# CIFAR archive layouts: (dataset, kind) -> (folder, train members, test
# member, label bytes per binary record, label key of the python pickles).
CIFAR_LAYOUTS = {
    ("cifar10", "python"): (
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test_batch",
        None,
        "labels",
    ),
    ("cifar10", "binary"): (
        "cifar-10-batches-bin",
        tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
        "test_batch.bin",
        1,
        None,
    ),
    ("cifar100", "python"): ("cifar-100-python", ("train",), "test", None, "fine_labels"),
    ("cifar100", "binary"): ("cifar-100-binary", ("train.bin",), "test.bin", 2, None),
}
_CIFAR_ARCHIVE = {
    ("cifar10", "python"): "cifar-10-python.tar.gz",
    ("cifar10", "binary"): "cifar-10-binary.tar.gz",
    ("cifar100", "python"): "cifar-100-python.tar.gz",
    ("cifar100", "binary"): "cifar-100-binary.tar.gz",
}
_CIFAR_PIXELS = 3 * 32 * 32

# MNIST idx files: (split, part) -> official stem; magic numbers 2051/2049.
_MNIST_STEMS = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
_MNIST_MAGIC = {"images": 2051, "labels": 2049}

# idx type codes -> big-endian NumPy dtypes.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def default_data_dir() -> pathlib.Path:
    """The data directory used when ``data_dir`` is None.

    The tfds default, so one directory serves both sources: ``$TFDS_DATA_DIR``
    if set, else ``~/tensorflow_datasets``.

    Returns:
      The directory (it need not exist).

    Example:
      >>> default_data_dir().name  # doctest: +SKIP
      'tensorflow_datasets'
    """
    env = os.environ.get("TFDS_DATA_DIR")
    return pathlib.Path(env if env else "~/tensorflow_datasets").expanduser()


def prepared_path(name: str, split: str, data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Where :func:`prepare` writes ``split`` of ``name``.

    Args:
      name: ``"mnist"``, ``"cifar10"`` or ``"cifar100"``.
      split: ``"train"`` or ``"test"``.
      data_dir: the data directory (default :func:`default_data_dir`).

    Returns:
      ``data_dir / "crossjax" / name / f"{split}.npz"``.

    Example:
      >>> prepared_path("mnist", "test", "/data").as_posix()
      '/data/crossjax/mnist/test.npz'
    """
    root = pathlib.Path(data_dir) if data_dir is not None else default_data_dir()
    return root / "crossjax" / name / f"{split}.npz"


def _download_hint(name: str) -> str:
    if name == "mnist":
        return (
            f"the four MNIST files train-images-idx3-ubyte.gz, "
            f"train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
            f"t10k-labels-idx1-ubyte.gz from {_MNIST_URL} into one "
            f"directory PATH"
        )
    num = name[len("cifar") :]
    return f"cifar-{num}-python.tar.gz or cifar-{num}-binary.tar.gz (PATH) from {_CIFAR_URL}"


def read_idx(raw: bytes, *, where: str = "idx data") -> np.ndarray:
    """Parse an idx file (the MNIST format) into an array.

    Layout: two zero bytes, a type code (``0x08`` uint8, ``0x09`` int8,
    ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64), the
    number of dimensions ``d``, then ``d`` big-endian uint32 sizes, then the
    values in C order, big-endian. So the magic number (the first 4 bytes as
    a big-endian int) is 2051 for MNIST images (uint8, 3 dims) and 2049 for
    labels (uint8, 1 dim).

    Args:
      raw: the file's bytes (already decompressed).
      where: what to call the data in error messages (e.g. its path).

    Returns:
      A native-byte-order array of the file's shape and type.

    Raises ``ValueError`` (naming ``where``) for a bad header or a size that
    does not match the header.

    Example:
      >>> read_idx(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
      array([7, 8, 9], dtype=uint8)
    """
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{where}: not an idx file (first bytes {raw[:4]!r}; expected 0, 0, "
            f"a type code in {sorted(_IDX_DTYPES)} and the number of "
            f"dimensions); pass the original, decompressed-or-.gz idx file"
        )
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise ValueError(
            f"{where}: idx header with {ndim} dimensions is "
            f"truncated or empty ({len(raw)} bytes); the file is "
            f"damaged, download it again"
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    count = int(np.prod(shape, dtype=np.int64))
    expected = header + count * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"{where}: idx header says shape {shape} of "
            f"{dtype.name} ({expected} bytes) but the file has "
            f"{len(raw)} bytes; the file is truncated or damaged, "
            f"download it again"
        )
    values = np.frombuffer(raw, dtype=dtype, count=count, offset=header)
    return values.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def _md5(path: pathlib.Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_archive(path: pathlib.Path, name: str, verify: bool) -> None:
    """A file named like an official archive must be that archive."""
    known = KNOWN_ARCHIVES.get(path.name)
    if known is None:
        return
    dataset, md5 = known
    if dataset != name:
        raise ValueError(
            f"prepare: --source {path} is the official {dataset!r} "
            f"archive, not one of {name!r}; pass name={dataset!r} "
            f"or the {name!r} archive"
        )
    if verify:
        got = _md5(path)
        if got != md5:
            raise ValueError(
                f"prepare: {path} has MD5 {got}, but the official {path.name} "
                f"has MD5 {md5}: the download is incomplete or damaged (download "
                f"it again), or it is a different file under the official name "
                f"(pass verify=False / --no-verify to use it anyway)"
            )


# -- restricted unpickling of the CIFAR python batches -----------------------


def _plain_dtype(*args):
    dt = np.dtype(*args)
    if dt.hasobject:
        raise pickle.UnpicklingError("refusing an object dtype")
    return dt


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _plain_reconstruct(subtype, shape, dtype):
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"refusing array subtype {subtype!r}")
    return _numpy_reconstruct()(subtype, shape, dtype)


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles builtins and plain NumPy arrays; refuses every other global.

    The official CIFAR batches (Python 2 pickles) hold a dict of bytes,
    ints, lists and one uint8 array, which needs exactly these globals.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _plain_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _plain_reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _plain_dtype,
    }

    def find_class(self, module, name):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing global {module}.{name}: not part of an official CIFAR batch"
            ) from None


def _unpickle_batch(raw: bytes, where: str) -> dict:
    try:
        obj = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as err:  # pickle raises assorted types for bad data
        raise ValueError(
            f"{where}: not an official CIFAR python batch "
            f"({type(err).__name__}: {err}); download the "
            f"python version again from {_CIFAR_URL}"
        ) from err
    if not isinstance(obj, dict):
        raise ValueError(
            f"{where}: holds a {type(obj).__name__}, not the dict "
            f"of a CIFAR python batch; download it again from "
            f"{_CIFAR_URL}"
        )
    return obj


def _entry(d: dict, key: str, where: str):
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise ValueError(
        f"{where}: the CIFAR batch has no {key.encode()!r} entry "
        f"(keys {sorted(map(repr, d))}); is it the right dataset "
        f"(CIFAR-10 batches have b'labels', CIFAR-100 ones "
        f"b'fine_labels')? Download it again from {_CIFAR_URL}"
    )


def _check_labels(labels, classes: int, where: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(
            f"{where}: labels must be a 1-D list of integers, got "
            f"shape {labels.shape} dtype {labels.dtype}; download "
            f"the file again"
        )
    bad = labels[(labels < 0) | (labels >= classes)]
    if bad.size:
        raise ValueError(
            f"{where}: label {int(bad[0])} out of range [0, "
            f"{classes}); the file is damaged or belongs to "
            f"another dataset"
        )
    return labels.astype(np.int32)


def _chw_to_hwc(rows: np.ndarray) -> np.ndarray:
    """CIFAR rows (N, 3072) in channel-major order -> (N, 32, 32, 3)."""
    return np.ascontiguousarray(rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def _cifar_python(raw: bytes, where: str, label_key: str, classes: int, coarse: bool) -> dict[str, np.ndarray]:
    d = _unpickle_batch(raw, where)
    data = _entry(d, "data", where)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _CIFAR_PIXELS:
        desc = f"shape {data.shape} dtype {data.dtype}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(
            f"{where}: b'data' must be a uint8 array (N, "
            f"{_CIFAR_PIXELS}), got {desc}; download the python "
            f"version again from {_CIFAR_URL}"
        )
    out = {"label": _check_labels(_entry(d, label_key, where), classes, where)}
    if coarse:
        out["coarse_label"] = _check_labels(_entry(d, "coarse_labels", where), 20, where)
    for k, v in out.items():
        if len(v) != len(data):
            raise ValueError(f"{where}: {len(data)} images but {len(v)} {k}s; the batch is damaged, download it again")
    out["image"] = _chw_to_hwc(data)
    return out


def _cifar_binary(raw: bytes, where: str, label_bytes: int, classes: int) -> dict[str, np.ndarray]:
    record = label_bytes + _CIFAR_PIXELS
    if len(raw) % record:
        raise ValueError(
            f"{where}: {len(raw)} bytes is not a whole number of "
            f"{record}-byte records ({label_bytes} label byte(s) + "
            f"{_CIFAR_PIXELS} pixels); the file is truncated, or it "
            f"is not the binary version of this dataset (download "
            f"it again from {_CIFAR_URL})"
        )
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(-1, record)
    out = {"label": _check_labels(rows[:, label_bytes - 1], classes, where)}
    if label_bytes == 2:  # CIFAR-100: coarse, fine
        out["coarse_label"] = _check_labels(rows[:, 0], 20, where)
    out["image"] = _chw_to_hwc(rows[:, label_bytes:])
    return out


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


@contextlib.contextmanager
def _tar_reader(path: pathlib.Path) -> Iterator[tuple[list[str], Callable[[str], bytes]]]:
    """Member names of a tar archive and a function reading one (in memory)."""
    try:
        tar = tarfile.open(path, mode="r:*")
        members = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ValueError(
            f"prepare: --source {path} is not a readable .tar.gz "
            f"archive ({type(err).__name__}: {err}); download it "
            f"again from {_CIFAR_URL}"
        ) from err

    def read(member: str) -> bytes:
        if member not in members:
            raise ValueError(
                f"prepare: {path} has no member {member!r}; it is "
                f"not the official archive layout (download it "
                f"again from {_CIFAR_URL})"
            )
        try:
            return tar.extractfile(members[member]).read()
        except (tarfile.TarError, OSError, EOFError) as err:
            raise ValueError(
                f"prepare: {path}: cannot read {member!r} "
                f"({type(err).__name__}: {err}); the archive is "
                f"truncated, download it again"
            ) from err

    with tar:
        yield sorted(members), read


@contextlib.contextmanager
def _dir_reader(root: pathlib.Path) -> Iterator[tuple[list[str], Callable[[str], bytes]]]:
    names_ = sorted(p.relative_to(root).as_posix() for p in root.glob("*/*") if p.is_file())

    def read(member: str) -> bytes:
        f = root / member
        if not f.is_file():
            raise ValueError(f"prepare: {f} is missing; the extracted archive is incomplete (extract it again)")
        return f.read_bytes()

    yield names_, read


@contextlib.contextmanager
def _cifar_source(name: str, source: pathlib.Path, verify: bool):
    """Yields (kind, where, read) for a CIFAR archive or extracted directory."""
    folders = {layout[0]: key for key, layout in CIFAR_LAYOUTS.items()}
    if source.is_dir():
        for kind in ("python", "binary"):  # an archive inside the directory
            archive = source / _CIFAR_ARCHIVE[(name, kind)]
            if archive.is_file():
                with _cifar_source(name, archive, verify) as found:
                    yield found
                return
        if source.name in folders:  # the extracted folder itself
            source = source.parent
        if not any((source / f).is_dir() for f in folders):
            raise ValueError(
                f"prepare: --source {source} holds neither "
                f"{' nor '.join(_CIFAR_ARCHIVE[(name, k)] for k in ('python', 'binary'))} "
                f"nor an extracted {'/'.join(f for f, k in folders.items() if k[0] == name)} "
                f"folder; pass the archive downloaded from {_CIFAR_URL}"
            )
        opened = _dir_reader(source)
    else:
        _check_archive(source, name, verify)
        opened = _tar_reader(source)
    with opened as (members, read):
        tops = {m.split("/", 1)[0] for m in members}
        found = [folders[t] for t in sorted(tops) if t in folders]
        mine = [kind for dataset, kind in found if dataset == name]
        if not mine and found:
            raise ValueError(
                f"prepare: {source} holds {found[0][0]!r} "
                f"({found[0][1]} version), not {name!r}; pass "
                f"name={found[0][0]!r} or the {name!r} archive"
            )
        if not mine:
            raise ValueError(
                f"prepare: {source} has none of the folders "
                f"{sorted(folders)} of the official CIFAR archives "
                f"(it has {sorted(tops)[:5]}); pass "
                f"{_download_hint(name)}"
            )
        yield mine[0], source, read


def _read_cifar(name: str, source: pathlib.Path, verify: bool) -> dict[str, dict[str, np.ndarray]]:
    with _cifar_source(name, source, verify) as (kind, where, read):
        folder, train, test, label_bytes, label_key = CIFAR_LAYOUTS[(name, kind)]
        classes = NUM_CLASSES[name]
        out = {}
        for split, members in (("train", train), ("test", (test,))):
            parts = []
            for m in members:
                member = f"{folder}/{m}"
                raw = read(member)
                at = f"prepare: {where}: {member}"
                if kind == "python":
                    parts.append(_cifar_python(raw, at, label_key, classes, coarse=name == "cifar100"))
                else:
                    parts.append(_cifar_binary(raw, at, label_bytes, classes))
            out[split] = _concat(parts)
    return out


def _mnist_file(source: pathlib.Path, stem: str) -> pathlib.Path:
    dotted = stem.replace("-idx", ".idx")  # some mirrors spell it this way
    for cand in (stem + ".gz", stem, dotted + ".gz", dotted):
        if (source / cand).is_file():
            return source / cand
    raise ValueError(
        f"prepare: --source {source} has no {stem}.gz (nor {stem}); "
        f"pass the directory holding {_download_hint('mnist')}"
    )


def _read_mnist(source: pathlib.Path, verify: bool) -> dict[str, dict[str, np.ndarray]]:
    if not source.is_dir():
        raise ValueError(
            f"prepare: --source {source} must be a directory for 'mnist', holding {_download_hint('mnist')}"
        )
    out: dict[str, dict[str, np.ndarray]] = {"train": {}, "test": {}}
    for (split, part), stem in _MNIST_STEMS.items():
        path = _mnist_file(source, stem)
        _check_archive(path, "mnist", verify)
        raw = path.read_bytes()
        if path.suffix == ".gz":
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError) as err:
                raise ValueError(
                    f"prepare: {path} is not a readable gzip file "
                    f"({type(err).__name__}: {err}); download it "
                    f"again from {_MNIST_URL}"
                ) from err
        magic = int.from_bytes(raw[:4], "big")
        if magic != _MNIST_MAGIC[part]:
            raise ValueError(
                f"prepare: {path} has magic number {magic}, but an "
                f"MNIST {part} file has {_MNIST_MAGIC[part]}; check "
                f"that the file is {stem}"
            )
        arr = read_idx(raw, where=f"prepare: {path}")
        if part == "images":
            if arr.shape[1:] != (28, 28):
                raise ValueError(
                    f"prepare: {path} holds images of shape "
                    f"{arr.shape[1:]}, MNIST's are (28, 28); check "
                    f"that the file is {stem}"
                )
            out[split]["image"] = arr[..., None]
        else:
            out[split]["label"] = _check_labels(arr, 10, f"prepare: {path}")
    for split, d in out.items():
        if len(d["image"]) != len(d["label"]):
            raise ValueError(
                f"prepare: MNIST {split} has {len(d['image'])} "
                f"images but {len(d['label'])} labels in {source}; "
                f"the images and labels files do not belong "
                f"together, download them again"
            )
    return out


def _write_npz_atomic(path: pathlib.Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def prepare(
    name: str, source: str | os.PathLike, data_dir: str | os.PathLike | None = None, *, verify: bool = True
) -> dict[str, pathlib.Path]:
    """Convert an official MNIST/CIFAR download into files :func:`load_dataset` reads.

    Reads, without TensorFlow:

    * CIFAR-10: ``cifar-10-python.tar.gz`` (pickled batches
      ``cifar-10-batches-py/data_batch_1..5``, ``test_batch``) or
      ``cifar-10-binary.tar.gz`` (``cifar-10-batches-bin/*.bin``, records of 1
      label byte + 3072 pixels).
    * CIFAR-100: ``cifar-100-python.tar.gz`` (``cifar-100-python/train``,
      ``test``) or ``cifar-100-binary.tar.gz`` (``train.bin``, ``test.bin``,
      records of coarse and fine label bytes + 3072 pixels).
    * MNIST: a directory holding ``train-images-idx3-ubyte``,
      ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
      ``t10k-labels-idx1-ubyte`` (each ``.gz`` or plain).

    CIFAR ``source`` may also be a directory holding the archive or its
    extracted folder. Pixels are stored channel-major (``R`` plane, ``G``,
    ``B``) in CIFAR; they are written ``(N, 32, 32, 3)`` uint8, MNIST
    ``(N, 28, 28, 1)``, so :func:`load_dataset` returns exactly what the tfds
    path returns (label = fine label for CIFAR-100; the coarse one is kept as
    ``coarse_label``). Each split goes to :func:`prepared_path` atomically
    (a temporary file, then ``os.replace``). Pickles are loaded with an
    unpickler that refuses every global but plain NumPy arrays.

    Args:
      name: ``"mnist"``, ``"cifar10"`` or ``"cifar100"``.
      source: the downloaded archive (CIFAR) or directory (MNIST).
      data_dir: where to write (default :func:`default_data_dir`); pass the
        same ``data_dir`` to :func:`load_dataset`.
      verify: check the MD5 of files named like an official archive
        (:data:`KNOWN_ARCHIVES`) and the official example counts
        (:data:`OFFICIAL_COUNTS`). ``False`` accepts other (e.g. subset)
        files that have the official layout.

    Returns:
      ``{"train": path, "test": path}`` of the written files.

    Raises ``ValueError`` naming the file and the fix for an unknown name, a
    checksum mismatch, a wrong layout, record size, label range or count.

    Example:
      >>> paths = prepare("cifar10", "~/Downloads/cifar-10-python.tar.gz")  # doctest: +SKIP
      >>> load_dataset("cifar10", split="test").x.shape  # doctest: +SKIP
      (10000, 32, 32, 3)
    """
    if name not in IMAGE_SHAPES:
        raise ValueError(
            f"prepare: unknown dataset name={name!r}; choose one of {tuple(IMAGE_SHAPES)} ('digits' needs no preparing)"
        )
    src = pathlib.Path(source).expanduser()
    if not src.exists():
        raise ValueError(f"prepare: --source {src} does not exist; download {_download_hint(name)}")
    splits = _read_mnist(src, verify) if name == "mnist" else _read_cifar(name, src, verify)
    for split, arrays in splits.items():
        n = len(arrays["image"])
        if n == 0:
            raise ValueError(f"prepare: {src} holds no {split} examples of {name!r}; download {_download_hint(name)}")
        official = OFFICIAL_COUNTS[name][split]
        if verify and n != official:
            raise ValueError(
                f"prepare: {src} holds {n} {split} examples of "
                f"{name!r}, the official archive {official}; download "
                f"it again, or pass verify=False (--no-verify) to "
                f"use a subset"
            )
    paths = {}
    for split, arrays in splits.items():
        path = prepared_path(name, split, data_dir)
        _write_npz_atomic(path, {**arrays, "name": np.array(name), "format": np.array(PREPARED_FORMAT)})
        paths[split] = path
    return paths


def _load_prepared(name: str, split: str, path: pathlib.Path) -> Dataset:
    fix = f"rerun `crossjax data prepare {name} --source PATH --data-dir {path.parent.parent.parent}`"
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as err:  # zipfile / numpy raise assorted types
        raise ValueError(
            f"load_dataset: {path} is not a readable prepared dataset ({type(err).__name__}: {err}); {fix}"
        ) from err
    missing = {"image", "label", "name", "format"} - set(arrays)
    if missing:
        raise ValueError(f"load_dataset: {path} lacks {sorted(missing)}; {fix}")
    if str(arrays["name"]) != name or int(arrays["format"]) != PREPARED_FORMAT:
        raise ValueError(
            f"load_dataset: {path} holds dataset "
            f"{str(arrays['name'])!r} format {int(arrays['format'])}, "
            f"expected {name!r} format {PREPARED_FORMAT}; {fix}"
        )
    images, labels = arrays["image"], arrays["label"]
    if images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPES[name] or labels.shape != images.shape[:1]:
        raise ValueError(
            f"load_dataset: {path} holds images {images.shape} "
            f"{images.dtype} and labels {labels.shape}, expected "
            f"(N, {', '.join(map(str, IMAGE_SHAPES[name]))}) uint8 "
            f"and (N,); {fix}"
        )
    labels = _check_labels(labels, NUM_CLASSES[name], f"load_dataset: {path}")
    return _images_to_dataset(name, split, images, labels)
