"""Tests of crossjax.cli argument handling (cheap: nothing is trained)."""
from crossjax import cli, paper_studies, study


def test_unknown_preset_lists_every_preset(tmp_path, capsys):
    rc = cli.main(["study", "--out", str(tmp_path), "--preset", "nope", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown study preset" in err and "'nope'" in err
    names = (*study.preset_names(), *paper_studies.RUNNERS)
    assert set(cli.preset_names()) == set(names) and len(names) >= 3
    for name in names:
        assert name in err
    assert not list(tmp_path.iterdir())  # nothing written for a bad preset
