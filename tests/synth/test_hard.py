"""The hard preset: each item present when on and absent when off, never in the mask; thick slices with
partial volume; low-contrast and juxtacortical bleeds; determinism; the standard preset unchanged."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from iphbench.preprocessing.brain import ct_brain_mask
from iphbench.synth import (
    COHORT_COLUMNS,
    HARD_COLUMNS,
    HardLabel,
    HardPreset,
    SubjectSpec,
    SyntheticScan,
    Tissue,
    generate_cohort,
    make_site_profile,
    plan_cohort,
    resolve_preset,
    synthesize_subject,
)
from iphbench.synth.artifacts import average_subslices, plurality_labels
from iphbench.synth.phantom import INTRACRANIAL, PARENCHYMA
from iphbench.synth.preset import BLEED_LABELS, hard_site_profile, subslices

ALL_ON = HardPreset(
    choroid_calc_p=1.0,
    pineal_calc_p=1.0,
    falx_calc_p=1.0,
    subdural_p=1.0,
    subarachnoid_p=1.0,
    intraventricular_p=1.0,
    juxtacortical_fraction=0.0,
)
ALL_OFF = HardPreset(
    choroid_calc_p=0.0,
    pineal_calc_p=0.0,
    dense_falx=False,
    falx_calc_p=0.0,
    bone_edges=False,
    streaks=False,
    lesion_hu=None,
    juxtacortical_fraction=0.0,
    subdural_p=0.0,
    subarachnoid_p=0.0,
    intraventricular_p=0.0,
)
HARD_LABELS = [int(lab) for lab in HardLabel]


def _scan(
    preset: HardPreset, lesion_ml: float | None = 20.0, juxtacortical: bool = False, index: int = 2
) -> SyntheticScan:
    profile = hard_site_profile(make_site_profile(seed=5, index=0, size="small"), 5, 0, preset)
    spec = SubjectSpec(
        "h001",
        index=index,
        seed=5,
        profile=profile,
        lesion_ml=lesion_ml,
        preset=preset,
        juxtacortical=juxtacortical,
    )
    return synthesize_subject(spec)


@pytest.fixture(scope="module")
def on() -> SyntheticScan:
    """One old subject with a 20 mL hemorrhage and every hard item switched on."""
    return _scan(ALL_ON)


@pytest.fixture(scope="module")
def off() -> SyntheticScan:
    """The same subject with every hard item off (thick slices with partial volume stay)."""
    return _scan(ALL_OFF)


def _away_from_skull(scan: SyntheticScan, voxels: int = 2) -> np.ndarray:
    """Intracranial voxels at least ``voxels`` from anything outside the cranial cavity."""
    inside = np.isin(scan.labels, [int(t) for t in INTRACRANIAL] + HARD_LABELS)
    return inside & ~ndimage.binary_dilation(~inside, iterations=voxels)


@pytest.mark.parametrize(
    "label",
    [
        HardLabel.CHOROID_CALC,
        HardLabel.PINEAL_CALC,
        HardLabel.FALX_CALC,
        HardLabel.SUBDURAL,
        HardLabel.SUBARACHNOID,
        HardLabel.INTRAVENTRICULAR,
    ],
)
def test_each_mimic_and_bleed_is_hyperdense_and_outside_the_mask(on: SyntheticScan, label: HardLabel) -> None:
    region = on.labels == label
    assert region.any(), f"{label.name} missing with every item on"
    assert not (on.mask[region] > 0).any()
    assert on.hard is not None and on.hard.volumes_ml[label.name.lower()] > 0
    written = on.image[region].astype(float) - on.spec.profile.hu_offset
    if label in BLEED_LABELS:  # blood: 50-75 HU, as bright as the clot (45-65 HU)
        assert np.median(on.hu_clean[region]) >= 48.0, label.name
        assert np.median(written) >= on.hard.grey_hu + 8.0, label.name
        assert (written > 60).any(), label.name
    else:  # calcification: far brighter, still after blur and noise
        assert np.median(on.hu_clean[region]) > 100.0, label.name
        assert (written > 60).sum() >= 0.3 * region.sum(), label.name


def test_bright_voxels_outside_the_mask_in_ventricles_midline_and_extra_axial_space(
    on: SyntheticScan, off: SyntheticScan
) -> None:
    """Voxels > 60 HU outside the mask, away from the skull: many with the items on, none with them off."""
    counts = {}
    for name, scan in (("on", on), ("off", off)):
        core = (
            _away_from_skull(scan) & (scan.mask == 0) & ~ndimage.binary_dilation(scan.mask > 0, iterations=2)
        )
        bright = core & (scan.hu_clean > 60.0)
        counts[name] = {
            "ventricles": int(
                (bright & np.isin(scan.labels, [6, HardLabel.CHOROID_CALC, HardLabel.INTRAVENTRICULAR])).sum()
            ),
            "midline": int(
                (
                    bright
                    & np.isin(scan.labels, [HardLabel.PINEAL_CALC, HardLabel.FALX, HardLabel.FALX_CALC])
                ).sum()
            ),
            "extra-axial": int(
                (bright & np.isin(scan.labels, [5, HardLabel.SUBDURAL, HardLabel.SUBARACHNOID])).sum()
            ),
            "all": int(bright.sum()),
        }
    assert all(v > 0 for v in counts["on"].values()), counts
    assert counts["off"]["all"] == 0, counts


def test_items_are_absent_when_off(off: SyntheticScan) -> None:
    assert off.hard is not None
    assert not np.isin(off.hard.labels_fine, HARD_LABELS).any()
    assert all(v == 0 for v in off.hard.volumes_ml.values())
    assert off.hard.streaks is None and off.hard.streak_hu is None
    assert off.hard.mimics.ridges == () and off.hard.mimics.roughness_mm == 0


def test_the_mask_never_covers_a_mimic_or_an_unlabelled_bleed(on: SyntheticScan) -> None:
    assert on.hard is not None
    mask = on.mask > 0
    assert mask.sum() > 100
    assert (on.labels[mask] == Tissue.HEMORRHAGE).all()
    assert (on.hard.labels_fine[on.hard.mask_fine] == Tissue.HEMORRHAGE).all()
    # every hard item keeps its volume although the lesion was painted after it
    k = on.hard.subslices
    fine_counts = np.bincount(on.hard.labels_fine.ravel(), minlength=19)
    for lab in HardLabel:
        assert on.hard.volumes_ml[lab.name.lower()] == pytest.approx(fine_counts[lab] * on.grid.voxel_ml / k)
    # no calcification or bone inside a mask voxel, not even as partial volume
    assert on.hu_clean[mask].max() < 95.0


def test_switching_one_item_off_leaves_the_others(on: SyntheticScan) -> None:
    no_streaks = _scan(dataclasses.replace(ALL_ON, streaks=False))
    np.testing.assert_array_equal(no_streaks.labels, on.labels)
    np.testing.assert_array_equal(no_streaks.hu_clean, on.hu_clean)
    assert on.hard is not None and no_streaks.hard is not None and no_streaks.hard.streak_hu is None
    assert (no_streaks.image != on.image).any()
    no_pineal = _scan(dataclasses.replace(ALL_ON, pineal_calc_p=0.0))
    assert no_pineal.hard is not None
    assert no_pineal.hard.volumes_ml["pineal_calc"] == 0
    for item in ("choroid_calc", "subdural", "subarachnoid", "falx_calc"):  # not touching the pineal
        assert no_pineal.hard.volumes_ml[item] == pytest.approx(on.hard.volumes_ml[item]), item


def test_streaks_lie_in_the_low_slices_inside_the_head(on: SyntheticScan) -> None:
    assert on.hard is not None and on.hard.streak_hu is not None and on.hard.streaks is not None
    streak = on.hard.streak_hu
    per_slice = np.abs(streak).max(axis=(0, 1))
    z = on.grid.axes()[2]
    assert per_slice.max() >= 15.0
    assert (per_slice[z >= on.hard.streaks.z_none_mm] == 0).all()
    assert per_slice[: np.argmax(z >= on.hard.streaks.z_full_mm) + 1].max() > 10.0
    assert (streak < -10).any()  # dark bands (the Hounsfield bar at least)
    assert (streak[on.labels == Tissue.AIR] == 0).all()


def test_bone_edges_put_bone_where_brain_was(on: SyntheticScan, off: SyntheticScan) -> None:
    assert on.hard is not None and len(on.hard.mimics.ridges) == 4
    ridge_bone = np.isin(on.labels, [int(Tissue.BONE)]) & np.isin(off.labels, [int(t) for t in INTRACRANIAL])
    assert ridge_bone.sum() > 50
    # the lowest brain slices hold bone inside the cranial cavity (ridges), the upper ones do not
    z_of_bone = np.nonzero(ridge_bone)[2]
    assert z_of_bone.mean() < on.grid.shape[2] / 2


def test_clots_have_low_contrast(on: SyntheticScan) -> None:
    """Clean clot HU within 45-65 (vs grey matter ~36-40); the written image reads the same under noise."""
    assert on.hard is not None and 45.0 <= on.lesion_hu <= 65.0
    assert 5.0 <= on.lesion_hu - on.hard.grey_hu <= 29.0
    fine_clot = on.hu_clean[on.mask > 0]  # slice averages: the clot's range, less partial volume at its rim
    assert np.percentile(fine_clot, 90) <= 65.0
    core = ndimage.binary_erosion(on.mask > 0)
    written = float(np.median(on.image[core])) - on.spec.profile.hu_offset
    assert 40.0 <= written <= 68.0
    specs = plan_cohort(8, 2, seed=4, size="tiny", preset="hard")
    hus = [synthesize_subject(s).lesion_hu for s in specs[:4]]
    assert all(45.0 <= h <= 65.0 for h in hus), hus


def test_standard_clot_hu_when_lesion_hu_is_off(off: SyntheticScan) -> None:
    assert off.hard is not None and off.hard.preset.lesion_hu is None
    assert off.lesion_hu == pytest.approx(off.head.hu_of(Tissue.HEMORRHAGE), abs=8.0)  # ± texture
    assert off.lesion_hu >= 50.0


def test_thick_slices_average_sub_slices_not_point_samples(off: SyntheticScan) -> None:
    point = _scan(dataclasses.replace(ALL_OFF, partial_volume=False))
    assert off.hard is not None and point.hard is not None
    assert off.grid.spacing[2] == point.grid.spacing[2] >= 4.5
    assert off.hard.subslices == 5 and point.hard.subslices == 1
    assert off.spec.profile.blur_z_mm == 0.0 and point.spec.profile.blur_z_mm > 0
    # the middle sub-slice is where point sampling looks
    mid = off.hard.labels_fine[:, :, off.hard.subslices // 2 :: off.hard.subslices]
    head = point.labels != Tissue.AIR
    lesion = [int(Tissue.HEMORRHAGE), int(Tissue.EDEMA)]  # placed on each grid: shapes differ a little
    same_anatomy = head & ~np.isin(mid, lesion) & ~np.isin(point.labels, lesion)
    assert (mid[same_anatomy] == point.labels[same_anatomy]).mean() > 0.998
    # averaging across 5 mm gives intermediate values where tissues change along z; sampling does not
    diff = np.abs(off.hu_clean - point.hu_clean)
    assert (diff > 20).sum() > 0.005 * head.sum()
    skull_edge = lambda s: ((s.hu_clean > 100) & (s.hu_clean < 500)).sum()  # noqa: E731
    assert skull_edge(off) > 1.3 * skull_edge(point)


def test_subslice_helpers() -> None:
    assert [subslices(dz, True) for dz in (5.0, 4.5, 3.0, 2.5, 1.0)] == [5, 5, 3, 3, 1]
    assert subslices(5.0, False) == 1 and subslices(5.0, True, 1.7) == 3
    fine = np.zeros((2, 1, 10), dtype=np.uint8)
    fine[0, 0, :5] = [3, 3, 7, 7, 7]
    fine[1, 0, 5:] = [11, 11, 5, 9, 9]  # tie 11 vs 9: the lower label value wins
    np.testing.assert_array_equal(plurality_labels(fine, 5, 19)[:, 0], [[7, 0], [0, 9]])
    np.testing.assert_allclose(average_subslices(fine.astype(np.float32), 5)[0, 0], [5.4, 0.0])


def test_juxtacortical_bleeds_are_small_and_reach_the_cortex() -> None:
    specs = plan_cohort(20, 4, seed=2, size="tiny", healthy_fraction=0.2, preset="hard")
    lesion = [s for s in specs if s.lesion_ml is not None]
    juxta = [s for s in lesion if s.juxtacortical]
    assert len(juxta) == round(0.35 * len(lesion))
    assert all(0.3 <= s.lesion_ml <= 6.0 for s in juxta)  # type: ignore[operator]
    assert max(s.lesion_ml for s in lesion if not s.juxtacortical) > 50  # type: ignore[type-var]
    scan = _scan(HardPreset(), lesion_ml=2.0, juxtacortical=True, index=7)
    assert (
        scan.hard is not None and scan.hard.juxtacortical and scan.lesion is not None and not scan.lesion.deep
    )
    fine, lesion_f = scan.hard.labels_fine, scan.hard.mask_fine
    outside = np.isin(fine, [int(Tissue.CSF), int(HardLabel.SUBARACHNOID), int(HardLabel.SUBDURAL)])
    spacing = (scan.grid.spacing[0], scan.grid.spacing[1], scan.grid.spacing[2] / scan.hard.subslices)
    dist = ndimage.distance_transform_edt(~outside, sampling=spacing)
    assert dist[lesion_f].min() <= 3.0  # touches, or nearly, the subarachnoid space
    assert not (fine[ndimage.binary_dilation(lesion_f)] == Tissue.DEEP_GREY).any()
    assert scan.mask.sum() > 0


def test_hemorrhage_free_subjects_carry_mimics_not_bleeds() -> None:
    specs = plan_cohort(3, 1, seed=1, size="tiny", healthy_fraction=1.0, preset=ALL_ON)
    scan = synthesize_subject(specs[0])
    assert scan.hard is not None and scan.mask.sum() == 0
    assert scan.hard.volumes_ml["choroid_calc"] > 0 and scan.hard.volumes_ml["pineal_calc"] > 0
    assert not np.isin(scan.labels, [int(lab) for lab in BLEED_LABELS]).any()
    with_bleeds = dataclasses.replace(ALL_ON, bleeds_in_iph_free=True)
    scan = synthesize_subject(
        plan_cohort(3, 1, seed=1, size="tiny", healthy_fraction=1.0, preset=with_bleeds)[0]
    )
    assert scan.hard is not None and scan.hard.volumes_ml["subdural"] > 0


def test_brain_extraction_keeps_hard_preset_lesions(on: SyntheticScan) -> None:
    """The `ct` extractor of `prepare` keeps the clot although subdural blood and calcifications are there."""
    juxta = _scan(HardPreset(subdural_p=1.0), lesion_ml=1.5, juxtacortical=True, index=9)
    for scan in (on, juxta):
        brain = ct_brain_mask(scan.image.astype(np.float32), scan.grid.spacing).astype(bool)
        lesion = scan.mask > 0
        assert (brain & lesion).sum() / lesion.sum() >= 0.995
        true = np.isin(scan.labels, [int(t) for t in INTRACRANIAL] + HARD_LABELS)
        dice = 2 * (brain & true).sum() / (brain.sum() + true.sum())
        assert dice > 0.9, dice


def test_presets_and_knobs_resolve() -> None:
    assert resolve_preset("standard") is None and resolve_preset(None) is None
    assert resolve_preset("hard") == HardPreset()
    with pytest.raises(ValueError, match="standard, hard"):
        resolve_preset("harder")
    knobs = HardPreset().with_options(
        {"streaks": "off", "subdural_p": "0.5", "lesion_hu": "none", "slice_mm": "5"}
    )
    assert (
        not knobs.streaks and knobs.subdural_p == 0.5 and knobs.lesion_hu is None and knobs.slice_mm == (5.0,)
    )
    with pytest.raises(ValueError, match="settings are"):
        HardPreset().with_options({"nope": "1"})
    with pytest.raises(ValueError, match=r"within \[0, 1\]"):
        HardPreset(subdural_p=1.5)
    assert set(json.loads(json.dumps(HardPreset().to_dict()))) == {
        f.name for f in dataclasses.fields(HardPreset)
    }
    assert all(
        s.profile.spacing[2] in (4.5, 5.0) for s in plan_cohort(8, 4, seed=0, size="small", preset="hard")
    )


def _file_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_standard_preset_is_the_default_and_writes_no_hard_columns(tmp_path: Path) -> None:
    assert plan_cohort(6, 2, seed=3, preset="standard") == plan_cohort(6, 2, seed=3)
    a = generate_cohort(tmp_path / "a", n_subjects=2, n_sites=2, seed=11, size="tiny")
    b = generate_cohort(tmp_path / "b", n_subjects=2, n_sites=2, seed=11, size="tiny", preset="standard")
    assert _file_bytes(a.parent) == _file_bytes(b.parent)
    assert a.read_text().splitlines()[0].split(",") == list(COHORT_COLUMNS)
    settings = json.loads((a.parent / "synth.json").read_text())
    assert "preset" not in settings and "hard" not in settings


@pytest.mark.slow  # two spawned worker processes rendering hard subjects
def test_hard_cohort_is_identical_whatever_the_workers(tmp_path: Path) -> None:
    a = generate_cohort(
        tmp_path / "a", n_subjects=3, n_sites=2, seed=11, size="tiny", workers=1, preset="hard"
    )
    generate_cohort(tmp_path / "b", n_subjects=3, n_sites=2, seed=11, size="tiny", workers=2, preset="hard")
    assert _file_bytes(tmp_path / "a") == _file_bytes(tmp_path / "b")
    with open(a, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == (*COHORT_COLUMNS, *HARD_COLUMNS)
    assert all(r["synth_preset"] == "hard" and r["synth_subslices"] == "5" for r in rows)
    settings = json.loads((a.parent / "synth.json").read_text())
    assert settings["preset"] == "hard" and settings["hard"] == HardPreset().to_dict()
    assert settings["labels"]["subdural"] == int(HardLabel.SUBDURAL)
    parenchyma = {int(t) for t in PARENCHYMA}
    assert parenchyma.isdisjoint(settings["labels"].values())
