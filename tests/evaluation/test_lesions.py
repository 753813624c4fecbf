"""Lesion-wise detection against hand-built cases, the worst-case d_H95 and one metrics.csv row (issue 12)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from iphbench.config import EvalConfig
from iphbench.evaluation import segmentation_metrics, worst_case_hd95_mm
from iphbench.evaluation.lesions import LesionCounts, lesion_detection
from iphbench.evaluation.scoring import SCORE_COLUMNS, score_prediction

SHAPE = (40, 40, 20)
SP = (1.0, 1.0, 2.0)  # a voxel is 2 mm³ = 0.002 mL


def _box(mask: np.ndarray, lo: tuple[int, int, int], size: tuple[int, int, int]) -> np.ndarray:
    mask[lo[0] : lo[0] + size[0], lo[1] : lo[1] + size[1], lo[2] : lo[2] + size[2]] = True
    return mask


def test_two_lesions_one_found() -> None:
    ref = _box(_box(np.zeros(SHAPE, bool), (2, 2, 2), (5, 5, 3)), (25, 25, 10), (6, 6, 4))
    pred = _box(np.zeros(SHAPE, bool), (3, 3, 3), (3, 3, 1))  # inside the first lesion only
    assert lesion_detection(pred, ref, SP, min_size_ml=0.01) == LesionCounts(2, 1, 0)


def test_a_split_prediction_is_one_hit_and_no_false_lesion() -> None:
    ref = _box(np.zeros(SHAPE, bool), (10, 10, 5), (10, 4, 4))
    pred = _box(
        _box(np.zeros(SHAPE, bool), (10, 10, 5), (4, 4, 4)), (16, 10, 5), (4, 4, 4)
    )  # gap at x = 14, 15
    assert lesion_detection(pred, ref, SP, min_size_ml=0.01) == LesionCounts(1, 1, 0)
    # one predicted component covering two reference lesions hits both
    two = _box(_box(np.zeros(SHAPE, bool), (10, 10, 5), (4, 4, 4)), (16, 10, 5), (4, 4, 4))
    merged = _box(np.zeros(SHAPE, bool), (10, 10, 5), (10, 4, 4))
    assert lesion_detection(merged, two, SP, min_size_ml=0.01) == LesionCounts(2, 2, 0)


def test_false_lesions_below_and_above_the_minimum_size() -> None:
    ref = _box(np.zeros(SHAPE, bool), (5, 5, 5), (6, 6, 3))
    pred = ref.copy()
    small = _box(pred.copy(), (30, 30, 15), (2, 2, 1))  # 4 voxels = 0.008 mL < 0.01 mL: not a lesion
    assert lesion_detection(small, ref, SP, min_size_ml=0.01) == LesionCounts(1, 1, 0)
    large = _box(pred.copy(), (30, 30, 15), (3, 3, 1))  # 9 voxels = 0.018 mL ≥ 0.01 mL: a false lesion
    assert lesion_detection(large, ref, SP, min_size_ml=0.01) == LesionCounts(1, 1, 1)
    # a reference speck below the minimum is not a lesion to find either; 0 counts every component
    speck = _box(ref.copy(), (30, 2, 2), (1, 1, 1))
    assert lesion_detection(ref, speck, SP, min_size_ml=0.01) == LesionCounts(1, 1, 0)
    assert lesion_detection(ref, speck, SP, min_size_ml=0.0) == LesionCounts(2, 1, 0)


def test_connectivity_is_26_and_empty_masks_count_nothing() -> None:
    ref = np.zeros(SHAPE, bool)
    ref[5, 5, 5] = ref[6, 6, 6] = True  # corner neighbours: one lesion under 26-connectivity
    assert lesion_detection(ref, ref, SP, min_size_ml=0.0) == LesionCounts(1, 1, 0)
    empty = np.zeros(SHAPE, bool)
    assert lesion_detection(empty, empty, SP) == LesionCounts(0, 0, 0)
    assert lesion_detection(empty, _box(empty.copy(), (1, 1, 1), (4, 4, 4)), SP) == LesionCounts(1, 0, 0)
    with pytest.raises(ValueError, match=r"same grid|share a grid"):
        lesion_detection(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)), SP)
    with pytest.raises(ValueError, match="spacing"):
        lesion_detection(empty, empty, (1.0, 1.0))


def test_worst_case_hd95_is_the_field_of_view_diagonal() -> None:
    assert worst_case_hd95_mm((240, 240, 155), (1, 1, 1)) == pytest.approx(373.13, abs=0.01)  # BraTS
    assert worst_case_hd95_mm(SHAPE, SP) == pytest.approx(math.sqrt(40**2 + 40**2 + 40**2))
    ref = _box(np.zeros(SHAPE, bool), (5, 5, 5), (4, 4, 2))
    empty = np.zeros(SHAPE, bool)
    missed = segmentation_metrics(empty, ref, SP, empty_hd95=worst_case_hd95_mm(SHAPE, SP))
    assert missed.status == "missed" and missed.hd95_mm == pytest.approx(69.28, abs=0.01)
    assert math.isnan(segmentation_metrics(empty, ref, SP).hd95_mm)  # the pure default: undefined
    found = segmentation_metrics(ref, ref, SP, empty_hd95=999.0)
    assert found.status == "ok" and found.hd95_mm == 0.0  # a measured distance is never replaced


def test_one_metrics_row_applies_the_policy_and_counts_lesions() -> None:
    ref = _box(_box(np.zeros(SHAPE, bool), (2, 2, 2), (5, 5, 3)), (25, 25, 10), (6, 6, 4))
    empty = np.zeros(SHAPE, bool)
    row = score_prediction(empty, ref, SP, EvalConfig())
    assert list(row) == list(SCORE_COLUMNS)
    assert row["status"] == "missed" and row["hd95_mm"] == row["fov_diagonal_mm"] == pytest.approx(
        69.28, abs=0.01
    )
    assert (row["lesions_ref"], row["lesions_hit"], row["lesions_false"]) == (2, 0, 0)
    excl = score_prediction(empty, ref, SP, EvalConfig(hd95_when_empty="exclude"))
    assert math.isnan(float(excl["hd95_mm"])) and excl["fov_diagonal_mm"] == row["fov_diagonal_mm"]
    alarm = score_prediction(ref, empty, SP, EvalConfig(lesion_min_ml=0.1))  # 0.15 and 0.288 mL lesions
    assert alarm["status"] == "false_alarm" and alarm["lesions_false"] == 2
