"""Optional resampling to a target voxel spacing, and its exact inverse mapping (off by default).

The paper does not resample (section 3.2); iphbench offers it for cohorts whose slice
thickness varies a lot between sites.

Grid: voxel centres are aligned ("align corners" by voxel centres, in mm). The first voxel
centre stays where it is; new voxel ``j`` sits at old index ``j * t / s`` along each axis
(``t`` the target, ``s`` the old spacing), and the new grid holds every centre that falls inside
the old one, so no value is extrapolated. The new affine is the old one with its columns scaled
by ``t / s``: world positions are preserved exactly. Going back maps old index ``i`` to new index
``i * s / t``; the few old centres beyond the last new centre (less than one new voxel) take the
edge value.

Methods: images and probabilities use trilinear interpolation (``order=1``): it cannot
overshoot the data range (no ringing as with splines) and is what the predictions' 2.5D
average is made of. Masks are resampled as a float {0, 1} image with trilinear interpolation
and thresholded at 0.5 (:func:`resample_mask`): the 0.5 iso-surface of the interpolated mask
sits half-way between inside and outside centres, so the object is neither shifted (unlike
taking the nearest voxel on a grid whose centres do not align) nor thinned or thickened on
average.

Example:
    >>> import numpy as np
    >>> a = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((5, 1, 1), dtype=np.float32)
    >>> resample_array(a, (1.0, 1.0, 1.0), (0.5, 1.0, 1.0))[:, 0, 0].tolist()
    [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

Spacing = Sequence[float]


def resampled_shape(shape: Sequence[int], spacing: Spacing, target: Spacing) -> tuple[int, int, int]:
    """Shape of the grid at ``target`` spacing whose voxel centres lie inside the old grid."""
    _check(spacing, target)
    out = [
        int(np.floor((int(n) - 1) * float(s) / float(t) + 1e-6)) + 1
        for n, s, t in zip(shape, spacing, target, strict=True)
    ]
    return (out[0], out[1], out[2])


def resampled_affine(affine: np.ndarray, spacing: Spacing, target: Spacing) -> np.ndarray:
    """Affine of the resampled grid: columns scaled by ``target / spacing``, same first voxel centre."""
    _check(spacing, target)
    scale = np.array([float(t) / float(s) for s, t in zip(spacing, target, strict=True)] + [1.0])
    return np.asarray(affine, dtype=np.float64) @ np.diag(scale)


def resample_array(
    array: np.ndarray,
    spacing: Spacing,
    target: Spacing,
    order: int = 1,
    shape: Sequence[int] | None = None,
) -> np.ndarray:
    """Resample a 3D array from ``spacing`` to ``target`` spacing (mm) on the centre-aligned grid.

    Args:
        array: 3D array.
        spacing: its voxel size in mm.
        target: the new voxel size in mm.
        order: 0 nearest, 1 trilinear (see module docstring).
        shape: output shape; default :func:`resampled_shape`. The inverse mapping passes the
            original shape here.

    Returns:
        float32 array for ``order >= 1``, the input dtype for ``order == 0``.
    """
    _check(spacing, target)
    out_shape = tuple(
        int(n) for n in (shape if shape is not None else resampled_shape(array.shape, spacing, target))
    )
    step = np.array([float(t) / float(s) for s, t in zip(spacing, target, strict=True)])
    if order == 0:
        # exact nearest-centre lookup by index arithmetic (scipy's order-0 rounding is not symmetric at .5)
        idx = [
            np.clip(np.floor(np.arange(n) * f + 0.5).astype(np.int64), 0, m - 1)
            for n, f, m in zip(out_shape, step, array.shape, strict=True)
        ]
        return np.asarray(array[np.ix_(*idx)])
    data = np.asarray(array, dtype=np.float32)
    return np.asarray(
        ndimage.affine_transform(data, step, offset=0.0, output_shape=out_shape, order=order, mode="nearest"),
        dtype=np.float32,
    )


def resample_mask(
    mask: np.ndarray, spacing: Spacing, target: Spacing, shape: Sequence[int] | None = None
) -> np.ndarray:
    """Resample a binary mask: trilinear on {0, 1} floats, then ``>= 0.5`` (uint8; see module docstring)."""
    prob = resample_array((np.asarray(mask) != 0).astype(np.float32), spacing, target, order=1, shape=shape)
    return (prob >= 0.5).astype(np.uint8)


def _check(spacing: Spacing, target: Spacing) -> None:
    if len(spacing) != 3 or len(target) != 3:
        raise ValueError(
            f"spacing and target spacing need three values (x, y, z), got {list(spacing)} and {list(target)}"
        )
    if any(float(v) <= 0 for v in [*spacing, *target]):
        raise ValueError(f"spacings must be positive, got {list(spacing)} and target {list(target)}")


__all__ = ["resample_array", "resample_mask", "resampled_affine", "resampled_shape"]
