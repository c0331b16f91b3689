"""The three seed studies in quick mode: schema, resume, and the D.U.B. invariants."""

import json
import os
import sys
import types

import numpy as np
import pytest
import results_schema  # tests/ is on sys.path

from crossjax import paper_studies, study
from crossjax.paper_studies import dub_adc, sparse_crossbars

STAT_KEYS = {"mean", "std", "min", "max", "p05", "p50", "p95"}


def _check_schema(out, res):
    with open(os.path.join(out, "results.json")) as f:
        doc = json.load(f)
    assert doc == json.loads(json.dumps(res))
    assert 0.0 <= doc["digital"]["accuracy"] <= 1.0
    names = [c["name"] for c in doc["configs"]]
    assert len(set(names)) == len(names)
    assert any(n.endswith("@ideal") for n in names)
    for c in doc["configs"]:
        assert set(c["accuracy"]) >= STAT_KEYS and c["samples"] >= 1 and isinstance(c["hardware"], dict)
        assert 0.0 <= c["accuracy"]["min"] <= c["accuracy"]["mean"] <= c["accuracy"]["max"] <= 1.0
    assert set(doc["meta"]) >= {"seed", "dataset", "model", "versions", "seconds"}
    assert doc["meta"]["complete"]
    results_schema.check(doc, doc["meta"]["study"])  # every key docs/results.md marks required
    assert os.path.getsize(os.path.join(out, "report.md")) > 100
    assert any(f.endswith(".png") for f in os.listdir(out))
    return doc


def _rerun_skips(name, out):
    again = paper_studies.run(name, out, quick=True, progress=False)
    assert again["meta"]["computed"] == 0
    with pytest.raises(ValueError, match="other arguments"):
        paper_studies.run(name, out, quick=True, seed=1, progress=False)


def test_unknown_study_raises(tmp_path):
    with pytest.raises(ValueError, match="unknown paper study"):
        paper_studies.run("nope", tmp_path)
    with pytest.raises(ValueError, match="samples"):
        paper_studies.run("dub_adc", tmp_path, samples=0)
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['quik'\]"):
        paper_studies.run("dub_adc", tmp_path, quik=True)
    assert not list(tmp_path.iterdir())  # refused before anything was written


@pytest.mark.slow
def test_sparse_crossbars_quick(tmp_path):
    res = paper_studies.run("sparse_crossbars", tmp_path, quick=True, progress=False)
    doc = _check_schema(tmp_path, res)
    best = doc["most_compressed"]
    assert best in ("xcs", "xrs")
    for v in ("dense", "cf", "xcs", "xrs", f"{best}+rearranged", f"{best}+wct", f"{best}+ft"):
        assert f"{v}@ideal" in {c["name"] for c in doc["configs"]}
    # the rearrangement is undone digitally: same network function
    assert doc["variants"][f"{best}+rearranged"]["max_logit_change"] < 1e-3
    assert doc["variants"]["xcs"]["crossbars"]["sparsity"] > 0.3
    # quick mode's 16x16 tiles: the crossbar-aware methods remove crossbars, so compression differs
    comp = {v: doc["variants"][v]["crossbars"]["compression"] for v in ("dense", "xcs", "xrs")}
    assert comp["dense"] == 1.0 and comp[best] > 1.0, comp
    # the wire sweep: resistances rise from the 22 nm copper wire, and more wire costs the dense
    # network at least as much accuracy at the top of the sweep as at its bottom
    r = [doc["wires"][c] for c in doc["wires"] if c.startswith("wires")]
    assert r == sorted(r) and r[0] == pytest.approx(sparse_crossbars.R_22) and 2.4 < r[0] < 2.7
    loss = [doc["summary"]["dense"][c]["loss"] for c in doc["wires"] if c.startswith("wires")]
    assert loss[-1] >= loss[0] - 0.01
    assert set(doc["finding"]) == set(doc["wires"]) and all(
        isinstance(f["holds"], bool) == (f["se"] is not None) for f in doc["finding"].values()
    )
    assert any(c.startswith("1t1r") for c in doc["wires"])
    _rerun_skips("sparse_crossbars", tmp_path)


@pytest.mark.slow
def test_dub_adc_quick_levels_and_balance(tmp_path):
    res = paper_studies.run("dub_adc", tmp_path, quick=True, progress=False)
    doc = _check_schema(tmp_path, res)
    dub = doc["variants"]["dub"]
    # masks: every real column of a tile keeps exactly T 2^-k weights (sparsity 1 - 2^-k)
    assert dub["mask_column_balance"] == 0.0
    T = dub_adc.ROWS
    for c in dub["mask_column_counts"]:
        k = np.log2(T / c)
        assert k == int(k), c
    assert all(int(k) >= 1 for k in dub["mask_levels"])
    assert dub["column_balance"] < doc["variants"]["magnitude"]["column_balance"]
    assert doc["variants"]["dub"]["energy"]["improvement"] > 1.0
    assert doc["variants"]["magnitude"]["column_balance"] > doc["variants"]["dub"]["column_balance"]
    # on the paper's datapath the ADC is lossless: every variant at B0 = ceil(log2 T) + 2 bits and
    # at its own per-tile bits scores what it scores without ADC (within 0.1 point)
    summary = doc["summary"]
    for v in ("dense", "magnitude", "dub"):
        assert abs(summary[v]["loss_b0"]) <= 1e-3 and abs(summary[v]["loss_own_bits"]) <= 1e-3, (v, summary[v])
    # D.U.B.'s tiles need fewer bits than magnitude pruning's, which need fewer than dense
    assert summary["dub"]["adc_vs_magnitude"] > 1.0 and summary["magnitude"]["adc_vs_dense"] > 1.0
    assert max(map(int, doc["variants"]["dub"]["bits"])) < dub_adc.B0
    own = [c for c in doc["configs"] if c["config"] == "own_bits"]
    assert len(own) == 3 and all(c["layer_adc_bits"] for c in own)
    _rerun_skips("dub_adc", tmp_path)
    # killed after model_dub.ckpt was written but before its record: the resumed record
    # still has the mask statistics (they used to be lost with the process)
    path = tmp_path / "results.json"
    doc = json.loads(path.read_text())
    del doc["variants"]["dub"]
    doc["configs"] = [c for c in doc["configs"] if c["variant"] != "dub"]
    path.write_text(json.dumps(doc))
    again = paper_studies.run("dub_adc", tmp_path, quick=True, progress=False)
    assert again["variants"]["dub"]["mask_column_balance"] == 0.0
    assert again["variants"]["dub"]["mask_column_counts"] == dub["mask_column_counts"]


