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
* ``"mnist"``, ``"cifar10"``, ``"cifar100"``: read through
  ``tfds.data_source(name, split=split, data_dir=data_dir, download=False)``
  (random-access ArrayRecord files, no TensorFlow). Images are returned
  ``(N, H, W, C)`` with ``x = pixel / 255`` in ``[0, 1]``; ``flatten=True``
  gives ``(N, H*W*C)`` for MLPs. Data must already be prepared under
  ``data_dir`` (``tfds build --file_format=array_record``); missing data raises
  ``FileNotFoundError`` naming the dataset and ``data_dir`` — nothing is
  downloaded silently.

``batches`` iterates over minibatches in a deterministic order given by
``(seed, epoch)``, so a training run can be resumed at any step.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator

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
    """Names accepted by :func:`load_dataset`."""
    return tuple(NUM_CLASSES)


def load_dataset(name: str, *, split: str, data_dir: str | None = None,
                 flatten: bool = False) -> Dataset:
    """Load ``split`` ("train" or "test") of dataset ``name``.

    Raises ``ValueError`` for an unknown name or split and ``FileNotFoundError``
    (naming the dataset and ``data_dir``) when a tfds dataset is not prepared.
    """
    if name not in NUM_CLASSES:
        raise ValueError(f"load_dataset: unknown dataset name={name!r}; "
                         f"choose one of {names()}")
    if split not in SPLITS:
        raise ValueError(f"load_dataset: unknown split={split!r} for dataset "
                         f"{name!r}; choose one of {SPLITS}")
    if name == "digits":
        ds = _load_digits(split)
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
        x, y, test_size=DIGITS_TEST_FRACTION, stratify=y,
        random_state=DIGITS_SPLIT_SEED)
    if split == "train":
        return Dataset("digits", split, x_tr, y_tr, 10)
    return Dataset("digits", split, x_te, y_te, 10)


def _load_tfds(name: str, split: str, data_dir: str | None) -> Dataset:
    import tensorflow_datasets as tfds

    where = data_dir if data_dir is not None else "the default tfds data_dir"
    try:
        source = tfds.data_source(name, split=split, data_dir=data_dir,
                                  download=False)
        n = len(source)
        records = [source[i] for i in range(n)]
    except Exception as err:  # tfds raises assorted types for missing data
        raise FileNotFoundError(
            f"load_dataset: dataset {name!r} (split {split!r}) is not prepared "
            f"in data_dir={where!r} ({type(err).__name__}: {err}). Prepare it "
            f"with `tfds build {name} --file_format=array_record "
            f"--data_dir=DIR` and pass data_dir=DIR (--data-dir DIR), or use "
            f"the offline dataset 'digits'.") from err
    if n == 0:
        raise FileNotFoundError(
            f"load_dataset: dataset {name!r} split {split!r} in "
            f"data_dir={where!r} is empty")
    images = np.stack([np.asarray(r["image"]) for r in records])
    if images.ndim == 3:  # (N, H, W) -> (N, H, W, 1)
        images = images[..., None]
    x = (images.astype(np.float32) / 255.0)
    y = np.asarray([int(r["label"]) for r in records], dtype=np.int32)
    return Dataset(name, split, x, y, NUM_CLASSES[name])


def num_batches(n: int, batch_size: int, *, drop_remainder: bool = True) -> int:
    """Batches per epoch of ``n`` examples."""
    if batch_size <= 0:
        raise ValueError(f"batch_size={batch_size} must be a positive integer")
    full, rest = divmod(n, batch_size)
    return full if (drop_remainder or rest == 0) else full + 1


def epoch_permutation(n: int, *, seed: int, epoch: int) -> np.ndarray:
    """The example order of ``epoch``: a permutation of ``range(n)``.

    Depends only on ``(seed, epoch)`` (NumPy ``PCG64`` seeded with both), so
    any step of a run can be reproduced without replaying earlier epochs.
    """
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, *, seed: int = 0,
            epoch: int = 0, shuffle: bool = True,
            drop_remainder: bool = True, start: int = 0
            ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(x_batch, y_batch)`` for one epoch, beginning at batch ``start``.

    With ``shuffle`` the order is :func:`epoch_permutation` ``(seed, epoch)``;
    without it, the stored order. ``drop_remainder`` drops a last short batch
    (fixed shapes, so jitted steps compile once).
    """
    n = int(x.shape[0])
    if int(y.shape[0]) != n:
        raise ValueError(f"batches: x has {n} examples but y has {y.shape[0]}")
    nb = num_batches(n, batch_size, drop_remainder=drop_remainder)
    if nb == 0:
        raise ValueError(f"batches: batch_size={batch_size} exceeds the "
                         f"{n} examples with drop_remainder=True; lower it")
    order = epoch_permutation(n, seed=seed, epoch=epoch) if shuffle else np.arange(n)
    for b in range(start, nb):
        idx = order[b * batch_size:(b + 1) * batch_size]
        yield x[idx], y[idx]
