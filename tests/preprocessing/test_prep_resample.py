"""Optional resampling on the centre-aligned grid and its inverse mapping."""

from __future__ import annotations

import numpy as np
import pytest

from iphbench.preprocessing.resample import resample_array, resample_mask, resampled_affine, resampled_shape


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return 2.0 * (a & b).sum() / (a.sum() + b.sum())


def _sphere(
    shape: tuple[int, int, int], spacing: tuple[float, float, float], centre_mm, radius_mm: float
) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing, strict=True)], indexing="ij")
    return (sum((g - c) ** 2 for g, c in zip(grids, centre_mm, strict=True)) <= radius_mm**2).astype(np.uint8)


def test_grid_keeps_world_positions() -> None:
    shape, spacing, target = (100, 90, 30), (0.45, 0.45, 5.0), (1.0, 1.0, 1.0)
    new_shape = resampled_shape(shape, spacing, target)
    assert new_shape == (45, 41, 146)  # every new centre inside the old grid
    affine = np.diag([-0.45, 0.45, 5.0, 1.0])
    affine[:3, 3] = [10.0, -20.0, 30.0]
    new_affine = resampled_affine(affine, spacing, target)
    # the first voxel centre is the same point; voxel (2, 0, 5) of the new grid is 2 mm / 5 mm away
    np.testing.assert_allclose(new_affine @ [0, 0, 0, 1], affine @ [0, 0, 0, 1])
    np.testing.assert_allclose(new_affine @ [2, 0, 5, 1], affine @ [2 / 0.45, 0, 1.0, 1])


def test_linear_ramp_is_reproduced_exactly() -> None:
    spacing, target = (0.5, 1.0, 3.0), (1.25, 0.75, 1.0)
    idx = np.meshgrid(*[np.arange(n) for n in (20, 16, 8)], indexing="ij")
    world = [i * s for i, s in zip(idx, spacing, strict=True)]
    ramp = (2.0 * world[0] - world[1] + 0.5 * world[2]).astype(np.float32)
    out = resample_array(ramp, spacing, target, order=1)
    nidx = np.meshgrid(*[np.arange(n) for n in out.shape], indexing="ij")
    nworld = [i * t for i, t in zip(nidx, target, strict=True)]
    np.testing.assert_allclose(out, 2.0 * nworld[0] - nworld[1] + 0.5 * nworld[2], atol=1e-4)


@pytest.mark.parametrize(
    ("spacing", "target"), [((0.45, 0.45, 5.0), (1.0, 1.0, 1.0)), ((1.0, 1.0, 1.0), (0.6, 0.8, 2.5))]
)
def test_mask_forward_and_back_keeps_a_sphere(spacing, target) -> None:
    shape = tuple(round(80 / s) for s in spacing)
    sphere = _sphere(shape, spacing, (40.0, 38.0, 41.0), 15.0)
    fwd = resample_mask(sphere, spacing, target)
    truth = _sphere(fwd.shape, target, (40.0, 38.0, 41.0), 15.0)
    assert _dice(fwd, truth) > 0.9  # bounded by the staircase of the coarser source grid
    back = resample_mask(fwd, target, spacing, shape=shape)
    assert back.shape == sphere.shape
    assert _dice(back, sphere) > 0.95
    # not shifted: the centroid in mm moves by less than half the coarser voxel
    c0 = np.argwhere(sphere).mean(0) * spacing
    c1 = np.argwhere(back).mean(0) * spacing
    assert np.abs(c0 - c1).max() < 0.5 * max(max(spacing), max(target))
    # not thinned: the volume stays within 5 %
    assert abs(back.sum() - sphere.sum()) / sphere.sum() < 0.05


def test_nearest_inverse_on_integer_ratio_is_exact() -> None:
    a = np.random.default_rng(0).integers(0, 5, size=(6, 5, 4)).astype(np.uint8)
    fine = resample_array(a, (1.0, 1.0, 1.0), (0.5, 0.5, 0.5), order=0)
    assert fine.shape == (11, 9, 7)
    back = resample_array(fine, (0.5, 0.5, 0.5), (1.0, 1.0, 1.0), order=0, shape=a.shape)
    assert np.array_equal(back, a)


def test_bad_spacing_raises() -> None:
    with pytest.raises(ValueError, match="positive"):
        resampled_shape((4, 4, 4), (1.0, 1.0, 1.0), (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="three values"):
        resampled_shape((4, 4, 4), (1.0, 1.0), (1.0, 1.0, 1.0))
