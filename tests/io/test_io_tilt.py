"""Gantry-tilted DICOM series: read onto a regular grid (shear correction), masks mapped back to the acquired slices."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from _dicom import write_dicom_series
from iphbench.io import read_volume
from iphbench.io._tilt import TiltGrid, to_acquired

CENTRE = np.array([2.0, 3.0, 0.0])  # world (RAS, mm) centre of the phantom's blob


def tilted_affine(shift_mm: tuple[float, float] = (0.0, 0.9)) -> np.ndarray:
    """An axial grid whose slice k starts ``k * shift_mm`` (RAS x, y) from slice 0: a tilted gantry."""
    affine = np.array([[0.8, 0, 0, -16.0], [0, 0.8, 0, -14.0], [0, 0, 3.0, -18.0], [0, 0, 0, 1.0]])
    affine[0, 2], affine[1, 2] = shift_mm
    return affine


def phantom(affine: np.ndarray, shape: tuple[int, int, int] = (40, 36, 12)) -> tuple[np.ndarray, np.ndarray]:
    """HU and a blob mask (radius 8 mm around CENTRE, in world coordinates) on the voxel grid of ``affine``."""
    ijk = np.indices(shape).reshape(3, -1)
    world = (affine[:3, :3] @ ijk + affine[:3, 3:4]).T
    r = np.linalg.norm(world - CENTRE, axis=1).reshape(shape)
    hu = np.where(r < 8, 60.0, np.where(r < 14, 30.0, -1000.0)).astype(np.float32)
    return hu, (r < 8).astype(np.uint8)


def world_of(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    ijk = np.indices(shape).reshape(3, -1)
    return (affine[:3, :3] @ ijk + affine[:3, 3:4]).T


@pytest.mark.parametrize("shift_mm", [(0.0, 0.9), (-0.7, 0.4)], ids=["y", "x and y"])
def test_tilted_series_is_resampled_onto_a_regular_grid(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, shift_mm: tuple[float, float]
) -> None:
    affine = tilted_affine(shift_mm)
    hu, blob = phantom(affine)
    with caplog.at_level(logging.WARNING):
        vol = read_volume(write_dicom_series(tmp_path / "tilt", hu, affine))
    angle = np.degrees(np.arctan(np.hypot(*shift_mm) / 3.0))
    assert f"gantry tilt of {angle:.1f} degrees" in caplog.text and "regular grid" in caplog.text
    lin = vol.affine[:3, :3]
    np.testing.assert_allclose(lin.T @ lin, np.diag([0.64, 0.64, 9.0]), atol=1e-6)  # orthogonal, no shear
    grid = TiltGrid.from_meta(vol.source.meta["gantry_tilt"])  # type: ignore[arg-type]
    assert grid.angle_deg == pytest.approx(angle, abs=1e-3)
    assert grid.acquired_shape == hu.shape and vol.shape == grid.shape
    assert vol.shape[0] >= hu.shape[0] and vol.shape[1] > hu.shape[1]  # widened: nothing acquired is lost
    # the blob is where it was in the patient: same world centre and volume
    world = world_of(vol.affine, vol.shape)
    bright = vol.array.reshape(-1) > 45
    np.testing.assert_allclose(world[bright].mean(axis=0), CENTRE, atol=0.4)
    assert bright.sum() == pytest.approx(blob.sum(), rel=0.08)
    # without correction (the old reader's grid) the blob would sit several mm away
    untilted = affine.copy()
    untilted[:2, 2] = 0.0
    acquired_as_if_straight = world_of(untilted, hu.shape)[blob.reshape(-1) > 0].mean(axis=0)
    assert np.linalg.norm(acquired_as_if_straight - CENTRE) > 2.0


def test_a_mask_on_the_regular_grid_goes_back_onto_the_acquired_slices(tmp_path: Path) -> None:
    affine = tilted_affine((-0.7, 0.4))
    hu, blob = phantom(affine)
    vol = read_volume(write_dicom_series(tmp_path / "tilt", hu, affine))
    grid = TiltGrid.from_meta(vol.source.meta["gantry_tilt"])  # type: ignore[arg-type]
    predicted = (vol.array > 45).astype(np.uint8)  # a "prediction" on the canonical regular grid
    back = to_acquired(vol.to_source(predicted), grid)
    assert back.shape == blob.shape
    agree = np.count_nonzero(back & blob) * 2 / (np.count_nonzero(back) + np.count_nonzero(blob))
    assert agree > 0.95  # the same voxels, up to interpolation at the blob's border
    with pytest.raises(ValueError, match="regular grid"):
        to_acquired(np.zeros(hu.shape, np.uint8), grid)


def test_straight_series_are_not_resampled(tmp_path: Path) -> None:
    affine = tilted_affine((0.0, 0.0))
    hu, _ = phantom(affine)
    vol = read_volume(write_dicom_series(tmp_path / "straight", hu, affine))
    assert "gantry_tilt" not in vol.source.meta
    np.testing.assert_allclose(vol.affine, affine, atol=1e-5)
    np.testing.assert_array_equal(vol.array, hu)


def test_validate_lists_the_tilt_as_a_warning(tmp_path: Path) -> None:
    from iphbench.io import load_cohort, validate_cohort

    affine = tilted_affine((0.0, 0.9))
    hu, _ = phantom(affine)
    write_dicom_series(tmp_path / "tilt", hu, affine)
    (tmp_path / "cohort.csv").write_text("subject,site,age,sex,image,mask\nt1,A,70,F,tilt,\n")
    report = validate_cohort(load_cohort(tmp_path / "cohort.csv"))
    assert report.ok  # usable
    assert [(i.subject, i.severity) for i in report.issues] == [("t1", "warning")]
    assert "gantry tilt of 16.7 degrees" in report.issues[0].message
