"""Helpers shared by the robustness tests: bad files, DICOM series, a tiny study YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

ODD_ROOT = "Ünïcødé data/säo paulo 1"  # spaces and non-ASCII letters in every path: these must work
LESION_FREE, ONE_VOXEL = "synth006", "synth005"  # in the odd cohort: no hemorrhage; a one-voxel lesion
BAD = "synth001"  # the subject whose files each bad-input case replaces


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return str(path)


def write_dicom_series(
    folder: Path, hu: np.ndarray, spacing: tuple[float, float, float], skip: tuple[int, ...] = ()
) -> Path:
    """``hu`` (i, j, k) as an axial CT series (one file per k); ``skip`` leaves slices out."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    raw = np.round(hu + 1024).astype(np.int16)
    series, study, frame = generate_uid(), generate_uid(), generate_uid()
    for k in range(hu.shape[2]):
        if k in skip:
            continue
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.PatientID, ds.InstanceNumber = "CT", "synthetic", k + 1
        ds.ImagePositionPatient = ["0", "0", f"{k * spacing[2]:.4f}"]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.PixelSpacing = [f"{spacing[1]:.4f}", f"{spacing[0]:.4f}"]
        ds.SliceThickness = f"{spacing[2]:.4f}"
        ds.Rows, ds.Columns = hu.shape[1], hu.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = "1", "-1024"
        ds.PixelData = np.ascontiguousarray(raw[:, :, k].T).tobytes()
        ds.save_as(folder / f"{series[-6:]}_{k:03d}.dcm", enforce_file_format=True)
    return folder


def tiny_study(folder: Path, cohort: Path, **over: Any) -> Path:
    """A tiny study YAML: one style, given views, width 4, 1 epoch, 2 folds, CPU."""
    import yaml

    cfg: dict = {
        "cohort": str(cohort),
        "out": str(folder / "study"),
        "views": ["2DAxi"],
        "prep": {"patch_size": 32},
        "models": {"names": ["unet"], "width": 4},
        "folds": {"k": 2, "seed": 0},
        "train": {"epochs": 1, "batch_size": 16, "early_stopping_patience": 0, "device": "cpu"},
        "eval": {"protocols": ["paper", "full"], "threshold": 0.4},
    }
    for key, value in over.items():
        if isinstance(value, dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path
