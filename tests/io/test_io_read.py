"""read_volume: every format, canonical RAS+ orientation, DICOM series, clear errors."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st

from iphbench.io import VolumeReadError, read_mask, read_volume, write_mask_like
from iphbench.io._sitk import itk_affine, itk_array, to_itk


def oblique_affine(angle: float = 0.3, spacing=(0.5, 0.6, 5.0), origin=(10.0, -20.0, 30.0)) -> np.ndarray:
    """A RAS affine rotated by ``angle`` about z, with ``spacing`` and ``origin``."""
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


FLIPPED = np.array(
    [[-0.8, 0, 0, 40.0], [0, 0, 2.5, -10.0], [0, -0.9, 0, 25.0], [0, 0, 0, 1]]
)  # LSP-like, flips + swap
AFFINES = {
    "plain": np.diag([0.5, 0.6, 5.0, 1.0]),
    "flipped": FLIPPED,
    "oblique": oblique_affine(0.3),
    "oblique_flipped": oblique_affine(2.6) @ np.diag([1.0, -1.0, 1.0, 1.0]),
}


def _write(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
    if path.name.endswith((".nii", ".nii.gz")):
        img = nib.Nifti1Image(array, affine)
        img.set_sform(affine, code=1)
        img.set_qform(affine, code=1)
        nib.save(img, str(path))
    else:
        sitk.WriteImage(to_itk(array, affine), str(path))
    return path


def _dominant_axes(affine: np.ndarray) -> list[tuple[int, bool]]:
    lin = affine[:3, :3]
    return [
        (int(np.argmax(np.abs(lin[:, j]))), bool(lin[np.argmax(np.abs(lin[:, j])), j] > 0)) for j in range(3)
    ]


@pytest.mark.parametrize("kind", list(AFFINES))
def test_canonical_axes_land_on_ras(tmp_path: Path, ct_array: np.ndarray, kind: str) -> None:
    vol = read_volume(_write(tmp_path / "ct.nii.gz", ct_array, AFFINES[kind]))
    # canonical axis j points mostly along world axis j (R, A, S), in the positive direction
    assert _dominant_axes(vol.affine) == [(0, True), (1, True), (2, True)]
    # the same world point holds the same value before and after reorientation
    ijk = np.array([1, 2, 3, 1.0])
    world = AFFINES[kind] @ ijk
    canon_ijk = np.round(np.linalg.solve(vol.affine, world)).astype(int)
    assert vol.array[tuple(canon_ijk[:3])] == ct_array[1, 2, 3]
    assert vol.array.dtype == np.float32


@pytest.mark.parametrize("src_suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
@pytest.mark.parametrize("kind", ["flipped", "oblique_flipped"])
def test_formats_read_identically(tmp_path: Path, ct_array: np.ndarray, src_suffix: str, kind: str) -> None:
    ref = read_volume(_write(tmp_path / "ref.nii.gz", ct_array, AFFINES[kind]))
    vol = read_volume(_write(tmp_path / f"ct{src_suffix}", ct_array.astype(np.int16), AFFINES[kind]))
    np.testing.assert_array_equal(vol.array, ref.array)
    np.testing.assert_allclose(vol.affine, ref.affine, atol=1e-4)
    assert (
        vol.source.format == {".nii.gz": "nifti", ".nii": "nifti", ".nrrd": "nrrd", ".mha": "mha"}[src_suffix]
    )


def test_itk_lps_conversion_matches_nibabel(tmp_path: Path, ct_array: np.ndarray) -> None:
    """ITK reads NIfTI itself (RAS → LPS internally): our LPS → RAS must give nibabel's affine back."""
    path = _write(tmp_path / "ct.nii.gz", ct_array, AFFINES["oblique_flipped"])
    image = sitk.ReadImage(str(path))
    np.testing.assert_allclose(itk_affine(image), AFFINES["oblique_flipped"], atol=1e-5)
    np.testing.assert_array_equal(itk_array(image), ct_array)


