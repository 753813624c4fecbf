"""read_mask / binarize_mask / write_mask_like: mask rules and grid checks."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from iphbench.io import MaskError, binarize_mask, read_mask, read_volume, write_mask_like


def _save(path: Path, arr: np.ndarray, affine: np.ndarray | None = None) -> Path:
    nib.save(nib.Nifti1Image(arr, np.diag([0.5, 0.5, 5.0, 1.0]) if affine is None else affine), str(path))
    return path


@pytest.fixture
def image(tmp_path: Path):
    return read_volume(_save(tmp_path / "ct.nii.gz", np.full((6, 5, 4), 30.0, np.float32)))


@pytest.mark.parametrize("fg", [1, 255])
def test_binary_masks_accepted(tmp_path: Path, image, fg: int) -> None:
    arr = np.zeros((6, 5, 4), np.uint8)
    arr[1:3, 1:3, 1] = fg
    mask = read_mask(_save(tmp_path / f"m{fg}.nii.gz", arr), like=image)
    assert mask.array.dtype == np.uint8
    assert set(np.unique(mask.array).tolist()) == {0, 1}
    assert int(mask.array.sum()) == 4


def test_label_map_needs_labels(tmp_path: Path, image) -> None:
    arr = np.zeros((6, 5, 4), np.int16)
    arr[0, 0, 0], arr[1, 1, 1], arr[2, 2, 2] = 1, 2, 3
    path = _save(tmp_path / "labels.nii.gz", arr)
    with pytest.raises(MaskError, match=r"not binary.*\{0, 1, 2, 3\}.*--mask-labels") as err:
        read_mask(path)
    assert "labels.nii.gz" in str(err.value)
    mask = read_mask(path, labels=[1, 3], like=image)
    assert int(mask.array.sum()) == 2 and mask.array[1, 1, 1] == 0


def test_fractional_values_refused() -> None:
    with pytest.raises(MaskError, match="non-integer"):
        binarize_mask(np.array([0.0, 0.5, 1.0]).reshape(1, 1, 3), name="p.nii.gz")
    assert binarize_mask(np.zeros((2, 2, 2))).sum() == 0  # an empty mask is fine (no hemorrhage)


def test_grid_mismatch_names_both_files(tmp_path: Path, image) -> None:
    with pytest.raises(
        MaskError, match=r"mask .*small.nii.gz has shape \(6, 5, 3\) but image .*ct.nii.gz"
    ) as err:
        read_mask(_save(tmp_path / "small.nii.gz", np.zeros((6, 5, 3), np.uint8)), like=image)
    assert "ct.nii.gz" in str(err.value)
    shifted = np.diag([0.5, 0.5, 5.0, 1.0])
    shifted[0, 3] = 0.01  # 10 µm off: outside the 1e-3 mm tolerance
    with pytest.raises(MaskError, match=r"shift.nii.gz and image .*ct.nii.gz have different affines"):
        read_mask(_save(tmp_path / "shift.nii.gz", np.zeros((6, 5, 4), np.uint8), shifted), like=image)
    shifted[0, 3] = 1e-4  # within tolerance
    read_mask(_save(tmp_path / "ok.nii.gz", np.zeros((6, 5, 4), np.uint8), shifted), like=image)


def test_write_refuses_bad_input(tmp_path: Path, image) -> None:
    with pytest.raises(ValueError, match="shape"):
        write_mask_like(np.zeros((2, 2, 2), np.uint8), image, tmp_path / "m.nii.gz")
    with pytest.raises(ValueError, match="threshold"):
        write_mask_like(np.full(image.shape, 0.4), image, tmp_path / "m.nii.gz")
    with pytest.raises(ValueError, match="unsupported suffix"):
        write_mask_like(np.zeros(image.shape, np.uint8), image, tmp_path / "m.png")
    with pytest.raises(ValueError, match=r"\.mha"):
        write_mask_like(np.zeros(image.shape, np.uint8), image, tmp_path / "m.mhd")
    assert not list(tmp_path.glob("m.*"))


def test_sheared_grid_cannot_go_to_itk(tmp_path: Path) -> None:
    sheared = np.array([[1.0, 0.3, 0, 0], [0, 1.0, 0, 0], [0, 0, 2.0, 0], [0, 0, 0, 1]])
    vol = read_volume(_save(tmp_path / "shear.nii.gz", np.zeros((3, 3, 3), np.float32), sheared))
    with pytest.raises(ValueError, match=r"shear.*\.nii\.gz"):
        write_mask_like(np.zeros(vol.shape, np.uint8), vol, tmp_path / "m.nrrd")
    back = read_mask(write_mask_like(np.ones(vol.shape, np.uint8), vol, tmp_path / "m.nii.gz"), like=vol)
    assert back.array.all()
