"""One row of metrics.csv: the voxel metrics, the d_H95 policy and the lesion-wise counts of one prediction.

:func:`score_prediction` is what ``evaluate`` computes for every subject × style × orientation ×
protocol. It applies the study's d_H95 policy for a missed lesion or a false alarm
(``eval.hd95_when_empty``: ``worst`` gives the scan's field-of-view diagonal, ``exclude`` NaN), so
that metrics.csv holds the value actually used, and always writes the diagonal itself
(``fov_diagonal_mm``) so that the other policy can be applied later without re-evaluating; the
``status`` column tells a worst-case value from a measured distance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from iphbench.config import EvalConfig
from iphbench.evaluation.lesions import lesion_detection
from iphbench.evaluation.metrics import segmentation_metrics, worst_case_hd95_mm

#: Columns of metrics.csv written by :func:`score_prediction`, in order.
SCORE_COLUMNS: tuple[str, ...] = (
    "dice", "iou", "hd95_mm", "precision", "recall", "ref_ml", "pred_ml", "status",
    "fov_diagonal_mm", "lesions_ref", "lesions_hit", "lesions_false",
)  # fmt: skip


def score_prediction(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], eval_cfg: EvalConfig
) -> dict[str, float | int | str]:
    """All metrics.csv values of one predicted mask against its reference, in the reference's grid.

    Args:
        pred: predicted mask (bool), in the reference's voxel grid.
        ref: reference mask (bool).
        spacing: voxel size in mm along each array axis.
        eval_cfg: the study's evaluation settings (``hd95_when_empty``, ``lesion_min_ml``).

    Returns:
        A dict with :data:`SCORE_COLUMNS` as keys.
    """
    fov = worst_case_hd95_mm(ref.shape, spacing)
    empty = fov if eval_cfg.hd95_when_empty == "worst" else math.nan
    m = segmentation_metrics(pred, ref, spacing, empty_hd95=empty)
    lesions = lesion_detection(pred, ref, spacing, eval_cfg.lesion_min_ml)
    return {
        "dice": m.dice, "iou": m.iou, "hd95_mm": m.hd95_mm, "precision": m.precision, "recall": m.recall,
        "ref_ml": m.ref_ml, "pred_ml": m.pred_ml, "status": m.status, "fov_diagonal_mm": fov,
        "lesions_ref": lesions.lesions_ref, "lesions_hit": lesions.lesions_hit,
        "lesions_false": lesions.lesions_false,
    }  # fmt: skip
