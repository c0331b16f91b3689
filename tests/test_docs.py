"""The generated docs stay in step with the code: docs/configuration.md and docs/results.md."""

import dataclasses
import pathlib
import re
import typing

import pytest

from crossjax import config_reference, study
from crossjax.hardware import HardwareConfig

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


def _config_doc() -> str:
    return (DOCS / "configuration.md").read_text()


def _walk(cls, prefix=""):
    """(path, is_sub_config, default) of every field below ``cls``, optional sub-configs included
    (written here independently of crossjax.config_reference, so the two check each other)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = prefix + f.name
        sub = next(
            (
                a
                for a in typing.get_args(hints[f.name]) or (hints[f.name],)
                if isinstance(a, type) and dataclasses.is_dataclass(a)
            ),
            None,
        )
        yield path, sub is not None, f.default
        if sub is not None:
            yield from _walk(sub, path + ".")


def test_configuration_md_is_the_generated_text():
    fresh = config_reference.render()
    assert _config_doc() == fresh, (
        "docs/configuration.md is stale (a config dataclass changed); regenerate it with:\n    "
        + config_reference.REGENERATE
    )


def test_every_hardware_field_is_documented():
    doc = _config_doc()
    paths = list(_walk(HardwareConfig))
    leaves = [p for p, sub, _ in paths if not sub]
    assert {
        "array.rows",
        "array.parasitics.r_wire_row",
        "device.write_noise.sigma",
        "device.read_noise.kind",
        "mapping.scheme",
        "dac.v_read",
        "adc.bits",
    } <= set(leaves)
    assert sorted(leaves) == sorted(config_reference.leaf_paths())
    for path, sub, default in paths:
        rows = [line for line in doc.splitlines() if line.startswith(f"| `{path}` |")]
        assert len(rows) == 1, f"{path} has {len(rows)} rows in docs/configuration.md"
        row = rows[0]
        if sub and default is None:
            assert "None = off" in row, row
            assert f"### `{path}`:" in doc, f"optional sub-config {path} has no section"
        elif not sub:
            assert re.search(r"\| (static|leaf) \|", row), row


def test_every_field_has_a_meaning():
    missing = [line.split(" | ")[0] for line in config_reference.render().splitlines() if "(undocumented" in line]
    assert not missing, (
        f"fields without a meaning {missing}: add them to their class docstring's "
        "Attributes section (or config_reference.NOTES), then regenerate with " + config_reference.REGENERATE
    )


def test_static_and_leaf_match_the_dataclasses():
    from crossjax.converters import DACConfig

    rows = {r.path: r for r in config_reference.describe(DACConfig, "dac.")}
    assert rows["dac.bits"].kind == "static" and rows["dac.v_read"].kind == "leaf"
    assert rows["dac.v_read"].unit == "V"
    assert rows["dac.range"].range == '"fixed" / "max"'  # probed from the class's own check


def test_study_toml_keys_are_documented(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("not_a_key = 1\n")
    with pytest.raises(ValueError, match="known") as err:
        study.spec_from_toml(bad, study.get_preset("default"))
    known = re.search(r"known: (\[.*?\])", str(err.value)).group(1)
    doc = _config_doc().split("## Study", 1)[1]
    for key in eval(known):  # a list literal of names
        assert f"| `{key}` |" in doc, f"TOML key {key!r} missing from docs/configuration.md"
    for key in ("name", "samples", "hardware", "hardware.preset", "config", "train"):
        assert f"| `{key}` |" in doc


# --------------------------------------------------------------------------- docs/results.md
def test_results_md_marks_the_design_keys_required():
    import results_schema  # tests/ is on sys.path

    common = {path: (typ, req) for path, typ, req in results_schema.schema("common")}
    design = [
        "digital.accuracy",
        "configs[].name",
        "configs[].samples",
        "configs[].hardware",
        *(f"configs[].accuracy.{k}" for k in ("mean", "std", "min", "max", "p05", "p50", "p95", "se", "ci95")),
        *(f"meta.{k}" for k in ("seed", "dataset", "model", "versions", "seconds")),
    ]
    for path in design:
        assert common.get(path, (None, False))[1], f"docs/results.md does not mark {path} required"
    for kind in results_schema.KINDS:
        assert len(results_schema.schema(kind)) > len(common), kind
    text = results_schema.RESULTS_MD.read_text()
    assert "fractions in [0, 1]" in text and "configuration.md" in text


def test_results_schema_check_catches_missing_and_mistyped_keys():
    import results_schema

    stats = {**dict.fromkeys(("mean", "std", "min", "max", "p05", "p50", "p95"), 0.5), "se": None, "ci95": None}
    ok = {
        "digital": {"accuracy": 0.9, "train_steps": 3, "train_seconds": 0.1, "test_examples": 9, "train_examples": 9},
        "configs": [
            {"name": "ideal", "samples": 1, "accuracy": stats, "hardware": {}, "seconds": 0.1, "per_sample": [0.5]}
        ],
        "finetune": None,
        "meta": {
            "seed": 0,
            "dataset": "digits",
            "model": "mlp",
            "seconds": 1.0,
            "fingerprint": "ab",
            "complete": True,
            "spec": {"configs": []},
            "versions": {"crossjax": "0", "jax": "0", "backend": "cpu", "devices": "1 x cpu"},
        },
    }
    assert results_schema.check(ok, "study") > 20  # finetune null: its keys are not required
    with pytest.raises(KeyError, match="configs.0..per_sample|configs\\[0\\].per_sample"):
        results_schema.check(
            {**ok, "configs": [{k: v for k, v in ok["configs"][0].items() if k != "per_sample"}]}, "study"
        )
    with pytest.raises(AssertionError, match="samples"):
        results_schema.check({**ok, "configs": [{**ok["configs"][0], "samples": "1"}]}, "study")


# --------------------------------------------------------------------------- README
README = DOCS.parent / "README.md"


def test_readme_keeps_its_first_commands_and_links_the_docs():
    text = README.read_text()
    first_block = text.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert first_block[0].startswith("pip install -e . && crossjax study --out runs/study ")
    assert first_block[1].startswith('pip install -e ".[dev]" && python -m pytest -q ')
    for doc in ("docs/configuration.md", "docs/results.md", "docs/circuit.md", "docs/papers.md"):
        assert f"]({doc})" in text and (DOCS.parent / doc).exists(), doc
    for section in (
        "Installing for an NVIDIA GPU or a TPU",
        "Monte Carlo across hosts",
        "What the tests cost",
        "How crossjax compares",
    ):
        assert f"## {section}\n" in text, section
    assert 'pip install "crossjax[cuda12]"' in text and 'pip install "crossjax[tpu]"' in text


def test_package_docstrings_cite_only_documents_in_the_repository():
    """Docstrings and comments may send the reader to ``docs/*.md``; those files exist, and
    nothing points to design notes that are not part of the repository."""
    cited = set()
    for py in sorted((DOCS.parent / "crossjax").rglob("*.py")) + sorted((DOCS.parent / "benchmarks").glob("*.py")):
        text = py.read_text()
        assert not re.search(r"shared/|DESIGN\.md|PAPERS\.md|DEVICES\.md", text), py
        cited |= set(re.findall(r"docs/[a-z_]+\.md", text))
    assert {"docs/circuit.md", "docs/papers.md", "docs/results.md"} <= cited
    for doc in cited:
        assert (DOCS.parent / doc).exists(), doc


def test_readme_comparison_cites_only_recorded_numbers():
    """Every number in "How crossjax compares" is in shared/DEVICES.md or benchmarks/README.md."""
    devices = next(
        (
            p
            for p in (DOCS.parent / "shared" / "DEVICES.md", DOCS.parent.parent / "shared" / "DEVICES.md")
            if p.exists()
        ),
        None,
    )
    if devices is None:
        pytest.skip("shared/DEVICES.md is not in this checkout")
    sources = devices.read_text() + (DOCS.parent / "benchmarks" / "README.md").read_text()
    section = README.read_text().split("## How crossjax compares", 1)[1].split("\n## ", 1)[0]
    numbers = set(re.findall(r"\d+(?:\.\d+)?(?:e-?\d+)?", section))
    missing = sorted(n for n in numbers if n not in sources)
    assert not missing, f"numbers in the README comparison that no source records: {missing}"
