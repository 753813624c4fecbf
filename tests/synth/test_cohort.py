"""The written cohort: columns, files, volumes, healthy subjects, site differences, determinism."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from iphbench.io.volume import read_nifti
from iphbench.synth import COHORT_COLUMNS, generate_cohort, lesion_volumes, plan_cohort, synthesize_subject
from iphbench.synth.subject import draw_demographics


def _rows(csv_path: Path) -> list[dict[str, str]]:
    with open(csv_path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_cohort_csv_has_the_manifest_columns_and_files(small_cohort: Path) -> None:
    with open(small_cohort) as fh:
        header = fh.readline().strip().split(",")
    assert header == list(COHORT_COLUMNS)
    assert header[:6] == ["subject", "site", "age", "sex", "image", "mask"]
    rows = _rows(small_cohort)
    assert len(rows) == 6 and len({r["subject"] for r in rows}) == 6
    assert {r["site"] for r in rows} == {"A", "B", "C"}
    for r in rows:
        image = read_nifti(small_cohort.parent / r["image"])
        mask = read_nifti(small_cohort.parent / r["mask"], dtype=np.uint8)
        assert image.shape == mask.shape
        np.testing.assert_allclose(image.affine, mask.affine)
        assert image.spacing == pytest.approx(
            (float(r["synth_spacing_x"]), float(r["synth_spacing_y"]), float(r["synth_spacing_z"])), abs=1e-4
        )
        assert "x".join(str(n) for n in image.shape) == r["synth_matrix"]
        assert set(np.unique(mask.array)) <= {0, 1}
        assert float(r["lesion_ml"]) == pytest.approx(mask.array.sum() * mask.voxel_volume_ml, abs=1e-3)
        assert r["sex"] in ("M", "F") and 25 <= int(r["age"]) <= 99


def test_files_are_int16_hu_and_uint8_masks(small_cohort: Path) -> None:
    import nibabel as nib

    row = _rows(small_cohort)[0]
    assert nib.load(str(small_cohort.parent / row["image"])).get_data_dtype() == np.int16
    assert nib.load(str(small_cohort.parent / row["mask"])).get_data_dtype() == np.uint8


def test_healthy_subjects_have_empty_masks(small_cohort: Path) -> None:
    rows = _rows(small_cohort)
    healthy = [r for r in rows if not r["target_ml"]]
    assert len(healthy) == 1  # round(0.2 * 6)
    for r in healthy:
        assert float(r["lesion_ml"]) == 0.0 and r["location"] == ""
        assert read_nifti(small_cohort.parent / r["mask"], dtype=np.uint8).array.sum() == 0
    for r in rows:
        if r["target_ml"]:
            voxel_ml = (
                float(r["synth_spacing_x"]) * float(r["synth_spacing_y"]) * float(r["synth_spacing_z"]) / 1000
            )
            assert float(r["lesion_ml"]) == pytest.approx(float(r["target_ml"]), rel=0.05, abs=voxel_ml)
            assert 0.45 <= float(r["lesion_ml"]) <= 126.0
            assert 45.0 <= float(r["lesion_hu"]) <= 90.0


def test_noise_measured_in_each_file_matches_its_site(small_cohort: Path) -> None:
    """Noise SD in a homogeneous region (air in the corners of the field of view), per site."""
    measured: dict[str, float] = {}
    configured: dict[str, float] = {}
    for r in _rows(small_cohort):
        img = read_nifti(small_cohort.parent / r["image"]).array
        corner = img[:8, :8, :]
        measured[r["site"]] = float(corner.std())
        configured[r["site"]] = float(r["synth_noise_sd"])
    for site in measured:
        assert measured[site] == pytest.approx(configured[site], rel=0.12), site
    assert sorted(measured, key=measured.__getitem__) == sorted(configured, key=configured.__getitem__)
    assert max(measured.values()) > 1.3 * min(measured.values())


def test_lesion_volumes_are_log_uniform_over_the_range() -> None:
    vols = lesion_volumes(24, seed=0, low_ml=0.5, high_ml=120.0)
    assert min(vols) < 1.0 and max(vols) > 100.0
    many = lesion_volumes(400, seed=1, low_ml=0.5, high_ml=120.0)
    logs = (np.log(many) - math.log(0.5)) / (math.log(120.0) - math.log(0.5))
    assert stats.kstest(logs, "uniform").pvalue > 0.05
    assert np.median(many) == pytest.approx(math.sqrt(0.5 * 120.0), rel=0.15)  # geometric mean of the ends
    with pytest.raises(ValueError, match="0 < low < high"):
        lesion_volumes(3, 0, 5.0, 1.0)


def test_demographics_follow_the_paper() -> None:
    demo = [draw_demographics(0, i) for i in range(600)]
    ages = np.array([a for a, _ in demo])
    male = np.mean([s == "M" for _, s in demo])
    assert ages.mean() == pytest.approx(74, abs=2) and ages.std() == pytest.approx(13, abs=2)
    assert male == pytest.approx(0.53, abs=0.06)


def test_plan_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least one subject"):
        plan_cohort(2, 3, seed=0)
    with pytest.raises(ValueError, match="unknown size"):
        plan_cohort(4, 2, seed=0, size="huge")
    with pytest.raises(ValueError, match="healthy_fraction"):
        plan_cohort(4, 2, seed=0, healthy_fraction=1.5)
    assert all(s.lesion_ml is None for s in plan_cohort(4, 2, seed=0, healthy_fraction=1.0))


def _file_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow  # two spawned worker processes: a few seconds on a busy 2-core machine
def test_same_seed_gives_identical_bytes_whatever_the_workers(tmp_path: Path) -> None:
    generate_cohort(tmp_path / "a", n_subjects=2, n_sites=2, seed=11, workers=1, size="tiny")
    generate_cohort(tmp_path / "b", n_subjects=2, n_sites=2, seed=11, workers=2, size="tiny")
    a, b = _file_bytes(tmp_path / "a"), _file_bytes(tmp_path / "b")
    assert len(a) == 2 * 2 + 2  # images, masks, cohort.csv, synth.json
    assert a == b


def test_a_different_seed_gives_a_different_subject(tmp_path: Path) -> None:
    specs = [plan_cohort(2, 2, seed=s)[0] for s in (11, 12)]
    scans = [synthesize_subject(spec) for spec in specs]
    assert scans[0].image.shape != scans[1].image.shape or (scans[0].image != scans[1].image).any()
    assert scans[0].mask.sum() != scans[1].mask.sum()
    again = synthesize_subject(specs[0])
    np.testing.assert_array_equal(again.image, scans[0].image)
    np.testing.assert_array_equal(again.mask, scans[0].mask)
