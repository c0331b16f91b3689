"""Tests of crossjax.study / report / cli: tiny studies on the offline digits."""

import json

import numpy as np
import pytest
import results_schema  # tests/ is on sys.path
from hypothesis import given, settings
from hypothesis import strategies as st

from crossjax import cli, hardware, montecarlo, study, training
from crossjax.circuit.parasitics import Parasitics
from crossjax.devices import WriteNoise

KEYS = {"mean", "std", "min", "max", "p05", "p50", "p95"}


def _tiny_spec(**kw):
    base = hardware.HardwareConfig()
    cases = (
        study.HardwareCase("ideal", base),
        study.HardwareCase("noise", base.set({"device.write_noise": WriteNoise(sigma=0.1)})),
        study.HardwareCase("wires", base.set({"array.parasitics": Parasitics(30.0, 30.0)})),
    )
    spec = study.StudySpec(
        dataset="digits",
        model="mlp",
        hidden=(16,),
        train=training.TrainConfig(steps=120, batch_size=32, learning_rate=1e-2),
        configs=cases,
        samples=3,
        eval_batch_size=256,
        max_test=200,
    )
    return spec.replace(**kw)


def _check_schema(res, names):
    assert 0 <= res["digital"]["accuracy"] <= 1
    assert [c["name"] for c in res["configs"]] == names
    for c in res["configs"]:
        assert set(c["accuracy"]) >= KEYS and isinstance(c["samples"], int)
        assert all(0 <= c["accuracy"][k] <= 1 for k in KEYS)
        assert c["accuracy"]["min"] <= c["accuracy"]["p50"] <= c["accuracy"]["max"]
        hardware.HardwareConfig.from_dict(c["hardware"])  # round-trips
    assert {"seed", "dataset", "model", "versions", "seconds"} <= set(res["meta"])


@pytest.mark.slow  # 30 s: the default run keeps the resume checks of test_study_reliability
def test_study_end_to_end_and_resume(tmp_path, monkeypatch):
    spec = _tiny_spec(
        finetune=study.FinetuneSpec("wires", training.TrainConfig(steps=3, batch_size=32, learning_rate=1e-3))
    )
    out = tmp_path / "s"
    calls = []
    real = montecarlo.evaluate  # every Monte Carlo evaluation of the study goes through it

    def counting(model, hw, keys, *args, **kw):
        calls.append(int(keys.shape[0]))
        return real(model, hw, keys, *args, **kw)

    monkeypatch.setattr(montecarlo, "evaluate", counting)

    # "kill" the study after its first non-ideal config
    def killer(path, text, _real=study.ckpt.atomic_write_text):
        _real(path, text)
        if len(json.loads(text)["configs"]) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(study.ckpt, "atomic_write_text", killer)
    with pytest.raises(KeyboardInterrupt):
        study.run_study(spec, out, seed=0, progress=False, plots=False)
    partial = json.loads((out / "results.json").read_text())
    assert [c["name"] for c in partial["configs"]] == ["ideal", "noise"]
    assert calls == [1, 3]  # deterministic ideal: 1 sample; noise: S

    monkeypatch.undo()
    monkeypatch.setattr(montecarlo, "evaluate", counting)
    calls.clear()
    res = study.run_study(spec, out, seed=0, progress=False, plots=True)
    # only the unfinished config and the fine-tuning before/after evaluations ran
    assert calls == [1, 3, 3]
    _check_schema(res, ["ideal", "noise", "wires"])
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["configs"][:2] == partial["configs"]
    assert on_disk["meta"]["complete"]
    results_schema.check(on_disk, "study")  # every key docs/results.md marks required
    by = {c["name"]: c for c in res["configs"]}
    # ideal crossbar == digital model
    assert abs(by["ideal"]["accuracy"]["mean"] - res["digital"]["accuracy"]) <= 1e-3
    # Monte Carlo samples differ under noise
    assert len(set(by["noise"]["per_sample"])) > 1
    report = (out / "report.md").read_text()
    assert "| noise | 3 |" in report and "accuracy.png" in report and "ir_drop.png" in report
    for png in ("accuracy.png", "ir_drop.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"

    ft = res["finetune"]
    assert ft["config"] == "wires" and ft["steps"] == 3 and ft["samples"] == 3
    assert set(ft["before"]) >= KEYS and set(ft["after"]) >= KEYS
    assert "fine-tuning under `wires`" in report and (out / "finetune.ckpt").exists()

    # a different study into the same directory is refused
    with pytest.raises(ValueError, match="other arguments.*--overwrite"):
        study.run_study(spec.replace(samples=4), out, seed=0, progress=False, plots=False)


def test_config_keys_independent_of_other_configs():
    a = study.config_keys(0, "noise", 4)
    b = study.config_keys(0, "noise", 4)
    c = study.config_keys(0, "wires", 4)
    import jax

    np.testing.assert_array_equal(jax.random.key_data(a), jax.random.key_data(b))
    assert not np.array_equal(jax.random.key_data(a), jax.random.key_data(c))


def test_summarize_numbers():
    s = study.summarize(np.array([0.5, 0.7, 0.9, 1.0]))
    assert s["mean"] == pytest.approx(0.775) and s["min"] == 0.5 and s["max"] == 1.0
    assert s["std"] == pytest.approx(np.std([0.5, 0.7, 0.9, 1.0]))
    assert s["p50"] == pytest.approx(0.8)
    # the t interval by hand: s = 0.2217 (ddof 1), se = s / 2, t_{0.975, 3} = 3.18245
    sd = np.sqrt(np.sum((np.array([0.5, 0.7, 0.9, 1.0]) - 0.775) ** 2) / 3)
    assert s["se"] == pytest.approx(sd / 2, rel=1e-12)
    assert s["ci95"] == pytest.approx([0.775 - 3.182446305 * sd / 2, 1.0], rel=1e-9)  # 1.128: clipped
    one = study.summarize([0.8])
    assert one["se"] is None and one["ci95"] is None
    assert study.summarize([0.9, 0.8])["ci95"][1] == 1.0  # t = 12.7 with 2 samples: clipped to a fraction


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 500), min_size=2, max_size=64), st.integers(500, 2000))
def test_summarize_interval_matches_scipy_and_covers_the_mean(counts, n):
    from scipy import stats as sps

    acc = np.array(counts) / n
    s = study.summarize(acc)
    lo, hi = (
        sps.t.interval(0.95, acc.size - 1, loc=acc.mean(), scale=sps.sem(acc))
        if acc.std() > 0
        else (acc.mean(), acc.mean())
    )
    assert s["se"] == pytest.approx(sps.sem(acc), abs=1e-15)
    assert s["ci95"] == pytest.approx([max(lo, 0.0), min(hi, 1.0)], abs=1e-12)
    assert s["ci95"][0] <= s["mean"] <= s["ci95"][1]


