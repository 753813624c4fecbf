"""The learning check against the recorded numbers of studies that learned: the demo's (issue 16).

``tests/data/demo_learned/`` holds what one run of ``iphbench demo --out /tmp/demo_stats`` (standard
preset, the demo's default then; 24 synthetic subjects, 4 sites, 4 styles, 3 views, 3 folds, VGG16
width 8, 6 epochs) left in its study folder, reduced to what the check reads: the 2.5D rows of
``metrics.csv`` (style, protocol, subject, dice, ref_ml, pred_ml) and every run's validation curve
from ``history.csv``. ``tests/data/demo_learned_hard/`` is the same from ``make demo`` on the hard
preset, the default since 2026-11-30, with U-Net also trained with the iphbench recipe. Both demos'
reports showed no banner; ``provenance.txt`` in each folder records their 2.5D mean Dice per style.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from iphbench.study.learning import check_learning

DATA = Path(__file__).resolve().parent.parent / "data"
#: recording → (styles, the floor every style's best 2.5D Dice reached)
DEMOS = {
    "demo_learned": (
        {"attention_unet", "fpn", "transunet", "unet"},
        0.7,
    ),  # 0.732 (FPN) to 0.846 (Attention U-Net)
    "demo_learned_hard": (
        {"attention_unet", "fpn", "transunet", "unet", "unet+iphbench"},
        0.25,
    ),  # 0.258 to 0.493
}


def _study(tmp_path: Path, recording: str = "demo_learned") -> tuple[pd.DataFrame, Path]:
    metrics = pd.read_csv(DATA / recording / "metrics_2.5D.csv", dtype={"subject": str})
    curves = pd.read_csv(DATA / recording / "histories.csv")
    for (style, view, fold), g in curves.groupby(["style", "view", "fold"]):
        run = tmp_path / "runs" / str(style) / str(view) / f"fold{fold}"
        run.mkdir(parents=True)
        g[["epoch", "val_dice"]].to_csv(run / "history.csv", index=False)
    return metrics, tmp_path


@pytest.mark.parametrize("recording", list(DEMOS))
def test_the_demo_study_that_learned_gets_no_banner(tmp_path: Path, recording: str) -> None:
    metrics, study = _study(tmp_path, recording)
    check = check_learning(metrics, study)
    assert check.meaningful, check.text()
    styles, floor = DEMOS[recording]
    assert {s.style for s in check.styles} == styles
    for s in check.styles:
        assert s.best_dice >= floor and s.runs == 9 and s.runs_flat == 0
    # the demo cohort has no lesion-free subject: the false-positive rule is said not to apply, not passed
    assert any("no lesion-free scan" in n for n in check.notes)


def test_the_same_numbers_with_models_that_did_not_learn_get_the_banner(tmp_path: Path) -> None:
    metrics, study = _study(tmp_path)
    untrained = metrics.assign(dice=metrics["dice"] * 0.1)  # the case: best 2.5D Dice below 0.1
    free = (
        untrained[untrained["protocol"] == "full"]
        .drop_duplicates("style")
        .assign(subject="free0", ref_ml=0.0, pred_ml=1200.0, dice=0.0)
    )  # and a lesion-free scan full of false positives
    check = check_learning(pd.concat([untrained, free], ignore_index=True), study)
    assert (
        not check.meaningful
        and check.headline() == "These results are not meaningful: the models did not learn."
    )
    assert all(
        len(s.reasons) == 2 for s in check.styles
    )  # Dice floor and false positives; the curves did rise
