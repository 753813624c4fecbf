"""The study grid: folder contract, skipping finished runs, failures recorded, Ray on a local instance."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from iphbench.config import StudyConfig
from iphbench.training import StudyError, run_study
from iphbench.training.folds import read_folds


def _mtimes(out: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sorted((out / "runs").rglob("*.pt"))}


def test_study_runs_grid_then_skips_finished_runs(make_study: Callable[..., Path]) -> None:
    cfg = StudyConfig.load(make_study())
    out = Path(cfg.out)
    first = run_study(cfg)
    assert first.ok and len(first.done) == 2 and not first.skipped  # unet × 2DCor × 2 folds
    for name in ("config.yaml", "study.json", "folds.csv"):
        assert (out / name).is_file()
    assert json.loads((out / "study.json").read_text())["config_hash"]
    folds = read_folds(out / "folds.csv")
    assert sorted(folds[folds.role == "test"].subject) == sorted(pd.read_csv(cfg.cohort).subject)
    for k in (0, 1):
        run = out / "runs" / "unet" / "2DCor" / f"fold{k}"
        for name in ("config.json", "history.csv", "best.pt", "last.pt", "done.json"):
            assert (run / name).is_file(), f"{run}/{name}"
    before = _mtimes(out)

    second = run_study(StudyConfig.load(make_study()))
    assert second.outcomes == [] and len(second.skipped) == 2 and second.ok
    assert _mtimes(out) == before  # nothing was trained again


def test_study_refuses_a_different_config(make_study: Callable[..., Path]) -> None:
    cfg = StudyConfig.load(make_study())
    from iphbench.training.grid import open_study

    open_study(cfg)
    other = StudyConfig.load(make_study(train={"epochs": 2}))
    with pytest.raises(StudyError, match="different config"):
        run_study(other)


def test_failed_run_is_recorded_and_others_continue(make_study: Callable[..., Path]) -> None:
    cfg = StudyConfig.load(
        make_study(models={"names": ["fpn", "unet"], "kwargs": {"fpn": {"bogus": 1}}}, folds={"k": 2})
    )
    result = run_study(cfg, folds=[0])
    assert not result.ok
    assert [(o["style"], o["status"]) for o in result.outcomes] == [("fpn", "failed"), ("unet", "done")]
    assert "bogus" in result.failed[0]["error"]
    err = Path(cfg.out) / "runs" / "fpn" / "2DCor" / "fold0" / "error.txt"
    assert "Traceback" in err.read_text()
    assert (Path(cfg.out) / "runs" / "unet" / "2DCor" / "fold0" / "done.json").is_file()


def test_plan_rejects_unknown_filters(make_study: Callable[..., Path]) -> None:
    cfg = StudyConfig.load(make_study())
    with pytest.raises(StudyError, match="not in this study"):
        run_study(cfg, styles=["fpn"])


@pytest.mark.slow
def test_ray_executor_on_a_local_instance(make_study: Callable[..., Path]) -> None:
    pytest.importorskip("ray")
    cfg = StudyConfig.load(make_study(views=["2DSag"]))
    result = run_study(cfg, executor="ray")
    assert result.ok, result.failed
    assert sorted(o["fold"] for o in result.done) == [0, 1]
    for k in (0, 1):
        assert (Path(cfg.out) / "runs" / "unet" / "2DSag" / f"fold{k}" / "done.json").is_file()
