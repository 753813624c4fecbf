"""The study grid: folder contract, skipping finished runs, failures recorded, Ray on a local instance."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from iphbench.config import StudyConfig
from iphbench.study.grid import StudyError, run_study
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
    from iphbench.study.grid import open_study

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


def test_two_runs_per_device_train_at_once(make_study: Callable[..., Path]) -> None:
    """runs_per_device=2 on one CPU: two worker processes take the two runs together, both finish."""
    from iphbench.study.executors import cpu_threads_per_run, job, run_local
    from iphbench.study.grid import open_study, plan_runs, prepare_study

    cfg = StudyConfig.load(make_study())
    open_study(cfg)
    prepare_study(cfg)
    runs = plan_runs(cfg, 2)
    events: list[tuple[str, int]] = []
    outcomes = run_local(
        [job(cfg.to_dict(), r.style, r.view, r.fold) for r in runs],
        ["cpu"],
        on_start=lambda spec: events.append(("start", spec["fold"])),
        on_end=lambda spec, o: events.append(("end", spec["fold"])),
        runs_per_device=2,
    )
    assert sorted(o["status"] for o in outcomes) == ["done", "done"], outcomes
    assert [e for e, _ in events[:2]] == ["start", "start"]  # the second began before the first ended
    assert len({o["pid"] for o in outcomes}) == 2  # in two worker processes
    # the cores are shared out, never oversubscribed (2 threads each on 2 cores ran 10x slower)
    assert all(o["torch_threads"] == cpu_threads_per_run(2) for o in outcomes)
    for r in runs:
        assert r.run(cfg.out).done.is_file()
    assert all(o["compile"] == "off" for o in outcomes)  # compile "auto" stays off on the CPU
    assert not (Path(cfg.out) / "cache").exists()


def test_runs_per_device_is_checked_and_shares_ray_gpus(
    make_study: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from iphbench.study.executors import ray_gpu_share

    assert ray_gpu_share(1) == 1.0 and ray_gpu_share(4) == 0.25
    from iphbench.study.executors import cpu_threads_per_run

    with monkeypatch.context() as m:
        m.setattr("os.cpu_count", lambda: 16)
        assert [cpu_threads_per_run(n) for n in (1, 2, 4, 32)] == [16, 8, 4, 1]
    with pytest.raises(StudyError, match="runs_per_device"):
        run_study(StudyConfig.load(make_study()), runs_per_device=0)


def test_compiled_study_runs_share_a_compile_cache_in_the_study(
    make_study: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from iphbench.training import engine as engine_mod
    from iphbench.training.compiled import CACHE_ENV

    seen: list[str | None] = []

    def record(fn, mode):  # type: ignore[no-untyped-def]
        def run(*a):  # type: ignore[no-untyped-def]
            seen.append(os.environ.get(CACHE_ENV))
            return fn(*a)

        return run

    monkeypatch.setattr(engine_mod, "compile_fn", record)  # in-process runs: no compiler needed
    monkeypatch.delenv(CACHE_ENV, raising=False)
    cfg = StudyConfig.load(make_study(train={"compile": True}))
    result = run_study(cfg)
    assert result.ok and {o["compile"] for o in result.done} == {"default"}
    cache = Path(cfg.out) / "cache" / "compile"
    assert cache.is_dir() and set(seen) == {str(cache)}  # both runs compiled into the study's cache
    assert CACHE_ENV not in os.environ  # and the user's environment is as it was
