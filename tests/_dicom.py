"""A CT DICOM series writer shared by the tests (io, robustness) and bench/io_formats.py (pydicom)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

LPS = np.diag([-1.0, -1.0, 1.0])


def write_dicom_series(
    folder: Path,
    hu: np.ndarray,
    affine: np.ndarray,
    slope: float = 1.0,
    intercept: float = -1024.0,
    series_uid: str | None = None,
    skip: tuple[int, ...] = (),
) -> Path:
    """Write ``hu`` (i, j, k order, on the RAS ``affine``) as a CT DICOM series, one file per k-slice.

    Stored values are ``round((hu - intercept) / slope)`` as int16, with RescaleSlope/Intercept set,
    so a reader that ignores the rescale sees numbers far from HU.
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    linear = LPS @ affine[:3, :3]
    spacing = np.sqrt((linear**2).sum(axis=0))
    direction = linear / spacing
    origin = LPS @ affine[:3, 3]
    raw = np.round((hu - intercept) / slope).astype(np.int16)
    series_uid = series_uid or generate_uid()
    study_uid, frame_uid = generate_uid(), generate_uid()
    for k in range(hu.shape[2]):
        if k in skip:
            continue
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.Modality = "CT"
        ds.PatientID = "synthetic"
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [f"{v:.6f}" for v in origin + k * spacing[2] * direction[:, 2]]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*direction[:, 0], *direction[:, 1])]
        ds.PixelSpacing = [
            f"{spacing[1]:.6f}",
            f"{spacing[0]:.6f}",
        ]  # row spacing (along j), column spacing (i)
        ds.SliceThickness = f"{spacing[2]:.6f}"
        ds.Rows, ds.Columns = hu.shape[1], hu.shape[0]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope:g}", f"{intercept:g}"
        ds.PixelData = np.ascontiguousarray(raw[:, :, k].T).tobytes()
        # series-unique names (two series can share a folder) that never start with a dot
        ds.save_as(folder / f"s{series_uid.replace('.', '')[-6:]}_{k:03d}.dcm", enforce_file_format=True)
    return folder
