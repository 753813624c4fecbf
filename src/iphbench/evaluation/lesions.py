"""Lesion-wise detection: connected components of the predicted and reference masks, matched by overlap.

The voxel metrics (Dice, IoU, d_H95) score a scan as one object: a prediction that finds the large
hemorrhage and misses three small ones still scores well. Lesion-wise counts say how many lesions
were found and how many predicted lesions are not hemorrhage at all. Conventions (docs/metrics.md,
"Lesion-wise detection"):

* **Lesions** are the connected components of a mask under 26-connectivity (face, edge or corner
  neighbours in 3D; 8-connectivity in 2D), as in the lesion-wise metrics of the BraTS 2023
  challenges and of MetricsReloaded.
* **Minimum size**: components smaller than ``min_size_ml`` (``eval.lesion_min_ml``, default
  0.01 mL = 10 mm³, a few voxels at CT resolution) are not lesions, in either mask: a speck of the
  reference is not a lesion to find, a speck of the prediction is not a false lesion. Both masks are
  filtered before matching.
* **Matching**: a reference lesion is *hit* when at least one of its voxels lies in a predicted
  lesion; a predicted lesion is *false* when none of its voxels lies in a reference lesion. A lesion
  split into two predicted pieces is one hit and no false lesion; one predicted component covering
  two reference lesions hits both.

Counts are per subject (one row of metrics.csv): ``lesions_ref``, ``lesions_hit`` and
``lesions_false``. Lesion-wise sensitivity is Σ hit / Σ ref over subjects.

Example:
    >>> import numpy as np
    >>> ref = np.zeros((20, 20, 20), bool); ref[2:6, 2:6, 2:6] = True; ref[12:16, 12:16, 12:16] = True
    >>> pred = np.zeros_like(ref); pred[3:5, 3:5, 3:5] = True; pred[2:5, 14:18, 2:5] = True
    >>> lesion_detection(pred, ref, spacing=(1.0, 1.0, 1.0), min_size_ml=0.005)
    LesionCounts(lesions_ref=2, lesions_hit=1, lesions_false=1)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from iphbench.evaluation.metrics import bounding_box
from iphbench.masks import label_lesions

#: Default minimum lesion size in mL (``eval.lesion_min_ml``).
DEFAULT_MIN_LESION_ML = 0.01


@dataclass(frozen=True)
class LesionCounts:
    """Lesion-wise detection of one predicted mask against its reference."""

    lesions_ref: int  # reference lesions (components of at least the minimum size)
    lesions_hit: int  # of which overlap a predicted lesion
    lesions_false: int  # predicted lesions that overlap no reference lesion


def lesion_detection(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float],
    min_size_ml: float = DEFAULT_MIN_LESION_ML,
) -> LesionCounts:
    """Lesions of ``ref`` found by ``pred`` and false lesions of ``pred`` (module docstring).

    Args:
        pred: predicted mask (non-zero = foreground), 2D or 3D.
        ref: reference mask on the same grid.
        spacing: voxel size in mm along each array axis.
        min_size_ml: components smaller than this (mL) are not lesions, in either mask.

    Returns:
        ``LesionCounts(lesions_ref, lesions_hit, lesions_false)``; all 0 when both masks are empty.

    Raises:
        ValueError: masks of different shapes, a spacing that does not fit them, or a negative size.
    """
    p, r = np.asarray(pred), np.asarray(ref)
    if p.shape != r.shape:
        raise ValueError(
            f"pred has shape {p.shape} but ref has shape {r.shape}: both masks must share a grid"
        )
    sp = tuple(float(s) for s in spacing)
    if len(sp) != p.ndim or not all(math.isfinite(s) and s > 0 for s in sp):
        raise ValueError(
            f"spacing {tuple(spacing)} must give one positive voxel size in mm per axis of {p.shape}"
        )
    if not min_size_ml >= 0:
        raise ValueError(f"min_size_ml must be >= 0, got {min_size_ml}")
    boxes = [b for b in (bounding_box(p), bounding_box(r)) if b is not None]
    if not boxes:
        return LesionCounts(0, 0, 0)
    # everything happens in the union's bounding box (+1 voxel, so no component touches the crop's edge)
    lo = [max(0, min(b[a][0] for b in boxes) - 1) for a in range(p.ndim)]
    hi = [min(p.shape[a], max(b[a][1] for b in boxes) + 2) for a in range(p.ndim)]
    crop = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    voxel_ml = math.prod(sp) / 1000.0
    ref_lab, n_ref = label_lesions(r[crop] != 0, voxel_ml, min_size_ml)
    pred_lab, n_pred = label_lesions(p[crop] != 0, voxel_ml, min_size_ml)
    both = (ref_lab > 0) & (pred_lab > 0)
    hit = np.unique(ref_lab[both]).size
    found = np.unique(pred_lab[both]).size
    return LesionCounts(n_ref, int(hit), int(n_pred - found))


__all__ = ["DEFAULT_MIN_LESION_ML", "LesionCounts", "lesion_detection"]
