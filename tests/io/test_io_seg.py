"""``write_dicom_seg`` edge cases (the full read-back against the NIfTI mask is in tests/cli/test_predict_dicom.py)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from _dicom import write_dicom_series
from iphbench.io import SegWriteError, read_volume, write_dicom_seg

hd = pytest.importorskip("highdicom")


@pytest.fixture
def series(tmp_path: Path) -> Path:
    hu = np.random.default_rng(0).integers(-1000, 100, (6, 5, 4)).astype(np.float32)
    return write_dicom_series(tmp_path / "series", hu, np.diag([0.5, 0.5, 2.0, 1.0]))


def test_an_empty_prediction_still_gives_a_valid_seg(series: Path, tmp_path: Path) -> None:
    vol = read_volume(series)
    write_dicom_seg(np.zeros(vol.shape, np.uint8), vol, tmp_path / "empty.dcm")
    seg = hd.seg.segread(tmp_path / "empty.dcm")
    assert seg.NumberOfFrames == 4  # a SEG needs frames: every slice, all zero
    assert not np.asarray(seg.pixel_array).any()


def test_refusals_name_the_problem(series: Path, tmp_path: Path) -> None:
    nifti = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), str(nifti))
    ct = read_volume(nifti)
    with pytest.raises(SegWriteError, match=r"references the source DICOM series.*write a NIfTI"):
        write_dicom_seg(np.zeros(ct.shape, np.uint8), ct, tmp_path / "x.dcm")
    vol = read_volume(series)
    with pytest.raises(SegWriteError, match="mask shape"):
        write_dicom_seg(np.zeros((2, 2, 2), np.uint8), vol, tmp_path / "x.dcm")
    sorted(series.iterdir())[0].unlink()  # the folder changed after reading
    with pytest.raises(SegWriteError, match=r"now holds 3 slices.*read it again"):
        write_dicom_seg(np.zeros(vol.shape, np.uint8), vol, tmp_path / "x.dcm")
    assert not (tmp_path / "x.dcm").exists()
