"""Fixtures private to the io tests: small synthetic scans written in every format, DICOM included."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from _dicom import write_dicom_series


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
