"""`iphbench prepare` through Typer's CliRunner: summary, skip on rerun, config file, failures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from iphbench.cli import app
from iphbench.io.cohort import load_cohort
from iphbench.preprocessing.store import PatchStore


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from iphbench.synth import generate_cohort

    return generate_cohort(tmp_path_factory.mktemp("prep_cli"), n_subjects=2, n_sites=1, seed=2, size="small")


def _run(*args: str):
    return CliRunner().invoke(app, ["prepare", *args], terminal_width=200)


def _text(res) -> str:  # type: ignore[no-untyped-def]
    """The output with whitespace collapsed: rich wraps log lines at the console's width (80 without a tty)."""
    return " ".join(res.output.split())


def test_prepare_then_skip(cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "prep"
    res = _run(str(cohort), "--out", str(out), "--workers", "1", "--no-progress")
    assert res.exit_code == 0, res.output
    assert "2 prepared, 0 skipped, 0 failed" in _text(res)
    store = PatchStore(out)
    n_lesion = int(store.subjects_table["n_lesion_patches"].sum())
    assert n_lesion > 0 and f"{n_lesion} lesion" in _text(res)
    res = _run(str(cohort), "--out", str(out), "--workers", "1", "--no-progress")
    assert res.exit_code == 0 and "0 prepared, 2 skipped" in _text(res)
    # a study YAML's prep section is read; a changed config is refused without --overwrite
    cfg = tmp_path / "study.yaml"
    cfg.write_text("cohort: cohort.csv\nprep:\n  patch_size: 32\n")
    res = _run(str(cohort), "--out", str(out), "--config", str(cfg), "-j", "1", "--no-progress")
    assert res.exit_code == 1 and "another preprocessing config" in _text(res)
    res = _run(
        str(cohort), "--out", str(out), "--config", str(cfg), "-j", "1", "--no-progress", "--overwrite"
    )
    assert res.exit_code == 0 and "2 prepared" in _text(res)
    assert PatchStore(out).config.patch_size == 32


def test_failed_subject_exits_1_and_names_the_cause(cohort: Path, tmp_path: Path) -> None:
    df = load_cohort(cohort)  # absolute paths, so the manifest can move
    broken = df.iloc[[0]].copy()
    broken["subject"] = "broken01"
    broken["image"] = str(tmp_path / "missing.nii.gz")
    bad = tmp_path / "cohort.csv"
    pd.concat([broken, df], ignore_index=True).to_csv(bad, index=False)
    res = _run(str(bad), "--out", str(tmp_path / "prep"), "-j", "1", "--no-progress")
    assert res.exit_code == 1, res.output
    assert "2 prepared, 0 skipped, 1 failed" in _text(res)
    assert "broken01" in _text(res) and "missing.nii.gz" in _text(res)
    assert PatchStore(tmp_path / "prep").subjects == list(df["subject"])


def test_bad_config_is_a_clear_error(cohort: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "prep.yaml"
    cfg.write_text("hu_mn: -20\n")
    res = _run(str(cohort), "--out", str(tmp_path / "prep"), "--config", str(cfg))
    assert res.exit_code == 1 and "unknown setting" in _text(res) and "hu_min" in _text(res)


def test_an_out_of_range_setting_names_the_key_and_the_file(cohort: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "prep.yaml"
    cfg.write_text("prep: {patch_size: 40}\n")
    res = _run(str(cohort), "--out", str(tmp_path / "prep"), "--config", str(cfg))
    text = _text(res)
    assert res.exit_code == 1 and "prep.patch_size" in text and str(cfg) in text, res.output
    assert "Traceback" not in res.output and not (tmp_path / "prep").exists()
