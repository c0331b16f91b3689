"""Tests of crossjax.data: offline digits, tfds loading (mocked), batching."""
import numpy as np
import pytest
import tensorflow_datasets as tfds

from crossjax import data


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


@pytest.mark.parametrize("name,shape,classes", [("cifar10", (32, 32, 3), 10),
                                                ("mnist", (28, 28, 1), 10)])
def test_tfds_through_mock(name, shape, classes):
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