def test_report_states_uncertainty_definitions_and_one_wall_time():
    from crossjax import report

    noisy = hardware.HardwareConfig().set(
        {"device.write_noise": WriteNoise(sigma=0.01), "array.parasitics": Parasitics(2.5, 2.5), "adc.bits": 8}
    )
    cfgs = [
        {
            "name": "ideal",
            "samples": 1,
            "accuracy": study.summarize([0.9]),
            "hardware": hardware.HardwareConfig().to_dict(),
        },
        {
            "name": "ir_drop",
            "samples": 4,
            "accuracy": study.summarize([0.8, 0.82, 0.84, 0.86]),
            "hardware": noisy.to_dict(),
        },
    ]
    res = {
        "meta": {"model": "mlp", "dataset": "digits", "seed": 0, "seconds": 12.34, "versions": {}},
        "digital": {"accuracy": 0.9, "test_examples": 400},
        "configs": cfgs,
    }
    text = report.markdown(res, [])
    ci = cfgs[1]["accuracy"]["ci95"]
    assert f"| ir_drop | 4 | 83.00 | {100 * ci[0]:.2f} - {100 * ci[1]:.2f} |" in text
    assert "| ideal | 1 | 90.00 | n/a (1 sample) | n/a |" in text
    assert "+- 1.50 %" in text  # sqrt(0.9 * 0.1 / 400), the test set's own error
    assert "wall time 12.3 s" in text and text.count(" s (") == 1
    assert "- **ideal**: the ideal crossbar" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("- **ir_drop**"))
    for part in (
        "`array.parasitics.r_wire_row` = 2.5 ohm",
        "`device.write_noise.sigma` = 0.01 (relative)",
        '`device.write_noise.kind` = "gaussian"',
        "`adc.bits` = 8 bits",
        '`adc.range` = "max"',
    ):
        assert part in line, part
    assert "| `adc.range` | - | full scale of the codes" in text


