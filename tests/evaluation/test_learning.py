"""The "did the models learn?" check (iphbench.study.learning): each rule, its notes, its thresholds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iphbench.config import ConfigError, LearningCheckConfig, StudyConfig
from iphbench.study.learning import check_learning, load_thresholds


def _metrics(dice: dict[str, float], fp_ml: dict[str, float] | None = None, n: int = 6) -> pd.DataFrame:
    """2.5D rows of n hemorrhage subjects per style (Dice as given) and, under full, 3 lesion-free scans."""
    rng = np.random.default_rng(0)
    rows = []
    protocols = ["paper", "full"] if fp_ml else ["paper"]
    for protocol in protocols:
        for style, d in dice.items():
            for i in range(n):
                rows.append({"subject": f"s{i}", "style": style, "orientation": "2.5D", "protocol": protocol,
                             "dice": float(np.clip(d + rng.normal(0, 0.01), 0, 1)), "ref_ml": 5.0 + i,
                             "pred_ml": 5.0 + i})  # fmt: skip
            if protocol == "full" and fp_ml:
                for j in range(3):
                    rows.append({"subject": f"free{j}", "style": style, "orientation": "2.5D", "protocol": protocol,
                                 "dice": 0.0, "ref_ml": 0.0, "pred_ml": fp_ml[style] * (0.5 + j / 2)})  # fmt: skip
    return pd.DataFrame(rows)


def test_a_style_below_the_dice_floor_did_not_learn() -> None:
    check = check_learning(_metrics({"fpn": 0.82, "unet": 0.07}))
    assert not check.meaningful and check.not_learned == ["unet"]
    assert check.headline() == "Not every style learned: comparisons involving U-Net are not meaningful."
    (line,) = check.lines()
    assert line.startswith("U-Net: best mean Dice 0.0") and "(2.5D, paper protocol) is below 0.2" in line
    assert "no full protocol" in " ".join(check.notes)
    none = check_learning(_metrics({"fpn": 0.05, "unet": 0.07}))
    assert none.headline() == "These results are not meaningful: the models did not learn."
    assert check_learning(_metrics({"fpn": 0.82, "unet": 0.79})).meaningful


def test_false_positive_litres_on_lesion_free_scans_mean_the_model_did_not_learn() -> None:
    # the case: about 10 L of false positives per lesion-free scan under the full protocol
    check = check_learning(_metrics({"fpn": 0.6, "unet": 0.6}, fp_ml={"fpn": 2.0, "unet": 10_000.0}))
    assert check.not_learned == ["unet"]
    unet = next(s for s in check.styles if s.style == "unet")
    assert unet.fp_median_ml == pytest.approx(10_000.0) and unet.n_lesion_free == 3
    assert "median false-positive volume on 3 lesion-free scans is 10000 mL" in unet.reasons[0]
    assert "above 150 mL" in unet.reasons[0]
    fpn = next(s for s in check.styles if s.style == "fpn")
    assert fpn.learned and fpn.fp_median_ml == pytest.approx(2.0)


def test_flat_validation_curves_read_by_column_name(tmp_path: Path) -> None:
    def run(style: str, view: str, fold: int, frame: pd.DataFrame | str) -> None:
        folder = tmp_path / "runs" / style / view / f"fold{fold}"
        folder.mkdir(parents=True)
        if isinstance(frame, str):
            (folder / "history.csv").write_text(frame)
        else:
            frame.to_csv(folder / "history.csv", index=False)

    rising = pd.DataFrame({"epoch": [1, 2, 3], "steps": [250, 500, 750], "val_dice": [0.02, 0.3, 0.6]})
    flat = pd.DataFrame({"epoch": [1, 2, 3], "val_dice": [0.01, 0.02, 0.03], "lr": 1e-3})
    early = pd.DataFrame({"epoch": [1, 2], "val_subject_dice": [0.81, 0.8]})  # learned before the first check
    for fold in range(3):
        run("fpn", "2DAxi", fold, rising)
        run("unet", "2DAxi", fold, flat if fold < 2 else rising)  # 2 of 3 flat: most never rose
    run("attention_unet", "2DCor", 0, early)
    run("attention_unet", "2DCor", 1, "epoch,train_loss\n1,0.5\n")  # no validation column at all
    metrics = _metrics({"fpn": 0.7, "unet": 0.7, "attention_unet": 0.7})
    check = check_learning(metrics, tmp_path)
    assert check.not_learned == ["unet"]
    unet = next(s for s in check.styles if s.style == "unet")
    assert (unet.runs, unet.runs_flat) == (3, 2)
    assert "never rose in 2 of 3 runs (best validation values 0.030 to 0.600)" in unet.reasons[0]
    att = next(s for s in check.styles if s.style == "attention_unet")
    assert att.learned and att.runs == 1
    assert any("1 history.csv file(s) had no validation values" in n for n in check.notes)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert any("validation curves were not checked" in n for n in check_learning(metrics, empty).notes)


def test_thresholds_come_from_the_study_config(tmp_path: Path) -> None:
    cfg = StudyConfig.from_dict({"eval": {"learning_check": {"min_dice": 0.9, "max_false_positive_ml": 50}}})
    cfg.save(tmp_path / "config.yaml")
    t = load_thresholds(tmp_path)
    assert (t.min_dice, t.max_false_positive_ml, t.min_val_rise) == (0.9, 50.0, 0.05)
    check = check_learning(_metrics({"fpn": 0.82}), thresholds=t)
    assert not check.meaningful and "below 0.9" in check.lines()[0]
    assert "min_dice 0.9, max_false_positive_ml 50" in check.explanation()
    assert load_thresholds(tmp_path / "nowhere") == LearningCheckConfig()
    with pytest.raises(ConfigError, match=r"eval\.learning_check"):
        StudyConfig.from_dict({"eval": {"learning_check": {"min_dice": 1.5}}})
    with pytest.raises(ConfigError, match="unknown setting"):
        StudyConfig.from_dict({"eval": {"learning_check": {"min_dise": 0.2}}})


def test_reference_and_view_only_styles_are_judged_on_their_own_orientation() -> None:
    rows = _metrics({"nnunet_3d_fullres": 0.85}).assign(orientation="3D")
    views = pd.concat(
        [
            _metrics({"unet": 0.1}).assign(orientation="2DAxi"),
            _metrics({"unet": 0.7}).assign(orientation="2DCor"),
        ]
    )
    check = check_learning(pd.concat([rows, views], ignore_index=True))
    assert check.meaningful
    by = {s.style: s for s in check.styles}
    assert by["nnunet_3d_fullres"].orientation == "3D" and by["unet"].orientation == "2DCor"
