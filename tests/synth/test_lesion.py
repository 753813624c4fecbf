"""Hemorrhages: exact volumes, inside parenchyma, mask = the high-HU region, oedema rim."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from iphbench.synth import SyntheticScan, Tissue, draw_head, render_head
from iphbench.synth._field import Grid
from iphbench.synth.lesion import draw_lesion, paint_lesion
from iphbench.synth.phantom import INTRACRANIAL, PARENCHYMA

OUTSIDE_BRAIN = [int(t) for t in (Tissue.AIR, Tissue.SOFT, Tissue.FAT, Tissue.BONE, Tissue.DIPLOE)]


@pytest.fixture(scope="module")
def head_labels() -> tuple[np.ndarray, Grid]:
    grid = Grid(shape=(120, 120, 56), spacing=(1.8, 1.8, 3.0), origin=(-107.1, -107.1, -95.0))
    return render_head(draw_head(np.random.default_rng(8), age=78), grid), grid


def test_mask_is_exactly_the_intracranial_high_hu_region(lesion_scan: SyntheticScan) -> None:
    inside = np.isin(lesion_scan.labels, [int(t) for t in INTRACRANIAL])
    high = inside & (lesion_scan.hu_clean >= 44.0)
    assert lesion_scan.mask.sum() > 0
    np.testing.assert_array_equal(high, lesion_scan.mask > 0)


@pytest.mark.parametrize("volume_ml", [0.5, 8.0, 120.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_rendered_volume_matches_target_and_stays_in_parenchyma(
    head_labels: tuple[np.ndarray, Grid], volume_ml: float, seed: int
) -> None:
    before, grid = head_labels
    labels = before.copy()
    mask = paint_lesion(labels, grid, draw_lesion(np.random.default_rng(seed), volume_ml))
    assert mask.sum() * grid.voxel_ml == pytest.approx(volume_ml, rel=0.05)
    assert np.isin(before[mask], [int(t) for t in PARENCHYMA]).all()  # never in CSF, ventricles or skull
    neighbours = ndimage.binary_dilation(mask) & ~mask
    assert not np.isin(before[neighbours], OUTSIDE_BRAIN).any()  # does not touch the skull
    assert ndimage.label(mask)[1] == 1  # one connected hemorrhage
    assert (labels[mask] == Tissue.HEMORRHAGE).all()


def test_edema_is_a_thin_rim_around_the_hemorrhage(head_labels: tuple[np.ndarray, Grid]) -> None:
    before, grid = head_labels
    labels = before.copy()
    spec = draw_lesion(np.random.default_rng(3), 15.0)
    mask = paint_lesion(labels, grid, spec)
    edema = labels == Tissue.EDEMA
    assert edema.sum() > 0.05 * mask.sum()
    assert not (edema & mask).any()
    dist = ndimage.distance_transform_edt(~mask, sampling=grid.spacing)
    assert dist[edema].max() <= 1.4 * spec.edema_mm + max(grid.spacing)
    assert np.isin(before[edema], [int(t) for t in PARENCHYMA]).all()


def _solidity(mask: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """Voxel volume over the convex hull of the voxel centres (≈1.1 for a voxelised ellipsoid here)."""
    from scipy.spatial import ConvexHull

    points = np.argwhere(mask) * np.asarray(spacing)
    return float(mask.sum() * np.prod(spacing) / ConvexHull(points).volume)


def test_shapes_are_lobulated_not_ellipsoids(head_labels: tuple[np.ndarray, Grid]) -> None:
    before, grid = head_labels
    x, y, z = np.meshgrid(*grid.axes(), indexing="ij")
    ellipsoid = ((x / 22) ** 2 + ((y - 10) / 18) ** 2 + ((z + 20) / 15) ** 2) < 1  # ~25 mL
    masks = [
        paint_lesion(before.copy(), grid, draw_lesion(np.random.default_rng(s), 30.0)) for s in (0, 2, 6)
    ]
    assert (masks[0] != masks[1]).any()
    assert _solidity(ellipsoid, grid.spacing) > 1.05
    assert np.median([_solidity(m, grid.spacing) for m in masks]) < 0.95