def test_presets_registry_and_default_spec():
    assert {"default", "quick"} <= set(study.preset_names())
    spec = study.get_preset("default")
    names = [c.name for c in spec.configs]
    assert names[0] == "ideal" and spec.samples >= 32 and spec.dataset == "digits"
    assert sum(n.startswith("write_noise") for n in names) >= 3
    assert sum(n.startswith("ir_drop") for n in names) >= 3
    assert sum(n.startswith("adc") for n in names) >= 2
    v0 = [c.hardware.array.cell.v0 for c in spec.configs if c.hardware.has_nonlinear_cells]
    assert len(v0) >= 3 and len(set(v0)) == len(v0)
    assert spec.finetune is not None and spec.finetune.config in names
    with pytest.raises(ValueError, match="unknown study preset 'nope'"):
        study.get_preset("nope")
    with pytest.raises(ValueError, match="exists already"):
        study.register_preset("default", lambda: spec)
    with pytest.raises(ValueError, match="ideal"):
        study.StudySpec(configs=spec.configs[1:])
    with pytest.raises(ValueError, match="StudySpec.model"):
        study.StudySpec(model="transformer")


def _result(name, mean, v0=None):
    cell = None if v0 is None else {"iv": "sinh", "v0": v0, "c2": 0.0, "c3": 0.0, "r_series": 0.0}
    acc = {k: mean for k in ("mean", "std", "min", "max", "p05", "p50", "p95")}
    return {"name": name, "samples": 4, "accuracy": acc, "hardware": {"array": {"cell": cell}}}


@pytest.mark.parametrize("means, monotone", [((0.97, 0.95, 0.9), True), ((0.97, 0.98, 0.9), False)])
def test_report_says_whether_the_nonlinearity_loss_is_monotone(means, monotone):
    from crossjax import report

    configs = [_result("ideal", 0.98)] + [_result(f"nl{v}", m, v) for v, m in zip((1.0, 0.25, 0.1), means)]
    text = report.markdown(
        {
            "meta": {"model": "mlp", "dataset": "digits", "seed": 0, "seconds": 1.0, "versions": {}},
            "digital": {"accuracy": 0.98},
            "configs": configs,
        },
        [],
    )
    assert "v0 = 1 V: 1.00 -> v0 = 0.25 V" in text
    assert ("grows monotonically" in text) == monotone and ("not** monotone" in text) != monotone


def test_toml_and_flags_override(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text("""
samples = 5
hidden = [32]
[train]
steps = 77
[[configs]]
name = "ideal"
[[configs]]
name = "noisy_adc"
hardware = { device = { write_noise = { sigma = 0.05 } }, adc = { bits = 5 } }
[finetune]
config = "noisy_adc"
train = { steps = 9 }
""")
    args = ["study", "--out", str(tmp_path / "o"), "--config", str(toml), "--samples", "6"]
    ns = cli.build_parser().parse_args(args)
    spec = cli.study_spec_from_args(ns)
    assert spec.samples == 6 and spec.hidden == (32,) and spec.train.steps == 77
    assert [c.name for c in spec.configs] == ["ideal", "noisy_adc"]
    hw = spec.configs[1].hardware
    assert float(hw.device.write_noise.sigma) == 0.05 and int(hw.adc.bits) == 5
    assert spec.finetune.config == "noisy_adc" and spec.finetune.train.steps == 9
    bad = tmp_path / "bad.toml"
    bad.write_text("sampels = 3\n")
    with pytest.raises(ValueError, match="sampels"):
        study.spec_from_toml(bad, spec)


def test_cli_reports_bad_input(tmp_path, capsys):
    rc = cli.main(["study", "--out", str(tmp_path), "--preset", "nope"])
    assert rc == 2 and "unknown study preset" in capsys.readouterr().err
    rc = cli.main(
        [
            "study",
            "--out",
            str(tmp_path),
            "--dataset",
            "cifar10",
            "--data-dir",
            str(tmp_path / "empty"),
            "--no-plots",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "cifar10" in err and "empty" in err


@pytest.mark.slow
def test_default_study_acceptance(tmp_path):
    """Issue 4 acceptance 1-2 on the real default study (about 2-3 min)."""
    res = study.run_study(study.get_preset("default"), tmp_path, seed=0, progress=False)
    dig = res["digital"]["accuracy"]
    by = {c["name"]: c["accuracy"]["mean"] for c in res["configs"]}
    assert dig >= 0.95 and abs(by["ideal"] - dig) <= 1e-3
    for prefix in ("write_noise_s", "ir_drop_r"):
        seq = [by[n] for n in by if n.startswith(prefix)]
        assert all(a >= b for a, b in zip(seq, seq[1:])) and seq[0] > seq[-1]
    ft = res["finetune"]
    assert ft["after"]["mean"] > ft["before"]["mean"]
