"""The head phantom: tissue HU against literature values, anatomy, atrophy with age."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from iphbench.synth import SyntheticScan, Tissue, draw_head, render_head
from iphbench.synth._field import Grid, smooth_field
from iphbench.synth.phantom import INTRACRANIAL

# Literature bands (HU) for NCCT, written independently of the generator's constants.
LITERATURE_HU = {
    Tissue.FAT: (-130.0, -60.0),
    Tissue.SOFT: (25.0, 65.0),
    Tissue.BONE: (1000.0, 2000.0),
    Tissue.DIPLOE: (400.0, 1000.0),
    Tissue.CSF: (0.0, 15.0),
    Tissue.VENTRICLE: (0.0, 15.0),
    Tissue.GREY: (32.0, 45.0),
    Tissue.WHITE: (20.0, 32.0),
    Tissue.DEEP_GREY: (30.0, 45.0),
    Tissue.EDEMA: (10.0, 25.0),
    Tissue.HEMORRHAGE: (40.0, 90.0),
}


def test_clean_hu_of_every_tissue_lies_in_its_literature_band(lesion_scan: SyntheticScan) -> None:
    hu, labels = lesion_scan.hu_clean, lesion_scan.labels
    assert (hu[labels == Tissue.AIR] == -1000).all()
    for tissue, (lo, hi) in LITERATURE_HU.items():
        values = hu[labels == tissue]
        assert values.size > 0, f"{tissue.name} missing from the phantom"
        assert lo <= values.min() and values.max() <= hi, (
            f"{tissue.name}: {values.min():.1f}..{values.max():.1f}"
        )


def test_reconstructed_image_keeps_tissue_contrast(lesion_scan: SyntheticScan) -> None:
    """After blur, noise and calibration offset, eroded tissue cores still read at their HU."""
    img, labels = lesion_scan.image.astype(float), lesion_scan.labels
    offset = lesion_scan.spec.profile.hu_offset

    def core_median(tissues: tuple[Tissue, ...], erode: int) -> float:
        region = ndimage.binary_erosion(np.isin(labels, [int(t) for t in tissues]), iterations=erode)
        assert region.sum() > 50
        return float(np.median(img[region])) - offset

    assert 20 <= core_median((Tissue.WHITE,), 2) <= 32
    assert 50 <= core_median((Tissue.HEMORRHAGE,), 1) <= 85
    assert core_median((Tissue.BONE, Tissue.DIPLOE), 1) >= 500
    assert core_median((Tissue.AIR,), 3) <= -980
    # the hemorrhage stands well clear of the parenchyma relative to the noise (learnable)
    contrast = core_median((Tissue.HEMORRHAGE,), 1) - core_median((Tissue.WHITE,), 2)
    assert contrast > 3 * lesion_scan.spec.profile.noise_sd


def test_brain_is_enclosed_by_the_skull(lesion_scan: SyntheticScan) -> None:
    labels = lesion_scan.labels
    inside = np.isin(labels, [int(t) for t in INTRACRANIAL])
    ring = ndimage.binary_dilation(inside) & ~inside
    assert ring.any()
    assert np.isin(labels[ring], [int(Tissue.BONE), int(Tissue.DIPLOE)]).all()


@pytest.fixture(scope="module")
def grid() -> Grid:
    return Grid(shape=(72, 72, 40), spacing=(3.0, 3.0, 4.0), origin=(-106.5, -106.5, -90.0))


def test_ventricles_and_sulci_widen_with_age(grid: Grid) -> None:
    young = render_head(draw_head(np.random.default_rng(4), age=35), grid)
    old = render_head(draw_head(np.random.default_rng(4), age=90), grid)
    vent_young, vent_old = (young == Tissue.VENTRICLE).sum(), (old == Tissue.VENTRICLE).sum()
    assert vent_young > 0
    assert vent_old > 1.8 * vent_young
    assert (old == Tissue.CSF).sum() > 1.3 * (young == Tissue.CSF).sum()


def test_heads_differ_between_subjects(grid: Grid) -> None:
    a = render_head(draw_head(np.random.default_rng(1), age=70), grid)
    b = render_head(draw_head(np.random.default_rng(2), age=70), grid)
    brain_a, brain_b = np.isin(a, [7, 8, 9]).sum(), np.isin(b, [7, 8, 9]).sum()
    assert (a != b).mean() > 0.02
    # adult brain: roughly 0.9-1.6 L of parenchyma in both
    for n in (brain_a, brain_b):
        assert 900 <= n * grid.voxel_ml <= 1600


def test_smooth_field_has_unit_sd_and_does_not_depend_on_the_grid() -> None:
    coarse = Grid((40, 40, 20), (4.0, 4.0, 8.0), (-80.0, -80.0, -80.0))
    fine = Grid((80, 80, 40), (2.0, 2.0, 4.0), (-80.0, -80.0, -80.0))
    f_coarse = smooth_field(coarse, 10.0, np.random.default_rng(0))
    f_fine = smooth_field(fine, 10.0, np.random.default_rng(0))
    assert 0.6 < f_fine.std() < 1.4
    assert abs(f_fine.mean()) < 0.5
    np.testing.assert_allclose(f_fine[::2, ::2, ::2], f_coarse, atol=2e-3)
