"""Evaluation: segmentation metrics (pure functions on masks with spacing) and their accumulation.

See docs/metrics.md for the definitions and conventions.
"""

from __future__ import annotations

from iphbench.evaluation.accumulator import MetricAccumulator
from iphbench.evaluation.metrics import (
    STATUSES,
    SegmentationMetrics,
    Status,
    bounding_box,
    dice,
    hd95,
    iou,
    precision,
    recall,
    segmentation_metrics,
    surface_distances,
    volume_ml,
    worst_case_hd95_mm,
)

__all__ = [
    "STATUSES",
    "MetricAccumulator",
    "SegmentationMetrics",
    "Status",
    "bounding_box",
    "dice",
    "hd95",
    "iou",
    "precision",
    "recall",
    "segmentation_metrics",
    "surface_distances",
    "volume_ml",
    "worst_case_hd95_mm",
]