def test_registry_lists_the_three_studies():
    """The paper studies are presets of the one registry: get_preset gives their spec, run_study runs it."""
    assert set(paper_studies.STUDIES) == {"sparse_crossbars", "dub_adc", "tile_dse"}
    for name in paper_studies.STUDIES:
        spec = study.get_preset(name)
        assert isinstance(spec, paper_studies.PaperStudy) and spec.name == name and not spec.quick
    with pytest.raises(ValueError, match="unknown paper study"):
        paper_studies.run("tile_sweep", "unused")
    with pytest.raises(ValueError, match="unknown paper study"):
        paper_studies.run("default", "unused")  # a StudySpec preset: run_study runs it
    with pytest.raises(ValueError, match="dataset"):
        study.get_preset("dub_adc").replace(dataset="imagenet")
    with pytest.raises(ValueError, match="plots"):
        study.run_study(study.get_preset("dub_adc"), "unused", plots=False)


def test_a_registered_paper_study_runs_through_run_study(tmp_path, monkeypatch):
    """A new paper study is its module and one registration: run_study hands it the spec's scale."""
    seen = []

    def run(out, **kw):
        seen.append((out, kw))
        return {"configs": [], "meta": {}}

    monkeypatch.setitem(sys.modules, "toy.study", types.SimpleNamespace(run=run))
    study.register_preset("toy", lambda: paper_studies.PaperStudy("toy", "toy.study"))
    try:
        assert "toy" in study.preset_names()
        study.run_study(study.get_preset("toy").replace(quick=True, samples=3), tmp_path, seed=2, progress=False)
    finally:
        study.unregister_preset("toy")
    assert seen == [
        (
            str(tmp_path),
            {
                "quick": True,
                "seed": 2,
                "samples": 3,
                "progress": False,
                "dataset": "digits",
                "data_dir": None,
                "overwrite": False,
            },
        )
    ]


@pytest.mark.slow
def test_tile_dse_quick(tmp_path):
    from crossjax.paper_studies import tile_dse

    res = paper_studies.run("tile_dse", tmp_path, quick=True, progress=False)
    doc = _check_schema(tmp_path, res)
    st = tile_dse.settings(True)
    for T in st["tiles"]:
        dense, packed = doc["variants"][f"xcs/dense/T{T}"], doc["variants"][f"xcs/sparse/T{T}"]
        # the sparse mapping needs fewer crossbars (where a row block spans several) and fewer
        # conversions for the same (pruned) network
        assert packed["crossbars"] <= dense["crossbars"] == dense["crossbars_dense"]
        assert (packed["crossbars"] < dense["crossbars"]) == (T < st["hidden"][0])
        assert packed["adc_conversions"] < dense["adc_conversions"]
        assert packed["adc_energy_J"] < dense["adc_energy_J"]
        # the cost model: the sparse mapping builds and reads fewer arrays (less energy and area,
        # the same latency), and the breakdowns add up to the totals
        assert packed["energy_J"] < dense["energy_J"] and packed["area_mm2"] <= dense["area_mm2"]
        for d in (packed, dense):
            assert sum(d["energy_breakdown_J"].values()) == pytest.approx(d["energy_J"], rel=1e-6)  # float32
            assert sum(d["area_breakdown_mm2"].values()) == pytest.approx(d["area_mm2"], rel=1e-6)
            assert d["latency_s"] >= d["interval_s"] > 0
        # both mappings are exact on an ideal crossbar: identical predictions
        cells = {c["name"]: c for c in doc["configs"]}
        assert cells[f"xcs/sparse/T{T}@ideal"]["per_sample"] == cells[f"xcs/dense/T{T}@ideal"]["per_sample"]
        for c in st["configs"][1:]:
            assert cells[f"xcs/sparse/T{T}@{c}"]["samples"] == st["samples"]
    # the Pareto fronts: non-empty, and no cell outside a front beats a cell on it
    p = doc["pareto"]
    assert p["energy"] and p["area"] and p["all"]
    acc = {c["variant"]: c["accuracy"]["mean"] for c in doc["configs"] if c["config"] == p["config"]}
    for front, key in ((p["energy"], "energy_J"), (p["area"], "area_mm2")):
        for n in front:
            assert not any(doc["variants"][o][key] <= doc["variants"][n][key] and acc[o] > acc[n] for o in acc)
    assert (tmp_path / "pareto.png").exists()
    _rerun_skips("tile_dse", tmp_path)