@pytest.mark.parametrize("src_suffix", [".nii.gz", ".nrrd", ".mha"])
@pytest.mark.parametrize("out_suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
@pytest.mark.parametrize("kind", ["plain", "flipped", "oblique_flipped"])
def test_mask_round_trip(
    tmp_path: Path, ct_array: np.ndarray, src_suffix: str, out_suffix: str, kind: str
) -> None:
    src = _write(tmp_path / f"ct{src_suffix}", ct_array.astype(np.int16), AFFINES[kind])
    vol = read_volume(src)
    mask = (vol.array > 500).astype(np.uint8)
    out = write_mask_like(mask, vol, tmp_path / f"mask{out_suffix}")
    back = read_mask(out, like=vol)
    np.testing.assert_array_equal(back.array, mask)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-4)
    assert back.source.shape == vol.source.shape  # the file's own voxel order was kept
    raw = read_volume(out, dtype=np.uint8)
    np.testing.assert_array_equal(vol.to_source(raw.array), vol.to_source(mask))
    assert not list(tmp_path.glob(".*tmp*")), "atomic write left a temporary file"


def test_dicom_series_rescale_and_orientation(tmp_path: Path, dicom_writer, nifti_writer) -> None:
    rng = np.random.default_rng(1)
    hu = (rng.integers(-2000, 6000, size=(6, 5, 4)) / 2.0).astype(np.float32)  # multiples of 0.5 HU
    affine = AFFINES["oblique_flipped"].copy()
    affine[:3, 2] = (
        np.cross(affine[:3, 0], affine[:3, 1]) / np.linalg.norm(affine[:3, :2], axis=0).prod() * 3.0
    )
    folder = dicom_writer(tmp_path / "series", hu, affine, slope=0.5, intercept=-1024.0)
    # scramble the file names so that only the slice positions give the order
    files = sorted(folder.iterdir())
    for i, f in enumerate(files):
        f.rename(folder / f"x{(i * 7) % len(files)}_{f.name}")
    vol = read_volume(folder)
    ref = read_volume(nifti_writer(tmp_path / "ref.nii.gz", hu, affine))
    np.testing.assert_array_equal(vol.array, ref.array)  # slope 0.5 / intercept -1024 applied
    np.testing.assert_allclose(vol.affine, ref.affine, atol=1e-3)
    assert vol.source.format == "dicom" and vol.source.meta["n_slices"] == 4
    mask = (vol.array > 0).astype(np.uint8)
    back = read_mask(write_mask_like(mask, vol, tmp_path / "pred.nii.gz"), like=vol)
    np.testing.assert_array_equal(back.array, mask)


def test_dicom_missing_slice_is_an_error(tmp_path: Path, dicom_writer) -> None:
    hu = np.zeros((4, 4, 6), np.float32)
    folder = dicom_writer(tmp_path / "gap", hu, np.diag([0.5, 0.5, 2.0, 1.0]), skip=(3,))
    with pytest.raises(VolumeReadError, match=r"uneven slice spacing.*missing") as err:
        read_volume(folder)
    assert str(folder) in str(err.value)


def test_dicom_two_series_is_an_error(tmp_path: Path, dicom_writer) -> None:
    hu = np.zeros((4, 4, 3), np.float32)
    dicom_writer(tmp_path / "two", hu, np.diag([0.5, 0.5, 2.0, 1.0]))
    aff2 = np.diag([0.5, 0.5, 2.0, 1.0])
    aff2[2, 3] = 100.0
    for f in dicom_writer(tmp_path / "other", hu, aff2).iterdir():
        f.rename(tmp_path / "two" / f"b_{f.name}")
    with pytest.raises(VolumeReadError, match=r"holds 2 series.*own folder") as err:
        read_volume(tmp_path / "two")
    assert str(tmp_path / "two") in str(err.value)


def test_empty_folder_and_single_file(tmp_path: Path, dicom_writer) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(VolumeReadError, match="no DICOM series"):
        read_volume(tmp_path / "empty")
    folder = dicom_writer(tmp_path / "s", np.zeros((4, 4, 3), np.float32), np.eye(4))
    with pytest.raises(VolumeReadError, match="single DICOM file"):
        read_volume(next(folder.iterdir()))


