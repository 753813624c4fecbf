"""Site scanner profiles: grids, noise, blur, calibration offset, storage orientation, site sizes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from iphbench.io.volume import read_nifti
from iphbench.synth import allocate_sites, make_site_profile, plan_cohort
from iphbench.synth.scanner import STORAGE_ORDERS, apply_scanner, grid_for, to_storage


def test_site_sizes_are_unequal_and_never_empty() -> None:
    counts = allocate_sites(239, 17, seed=0)
    assert sum(counts) == 239 and len(counts) == 17
    assert min(counts) >= 1
    assert max(counts) >= 3 * min(counts)  # like the paper's 2..54
    assert allocate_sites(4, 4, seed=1) == [1, 1, 1, 1]
    with pytest.raises(ValueError, match="each site needs at least one subject"):
        allocate_sites(3, 4, seed=0)


def test_small_and_clinical_profiles_have_the_documented_grids() -> None:
    for k in range(6):
        small = make_site_profile(0, k, "small")
        assert small.shape[0] == small.shape[1] <= 128 and 48 <= small.shape[2] <= 64
        assert 1.55 <= small.spacing[0] <= 2.0 and 2.5 <= small.spacing[2] <= 3.0
        assert 3.0 <= small.noise_sd <= 8.0 and abs(small.hu_offset) <= 4.0
        assert small.fov_mm[0] >= 200  # the whole head fits in plane
        clinical = make_site_profile(0, k, "clinical")
        assert clinical.shape[:2] == (512, 512) and 34 <= clinical.shape[2] <= 44
        assert 0.39 <= clinical.spacing[0] <= 0.47 and clinical.spacing[2] in (4.5, 5.0)
    with pytest.raises(ValueError, match="unknown size"):
        make_site_profile(0, 0, "huge")


def test_sites_differ_and_do_not_depend_on_the_number_of_sites() -> None:
    profiles = [make_site_profile(0, k) for k in range(4)]
    assert len({p.noise_sd for p in profiles}) == 4
    assert len({p.spacing for p in profiles}) >= 2
    assert [p.storage for p in profiles] == list(STORAGE_ORDERS)
    three = {s.profile.site: s.profile for s in plan_cohort(10, 3, seed=0)}
    five = {s.profile.site: s.profile for s in plan_cohort(10, 5, seed=0)}
    assert three["A"] == five["A"] and three["C"] == five["C"]


def test_noise_sd_offset_and_blur_are_as_configured() -> None:
    rng = np.random.default_rng(0)
    quiet, loud = make_site_profile(0, 0), make_site_profile(0, 2)
    assert loud.noise_sd > quiet.noise_sd + 1
    flat = np.full((96, 96, 24), 30.0, dtype=np.float32)
    for p in (quiet, loud):
        out = apply_scanner(flat, p, rng)
        assert out.std() == pytest.approx(p.noise_sd, rel=0.02)
        assert out.mean() - 30.0 == pytest.approx(p.hu_offset, abs=0.1)
    # a softer kernel spreads a step edge over more voxels; profiles differ in kernel
    assert len({make_site_profile(0, k).blur_mm for k in range(4)}) == 4
    step = np.zeros((64, 4, 4), dtype=np.float32)
    step[32:] = 100.0
    widths = []
    for blur in (0.3, 1.0):
        p = dataclasses.replace(quiet, blur_mm=blur, noise_sd=0.0, hu_offset=0.0)
        profile_line = apply_scanner(step, p, rng)[:, 2, 2]
        widths.append(int(((profile_line > 10) & (profile_line < 90)).sum()))
    assert widths[0] < widths[1]


@pytest.mark.parametrize("storage", STORAGE_ORDERS)
def test_storage_orders_read_back_to_the_same_canonical_array(tmp_path: Path, storage: str) -> None:
    grid = grid_for(make_site_profile(0, 0))
    array = np.arange(np.prod((6, 5, 4)), dtype=np.int16).reshape(6, 5, 4)
    affine = grid.affine
    data, file_affine = to_storage(array, affine, storage)
    path = tmp_path / f"{storage}.nii.gz"
    nib.save(nib.Nifti1Image(data, file_affine), str(path))
    assert "".join(nib.aff2axcodes(nib.load(str(path)).affine)) == storage
    back = read_nifti(path, dtype=np.int16)
    np.testing.assert_array_equal(back.array, array)
    np.testing.assert_allclose(back.affine, affine, atol=1e-6)
