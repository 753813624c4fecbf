"""Hemorrhage masks: reading them as binary {0, 1} arrays and writing results back aligned.

Mask rules (docs/io.md): a mask is on the same grid as its scan (shape and affine agree
within ``atol`` mm); voxel values {0, 1} or {0, 255} are read as binary; any other values
(a label map) are refused unless ``labels`` names the label values that count as
hemorrhage (``iphbench validate --mask-labels 1,2``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from iphbench._files import atomic_path
from iphbench.io._sitk import to_itk
from iphbench.io.read import detect_format, read_volume
from iphbench.io.volume import Volume, VolumeReadError, write_nifti_like

logger = logging.getLogger(__name__)

GRID_ATOL_MM = (
    1e-3  # largest difference between image and mask affine entries that still counts as the same grid
)


class MaskError(ValueError):
    """A mask is not binary or not on its image's grid; the message names the file(s) and the fix."""


def binarize_mask(
    array: np.ndarray, labels: Sequence[int] | None = None, name: str | Path = "mask"
) -> np.ndarray:
    """Turn mask voxel values into uint8 {0, 1}.

    Args:
        array: mask voxels (any numeric dtype).
        labels: label values counted as hemorrhage; ``None`` accepts only {0, 1} or {0, 255}.
        name: file name used in error messages.

    Returns:
        A uint8 array of the same shape with 1 = hemorrhage.

    Raises:
        MaskError: values other than {0, 1}/{0, 255} without ``labels``, or non-integer values.
    """
    values = np.unique(array[array != 0])  # lesions are small: only the non-zero voxels are sorted
    if values.size and np.any(values != np.round(values)):
        raise MaskError(
            f"mask {name} holds non-integer values (e.g. {values[values != np.round(values)][0]:g}); "
            "a mask must hold integer labels, not probabilities: threshold it first"
        )
    if labels is not None:
        return np.isin(array, np.asarray(list(labels))).astype(np.uint8)
    if values.size == 0 or (values.size == 1 and values[0] in (1, 255)):
        return (array != 0).astype(np.uint8)
    shown = ", ".join(f"{v:g}" for v in [0, *values[:8].tolist()]) + (", ..." if values.size > 8 else "")
    raise MaskError(
        f"mask {name} is not binary: it holds values {{{shown}}} (expected {{0, 1}} or {{0, 255}}); "
        "if it is a label map, say which labels are hemorrhage with --mask-labels (e.g. --mask-labels 1,2)"
    )


def grid_mismatch(mask: Volume, image: Volume, atol: float = GRID_ATOL_MM) -> str | None:
    """Why ``mask`` is not on ``image``'s grid (a message naming both files), or ``None`` if it is."""
    m_name, i_name = mask.source.path, image.source.path
    if mask.shape != image.shape:
        if mask.source.shape != image.source.shape:
            return f"mask {m_name} has shape {mask.source.shape} but image {i_name} has {image.source.shape}"
        return (  # same numbers in another axis order: a different grid
            f"mask {m_name} has shape {mask.shape} in RAS order but image {i_name} has {image.shape}: "
            "their axes are ordered differently"
        )
    diff = float(np.abs(np.asarray(mask.affine) - np.asarray(image.affine)).max())
    if diff > atol:
        return (
            f"mask {m_name} and image {i_name} have different affines (largest difference {diff:.4g} mm; "
            f"tolerance {atol:g} mm): the mask is not on the image's grid; resample or re-export it"
        )
    return None


def read_mask(
    path: str | Path,
    labels: Sequence[int] | None = None,
    like: Volume | None = None,
    atol: float = GRID_ATOL_MM,
) -> Volume:
    """Read a hemorrhage mask as a uint8 {0, 1} canonical ``Volume``.

    Args:
        path: mask file (any format ``read_volume`` reads).
        labels: label values counted as hemorrhage; ``None`` accepts {0, 1} and {0, 255} only.
        like: the scan this mask belongs to; its shape and affine must agree within ``atol`` mm.
        atol: affine tolerance in mm.

    Raises:
        VolumeReadError: the file cannot be read.
        MaskError: not binary (see ``binarize_mask``) or not on ``like``'s grid.

    Example:
        >>> ct = read_volume("sub-001/ct.nii.gz")  # doctest: +SKIP
        >>> mask = read_mask("sub-001/iph.nii.gz", like=ct)  # doctest: +SKIP
        >>> float(mask.array.sum() * mask.voxel_volume_ml)  # hemorrhage volume in mL  # doctest: +SKIP
        12.3
    """
    vol = read_volume(path, dtype=None)
    if like is not None:
        problem = grid_mismatch(vol, like, atol=atol)
        if problem:
            raise MaskError(problem)
    vol.array = binarize_mask(vol.array, labels=labels, name=path)
    return vol


def write_mask_like(
    array: np.ndarray, like: Volume, path: str | Path, dtype: type | np.dtype = np.uint8
) -> Path:
    """Write a canonical-grid mask in the exact grid and orientation of ``like``'s source file.

    The format follows the suffix of ``path``: .nii, .nii.gz, .nrrd or .mha. The file is
    written atomically (a reader never sees half a file). Reading it back with
    ``read_mask``/``read_volume`` gives the same canonical array and affine.

    Args:
        array: canonical-grid array with ``like.shape`` (bool or integer values).
        like: the Volume of the scan the mask belongs to.
        path: output file.
        dtype: voxel type written (uint8 for masks).

    Raises:
        ValueError: wrong shape, non-integer float values, or an unsupported output suffix.
    """
    path = Path(path)
    array = np.asarray(array)
    if tuple(array.shape) != like.shape:
        raise ValueError(
            f"cannot write {path}: array shape {array.shape} differs from the scan's {like.shape}"
        )
    if array.dtype.kind == "f" and np.dtype(dtype).kind in "iub" and np.any(array != np.round(array)):
        raise ValueError(
            f"cannot write {path}: the array holds fractional values; threshold probabilities first"
        )
    name = path.name.lower()
    if name.endswith((".nhdr", ".mhd")):
        raise ValueError(f"cannot write {path}: detached-header formats are not written; use .nrrd or .mha")
    try:
        fmt = detect_format(path)
    except VolumeReadError:
        fmt = "unknown"
    if fmt == "nifti":
        return write_nifti_like(array, like, path, dtype=dtype)
    if fmt not in ("nrrd", "mha"):
        raise ValueError(f"cannot write {path}: unsupported suffix; use .nii, .nii.gz, .nrrd or .mha")
    data = like.to_source(array).astype(dtype, copy=False)
    image = to_itk(data, like.source.affine)
    suffix = ".nrrd" if fmt == "nrrd" else ".mha"
    with atomic_path(path, suffix=suffix) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)
    logger.debug("wrote %s in the grid of %s", path, like.source.path)
    return path
