"""One row of metrics.csv: the voxel metrics, the d_H95 policy and the lesion-wise counts of one prediction.

:func:`score_prediction` is what ``evaluate`` computes for every subject × style × orientation ×
protocol. It applies the study's d_H95 policy for a missed lesion or a false alarm
(``eval.hd95_when_empty``: ``worst`` gives the scan's field-of-view diagonal, ``exclude`` NaN), so
that metrics.csv holds the value actually used, and always writes the diagonal itself
(``fov_diagonal_mm``) so that the other policy can be applied later without re-evaluating; the
``status`` column tells a worst-case value from a measured distance.

:data:`METRICS` is the one table of the metrics that the statistics and the report analyse: each
metric's label, its table in the paper and which direction is better. :mod:`iphbench.stats` and
:mod:`iphbench.report` read every label, number and direction from it (:func:`metric_info`,
:func:`analysed_metrics`, :func:`table_metrics`), so adding a metric is its computation in
:mod:`iphbench.evaluation.metrics` plus its column, its value and its row here (docs/metrics.md,
"Adding a metric").
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from iphbench.config import EvalConfig
from iphbench.evaluation.lesions import lesion_detection
from iphbench.evaluation.metrics import segmentation_metrics, worst_case_hd95_mm

#: Columns of metrics.csv written by :func:`score_prediction`, in order.
SCORE_COLUMNS: tuple[str, ...] = (
    "dice", "iou", "hd95_mm", "precision", "recall", "ref_ml", "pred_ml", "status",
    "fov_diagonal_mm", "lesions_ref", "lesions_hit", "lesions_false",
)  # fmt: skip


@dataclass(frozen=True)
class Metric:
    """A metric column of metrics.csv as the statistics and the report show it."""

    name: str  # its column in metrics.csv (a key of score_prediction's row)
    label: str  # in notes, the statistics and the CLI ("d_H95 (mm)")
    higher_is_better: bool  # which end of a table is bold (the best style per orientation)
    table: int | None = None  # its table in the paper (Tables 2-4); None = no table of its own
    short_label: str | None = None  # in table captions and sentences ("d_H95"); None = ``label``
    html_label: str | None = None  # in the report's headings ("d<sub>H95</sub>"); None = ``short`` escaped
    unit: str = ""  # unit of its values, stated in its table caption ("mm"); "" = none
    analysed: bool = (
        True  # run through the statistics (regression, ANOVA, post-hoc tests); required in metrics.csv
    )

    @property
    def short(self) -> str:
        """The label in table captions and sentences."""
        return self.short_label if self.short_label is not None else self.label

    @property
    def heading_html(self) -> str:
        """The label in the report's headings (HTML)."""
        return self.html_label if self.html_label is not None else html.escape(self.short)


#: The metrics of metrics.csv that the statistics and the report know, in the paper's table order.
METRICS: tuple[Metric, ...] = (
    Metric("dice", "F-measure", higher_is_better=True, table=2),
    Metric("iou", "IoU", higher_is_better=True, table=3),
    Metric("hd95_mm", "d_H95 (mm)", higher_is_better=False, table=4, short_label="d_H95",
           html_label="d<sub>H95</sub>", unit="mm"),
    Metric("precision", "precision", higher_is_better=True, analysed=False),
    Metric("recall", "recall", higher_is_better=True, analysed=False),
)  # fmt: skip


def metric_info(name: str) -> Metric:
    """The row of :data:`METRICS` named ``name``; any other numeric column is shown by its name, higher
    is better, with no table of its own.

    Example:
        >>> metric_info("hd95_mm").short, metric_info("hd95_mm").higher_is_better, metric_info("dice").table
        ('d_H95', False, 2)
        >>> metric_info("ref_ml").label
        'ref_ml'
    """
    for m in METRICS:
        if m.name == name:
            return m
    return Metric(name, name, higher_is_better=True, analysed=False)


def analysed_metrics() -> tuple[str, ...]:
    """The metrics the statistics analyse by default, in table order (``dice``, ``iou``, ``hd95_mm``)."""
    return tuple(m.name for m in METRICS if m.analysed)


def table_metrics() -> tuple[Metric, ...]:
    """The metrics with a table of their own (Tables 2-4), by table number."""
    return tuple(sorted((m for m in METRICS if m.table is not None), key=lambda m: m.table or 0))


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
