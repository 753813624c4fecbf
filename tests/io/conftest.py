"""Fixtures private to the io tests: small synthetic scans written in every format, DICOM included."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

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
        ds.save_as(folder / f"slice{k:03d}.dcm", enforce_file_format=True)
    return folder


@pytest.fixture
def dicom_writer() -> Callable[..., Path]:
    return write_dicom_series


@pytest.fixture
def ct_array() -> np.ndarray:
    """A small HU volume with distinct values along every axis (so flips and swaps are visible)."""
    rng = np.random.default_rng(0)
    arr = rng.integers(-1000, 1500, size=(7, 8, 5)).astype(np.float32)
    arr[0, 0, 0] = 1800.0
    return arr


@pytest.fixture
def nifti_writer() -> Callable[..., Path]:
    def write(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
        img = nib.Nifti1Image(array, affine)
        img.set_qform(affine, code=1)
        img.set_sform(affine, code=1)
        nib.save(img, str(path))
        return path

    return write


def _head_ct(shape=(8, 8, 6)) -> np.ndarray:
    """A tiny head-like HU volume: air outside, bone shell, brain inside."""
    arr = np.full(shape, -1000.0, np.float32)
    arr[1:-1, 1:-1, 1:-1] = 1200.0
    arr[2:-2, 2:-2, 2:-2] = 35.0
    return arr


SPACING = np.diag([0.5, 0.5, 5.0, 1.0])  # 1.25 mm³ voxels


@pytest.fixture
def cohort_dir(tmp_path: Path) -> Callable[..., Path]:
    """Build a cohort folder: ``build(rows)`` with rows of (subject, site, age, sex, image_array, mask_array)."""

    def build(rows: list[tuple], name: str = "cohort.csv", affine: np.ndarray = SPACING) -> Path:
        lines = ["subject,site,age,sex,image,mask,scanner"]
        for subject, site, age, sex, image, mask in rows:
            img_rel = mask_rel = ""
            if isinstance(image, np.ndarray):
                img_rel = f"images/{subject}.nii.gz"
                (tmp_path / "images").mkdir(exist_ok=True)
                nib.save(nib.Nifti1Image(image, affine), str(tmp_path / img_rel))
            elif isinstance(image, str):
                img_rel = image
            if isinstance(mask, tuple):  # (array, affine)
                mask_rel = f"masks/{subject}.nii.gz"
                (tmp_path / "masks").mkdir(exist_ok=True)
                nib.save(nib.Nifti1Image(mask[0], mask[1]), str(tmp_path / mask_rel))
            elif isinstance(mask, np.ndarray):
                mask_rel = f"masks/{subject}.nii.gz"
                (tmp_path / "masks").mkdir(exist_ok=True)
                nib.save(nib.Nifti1Image(mask, affine), str(tmp_path / mask_rel))
            elif isinstance(mask, str):
                mask_rel = mask
            lines.append(f"{subject},{site},{age},{sex},{img_rel},{mask_rel},X{subject}")
        (tmp_path / name).write_text("\n".join(lines) + "\n")
        return tmp_path / name

    return build


def _cube_mask(shape=(8, 8, 6), value: int = 1) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    mask[3:5, 3:5, 2:4] = value  # 8 voxels = 0.01 mL at 1.25 mm³
    return mask


@pytest.fixture
def head_ct() -> Callable[..., np.ndarray]:
    """``head_ct(shape=(8, 8, 6))``: a tiny head-like HU volume (air, bone shell, brain)."""
    return _head_ct


@pytest.fixture
def cube_mask() -> Callable[..., np.ndarray]:
    """``cube_mask(shape=(8, 8, 6), value=1)``: 8 lesion voxels (0.01 mL on the default 1.25 mm³ grid)."""
    return _cube_mask
