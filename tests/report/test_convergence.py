"""Convergence evidence: run histories, the 'still improving' rule, and the report's section."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iphbench.report.convergence import load_histories, run_table, still_improving
from iphbench.report.html import write_report


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([0.1, 0.3, 0.5, 0.6, 0.62, 0.7], True),  # best in the last epoch, well above the rest
        ([0.1, 0.6, 0.7, 0.7, 0.7, 0.705], False),  # last-tenth gain within the 0.01 margin
        ([0.5, 0.4, 0.3, 0.2], False),  # falling
        (list(np.linspace(0, 0.8, 40)), True),  # the last 4 of 40 epochs still rise
        ([*np.linspace(0, 0.8, 30), *[0.8] * 10], False),  # a plateau in the last quarter
        ([0.4], True),  # one validation proves nothing
    ],
)
def test_still_improving(scores: list[float], expected: bool) -> None:
    assert still_improving(np.asarray(scores)) is expected


def _write_run(study: Path, style: str, view: str, fold: int, scores: list[float], select_on: str) -> None:
    run = study / "runs" / style / view / f"fold{fold}"
    run.mkdir(parents=True, exist_ok=True)
    n = len(scores)
    col = "val_iou" if select_on == "iou" else "val_subject_dice"
    hist = pd.DataFrame({
        "epoch": range(1, n + 1), "step": [10 * (i + 1) for i in range(n)], "slices": [320 * (i + 1) for i in range(n)],
        "train_loss": np.linspace(1, 0.5, n), "val_loss": np.linspace(1.1, 0.7, n), "val_dice": scores,
        "val_iou": scores, "val_subject_dice": scores, "lr": 1e-3, "seconds": 1.0,
    })  # fmt: skip
    hist[col] = scores
    hist.to_csv(run / "history.csv", index=False)
    (run / "done.json").write_text(json.dumps({"select_on": select_on}))


def test_runs_table_and_report_section(fake_study: Path, tmp_path: Path) -> None:
    study = tmp_path / "study"
    shutil.copytree(fake_study, study)
    flat = [0.2, 0.6, 0.7, 0.7, 0.7]
    rising = [0.1, 0.2, 0.3, 0.4, 0.6]
    for fold in (0, 1):
        _write_run(study, "unet", "2DAxi", fold, flat, "iou")
        _write_run(study, "unet+iphbench", "2DAxi", fold, rising if fold == 1 else flat, "subject_dice")
    runs = run_table(load_histories(study))
    assert len(runs) == 4 and set(runs["recipe"]) == {"paper", "iphbench"}
    assert runs["steps"].tolist() == [50] * 4 and runs["slices"].tolist() == [1600] * 4
    flagged = runs[runs["still_improving"]]
    assert flagged[["style", "fold"]].values.tolist() == [["unet+iphbench", 1]]
    page = write_report(study, pdf=False).read_text()
    assert "Training and convergence" in page and "unet+iphbench/2DAxi/fold1" in page
    assert page.index("Not converged") < page.index("1. Cohort")  # the warning sits at the top
    assert "U-Net (iphbench recipe)" in page
    assert (study / "figures" / "learning_curves.png").is_file()


def test_no_histories_no_section(fake_study: Path, tmp_path: Path) -> None:
    study = tmp_path / "study"
    shutil.copytree(fake_study, study)
    shutil.rmtree(study / "runs", ignore_errors=True)
    page = write_report(study, pdf=False).read_text()
    assert "Training and convergence" not in page and "Not converged" not in page
