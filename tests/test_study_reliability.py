"""Studies never mix up, lose or corrupt results: fingerprints on every resumable
artifact, one writer per directory, verified checkpoints, the spec validated
before any work. Each test failed on the main before the reliability work."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from crossjax import checkpoint as ckpt
from crossjax import cli, hardware, models, study, training
from crossjax.paper_studies import harness


def _spec(**kw):
    base = hardware.HardwareConfig()
    spec = study.StudySpec(
        dataset="digits",
        model="mlp",
        hidden=(8,),
        train=training.TrainConfig(steps=30, batch_size=32, learning_rate=1e-2),
        configs=(study.HardwareCase("ideal", base),),
        samples=1,
        max_test=60,
    )
    return spec.replace(**kw)


def _run(spec, out, **kw):
    return study.run_study(spec, out, progress=False, plots=False, **kw)


# ----------------------------------------------------------------------------- stale artifacts
@pytest.mark.parametrize(
    "change",
    [
        dict(seed=5),
        dict(spec=_spec(train=training.TrainConfig(steps=30, batch_size=16, learning_rate=1e-2))),
        dict(spec=_spec(hidden=(9,))),
    ],
)
def test_killed_study_never_resumes_a_stale_checkpoint(tmp_path, change):
    out = tmp_path / "s"
    _run(_spec(), out)
    os.unlink(out / "results.json")  # killed before results.json existed: only model.ckpt is left
    spec = change.get("spec", _spec())
    with pytest.raises(ValueError, match="model.ckpt"):
        _run(spec, out, seed=change.get("seed", 0))
    res = _run(spec, out, seed=change.get("seed", 0), overwrite=True)  # and --overwrite starts afresh
    assert res["digital"]["train_steps"] == spec.train.steps


def test_checkpoint_trained_longer_than_asked_is_refused(tmp_path):
    m = models.MLP(4, (3,), 2, rngs=nnx.Rngs(0))
    ds_x, ds_y = np.random.default_rng(0).normal(size=(64, 4)), np.zeros(64, int)
    from crossjax.data import Dataset

    ds = Dataset("toy", "train", ds_x.astype(np.float32), ds_y, 2)
    path = tmp_path / "m.ckpt"
    training.train(m, ds, training.TrainConfig(steps=8, batch_size=16), checkpoint_path=path, progress=False)
    with pytest.raises(ValueError, match="already trained 8 steps"):
        training.train(m, ds, training.TrainConfig(steps=4, batch_size=16), checkpoint_path=path, progress=False)
    with pytest.raises(ValueError, match="fingerprint"):
        training.train(
            m,
            ds,
            training.TrainConfig(steps=8, batch_size=16),
            checkpoint_path=path,
            progress=False,
            fingerprint="other",
        )


def test_fingerprint_covers_data_dir_precision_and_spec(tmp_path):
    a = study.fingerprint(_spec(), 0)
    assert a != study.fingerprint(_spec(), 0, data_dir=str(tmp_path))
    assert a != study.fingerprint(_spec(samples=2), 0)
    assert a != study.fingerprint(_spec(), 1)
    assert a == study.fingerprint(_spec(), 0)


# ----------------------------------------------------------------------------- one writer
def test_concurrent_studies_into_one_directory_cannot_both_write(tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sys, time
        from crossjax.checkpoint import DirectoryLock
        with DirectoryLock({str(out)!r}):
            print("locked", flush=True)
            sys.stdin.readline()
        """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ValueError, match=f"in use by process {holder.pid}"):
            _run(_spec(), out)
        assert not (out / "results.json").exists()
    finally:
        holder.communicate("\n", timeout=60)
    _run(_spec(), out)  # released when the holder exits
    assert (out / "results.json").exists()


def test_paper_study_run_holds_its_directory(tmp_path):
    run = harness.StudyRun("x", tmp_path, quick=True, seed=0, samples=2, dataset="digits", model="mlp")
    with pytest.raises(ValueError, match="in use"):
        harness.StudyRun("x", tmp_path, quick=True, seed=0, samples=2, dataset="digits", model="mlp")
    run.close()
    harness.StudyRun("x", tmp_path, quick=True, seed=0, samples=2, dataset="digits", model="mlp").close()


# ----------------------------------------------------------------------------- integrity
def _trained_ckpt(tmp_path):
    out = tmp_path / "s"
    _run(_spec(), out)
    return out, out / "model.ckpt"


