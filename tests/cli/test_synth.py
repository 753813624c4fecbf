"""`iphbench synth` through Typer's CliRunner."""

from __future__ import annotations

import csv
from pathlib import Path

from typer.testing import CliRunner

from iphbench.cli import app
from iphbench.synth import COHORT_COLUMNS, HARD_COLUMNS

runner = CliRunner()


def test_synth_writes_a_cohort(tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    result = runner.invoke(
        app,
        [
            "synth",
            "--subjects",
            "3",
            "--sites",
            "2",
            "--out",
            str(out),
            "--seed",
            "4",
            "--healthy-fraction",
            "0.34",
            "--size",
            "tiny",
        ],
    )
    assert result.exit_code == 0, result.output
    with open(out / "cohort.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        assert tuple(reader.fieldnames or ()) == COHORT_COLUMNS
    assert len(rows) == 3 and {r["site"] for r in rows} == {"A", "B"}
    assert sum(1 for r in rows if not r["target_ml"]) == 1
    for r in rows:
        assert (out / r["image"]).is_file() and (out / r["mask"]).is_file()
    assert (out / "synth.json").is_file()
    assert "3 subjects, 2 sites" in result.output


def test_synth_refuses_more_sites_than_subjects(tmp_path: Path) -> None:
    result = runner.invoke(app, ["synth", "--subjects", "2", "--sites", "3", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "at least one subject" in result.output
    assert not (tmp_path / "x").exists()


def test_synth_refuses_an_unknown_size(tmp_path: Path) -> None:
    result = runner.invoke(app, ["synth", "--subjects", "2", "--size", "huge", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "small" in result.output and "clinical" in result.output


def test_synth_hard_preset_with_a_knob(tmp_path: Path) -> None:
    out = tmp_path / "hard"
    args = ["synth", "-n", "2", "-k", "1", "-o", str(out), "--size", "tiny", "--preset", "hard"]
    result = runner.invoke(app, [*args, "--hard", "streaks=false", "--hard", "subdural_p=1"])
    assert result.exit_code == 0, result.output
    with open(out / "cohort.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        assert tuple(reader.fieldnames or ()) == (*COHORT_COLUMNS, *HARD_COLUMNS)
    assert all(r["synth_streaks"] == "0" for r in rows)
    assert all(float(r["synth_subdural_ml"]) > 0 for r in rows if r["target_ml"])
    assert "hard preset" in result.output


def test_synth_refuses_bad_presets_and_knobs(tmp_path: Path) -> None:
    base = ["synth", "-n", "2", "-k", "1", "--size", "tiny", "--out", str(tmp_path / "x")]
    result = runner.invoke(app, [*base, "--preset", "harder"])
    assert result.exit_code == 2 and "standard, hard" in result.output
    result = runner.invoke(app, [*base, "--hard", "streaks=false"])
    assert result.exit_code == 2 and "--preset hard" in result.output
    result = runner.invoke(app, [*base, "--preset", "hard", "--hard", "streak=false"])
    assert result.exit_code == 2 and "settings are" in result.output
    assert not (tmp_path / "x").exists()
