"""Reading a DICOM CT series folder into a canonical ``Volume`` (DESIGN.md, "DICOM series in").

SimpleITK/GDCM sorts the slices along the slice normal and applies each slice's
RescaleSlope and RescaleIntercept, so the array is in HU. On top of that this module
refuses folders that would silently give a wrong grid: several series in one folder,
missing or duplicated slices (uneven spacing along the normal) and gantry tilt.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from iphbench.io._sitk import itk_affine, itk_array
from iphbench.io.volume import SourceGrid, Volume, VolumeReadError, canonicalize, check_voxels

logger = logging.getLogger(__name__)

_POSITION = "0020|0032"  # ImagePositionPatient
_ORIENTATION = "0020|0037"  # ImageOrientationPatient
_SPACING_TOLERANCE = 0.05  # relative deviation of one gap from the median gap that counts as uneven


def read_dicom_series(folder: str | Path) -> Volume:
    """Read the single DICOM series in ``folder`` as float32 HU in canonical RAS+ order.

    Args:
        folder: a folder holding the slices of exactly one series.

    Returns:
        The canonical Volume; ``source.format == "dicom"`` and ``source.meta`` holds the
        SeriesInstanceUID and the number of slices.

    Raises:
        VolumeReadError: no series, several series, uneven slice positions (a missing slice),
            duplicate positions, gantry tilt or unreadable files; the message names the folder.
    """
    folder = Path(folder)
    try:
        series_ids = list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
    except RuntimeError as exc:
        raise VolumeReadError(f"cannot scan DICOM folder {folder}: {exc}") from None
    if not series_ids:
        raise VolumeReadError(f"no DICOM series found in folder {folder}")
    if len(series_ids) > 1:
        counts = {
            sid: len(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), sid)) for sid in series_ids
        }
        listing = ", ".join(f"{sid} ({n} files)" for sid, n in counts.items())
        raise VolumeReadError(
            f"DICOM folder {folder} holds {len(series_ids)} series: {listing}; "
            "put each series in its own folder and list the CT series in the cohort"
        )
    files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_ids[0]))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.SetOutputPixelType(sitk.sitkFloat32)
    reader.MetaDataDictionaryArrayUpdateOn()
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise VolumeReadError(f"cannot read DICOM series in {folder}: {exc}") from None
    if image.GetDimension() != 3 or len(files) < 2:
        raise VolumeReadError(
            f"DICOM folder {folder} holds a single 2D slice; iphbench needs the whole series (>= 2 slices)"
        )
    _check_positions(reader, len(files), folder)
    data = check_voxels(itk_array(image), folder)
    affine = itk_affine(image)
    source = SourceGrid(
        shape=tuple(data.shape),
        affine=affine,
        ornt=np.zeros((3, 2)),
        path=str(folder),
        format="dicom",
        meta={"series_uid": series_ids[0], "n_slices": len(files)},
    )
    logger.debug("read DICOM series %s from %s: %d slices", series_ids[0], folder, len(files))
    return canonicalize(data.astype(np.float32, copy=False), affine, source)


def _check_positions(reader: sitk.ImageSeriesReader, n: int, folder: Path) -> None:
    """Raise if the slices are not evenly spaced along the slice normal (missing slice, tilt)."""
    try:
        positions = np.array([_floats(reader.GetMetaData(i, _POSITION)) for i in range(n)])
        iop = _floats(reader.GetMetaData(0, _ORIENTATION))
    except (RuntimeError, ValueError):
        logger.warning(
            "DICOM folder %s: slices lack ImagePositionPatient/Orientation; slice order not checked", folder
        )
        return
    row, col = np.asarray(iop[:3]), np.asarray(iop[3:6])
    normal = np.cross(row, col)
    along = positions @ normal
    order = np.argsort(along)
    along, positions = along[order], positions[order]
    gaps = np.diff(along)
    if np.any(gaps < 1e-3):
        raise VolumeReadError(
            f"DICOM folder {folder}: two or more slices share a position; it may hold duplicate or "
            "overlapping acquisitions; keep one copy of each slice"
        )
    median = float(np.median(gaps))
    uneven = np.flatnonzero(np.abs(gaps - median) > _SPACING_TOLERANCE * median)
    if uneven.size:
        i = int(uneven[0])
        raise VolumeReadError(
            f"DICOM folder {folder}: uneven slice spacing (gap of {gaps[i]:.3f} mm after slice {i} vs "
            f"{median:.3f} mm elsewhere); a slice is probably missing. Export the complete series"
        )
    offsets = positions - positions[0] - np.outer(along - along[0], normal)
    if np.abs(offsets).max() > 0.05 * median + 1e-3:
        raise VolumeReadError(
            f"DICOM folder {folder}: the slices are shifted in-plane along the series (gantry tilt); "
            "resample the series to an orthogonal grid first (e.g. dcm2niix) and list the NIfTI instead"
        )


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.strip().split("\\")]
