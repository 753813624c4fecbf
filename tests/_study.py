"""Build a tiny trained study quickly, for the evaluation, inference and CLI tests.

``build_tiny_study`` writes a synthetic cohort (``size="tiny"``: about 64x64x32 voxels, four
sites stored in RAS, LPS, a permuted SAR and LAS axis order, a quarter hemorrhage-free),
prepares it with 32³ patches, and trains width-4 models of a few styles in all three views
for one short epoch on two folds. The models are nearly untrained: the tests check the
plumbing (which model scores which subject, regions, alignment, caching), not accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from iphbench.config import FoldsConfig, PrepConfig, StudyConfig

PATCH = 32  # 32³ patches: tiny volumes still hold several patches
K = 2  # folds
VAL_FRACTION = 0.25


def _folds_seed(subjects: Any, k: int, val_fraction: float) -> int:
    """A folds seed whose every fold has a hemorrhage subject among its train and its val subjects.

    The trainer refuses a validation set without lesion patches; with two hemorrhage-free
    subjects out of eight, some seeds give one.
    """
    from iphbench.training.folds import make_folds

    lesion = set(subjects.loc[subjects["ref_ml"] > 0, "subject"])
    for seed in range(200):
        folds = make_folds(subjects, FoldsConfig(k=k, val_fraction=val_fraction, seed=seed))
        ok = all(
            set(folds.loc[(folds["fold"] == f) & (folds["role"] == role), "subject"]) & lesion
            for f in range(k)
            for role in ("train", "val")
        )
        if ok:
            return seed
    raise RuntimeError("no folds seed gives every fold a hemorrhage subject in train and val")


def study_dict(
    cohort: Path, out: Path, styles: Sequence[str], folds_seed: int, **extra: Any
) -> dict[str, Any]:
    """The tiny study's settings as a plain dict (what a study YAML holds)."""
    data: dict[str, Any] = {
        "cohort": str(cohort),
        "out": str(out),
        "name": "tiny",
        "prep": {"patch_size": PATCH},
        "models": {"names": list(styles), "width": 4},
        "folds": {"k": K, "val_fraction": VAL_FRACTION, "seed": folds_seed},
        "train": {"epochs": 1, "batch_size": 8, "steps_per_epoch": 1, "device": "cpu"},
        "eval": {"batch_size": 64},
    }
    data.update(extra)
    return data


def build_tiny_study(
    root: Path,
    styles: Sequence[str] = ("unet", "fpn"),
    n_subjects: int = 8,
    n_sites: int = 4,
    healthy_fraction: float = 0.25,
    seed: int = 3,
    **extra: Any,
) -> Path:
    """Write cohort, patch store, folds and trained runs under ``root``; return the study folder.

    Takes about 5 s on one CPU thread. The study folder holds ``config.yaml`` (with the
    cohort path absolute), ``folds.csv``, ``prep/`` and ``runs/<style>/<view>/fold<k>/``.
    ``extra`` replaces top-level study settings (e.g. ``train=...``).
    """
    from iphbench.preprocessing.store import PatchStore, prepare_store
    from iphbench.study.grid import run_study
    from iphbench.synth import generate_cohort

    root = Path(root)
    cohort = generate_cohort(
        root / "cohort", n_subjects=n_subjects, n_sites=n_sites, seed=seed, size="tiny",
        healthy_fraction=healthy_fraction,
    )  # fmt: skip
    out = root / "study"
    # prepared here in this process (workers=1): run_study then finds every subject done
    prep = prepare_store(cohort, out / "prep", PrepConfig(patch_size=PATCH), workers=1, progress=False)
    if not prep.ok:
        raise RuntimeError(f"tiny study: preparation failed: {prep.failed}")
    folds_seed = _folds_seed(PatchStore(out / "prep").subjects_table, K, VAL_FRACTION)
    cfg = StudyConfig.from_dict(study_dict(cohort, out, styles, folds_seed, **extra))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = run_study(cfg, executor="local", devices=["cpu"])
    finally:
        torch.set_num_threads(threads)
    if not result.ok:
        raise RuntimeError(f"tiny study: training failed: {result.failed}")
    return out
