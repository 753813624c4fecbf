"""Reading a DICOM CT series folder into a canonical ``Volume`` (DESIGN.md, "DICOM series in").

SimpleITK/GDCM sorts the slices along the slice normal and applies each slice's
RescaleSlope and RescaleIntercept, so the array is in HU. On top of that this module
refuses folders that would silently give a wrong result: a series that is not CT (Modality
and SOP Class UID; an MR read as CT gets a hemorrhage mask of half the head), several series
in one folder, slices that disagree on their pixel grid (PixelSpacing, Rows/Columns,
ImageOrientationPatient: GDCM stacks them on the first slice's grid) and missing or
duplicated slices (uneven spacing along the normal). A gantry-tilted series is resampled onto
a regular grid (shear correction, ``iphbench.io._tilt``) with a warning; the way back to the
acquired slices is kept in ``source.meta["gantry_tilt"]``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from iphbench.io._sitk import _LPS_TO_RAS, itk_affine, itk_array
from iphbench.io._tilt import TiltGrid, tilt_grid, to_regular
from iphbench.io.volume import SourceGrid, Volume, VolumeReadError, canonicalize, check_voxels

logger = logging.getLogger(__name__)

_POSITION = "0020|0032"  # ImagePositionPatient
_ORIENTATION = "0020|0037"  # ImageOrientationPatient
_MODALITY = "0008|0060"  # Modality
_SOP_CLASS = "0008|0016"  # SOPClassUID
_PIXEL_SPACING = "0028|0030"  # PixelSpacing (row spacing \\ column spacing, mm)
_ROWS, _COLUMNS = "0028|0010", "0028|0011"
_SPACING_TOLERANCE = 0.05  # relative deviation of one gap from the median gap that counts as uneven
_PIXEL_SPACING_RTOL = 1e-3  # relative: exporters round 0.48828125 to 0.488281; a real change is 10 %+
_ORIENTATION_TOLERANCE_DEG = 0.1  # 0.1 degree moves a voxel 100 mm from the axis by 0.17 mm (< half a pixel)

CT_SOP_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.2": "CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT Image Storage",
}
"""The SOP classes read as CT: every other class (MR, PET, secondary capture, ...) is refused."""
_OTHER_SOP_CLASSES: dict[str, str] = {  # names of the refused classes most often met, for the message
    "1.2.840.10008.5.1.4.1.1.4": "MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.3": "Enhanced MR Color Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.4": "Legacy Converted Enhanced MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.128": "Positron Emission Tomography Image Storage",
    "1.2.840.10008.5.1.4.1.1.130": "Enhanced PET Image Storage",
    "1.2.840.10008.5.1.4.1.1.128.1": "Legacy Converted Enhanced PET Image Storage",
    "1.2.840.10008.5.1.4.1.1.20": "Nuclear Medicine Image Storage",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.1": "Computed Radiography Image Storage",
    "1.2.840.10008.5.1.4.1.1.6.1": "Ultrasound Image Storage",
    "1.2.840.10008.5.1.4.1.1.66.4": "Segmentation Storage",
}


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
        VolumeReadError: no series, several series, a series that is not CT, slices that disagree
            on modality, SOP class or pixel grid, fewer than ``MIN_SLICES`` slices, uneven slice
            positions (a missing slice), duplicate positions or unreadable files; the message
            names the folder.
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
        # slices of different sizes make GDCM fail with a region error: say which slices differ
        check_series_headers(folder, _file_headers(files))
        raise VolumeReadError(f"cannot read DICOM series in {folder}: {exc}") from None
    check_series_headers(folder, [_reader_header(reader, i) for i in range(len(files))])
    if image.GetDimension() != 3:
        raise VolumeReadError(
            f"DICOM folder {folder}: the series is not a 3D volume; give a CT series folder"
        )
    data = check_voxels(itk_array(image), folder)  # before the positions: one slice has no spacing
    tilt = _check_positions(reader, len(files), folder, image)
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


Header = dict[str, str]  # the tags a series check needs, of one slice: DICOM "gggg|eeee" key -> value
_HEADER_KEYS = (_MODALITY, _SOP_CLASS, _PIXEL_SPACING, _ROWS, _COLUMNS, _ORIENTATION)


def _reader_header(reader: sitk.ImageSeriesReader, i: int) -> Header:
    return {k: _clean(reader.GetMetaData(i, k)) for k in _HEADER_KEYS if reader.HasMetaDataKey(i, k)}


def _file_headers(files: list[str]) -> list[Header]:
    """The headers of the files that can be parsed (the reader failed: some may not)."""
    headers = []
    for path in files:
        reader = sitk.ImageFileReader()
        reader.SetFileName(path)
        try:
            reader.ReadImageInformation()
        except RuntimeError:
            continue
        headers.append({k: _clean(reader.GetMetaData(k)) for k in _HEADER_KEYS if reader.HasMetaDataKey(k)})
    return headers


def _clean(value: str) -> str:
    return value.strip().strip("\x00").strip()


def check_series_headers(folder: str | Path, headers: list[Header]) -> None:
    """Refuse a series that is not CT or whose slices disagree on their pixel grid.

    Args:
        folder: the series folder (named in the messages).
        headers: one ``Header`` per slice.

    Raises:
        VolumeReadError: naming the folder, the values found and how many slices hold each.
    """
    folder = Path(folder)
    _check_modality(folder, headers)
    _check_grid(folder, headers)


def _check_modality(folder: Path, headers: list[Header]) -> None:
    """Modality and SOP Class UID must agree across slices and say CT (``CT_SOP_CLASSES``).

    With both tags absent from every slice (some anonymisers drop them) the series is let
    through: the HU rule (``iphbench.io._checks.intensity_problem``) then judges its values.
    """
    found = {}
    for name, key, show in (("Modality", _MODALITY, _value_text), ("SOP Class UID", _SOP_CLASS, _sop_name)):
        clusters = _cluster([h.get(key) for h in headers], lambda a, b: a.upper() == b.upper())
        if len(clusters) > 1:
            raise VolumeReadError(
                f"DICOM folder {folder}: the slices disagree on {name}: {_listing(clusters, show)}; "
                "it mixes series of different kinds: keep only the CT slices in the folder"
            )
        found[key] = clusters[0][0] if clusters else None
    modality, sop = found[_MODALITY], found[_SOP_CLASS]
    if modality is None and sop is None:
        logger.debug(
            "DICOM folder %s: no Modality and no SOP Class UID; the HU rule decides if it is a CT", folder
        )
    elif (modality is not None and modality.upper() != "CT") or (
        sop is not None and sop not in CT_SOP_CLASSES
    ):
        raise VolumeReadError(
            f"DICOM folder {folder} is not a CT series: Modality {_value_text(modality)}, SOP class "
            f"{_sop_name(sop)}; iphbench needs a non-contrast head CT (Modality CT, CT Image Storage). "
            "Point the cohort at the CT series"
        )


def _check_grid(folder: Path, headers: list[Header]) -> None:
    """PixelSpacing, Rows/Columns and ImageOrientationPatient must agree across slices.

    GDCM stacks every slice on the first slice's grid, so a slice with another spacing would
    silently get wrong millimetres and millilitres. Tolerances: ``_PIXEL_SPACING_RTOL``,
    ``_ORIENTATION_TOLERANCE_DEG``.
    """
    stacked = "read as one volume, every slice would get the first slice's grid (wrong mm and mL)"
    checks: tuple[tuple[str, list[Any], Any, str], ...] = (
        (
            "PixelSpacing (mm)",
            [_floats_or_none(h.get(_PIXEL_SPACING)) for h in headers],
            lambda a, b: len(a) == len(b) and np.allclose(a, b, rtol=_PIXEL_SPACING_RTOL, atol=1e-6),
            stacked,
        ),
        (
            "Rows x Columns",
            [(h.get(_ROWS), h.get(_COLUMNS)) if _ROWS in h or _COLUMNS in h else None for h in headers],
            lambda a, b: a == b,
            "slices of different sizes do not form one volume",
        ),
        (
            "ImageOrientationPatient",
            [_floats_or_none(h.get(_ORIENTATION)) for h in headers],
            _same_orientation,
            f"more than {_ORIENTATION_TOLERANCE_DEG:g} degree apart; {stacked}",
        ),
    )
    for name, values, same, why in checks:
        clusters = _cluster(values, same)
        if len(clusters) > 1:
            raise VolumeReadError(
                f"DICOM folder {folder}: the slices disagree on {name}: {_listing(clusters, _value_text)}; "
                f"{why}. Keep only the slices of one acquisition in the folder, or export the series again"
            )


def _cluster(values: list[Any], same: Any) -> list[tuple[Any, int]]:
    """Group ``values`` with the first value seen of a group when ``same``; (value, count), largest first.

    ``None`` (the tag is absent) forms its own group.
    """
    clusters: list[list[Any]] = []  # [representative, count]
    for v in values:
        for c in clusters:
            if (v is None) == (c[0] is None) and (v is None or same(c[0], v)):
                c[1] += 1
                break
        else:
            clusters.append([v, 1])
    return sorted(((c[0], c[1]) for c in clusters), key=lambda vc: -vc[1])


def _listing(clusters: list[tuple[Any, int]], show: Any) -> str:
    return ", ".join(f"{show(v)} ({n} slice{'s' if n != 1 else ''})" for v, n in clusters)


def _sop_name(uid: str | None) -> str:
    if uid is None:
        return "(absent)"
    name = CT_SOP_CLASSES.get(uid) or _OTHER_SOP_CLASSES.get(uid)
    return f"{uid} ({name})" if name else uid


def _floats_or_none(text: str | None) -> tuple[float, ...] | None:
    if not text:
        return None
    try:
        return tuple(_floats(text))
    except ValueError:
        return None


def _same_orientation(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Row and column direction cosines within ``_ORIENTATION_TOLERANCE_DEG`` of each other."""
    if len(a) != 6 or len(b) != 6:
        return a == b
    for u, v in ((a[:3], b[:3]), (a[3:], b[3:])):
        cos = float(np.dot(u, v)) / max(float(np.linalg.norm(u) * np.linalg.norm(v)), 1e-12)
        if np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))) > _ORIENTATION_TOLERANCE_DEG:
            return False
    return True


def _value_text(value: Any) -> str:
    if value is None:
        return "(absent)"
    if isinstance(value, tuple) and all(isinstance(v, float) for v in value):
        shown = [f"{v + 0.0:.6g}" for v in value]  # + 0.0: no "-0" for a direction cosine written -0.0
        return " x ".join(shown) if len(value) == 2 else "[" + ", ".join(shown) + "]"  # spacing, orientation
    if isinstance(value, tuple):
        return " x ".join(str(v) for v in value)
    return str(value)
