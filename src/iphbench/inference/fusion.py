"""2.5D fusion (paper section 3.4): the mean of the three views' probabilities, then a threshold."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from iphbench.views import VIEWS


def fuse_views(
    probabilities: Mapping[str, np.ndarray], views: tuple[str, ...] | list[str] = VIEWS
) -> np.ndarray:
    """Average the probability volumes of ``views`` voxel by voxel (the paper's 2.5D model).

    Args:
        probabilities: view name → probability volume, all of one shape.
        views: the views to average; all must be present.

    Returns:
        float32 volume of mean probabilities.

    Example:
        >>> import numpy as np
        >>> p = {"2DAxi": np.full(2, 0.9), "2DCor": np.full(2, 0.3), "2DSag": np.full(2, 0.3)}
        >>> fuse_views(p).round(3).tolist()
        [0.5, 0.5]
    """
    missing = [v for v in views if v not in probabilities]
    if missing:
        raise KeyError(f"2.5D fusion needs probabilities of {list(views)}; missing {missing}")
    shapes = {probabilities[v].shape for v in views}
    if len(shapes) != 1:
        raise ValueError(f"views have different shapes {sorted(shapes)}; cannot fuse")
    total = np.zeros(next(iter(shapes)), dtype=np.float32)
    for v in views:
        total += probabilities[v].astype(np.float32, copy=False)
    total /= np.float32(len(views))
    return total


def threshold(probability: np.ndarray, level: float = 0.5) -> np.ndarray:
    """Binary mask (uint8) of voxels whose probability is at least ``level``."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"threshold must lie strictly between 0 and 1, got {level}")
    return (probability >= level).astype(np.uint8)