@pytest.mark.parametrize("suffix", [".nii.gz", ".mha"])
def test_bad_shapes_and_values(tmp_path: Path, suffix: str) -> None:
    def write(name: str, arr: np.ndarray) -> Path:
        path = tmp_path / f"{name}{suffix}"
        if suffix == ".mha":
            sitk.WriteImage(sitk.GetImageFromArray(arr.T.copy(), isVector=False), str(path))
        else:
            nib.save(nib.Nifti1Image(arr, np.eye(4)), str(path))
        return path

    with pytest.raises(VolumeReadError, match=r"2D image"):
        read_volume(write("flat", np.zeros((5, 6), np.float32)))
    with pytest.raises(VolumeReadError, match=r"holds 3 volumes"):
        read_volume(write("multi", np.zeros((4, 5, 6, 3), np.float32)))
    assert read_volume(write("one", np.zeros((4, 5, 6, 1), np.float32))).shape == (4, 5, 6)
    nan = np.zeros((4, 5, 6), np.float32)
    nan[1, 1, 1], nan[2, 2, 2] = np.nan, np.inf
    with pytest.raises(VolumeReadError, match=r"1 NaN and 1 infinite") as err:
        read_volume(write("nan", nan))
    assert "nan" in str(err.value)


def test_missing_unsupported_and_corrupt(tmp_path: Path) -> None:
    with pytest.raises(VolumeReadError, match="file not found"):
        read_volume(tmp_path / "nope.nii.gz")
    (tmp_path / "scan.png").write_bytes(b"x")
    with pytest.raises(VolumeReadError, match="unsupported format"):
        read_volume(tmp_path / "scan.png")
    for name in ("bad.nii.gz", "bad.nrrd", "bad.mha"):
        (tmp_path / name).write_bytes(b"not an image at all")
        with pytest.raises(VolumeReadError, match=r"cannot read .*bad"):
            read_volume(tmp_path / name)


def test_dicom_duplicates(tmp_path: Path, dicom_writer) -> None:
    hu = np.zeros((4, 4, 4), np.float32)
    uid = "1.2.826.0.1.3680043.8.498.1"
    folder = dicom_writer(tmp_path / "dup", hu, np.diag([0.5, 0.5, 2.0, 1.0]), series_uid=uid)
    for f in dicom_writer(tmp_path / "copy", hu, np.diag([0.5, 0.5, 2.0, 1.0]), series_uid=uid).iterdir():
        f.rename(folder / f"copy_{f.name}")
    with pytest.raises(VolumeReadError, match="share a position"):
        read_volume(folder)


@settings(max_examples=20, deadline=None)
@given(
    perm=st.permutations([0, 1, 2]),
    flips=st.tuples(st.booleans(), st.booleans(), st.booleans()),
    angle=st.floats(-0.6, 0.6),
    suffix=st.sampled_from([".nii.gz", ".nrrd", ".mha"]),
)
def test_round_trip_any_orientation(perm, flips, angle, suffix) -> None:
    """Any axis order, flips and obliquity: canonical axes are RAS+ and masks go back exactly."""
    import tempfile

    base = oblique_affine(angle, spacing=(0.7, 0.9, 3.0))
    affine = base.copy()
    affine[:3, :3] = base[:3, perm]
    for j, flip in enumerate(flips):
        if flip:
            affine[:3, j] *= -1
    arr = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    with tempfile.TemporaryDirectory() as tmp:
        vol = read_volume(_write(Path(tmp) / f"ct{suffix}", arr, affine))
        assert _dominant_axes(vol.affine) == [(0, True), (1, True), (2, True)]
        np.testing.assert_array_equal(vol.to_source(vol.array), arr)  # back to the file's own order
        mask = (vol.array % 3 == 0).astype(np.uint8)
        back = read_mask(write_mask_like(mask, vol, Path(tmp) / f"m{suffix}"), like=vol)
        np.testing.assert_array_equal(back.array, mask)
