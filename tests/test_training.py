"""Tests of crossjax.training and crossjax.checkpoint (tiny models, digits data)."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from crossjax import checkpoint, data, training


class _Net(nnx.Module):
    """Tiny MLP with dropout, so the result depends on the RNG state too."""

    def __init__(self, seed):
        rngs = nnx.Rngs(params=seed, dropout=seed + 1)
        self.l1 = nnx.Linear(64, 16, rngs=rngs)
        self.drop = nnx.Dropout(0.2, rngs=rngs)
        self.l2 = nnx.Linear(16, 10, rngs=rngs)

    def __call__(self, x):
        return self.l2(self.drop(nnx.relu(self.l1(x))))


@pytest.fixture(scope="module")
def digits():
    return data.load_dataset("digits", split="train")


def _params(model):
    return jax.tree.leaves(nnx.state(model, nnx.Param))


def test_train_config_validation():
    with pytest.raises(ValueError, match="TrainConfig.steps"):
        training.TrainConfig(steps=0)
    with pytest.raises(ValueError, match="TrainConfig.optimizer"):
        training.TrainConfig(optimizer="lbfgs")
    with pytest.raises(ValueError, match="unknown keys"):
        training.TrainConfig.from_dict({"stepz": 3})
    cfg = training.TrainConfig(steps=7, learning_rate=1e-2)
    assert training.TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_training_reduces_loss_and_learns(digits):
    model = _Net(0)
    cfg = training.TrainConfig(steps=150, batch_size=32, learning_rate=1e-2)
    res = training.train(model, digits, cfg, progress=False)
    assert res.step == 150 and res.losses.shape == (150,)
    assert res.losses[-20:].mean() < 0.5 * res.losses[:5].mean()
    model.eval()
    test = data.load_dataset("digits", split="test")
    acc = float(jnp.mean(jnp.argmax(model(jnp.asarray(test.x)), -1) == test.y))
    assert acc > 0.85


def test_resume_after_interruption_is_bit_identical(tmp_path, digits):
    cfg = training.TrainConfig(steps=60, batch_size=32, checkpoint_every=25)
    straight = _Net(1)
    training.train(straight, digits, cfg, progress=False)

    path = tmp_path / "run.ckpt"
    crashed = _Net(1)
    r1 = training.train(crashed, digits, cfg, checkpoint_path=path, stop_at=37, progress=False)
    assert r1.step == 37 and path.exists()
    # a fresh process: a differently initialised model, restored from disk
    resumed = _Net(99)
    r2 = training.train(resumed, digits, cfg, checkpoint_path=path, progress=False)
    assert (r2.resumed_from, r2.step) == (37, 60)
    for a, b in zip(_params(straight), _params(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # and the RNG streams ended in the same state
    ka = jax.random.key_data(straight.drop.rngs.key[...])
    kb = jax.random.key_data(resumed.drop.rngs.key[...])
    np.testing.assert_array_equal(ka, kb)
    assert int(straight.drop.rngs.count[...]) == int(resumed.drop.rngs.count[...])
    # no temp files left behind by the atomic writes
    assert sorted(os.listdir(tmp_path)) == ["run.ckpt"]


def test_checkpoint_roundtrip_and_mismatch(tmp_path):
    model = _Net(2)
    opt = training.new_optimizer(model, training.TrainConfig())
    path = tmp_path / "c.ckpt"
    checkpoint.save_checkpoint(path, model=model, optimizer=opt, step=11, extra={"note": "x"})
    other = _Net(3)
    opt2 = training.new_optimizer(other, training.TrainConfig())
    meta = checkpoint.restore_checkpoint(path, model=other, optimizer=opt2)
    assert meta["step"] == 11 and meta["extra"] == {"note": "x"} and meta["hardware"] is None
    for a, b in zip(_params(model), _params(other)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    class _Wider(_Net):
        def __init__(self):
            super().__init__(0)
            self.l1 = nnx.Linear(64, 17, rngs=nnx.Rngs(0))

    with pytest.raises(ValueError, match="shape"):
        checkpoint.restore_checkpoint(path, model=_Wider())
    with pytest.raises(FileNotFoundError, match="nothere"):
        checkpoint.restore_checkpoint(tmp_path / "nothere", model=model)


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "r.json"
    checkpoint.atomic_write_text(p, json.dumps({"v": 1}))

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        checkpoint.atomic_write_text(p, json.dumps({"v": 2}))
    assert json.loads(p.read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["r.json"]
