"""Reading a DICOM CT series folder into a canonical ``Volume`` (DESIGN.md, "DICOM series in").

SimpleITK/GDCM sorts the slices along the slice normal and applies each slice's
RescaleSlope and RescaleIntercept, so the array is in HU. On top of that this module
refuses folders that would silently give a wrong grid: several series in one folder and
missing or duplicated slices (uneven spacing along the normal). A gantry-tilted series is
resampled onto a regular grid (shear correction, ``iphbench.io._tilt``) with a warning; the
way back to the acquired slices is kept in ``source.meta["gantry_tilt"]``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from iphbench.io._sitk import _LPS_TO_RAS, itk_affine, itk_array
from iphbench.io._tilt import TiltGrid, tilt_grid, to_regular
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
        SeriesInstanceUID, the number of slices and, for a gantry-tilted series, the
        ``gantry_tilt`` record (``TiltGrid.to_meta``): the Volume and ``source`` are then the
        regular (resampled) grid.

    Raises:
        VolumeReadError: no series, several series, uneven slice positions (a missing slice),
            duplicate positions or unreadable files; the message names the folder.
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
    tilt = _check_positions(reader, len(files), folder, image)
    data = check_voxels(itk_array(image), folder)
    affine = itk_affine(image)
    meta: dict[str, object] = {"series_uid": series_ids[0], "n_slices": len(files)}
    if tilt is not None:
        grid, affine = tilt
        data = to_regular(data, grid, fill=float(data.min()))
        meta["gantry_tilt"] = grid.to_meta()
        logger.warning(
            "DICOM folder %s: gantry tilt of %.1f degrees; resampled onto a regular grid of %s voxels "
            "(shear correction, linear). NIfTI masks are written on this grid; a DICOM SEG maps them back "
            "onto the acquired slices",
            folder,
            grid.angle_deg,
            "x".join(map(str, grid.shape)),
        )
    source = SourceGrid(
        shape=tuple(data.shape),
        affine=affine,
        ornt=np.zeros((3, 2)),
        path=str(folder),
        format="dicom",
        meta=meta,
    )
    logger.debug("read DICOM series %s from %s: %d slices", series_ids[0], folder, len(files))
    return canonicalize(data.astype(np.float32, copy=False), affine, source)


def _check_positions(
    reader: sitk.ImageSeriesReader, n: int, folder: Path, image: sitk.Image
) -> tuple[TiltGrid, np.ndarray] | None:
    """Raise if the slices are not evenly spaced along the slice normal (missing or duplicate slice).

    Returns:
        ``None`` for an orthogonal series; for a gantry-tilted one, its ``TiltGrid`` and the RAS
        affine of the regular grid it is resampled onto.
    """
    try:
        positions = np.array([_floats(reader.GetMetaData(i, _POSITION)) for i in range(n)])
        iop = _floats(reader.GetMetaData(0, _ORIENTATION))
    except (RuntimeError, ValueError):
        logger.warning(
            "DICOM folder %s: slices lack ImagePositionPatient/Orientation; slice order not checked", folder
        )
        return None
    row, col = np.asarray(iop[:3]), np.asarray(iop[3:6])
    normal = np.cross(row, col)
    along = positions @ normal
    order = np.argsort(along)
    along_sorted = along[order]
    gaps = np.diff(along_sorted)
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
    if np.abs(offsets).max() <= 0.05 * median + 1e-3:
        return None
    # gantry tilt: SimpleITK stacked the slices in ascending order along the normal with the
    # distance between slice origins as spacing, which is neither the spacing along the normal nor
    # the in-plane drift; rebuild the grid from the positions
    if np.any(np.diff(along) <= 0):
        raise VolumeReadError(
            f"DICOM folder {folder}: a gantry-tilted series whose files are not in slice order; "
            "resample it to an orthogonal grid first (e.g. dcm2niix) and list the NIfTI instead"
        )
    spacing = image.GetSpacing()
    shifts_mm = np.stack([offsets @ row, offsets @ col], axis=1)
    grid = tilt_grid(shifts_mm, (spacing[0], spacing[1]), median, tuple(image.GetSize()))
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2] = row * spacing[0], col * spacing[1], normal * median
    lps[:3, 3] = positions[0] + grid.offset[0] * spacing[0] * row + grid.offset[1] * spacing[1] * col
    ras = np.eye(4)
    ras[:3, :] = _LPS_TO_RAS @ lps[:3, :]
    return grid, ras


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.strip().split("\\")]
