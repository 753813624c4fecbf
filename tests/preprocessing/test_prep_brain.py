"""Brain extraction: the registry, the threshold-based CT extractor, the SynthStrip backend."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from iphbench.preprocessing.brain import (
    BrainExtractionError,
    ct_brain_mask,
    extract_brain,
    get_extractor,
    list_extractors,
)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return 2.0 * (a & b).sum() / (a.sum() + b.sum())


def test_registry() -> None:
    assert list_extractors() == ["ct", "none", "synthstrip"]
    with pytest.raises(KeyError, match="valid methods are"):
        get_extractor("bet")


def test_none_is_the_whole_volume(make_head) -> None:
    img, _, _ = make_head(shape=(20, 22, 10))
    out = extract_brain(img, "none")
    assert out.dtype == np.uint8 and out.shape == img.shape and out.all()


def test_ct_keeps_brain_and_hemorrhage_and_drops_scalp(make_head) -> None:
    img, mask, true_brain = make_head()
    brain = extract_brain(img, "ct")
    assert brain.dtype == np.uint8 and set(np.unique(brain)) <= {0, 1}
    lesion = mask.array.astype(bool)
    assert lesion.sum() > 100
    assert (brain.astype(bool) & lesion).sum() == lesion.sum()  # every hemorrhage voxel kept
    assert _dice(brain, true_brain) > 0.95
    assert not (brain.astype(bool) & (img.array > 300)).any()  # no bone
    scalp = (img.array > 0) & ~true_brain & (img.array < 300)
    assert (brain.astype(bool) & scalp).sum() < 0.02 * scalp.sum()


def test_ct_keeps_a_hemorrhage_against_the_skull(make_head) -> None:
    # lesion centred 5 mm inside the inner table at the lateral convexity: half of it hugs the bone
    img, mask, _ = make_head(lesion_mm=(59.0, 0.0, 0.0), lesion_radius_mm=10.0)
    brain = extract_brain(img, "ct").astype(bool)
    lesion = mask.array.astype(bool)
    assert (brain & lesion).sum() / lesion.sum() >= 0.995


@pytest.mark.parametrize("flip", [(True, False, False), (False, True, True)])
def test_ct_is_the_same_for_flipped_files(make_head, flip) -> None:
    ref_img, _, _ = make_head(spacing=(2.5, 2.5, 5.0), shape=(70, 80, 30))
    img, _mask, _ = make_head(spacing=(2.5, 2.5, 5.0), shape=(70, 80, 30), flip=flip)
    assert np.array_equal(img.array, ref_img.array)  # canonicalisation undid the flips
    assert np.array_equal(extract_brain(img, "ct"), extract_brain(ref_img, "ct"))


def test_ct_handles_thin_in_plane_thick_slices(make_head) -> None:
    img, mask, true_brain = make_head(shape=(180, 210, 30), spacing=(0.9, 0.9, 5.0))
    brain = ct_brain_mask(img.array, img.spacing)
    assert _dice(brain, true_brain) > 0.95
    lesion = mask.array.astype(bool)
    assert (brain.astype(bool) & lesion).sum() == lesion.sum()


def test_ct_on_an_already_stripped_scan(make_head) -> None:
    img, _mask, true_brain = make_head()
    stripped = np.where(true_brain, img.array, -1000.0).astype(np.float32)
    brain = ct_brain_mask(stripped, img.spacing)
    assert _dice(brain, true_brain) > 0.95


def test_ct_rejects_non_hu_input(make_head) -> None:
    img, _, _ = make_head(shape=(20, 22, 10))
    with pytest.raises(BrainExtractionError, match="HU"):
        ct_brain_mask(np.full(img.shape, -2000.0, np.float32), img.spacing)


def test_synthstrip_missing_says_how_to_fix(make_head, monkeypatch) -> None:
    img, _, _ = make_head(shape=(20, 22, 10))
    monkeypatch.setenv("PATH", "")
    with pytest.raises(BrainExtractionError, match=r"mri_synthstrip.*install.*'ct'"):
        extract_brain(img, "synthstrip")


def test_synthstrip_backend_runs_the_command(make_head, tmp_path: Path, monkeypatch) -> None:
    """A stand-in ``mri_synthstrip`` (brain = window value above 10 HU) checks the file plumbing."""
    script = tmp_path / "mri_synthstrip"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys, nibabel as nib, numpy as np\n"
        "a = sys.argv; i, m = a[a.index('-i') + 1], a[a.index('-m') + 1]\n"
        "img = nib.load(i); d = np.asarray(img.dataobj)\n"
        "assert d.min() >= 0 and d.max() <= 100, 'CT must be windowed for SynthStrip'\n"
        "nib.save(nib.Nifti1Image(((d > 10) & (d < 100)).astype(np.uint8), img.affine), m)\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    img, _, _ = make_head(shape=(30, 34, 20), flip=(True, False, False))
    out = extract_brain(img, "synthstrip")
    expected = (img.array > 10) & (img.array < 100)
    assert np.array_equal(out.astype(bool), expected)


def test_labelling_hole_fill_matches_scipy() -> None:
    from scipy import ndimage

    from iphbench.preprocessing.brain import _fill_holes_3d

    rng = np.random.default_rng(0)
    for _ in range(10):
        m = rng.random((15, 17, 13)) < rng.uniform(0.3, 0.7)
        assert np.array_equal(_fill_holes_3d(m), ndimage.binary_fill_holes(m))
