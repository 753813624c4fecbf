"""Conversion between SimpleITK images (LPS world, z-y-x arrays) and iphbench's RAS affines.

ITK stores ``origin`` and ``direction`` in LPS+ world coordinates and
``GetArrayFromImage`` returns arrays indexed ``[k, j, i]`` (z, y, x). iphbench works in
RAS+ world coordinates with arrays indexed ``[i, j, k]``, so a point
``p_LPS = origin + direction @ diag(spacing) @ (i, j, k)`` becomes
``p_RAS = diag(-1, -1, 1) @ p_LPS``.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def itk_affine(image: sitk.Image) -> np.ndarray:
    """The 4×4 voxel (i, j, k) → world RAS (mm) affine of a 3D SimpleITK image."""
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    origin = np.asarray(image.GetOrigin(), dtype=np.float64)
    affine = np.eye(4)
    affine[:3, :3] = _LPS_TO_RAS @ direction @ np.diag(spacing)
    affine[:3, 3] = _LPS_TO_RAS @ origin
    return affine


def itk_array(image: sitk.Image) -> np.ndarray:
    """The voxel array of a 3D SimpleITK image in (i, j, k) order (a transposed, Fortran-ordered copy)."""
    return np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0))


def to_itk(array: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """A SimpleITK image holding ``array`` (i, j, k order) on the grid of the RAS ``affine``.

    Raises:
        ValueError: if ``affine`` has shear (ITK grids are rotation × spacing only).
    """
    affine = np.asarray(affine, dtype=np.float64)
    linear = _LPS_TO_RAS @ affine[:3, :3]
    spacing = np.sqrt((linear**2).sum(axis=0))
    direction = linear / spacing
    gram = direction.T @ direction
    if not np.allclose(gram, np.eye(3), atol=1e-4):
        raise ValueError(
            "this grid's affine has shear, which NRRD/MHA (ITK) files cannot store; write the mask as .nii.gz instead"
        )
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array, (2, 1, 0))))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(d) for d in direction.ravel()))
    image.SetOrigin(tuple(float(o) for o in _LPS_TO_RAS @ affine[:3, 3]))
    return image
