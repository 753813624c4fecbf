"""``read_volume``: one entry point for every scan format iphbench accepts.

Formats (chosen by suffix, or a folder for DICOM): NIfTI (.nii, .nii.gz), NRRD (.nrrd,
.nhdr), MetaImage (.mha, .mhd) and DICOM series folders. Every scan comes back as
float32 in canonical RAS+ voxel order (``iphbench.io.volume``) with its ``SourceGrid``
so that results can be written back in the file's own grid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from iphbench.io._sitk import itk_affine, itk_array
from iphbench.io.dicom import read_dicom_series
from iphbench.io.volume import (
    SourceGrid,
    Volume,
    VolumeReadError,
    canonicalize_as,
    check_voxels,
    read_nifti,
)

SUFFIXES: dict[str, str] = {
    ".nii": "nifti",
    ".nii.gz": "nifti",
    ".nrrd": "nrrd",
    ".nhdr": "nrrd",
    ".mha": "mha",
    ".mhd": "mha",
}


def detect_format(path: str | Path) -> str:
    """The format name of ``path``: "nifti", "nrrd", "mha" or "dicom" (a folder).

    Raises:
        VolumeReadError: a missing path or an unsupported suffix (the message lists the supported ones).
    """
    path = Path(path)
    if path.is_dir():
        return "dicom"
    name = path.name.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return SUFFIXES[suffix]
    if not path.exists():
        raise VolumeReadError(f"file not found: {path}")
    if name.endswith(".dcm") or name.endswith(".ima"):
        raise VolumeReadError(f"{path} is a single DICOM file; give the folder that holds the whole series")
    raise VolumeReadError(
        f"{path}: unsupported format; use NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd) "
        "or a DICOM series folder"
    )


def read_volume(path: str | Path, dtype: type | np.dtype | None = np.float32) -> Volume:
    """Read a scan into a canonical RAS+ ``Volume`` (values in HU for CT).

    Args:
        path: a NIfTI, NRRD or MetaImage file, or a folder holding one DICOM series.
        dtype: array dtype of the result (float32 for scans; ``None`` keeps the file's dtype).

    Returns:
        The Volume; ``volume.source`` keeps the file's own grid for ``write_mask_like``.

    Raises:
        VolumeReadError: missing or unreadable file, unsupported format, 2D or multi-volume
            data, NaN or infinite voxels; the message names the file.

    Example:
        >>> vol = read_volume("sub-001/ct.nii.gz")  # doctest: +SKIP
        >>> vol.array.shape, vol.spacing  # doctest: +SKIP
        ((512, 512, 36), (0.45, 0.45, 5.0))
    """
    path = Path(path)
    fmt = detect_format(path)
    if not path.exists():
        raise VolumeReadError(f"file not found: {path}")
    if fmt == "nifti":
        return read_nifti(path, dtype=dtype)
    if fmt == "dicom":
        vol = read_dicom_series(path)
        if dtype is not None:
            vol.array = vol.array.astype(dtype, copy=False)
        return vol
    return _read_itk(path, fmt, dtype)


def _read_itk(path: Path, fmt: str, dtype: type | np.dtype | None) -> Volume:
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise VolumeReadError(
            f"cannot read {fmt.upper()} file {path}: {str(exc).strip().splitlines()[-1]}"
        ) from None
    if image.GetNumberOfComponentsPerPixel() > 1:
        raise VolumeReadError(
            f"{path}: has {image.GetNumberOfComponentsPerPixel()} values per voxel (vector/RGB image); "
            "iphbench needs a single-channel CT volume"
        )
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]  # a 4D file that holds one volume
    if image.GetDimension() != 3:
        shape = tuple(reversed(sitk.GetArrayViewFromImage(image).shape))
        check_voxels(np.empty(shape, dtype=np.uint8), path, finite=False)  # raises the 2D / 4D message
        raise VolumeReadError(f"{path}: expected a 3D volume, got {image.GetDimension()} dimensions")
    data = check_voxels(itk_array(image), path)
    affine = itk_affine(image)
    source = SourceGrid(
        shape=tuple(data.shape), affine=affine, ornt=np.zeros((3, 2)), path=str(path), format=fmt
    )
    return canonicalize_as(data, affine, source, dtype)
