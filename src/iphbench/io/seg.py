"""DICOM Segmentation (SEG) output for a scan read from a DICOM series (highdicom; the ``dicom`` extra).

The SEG references its source series the way viewers and PACS expect: the same study, frame of
reference and patient; one frame per source slice that holds hemorrhage, each frame naming its
source image (SOP Instance UID) and carrying that slice's own ImagePositionPatient; one binary
segment coded as a hemorrhage (SNOMED CT 50960005 "Hemorrhage", category 49755003 "Morphologically
abnormal structure", anatomic region 12738006 "Brain"; the segment label says "intraparenchymal
hemorrhage") with the algorithm identification (iphbench, its version, the style, orientation,
study). Codes are taken from the DICOM content-mapping resource as pydicom ships it.

A gantry-tilted series was resampled onto a regular grid for prediction (``iphbench.io._tilt``);
its mask is mapped back onto the acquired slices before writing, so every frame lies on a
source slice exactly (docs/io.md, docs/predict.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from iphbench import __version__
from iphbench._files import atomic_path
from iphbench.io._tilt import TiltGrid, to_acquired
from iphbench.io.volume import Volume

logger = logging.getLogger(__name__)

SEGMENT_LABEL = "intraparenchymal hemorrhage"
SERIES_NUMBER = 1000  # the SEG's own series number (any free number; viewers sort by it)
_TYPE2 = (  # patient/study attributes a SEG copies; anonymised series may lack them (type 2: may be empty)
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
)


class SegWriteError(ValueError):
    """A DICOM SEG cannot be written for this scan; the message says why and what to do."""


def acquired_mask(mask: np.ndarray, like: Volume) -> np.ndarray:
    """A canonical-grid mask of ``like`` on the acquired DICOM slices: (columns i, rows j, slice k).

    Slices are in ascending order along the slice normal (SimpleITK's order); for a
    gantry-tilted series each slice is shifted back from the regular grid (nearest neighbour).
    """
    data = like.to_source(np.asarray(mask))
    tilt = like.source.meta.get("gantry_tilt")
    if isinstance(tilt, dict):
        data = to_acquired(data, TiltGrid.from_meta(tilt))
    return data


def series_headers(folder: str | Path, series_uid: str | None = None) -> list[Any]:
    """The headers (no pixel data) of the series' slices in ``folder``, ascending along the slice normal."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    headers = []
    for path in sorted(Path(folder).iterdir()):
        if not path.is_file():
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError):
            continue
        if "ImagePositionPatient" not in ds or (series_uid and ds.get("SeriesInstanceUID") != series_uid):
            continue
        headers.append(ds)
    if not headers:
        raise SegWriteError(f"no slices of series {series_uid} with ImagePositionPatient found in {folder}")
    iop = np.asarray(headers[0].ImageOrientationPatient, dtype=np.float64)
    normal = np.cross(iop[:3], iop[3:6])
    headers.sort(key=lambda ds: float(np.asarray(ds.ImagePositionPatient, dtype=np.float64) @ normal))
    return headers


def write_dicom_seg(
    mask: np.ndarray,
    like: Volume,
    path: str | Path,
    algorithm: Mapping[str, str] | None = None,
    series_description: str = "iphbench IPH segmentation",
) -> Path:
    """Write a canonical-grid binary mask of a DICOM-series scan as a DICOM SEG referencing that series.

    Args:
        mask: {0, 1} array on ``like``'s canonical grid (what ``predict_scan`` returns).
        like: the scan, read from a DICOM series folder by ``read_volume``.
        path: the output file (``.dcm``); written atomically.
        algorithm: parameters recorded in the algorithm identification (e.g. style, orientation, study).
        series_description: the SEG series' description.

    Raises:
        SegWriteError: the scan is not a DICOM series, its slices changed since it was read, or
            highdicom is not installed.
    """
    if like.source.format != "dicom" or not like.source.path:
        raise SegWriteError(
            f"a DICOM SEG references the source DICOM series, but {like.source.path} is a "
            f"{like.source.format} file; write a NIfTI mask (.nii.gz) instead"
        )
    try:
        import highdicom as hd
        from pydicom.sr.codedict import codes
    except ImportError:
        raise SegWriteError(
            "DICOM SEG output needs highdicom and pydicom: pip install 'iphbench[dicom]'"
        ) from None
    if tuple(np.shape(mask)) != like.shape:
        raise SegWriteError(f"mask shape {np.shape(mask)} differs from the scan's {like.shape}")
    frames = acquired_mask(mask, like).astype(bool).transpose(2, 1, 0)  # (slice, row j, column i)
    headers = series_headers(like.source.path, str(like.source.meta.get("series_uid") or "") or None)
    if len(headers) != frames.shape[0] or (headers[0].Rows, headers[0].Columns) != frames.shape[1:]:
        raise SegWriteError(
            f"DICOM folder {like.source.path} now holds {len(headers)} slices of "
            f"{headers[0].Rows}x{headers[0].Columns} but the scan was read as {frames.shape[0]} of "
            f"{frames.shape[1]}x{frames.shape[2]}; read it again"
        )
    for ds in headers:
        for key in _TYPE2:
            if key not in ds:
                setattr(ds, key, "")
    params = {str(k): str(v) for k, v in (algorithm or {}).items()}
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=SEGMENT_LABEL,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Hemorrhage,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="iphbench",
            family=codes.cid7162.ArtificialIntelligence,
            version=__version__,
            parameters=params or None,
        ),
        anatomic_regions=[codes.SCT.Brain],
    )
    seg = hd.seg.Segmentation(
        source_images=headers,
        pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=hd.UID(),
        series_number=SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="iphbench",
        manufacturer_model_name="iphbench",
        software_versions=__version__,
        device_serial_number="none",
        series_description=series_description,
        content_label="IPH",
        content_description="intraparenchymal hemorrhage predicted by iphbench",
        omit_empty_frames=bool(frames.any()),  # a SEG needs at least one frame: keep all when empty
    )
    with atomic_path(path, suffix=".dcm") as tmp:
        seg.save_as(tmp, enforce_file_format=True)
    logger.debug("wrote DICOM SEG %s for series %s", path, like.source.meta.get("series_uid"))
    return Path(path)
