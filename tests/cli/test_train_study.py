"""`iphbench train` and `iphbench study run` through Typer's CliRunner on a tiny synthetic cohort."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from iphbench.cli import app

runner = CliRunner()


def _text(output: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(output.split())


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from iphbench.synth import generate_cohort

    return generate_cohort(
        tmp_path_factory.mktemp("cli_cohort"), n_subjects=5, n_sites=2, seed=1, size="small"
    )


def _study(tmp_path: Path, cohort: Path, **models: object) -> Path:
    data = {
        "cohort": str(cohort),
        "out": "study",
        "views": ["2DCor"],
        "prep": {"patch_size": 32},
        "models": {"names": ["unet", "fpn"], "width": 4, **models},
        "folds": {"k": 2, "val_fraction": 0.25},
        "train": {"epochs": 1, "batch_size": 8, "steps_per_epoch": 1},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_train_one_run_then_study_skips_it(tmp_path: Path, cohort: Path) -> None:
    study = _study(tmp_path, cohort)
    train_args = [
        "train",
        "--study",
        str(study),
        "--model",
        "unet",
        "--view",
        "2DCor",
        "--fold",
        "0",
        "--no-progress",
    ]
    res = runner.invoke(app, train_args)
    assert res.exit_code == 0, res.output
    assert "done: best validation IoU" in _text(res.output)
    run = tmp_path / "study" / "runs" / "unet" / "2DCor" / "fold0"
    assert (run / "done.json").is_file() and (run / "best.pt").is_file()

    res = runner.invoke(app, ["study", "run", str(study), "--only-model", "unet", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "1 trained, 1 already done, 0 failed of 2 runs" in _text(res.output)

    res = runner.invoke(app, train_args)
    assert res.exit_code == 0 and "already finished" in _text(res.output)


def test_study_run_exit_code_on_failure_and_bad_args(tmp_path: Path, cohort: Path) -> None:
    study = _study(tmp_path, cohort, kwargs={"fpn": {"bogus": 1}})
    res = runner.invoke(app, ["study", "run", str(study), "--only-fold", "1", "--no-progress"])
    assert res.exit_code == 1, res.output
    assert "1 trained, 0 already done, 1 failed" in _text(res.output) and "bogus" in _text(res.output)
    assert (tmp_path / "study" / "runs" / "fpn" / "2DCor" / "fold1" / "error.txt").is_file()

    res = runner.invoke(app, ["study", "run", str(study), "--executor", "spark"])
    assert res.exit_code == 2 and "--executor" in _text(res.output)
    res = runner.invoke(
        app, ["train", "--study", str(study), "--model", "unet", "--view", "2DAxi", "--fold", "0"]
    )
    assert res.exit_code == 1 and "not in this study" in _text(res.output)


def test_study_run_refuses_fewer_than_one_run_per_device(tmp_path: Path, cohort: Path) -> None:
    res = runner.invoke(app, ["study", "run", str(_study(tmp_path, cohort)), "--runs-per-device", "0"])
    assert res.exit_code == 2 and "runs-per-device" in _text(res.output)