def test_flipped_or_truncated_checkpoint_bytes_are_refused(tmp_path):
    out, path = _trained_ckpt(tmp_path)
    blob = bytearray(path.read_bytes())
    for i in (len(blob) // 2, len(blob) - 40):
        bad = bytearray(blob)
        bad[i] ^= 0xFF
        path.write_bytes(bytes(bad))
        with pytest.raises(ValueError, match="model.ckpt.*(corrupt|hash)"):
            ckpt.read_checkpoint(path)
    path.write_bytes(bytes(blob[: len(blob) // 3]))
    with pytest.raises(ValueError, match="corrupt or truncated"):
        ckpt.read_checkpoint(path)
    os.unlink(out / "results.json")
    with pytest.raises(ValueError, match="--overwrite"):
        _run(_spec(), out)


def test_nan_kernels_do_not_restore(tmp_path):
    m = models.MLP(4, (3,), 2, rngs=nnx.Rngs(0))
    m.layers[0].kernel[...] = m.layers[0].kernel[...].at[0, 0].set(jnp.nan)
    path = tmp_path / "m.ckpt"
    ckpt.save_checkpoint(path, model=m)
    with pytest.raises(ValueError, match="non-finite"):
        ckpt.restore_checkpoint(path, model=models.MLP(4, (3,), 2, rngs=nnx.Rngs(1)))


@pytest.mark.parametrize("text", ['{"digital": {"accuracy": 0.9}, "configs": [', "[1, 2, 3]", '{"a": 1}', "\xff\xfe"])
def test_corrupt_results_json_names_the_file(tmp_path, text):
    out = tmp_path / "s"
    out.mkdir()
    (out / "results.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(ValueError, match="results.json.*(--overwrite)"):
        _run(_spec(), out)
    assert not (out / "model.ckpt").exists()  # refused before any training


def test_study_models_carry_fingerprint_and_hash(tmp_path):
    m = models.MLP(4, (3,), 2, rngs=nnx.Rngs(0))
    path = str(tmp_path / "model_dense.ckpt")
    ckpt.save_model(path, m, "abc")
    back = ckpt.load_model(path, models.MLP(4, (3,), 2, rngs=nnx.Rngs(1)), "abc")
    np.testing.assert_array_equal(back.layers[0].kernel[...], m.layers[0].kernel[...])
    with pytest.raises(ValueError, match="other arguments"):
        ckpt.load_model(path, models.MLP(4, (3,), 2, rngs=nnx.Rngs(1)), "xyz")
    with pytest.raises(ValueError, match="shape"):
        ckpt.load_model(path, models.MLP(4, (5,), 2, rngs=nnx.Rngs(1)), "abc")
    raw = bytearray(open(path, "rb").read())
    raw[len(raw) // 3] ^= 0xFF
    open(path, "wb").write(bytes(raw))
    with pytest.raises(ValueError, match="corrupt"):
        ckpt.load_model(path, models.MLP(4, (3,), 2, rngs=nnx.Rngs(1)), "abc")


# ----------------------------------------------------------------------------- validate before work
@pytest.mark.parametrize(
    "toml,match",
    [
        ('[[configs]]\nname = "ideal"\n[configs.hardware.adc]\nbits = "8"\n', "adc.bits"),
        ("eval_batch_size = 0\n", "eval_batch_size"),
        ("configs = 5\n", "configs"),
        ('hidden = "64"\n', "hidden"),
        ("hidden = [0]\n", "hidden"),
        ("max_test = -5\n", "max_test"),
        ("samples = 0\n", "samples"),
        ("samples = -3\n", "samples"),
        ("samples = true\n", "samples"),
        ('[[configs]]\nname = "ideal"\nsamples = 0\n', "samples"),
        ("train = 3\n", "train"),
        ("this is not toml\n", "not valid TOML"),
    ],
)
def test_bad_toml_values_are_reported_before_any_training(tmp_path, toml, match):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ValueError, match=match) as err:
        study.spec_from_toml(path, study.get_preset("quick"))
    assert "bad.toml" in str(err.value)
    rc = cli.main(["study", "--out", str(tmp_path / "o"), "--config", str(path), "--quiet", "--no-plots"])
    assert rc == 2 and not (tmp_path / "o" / "model.ckpt").exists()


def test_out_must_be_a_writable_directory(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        _run(_spec(), f)
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(ValueError, match="not writable"):
            _run(_spec(), ro)


def test_output_files_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        out, path = _trained_ckpt(tmp_path)
        for name in ("results.json", "model.ckpt"):
            assert stat.S_IMODE(os.stat(out / name).st_mode) == 0o644, name
        os.umask(0o077)
        ckpt.atomic_write_text(tmp_path / "private.txt", "x")
        assert stat.S_IMODE(os.stat(tmp_path / "private.txt").st_mode) == 0o600
    finally:
        os.umask(old)
