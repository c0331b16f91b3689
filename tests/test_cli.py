"""Tests of crossjax.cli argument handling (cheap: nothing is trained)."""

import sys
import types

from crossjax import cli, paper_studies, study


def test_unknown_preset_lists_every_preset(tmp_path, capsys):
    rc = cli.main(["study", "--out", str(tmp_path), "--preset", "nope", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown study preset" in err and "'nope'" in err
    names = study.preset_names()
    assert set(cli.preset_names()) == set(names) and set(paper_studies.STUDIES) < set(names)
    for name in names:
        assert name in err
    assert not list(tmp_path.iterdir())  # nothing written for a bad preset


# --------------------------------------------------------------------------- help, errors, output
import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

import pytest  # noqa: E402
import results_schema  # noqa: E402  (tests/ is on sys.path)


def _parsers(parser):
    """``parser`` and every subcommand parser below it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_help_points_to_the_docs_and_has_no_rst():
    parsers = list(_parsers(cli.build_parser()))
    assert len(parsers) >= 4  # crossjax, study, data, data prepare
    for p in parsers:
        text = p.format_help()
        assert "``" not in text, f"RST double backticks in `{p.prog} --help`"
    for p in parsers[:2]:  # crossjax --help and crossjax study --help
        text = " ".join(p.format_help().split())
        assert "docs/configuration.md" in text and "docs/results.md" in text, p.prog


def test_bad_config_file_is_named(tmp_path, capsys):
    bad = tmp_path / "broken.toml"
    bad.write_text("samples = [1,\n")
    rc = cli.main(["study", "--out", str(tmp_path / "o"), "--config", str(bad), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and str(bad) in err and "not valid TOML" in err
    missing = tmp_path / "nowhere.toml"
    rc = cli.main(["study", "--out", str(tmp_path / "o"), "--config", str(missing), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and str(missing) in err and "cannot be read" in err
    # a paper-study preset has fixed settings: --config is refused, not silently ignored
    rc = cli.main(["study", "--out", str(tmp_path / "p"), "--preset", "dub_adc", "--config", str(bad)])
    err = capsys.readouterr().err
    assert rc == 2 and "--config" in err and "paper-study preset" in err
    assert not (tmp_path / "o" / "model.ckpt").exists() and not (tmp_path / "p").exists()


TINY = """
samples = 2
hidden = [8]
max_test = 100
finetune = false
[train]
steps = 60
batch_size = 32
learning_rate = 0.01
[[configs]]
name = "ideal"
[[configs]]
name = "noise"
hardware = { device = { write_noise = { sigma = 0.05 } } }
"""


def _last_line_files(out: str) -> list[str]:
    last = out.strip().splitlines()[-1]
    assert last.startswith("wrote: "), last
    return [os.path.basename(p) for p in last[len("wrote: ") :].split(", ")]


def test_study_lists_written_files_and_what_a_resume_skips(tmp_path, capsys):
    toml = tmp_path / "tiny.toml"
    toml.write_text(TINY)
    out = tmp_path / "run"
    argv = ["study", "--out", str(out), "--preset", "quick", "--config", str(toml), "--quiet"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    files = _last_line_files(printed)
    assert files[:2] == ["results.json", "report.md"]
    assert (
        set(files)
        == {p.name for p in out.iterdir()} - {".lock"}
        == {"results.json", "report.md", "accuracy.png", "accuracy_vs_energy.png", "model.ckpt"}
    )
    assert "resuming" not in printed
    results = json.loads((out / "results.json").read_text())
    results_schema.check(results, "study")  # the keys docs/results.md marks required
    wall = f"wall time {results['meta']['seconds']:.1f} s"  # one figure: results, report and CLI
    assert wall in printed and wall in (out / "report.md").read_text()

    # complete rerun: everything is skipped, the checkpoint is not rewritten
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "skipping digital training and accuracy (model.ckpt); configs ideal, noise (2 of 2)" in printed
    assert "still to run: nothing" in printed
    assert set(_last_line_files(printed)) == {"results.json", "report.md", "accuracy.png", "accuracy_vs_energy.png"}

    # a killed run (the last config missing): the finished config is skipped, the other runs
    results["configs"] = results["configs"][:1]
    results["meta"]["complete"] = False
    (out / "results.json").write_text(json.dumps(results))
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "configs ideal (1 of 2)" in printed and "still to run: configs noise" in printed
    assert [c["name"] for c in json.loads((out / "results.json").read_text())["configs"]] == ["ideal", "noise"]


def test_paper_study_lists_written_files_and_reused_cells(tmp_path, capsys, monkeypatch):
    """The CLI's bookkeeping around a paper study (the study itself is faked: the real ones take
    30-100 s; tests/test_paper_studies.py runs them)."""
    calls = []

    def fake_run(out, **kw):
        first = not calls
        calls.append(kw)
        os.makedirs(out, exist_ok=True)
        cells = [{"name": "dense@ideal", "samples": 1, "accuracy": {"mean": 0.9, "std": 0.0}}]
        res = {
            "digital": {"accuracy": 0.9},
            "configs": cells,
            "variants": {},
            "meta": {"fingerprint": "f00d", "computed": 2 if first else 0, "complete": True},
        }
        with open(os.path.join(out, "results.json"), "w") as f:
            json.dump(res, f)
        with open(os.path.join(out, "report.md"), "w") as f:
            f.write("# report\n")
        if first:
            with open(os.path.join(out, "model_dense.ckpt"), "wb") as f:
                f.write(b"weights")
            with open(os.path.join(out, "accuracy_vs_energy.png"), "wb") as f:
                f.write(b"png")
        return res

    monkeypatch.setitem(sys.modules, "crossjax.paper_studies.dub_adc", types.SimpleNamespace(run=fake_run))
    out = tmp_path / "p"
    argv = ["study", "--out", str(out), "--preset", "dub_adc", "--quick", "--quiet"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert _last_line_files(printed) == ["results.json", "report.md", "accuracy_vs_energy.png", "model_dense.ckpt"]
    assert "resumed" not in printed
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "skipped 1 finished cells (dense@ideal) and 1 trained models (model_dense.ckpt)" in printed
    assert _last_line_files(printed) == ["results.json", "report.md"]
    assert [(c["quick"], c["samples"], c["dataset"]) for c in calls] == [(True, None, "digits")] * 2


def _tiny_paper_study(out, *, quick=False, seed=0, samples=None, overwrite=False, **kw):
    """A paper study in miniature on the real harness (StudyRun: fingerprint, model file, one
    Monte Carlo cell, report and plot), so --overwrite is tested without the 30-100 s studies."""
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from crossjax import hardware, models
    from crossjax.paper_studies import harness

    rs = harness.StudyRun(
        "tiny",
        out,
        quick=quick,
        seed=seed,
        samples=samples or 2,
        dataset="toy",
        model="mlp 8-4",
        overwrite=overwrite,
        files=("tiny.png",),
    )

    def build():
        return models.MLP(8, (), 4, param_dtype=jnp.float32, rngs=nnx.Rngs(seed))

    m = rs.model("dense", build, build)
    x = np.random.RandomState(0).rand(16, 8).astype(np.float32)
    y = np.asarray(jnp.argmax(m(x), -1))
    hw = hardware.HardwareConfig().set({"device.write_noise.sigma": 0.1})
    rs.cell("dense", "noisy", hw, lambda: m, x, y)
    with open(os.path.join(rs.out, "tiny.png"), "wb") as f:
        f.write(b"png")
    return rs.finish("# tiny study\n")


def test_paper_study_overwrite_discards_a_run_with_other_samples(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "crossjax.paper_studies.dub_adc", types.SimpleNamespace(run=_tiny_paper_study))
    out = tmp_path / "p"
    out.mkdir()
    (out / "notes.txt").write_text("mine")  # not the study's: --overwrite keeps it
    (out / "model_mine.ckpt").write_bytes(b"not a saved model")
    base = ["study", "--out", str(out), "--preset", "dub_adc", "--quick", "--quiet"]
    assert cli.main(base + ["--samples", "2"]) == 0
    first = json.loads((out / "results.json").read_text())
    assert [c["samples"] for c in first["configs"]] == [2]
    model_before = (out / "model_dense.ckpt").read_bytes()
    capsys.readouterr()

    # other --samples without --overwrite: refused, naming --overwrite; nothing changed
    assert cli.main(base + ["--samples", "3"]) == 2
    err = capsys.readouterr().err
    assert "other arguments" in err and "--overwrite" in err
    assert json.loads((out / "results.json").read_text()) == first

    # a stale model of another run is refused too, with the same hint
    (out / "results.json").unlink()
    assert cli.main(base + ["--samples", "3"]) == 2
    err = capsys.readouterr().err
    assert "model_dense.ckpt" in err and "--overwrite" in err

    # --overwrite: everything recomputed with --samples 3
    assert cli.main(base + ["--samples", "3", "--overwrite"]) == 0
    printed = capsys.readouterr().out
    assert "resumed" not in printed
    res = json.loads((out / "results.json").read_text())
    assert [c["samples"] for c in res["configs"]] == [3] and len(res["configs"][0]["per_sample"]) == 3
    assert res["meta"]["args"]["samples"] == 3 and res["meta"]["computed"] == 2  # model + cell
    assert res["meta"]["fingerprint"] != first["meta"]["fingerprint"] and res["meta"]["complete"]
    assert (out / "model_dense.ckpt").read_bytes() != model_before
    assert {"results.json", "report.md", "model_dense.ckpt", "tiny.png"} <= set(_last_line_files(printed))
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "model_mine.ckpt").read_bytes() == b"not a saved model"

    # and the overwritten run resumes as usual without --overwrite
    assert cli.main(base + ["--samples", "3"]) == 0
    printed = capsys.readouterr().out
    assert "skipped 1 finished cells (dense@noisy)" in printed
    assert json.loads((out / "results.json").read_text())["meta"]["computed"] == 0

    # the other flags a paper preset would ignore are still refused
    assert cli.main(base + ["--train-steps", "5"]) == 2
    assert "--train-steps" in capsys.readouterr().err


def test_quick_means_the_laptop_scale_run_for_the_default_preset_too():
    parser = cli.build_parser()
    quick = cli.study_spec_from_args(parser.parse_args(["study", "--out", "x", "--quick"]))
    assert quick == study.get_preset("quick") != study.get_preset("default")
    assert cli.study_spec_from_args(parser.parse_args(["study", "--out", "x"])) == study.get_preset("default")
    assert (
        cli.study_spec_from_args(parser.parse_args(["study", "--out", "x", "--quick", "--samples", "2"])).samples == 2
    )
    name = "tmp_no_quick_variant"
    study.register_preset(name, lambda: study.get_preset("quick"))
    try:
        with pytest.raises(ValueError, match="--quick: study preset 'tmp_no_quick_variant' has no quick variant"):
            cli.study_spec_from_args(parser.parse_args(["study", "--out", "x", "--preset", name, "--quick"]))
    finally:
        study.unregister_preset(name)


def test_model_flag_picks_the_vit_and_paper_presets_refuse_it(capsys):
    parser = cli.build_parser()
    spec = cli.study_spec_from_args(parser.parse_args(["study", "--out", "x", "--quick", "--model", "vit"]))
    assert spec.model == "vit" and spec.configs == study.get_preset("quick").configs
    assert study.get_preset("vit").model == "vit"
    with pytest.raises(ValueError, match="StudySpec.model='transformer'; choose one of"):
        cli.study_spec_from_args(parser.parse_args(["study", "--out", "x", "--model", "transformer"]))
    with pytest.raises(ValueError, match="rules apply to models built by crossjax.convert"):
        study.get_preset("quick").replace(rules=({"match": "head", "digital": True},))
    assert cli.main(["study", "--out", "x", "--preset", "dub_adc", "--model", "vit"]) == 2
    assert "--model" in capsys.readouterr().err
