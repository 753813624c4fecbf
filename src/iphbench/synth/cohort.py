"""Generate a synthetic multi-site NCCT cohort: NIfTI scans and masks plus ``cohort.csv``.

The cohort stands in for the paper's private multi-site data (section 3.1: 239 subjects,
17 sites, 2-54 subjects per site) so every stage of iphbench can run end to end. Output::

    <out>/cohort.csv                 subject, site, age, sex, image, mask + lesion and scanner columns
                                     (+ the hard preset's per-subject columns, ``HARD_COLUMNS``)
    <out>/synth.json                 the settings and every site's scanner profile (+ the hard preset's knobs)
    <out>/images/<subject>.nii.gz    int16 HU, in the site's storage axis order
    <out>/masks/<subject>.nii.gz     uint8 {0,1}, same grid as the image

The same arguments give byte-identical files whatever ``workers`` is.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from iphbench import __version__
from iphbench._files import atomic_path, atomic_write_json, atomic_write_text
from iphbench.synth.preset import HardLabel, HardPreset, hard_site_profile, resolve_preset
from iphbench.synth.render import synthesize_subject
from iphbench.synth.scanner import SIZES, ScannerProfile, allocate_sites, make_site_profile, to_storage
from iphbench.synth.subject import SubjectSpec, SyntheticScan

log = logging.getLogger(__name__)

COHORT_COLUMNS: tuple[str, ...] = (
    "subject",
    "site",
    "age",
    "sex",
    "image",
    "mask",
    "lesion_ml",  # rendered hemorrhage volume (mask voxels × voxel volume)
    "target_ml",  # volume drawn for the subject (empty when hemorrhage-free)
    "lesion_hu",  # mean clean HU inside the hemorrhage (before noise and blur)
    "location",  # "deep", "lobar" or "" (hemorrhage-free)
    "synth_matrix",  # canonical matrix "XxYxZ"
    "synth_spacing_x",
    "synth_spacing_y",
    "synth_spacing_z",
    "synth_noise_sd",
    "synth_blur_mm",
    "synth_hu_offset",
    "synth_storage",  # voxel axis order of the files (e.g. "LPS")
)
# Columns the hard preset appends (per subject, for analysing errors by them; empty = no hemorrhage).
HARD_COLUMNS: tuple[str, ...] = (
    "synth_preset",  # "hard"
    "synth_subslices",  # sub-slices averaged per slice (1 = point sampling)
    "synth_juxtacortical",  # 1: small hemorrhage placed against the cortex, 0: not, "": none
    "synth_lesion_contrast",  # clot mean HU - grey matter HU (clean, before noise)
    "synth_choroid_calc_ml",  # volumes on the sub-slice grid; 0 = absent
    "synth_pineal_calc_ml",
    "synth_falx_ml",  # dense falx voxels at least half covered by the sheet
    "synth_falx_calc_ml",
    "synth_skull_base",  # 1: irregular inner table and skull-base ridges drawn
    "synth_streaks",  # number of beam-hardening streaks (0 = none)
    "synth_subdural_ml",  # unlabelled bleeds
    "synth_subarachnoid_ml",
    "synth_intraventricular_ml",
)
_COHORT_STREAM = 202


def lesion_volumes(n: int, seed: int, low_ml: float, high_ml: float, stream: int = 0) -> list[float]:
    """``n`` volumes spread log-uniformly over [low_ml, high_ml] (one per stratum, shuffled).

    Stratified sampling: even a small cohort covers the whole range, from sub-mL bleeds to
    large lobar hemorrhages. ``stream`` picks an independent draw (the hard preset's small bleeds).
    """
    if not 0 < low_ml < high_ml:
        raise ValueError(f"lesion volume range must satisfy 0 < low < high, got ({low_ml}, {high_ml})")
    rng = np.random.default_rng([seed, _COHORT_STREAM, stream])
    strata = (rng.permutation(n) + rng.uniform(0.0, 1.0, n)) / max(n, 1)
    logs = math.log(low_ml) + strata * (math.log(high_ml) - math.log(low_ml))
    return [float(v) for v in np.exp(logs)]


def plan_cohort(
    n_subjects: int,
    n_sites: int,
    seed: int,
    size: str = "small",
    healthy_fraction: float = 0.0,
    volume_range_ml: tuple[float, float] = (0.5, 120.0),
    preset: str | HardPreset | None = "standard",
) -> list[SubjectSpec]:
    """Decide every subject's id, site and target hemorrhage volume (nothing is rendered).

    Under the hard preset a share (``juxtacortical_fraction``) of the hemorrhage subjects get a
    small juxtacortical bleed (volumes stratified over ``juxtacortical_ml``); the others keep
    volumes stratified over ``volume_range_ml``. Sites get the preset's thick slices.
    """
    hard = resolve_preset(preset)
    if n_subjects < 1:
        raise ValueError(f"n_subjects must be at least 1, got {n_subjects}")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}: choose one of {', '.join(SIZES)}")
    if not 0.0 <= healthy_fraction <= 1.0:
        raise ValueError(f"healthy_fraction must be within [0, 1], got {healthy_fraction}")
    counts = allocate_sites(n_subjects, n_sites, seed)
    profiles = [make_site_profile(seed, k, size) for k in range(n_sites)]
    if hard is not None:
        profiles = [hard_site_profile(p, seed, k, hard) for k, p in enumerate(profiles)]
    site_of = [k for k, c in enumerate(counts) for _ in range(c)]

    n_healthy = round(healthy_fraction * n_subjects)
    rng = np.random.default_rng([seed, _COHORT_STREAM, 1])
    healthy = set(rng.permutation(n_subjects)[:n_healthy].tolist())
    lesion_idx = [i for i in range(n_subjects) if i not in healthy]
    juxta: set[int] = set()
    if hard is not None and hard.juxtacortical_fraction > 0:
        jrng = np.random.default_rng([seed, _COHORT_STREAM, 2])
        n_juxta = round(hard.juxtacortical_fraction * len(lesion_idx))
        juxta = {lesion_idx[int(j)] for j in jrng.permutation(len(lesion_idx))[:n_juxta]}
    other_idx = [i for i in lesion_idx if i not in juxta]
    volumes = dict(zip(other_idx, lesion_volumes(len(other_idx), seed, *volume_range_ml), strict=True))
    if juxta and hard is not None:
        juxta_idx = sorted(juxta)
        small = lesion_volumes(len(juxta_idx), seed, *hard.juxtacortical_ml, stream=3)
        volumes.update(zip(juxta_idx, small, strict=True))

    width = max(3, len(str(n_subjects)))
    return [
        SubjectSpec(
            subject=f"synth{i + 1:0{width}d}",
            index=i,
            seed=seed,
            profile=profiles[site_of[i]],
            lesion_ml=volumes.get(i),
            preset=hard,
            juxtacortical=i in juxta,
        )
        for i in range(n_subjects)
    ]


def generate_cohort(
    out: str | Path,
    n_subjects: int = 24,
    n_sites: int = 4,
    seed: int = 0,
    size: str = "small",
    healthy_fraction: float = 0.0,
    workers: int = 1,
    *,
    volume_range_ml: tuple[float, float] = (0.5, 120.0),
    preset: str | HardPreset = "standard",
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write a synthetic multi-site NCCT cohort to ``out`` and return the path of its ``cohort.csv``.

    Args:
        out: output folder (created; files of the same names are overwritten).
        n_subjects: number of subjects (at least ``n_sites``).
        n_sites: number of sites; each has its own scanner profile and at least one subject.
        seed: cohort seed: the same seed gives byte-identical files.
        size: "small" (~128×128×64 at ~1.7×1.7×2.75 mm), "clinical" (512×512×~40 at ~0.45×0.45×5 mm)
            or "tiny" (~64×64×32 at ~3.4×3.4×5 mm; tests and smoke runs only).
        healthy_fraction: share of hemorrhage-free subjects (empty masks).
        workers: processes rendering subjects in parallel (does not change the output).
        volume_range_ml: hemorrhage volumes are spread log-uniformly over this range.
        preset: "standard" (the original cohort, unchanged) or "hard" (mimics, low contrast, thick
            slices with partial volume, small juxtacortical bleeds, unlabelled bleeds; a
            ``HardPreset`` sets its knobs). See ``docs/synthetic.md``.
        progress: called with each subject id as it is written (for progress bars).

    Returns:
        Path of ``<out>/cohort.csv``.

    Example:
        >>> csv_path = generate_cohort("/tmp/synth", n_subjects=4, n_sites=2)  # doctest: +SKIP
    """
    out = Path(out)
    hard = resolve_preset(preset)
    specs = plan_cohort(n_subjects, n_sites, seed, size, healthy_fraction, volume_range_ml, preset=hard)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    log.info(
        "synth: %d subjects on %d sites (%s, %s preset) into %s",
        n_subjects,
        n_sites,
        size,
        "standard" if hard is None else "hard",
        out,
    )

    tasks = [(spec, str(out)) for spec in specs]
    rows: list[dict[str, Any]] = []
    if workers > 1 and len(specs) > 1:
        with ProcessPoolExecutor(
            max_workers=min(workers, len(specs)), mp_context=get_context("spawn")
        ) as pool:
            for row in pool.map(_write_subject, tasks):
                rows.append(row)
                if progress is not None:
                    progress(row["subject"])
    else:
        for task in tasks:
            row = _write_subject(task)
            rows.append(row)
            if progress is not None:
                progress(row["subject"])

    buf = io.StringIO()
    columns = list(COHORT_COLUMNS) if hard is None else [*COHORT_COLUMNS, *HARD_COLUMNS]
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    csv_path = out / "cohort.csv"
    atomic_write_text(csv_path, buf.getvalue())
    profiles = {spec.profile.site: spec.profile for spec in specs}
    settings: dict[str, Any] = {
        "iphbench": __version__,
        "seed": seed,
        "n_subjects": n_subjects,
        "n_sites": n_sites,
        "size": size,
        "healthy_fraction": healthy_fraction,
        "volume_range_ml": list(volume_range_ml),
    }
    if hard is not None:  # the standard cohort's synth.json stays as it was
        settings["preset"] = "hard"
        settings["hard"] = hard.to_dict()
        settings["labels"] = {lab.name.lower(): int(lab) for lab in HardLabel}
    settings["sites"] = [_profile_dict(p) for p in profiles.values()]
    atomic_write_json(out / "synth.json", settings)
    return csv_path


def _profile_dict(p: ScannerProfile) -> dict[str, Any]:
    return {
        "site": p.site,
        "shape": list(p.shape),
        "spacing": list(p.spacing),
        "noise_sd": p.noise_sd,
        "blur_mm": p.blur_mm,
        "blur_z_mm": p.blur_z_mm,
        "hu_offset": p.hu_offset,
        "storage": p.storage,
    }


def _write_subject(task: tuple[SubjectSpec, str]) -> dict[str, Any]:
    """Render one subject, write its image and mask, and return its cohort.csv row."""
    spec, out = task
    scan = synthesize_subject(spec)
    image_rel = f"images/{spec.subject}.nii.gz"
    mask_rel = f"masks/{spec.subject}.nii.gz"
    write_scan_nifti(scan.image, scan, Path(out) / image_rel)
    write_scan_nifti(scan.mask, scan, Path(out) / mask_rel)
    p = spec.profile
    return {
        "subject": spec.subject,
        "site": p.site,
        "age": scan.age,
        "sex": scan.sex,
        "image": image_rel,
        "mask": mask_rel,
        "lesion_ml": f"{scan.lesion_ml:.4f}",
        "target_ml": "" if spec.lesion_ml is None else f"{spec.lesion_ml:.4f}",
        "lesion_hu": "" if scan.lesion is None else f"{scan.lesion_hu:.1f}",
        "location": "" if scan.lesion is None else ("deep" if scan.lesion.deep else "lobar"),
        "synth_matrix": "x".join(str(n) for n in scan.grid.shape),
        "synth_spacing_x": p.spacing[0],
        "synth_spacing_y": p.spacing[1],
        "synth_spacing_z": p.spacing[2],
        "synth_noise_sd": p.noise_sd,
        "synth_blur_mm": p.blur_mm,
        "synth_hu_offset": p.hu_offset,
        "synth_storage": p.storage,
        **(_hard_row(scan) if scan.hard is not None else {}),
    }


def _hard_row(scan: SyntheticScan) -> dict[str, Any]:
    """The hard preset's per-subject columns (``HARD_COLUMNS``)."""
    info = scan.hard
    assert info is not None
    vol = info.volumes_ml
    has_lesion = scan.lesion is not None
    return {
        "synth_preset": "hard",
        "synth_subslices": info.subslices,
        "synth_juxtacortical": (1 if info.juxtacortical else 0) if has_lesion else "",
        "synth_lesion_contrast": f"{info.lesion_hu - info.grey_hu:.1f}" if has_lesion else "",
        "synth_choroid_calc_ml": f"{vol['choroid_calc']:.4f}",
        "synth_pineal_calc_ml": f"{vol['pineal_calc']:.4f}",
        "synth_falx_ml": f"{vol['falx']:.4f}",
        "synth_falx_calc_ml": f"{vol['falx_calc']:.4f}",
        "synth_skull_base": 1 if info.mimics.ridges else 0,
        "synth_streaks": 0 if info.streaks is None else len(info.streaks.streaks),
        "synth_subdural_ml": f"{vol['subdural']:.4f}",
        "synth_subarachnoid_ml": f"{vol['subarachnoid']:.4f}",
        "synth_intraventricular_ml": f"{vol['intraventricular']:.4f}",
    }


def write_scan_nifti(array: np.ndarray, scan: SyntheticScan, path: Path) -> Path:
    """Write a canonical-grid array of ``scan`` as NIfTI in its site's storage axis order."""
    data, affine = to_storage(array, scan.grid.affine, scan.spec.profile.storage)
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_data_dtype(array.dtype)
    with atomic_path(path, suffix=".nii.gz") as tmp:
        nib.save(img, str(tmp))
    return path
