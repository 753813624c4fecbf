"""Connected components of binary masks: the one labelling shared by inference, evaluation and study.

A lesion is a connected component under 26-connectivity (face, edge or corner neighbours in 3D;
8-connectivity in 2D), as in the lesion-wise metrics of the BraTS 2023 challenges and of
MetricsReloaded. ``predict`` counts lesions with it, the ``iphbench`` recipe's post-processing
drops small ones with it, and lesion-wise detection (``iphbench.evaluation.lesions``) matches them,
so the three can never disagree on what one lesion is.

Example:
    >>> m = np.zeros((5, 5, 5), bool); m[0, 0, 0] = True; m[2:5, 2:5, 2:5] = True
    >>> count_lesions(m)
    2
    >>> int(remove_small_components(m, voxel_ml=0.001, min_ml=0.005).sum())
    27
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def label_lesions(mask: np.ndarray, voxel_ml: float, min_size_ml: float) -> tuple[np.ndarray, int]:
    """Connected components (26-connectivity) of at least ``min_size_ml``, labelled 1..n; smaller ones set to 0."""
    structure = np.ones((3,) * mask.ndim, dtype=bool)
    labels, n = ndimage.label(mask, structure=structure)
    if n == 0:
        return labels, 0
    sizes = np.bincount(labels.ravel(), minlength=n + 1) * voxel_ml
    keep = sizes >= min_size_ml
    keep[0] = False
    relabel = np.zeros(n + 1, dtype=labels.dtype)
    relabel[keep] = np.arange(1, int(keep.sum()) + 1)
    return relabel[labels], int(keep.sum())


def count_lesions(mask: np.ndarray) -> int:
    """Number of connected components of a binary mask, 26-connectivity (face, edge or corner)."""
    return label_lesions(np.asarray(mask) > 0, voxel_ml=1.0, min_size_ml=0.0)[1]


def remove_small_components(mask: np.ndarray, voxel_ml: float, min_ml: float) -> np.ndarray:
    """``mask`` without its connected components (26-connectivity) smaller than ``min_ml`` mL."""
    mask = np.asarray(mask, dtype=bool)
    if min_ml <= 0 or not mask.any():
        return mask
    return label_lesions(mask, voxel_ml, min_ml)[0] > 0


__all__ = ["count_lesions", "label_lesions", "remove_small_components"]
