"""Optional post-processing of the ``iphbench`` recipe: drop predicted components smaller than a volume.

Under the ``full`` protocol and in ``predict`` a model sees the whole brain, and scattered
specks of a few voxels (calcifications, partial volume of bone) become false lesions.
Removing connected components (26-connectivity) below ``min_ml`` trades a little
sensitivity to the smallest bleeds for fewer false alarms. ``train.iphbench.min_component_ml``
sets it: a volume in mL, 0 (off), or ``"auto"``: chosen for each style and fold on that
fold's **validation** subjects (never its test subjects) from the mean per-subject Dice of
the 2.5D prediction over the whole brain, conservatively: the *smallest* candidate whose
mean Dice is within one standard error of the best (:func:`choose_min_component_ml`).
Validation sets are small and the scores of neighbouring volumes nearly flat, so taking
the bare maximum removes real small bleeds for a gain that is noise (measured on the hard
synthetic preset: a 0.5–1 mL choice cut the Dice of lesions under 2 mL from 0.28 to 0.03).
The paper recipe is never post-processed.

The choice is stored in ``<study>/eval/postprocess.json`` ({style: {fold: mL}}) and stated in
the report.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from iphbench._files import atomic_write_json
from iphbench.evaluation.metrics import dice
from iphbench.inference import fuse_views, predict_subject_views, threshold
from iphbench.masks import remove_small_components
from iphbench.styles import parse_style
from iphbench.views import FUSED

if TYPE_CHECKING:
    import pandas as pd
    import torch
    from torch import nn

    from iphbench.config import StudyConfig
    from iphbench.preprocessing.store import PatchStore

#: Volumes (mL) tried by ``"auto"``: 0 (off) to 1 mL; the smallest IPH in clinical series is ~0.1 mL.
CANDIDATES_ML: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


#: The least tolerance (mean Dice) of the choice, for very small or very uniform validation sets.
MIN_TOLERANCE = 0.01


def choose_min_component_ml(
    cases: Sequence[tuple[np.ndarray, np.ndarray, float]],
    candidates: Sequence[float] = CANDIDATES_ML,
    min_tolerance: float = MIN_TOLERANCE,
) -> tuple[float, dict[float, float]]:
    """The smallest candidate volume whose mean Dice over ``cases`` is close to the best.

    "Close" is the one-standard-error rule of model selection (Hastie, Tibshirani &
    Friedman, *Elements of Statistical Learning*, 7.10): the best candidate's mean
    per-subject Dice minus the candidate's is no more than the standard error of that
    paired per-subject difference, and never less than ``min_tolerance``. A removal volume
    is chosen only when it helps by more than the validation set can resolve, because
    every removal also deletes true lesions smaller than it.

    Args:
        cases: (predicted mask, reference mask, voxel volume in mL) per validation subject.
            Dice follows DESIGN.md: 1 when both are empty, 0 when only one is.
        candidates: volumes to try, in mL (0 = off).
        min_tolerance: the least tolerance in mean Dice.

    Returns:
        (chosen mL, {candidate: mean Dice}).
    """
    if not cases:
        return 0.0, {}
    order = sorted(float(c) for c in candidates)
    per_subject = np.array(
        [[dice(remove_small_components(p, v, c), r) for p, r, v in cases] for c in order]
    )  # candidates × subjects
    means = per_subject.mean(axis=1)
    best = per_subject[int(np.argmax(means))]
    for c, row in zip(order, per_subject, strict=True):
        diff = best - row
        se = float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else 0.0
        if diff.mean() <= max(se, min_tolerance) + 1e-12:
            return c, {k: float(m) for k, m in zip(order, means, strict=True)}
    raise AssertionError("unreachable: the best candidate is within its own tolerance")


class PostprocessTable:
    """``<study>/eval/postprocess.json``: the volume chosen (or set) per style and fold."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.data: dict[str, dict[str, dict[str, object]]] = (
            json.loads(self.path.read_text(encoding="utf-8")) if self.path.exists() else {}
        )

    def get(self, style: str, fold: int) -> float | None:
        entry = self.data.get(style, {}).get(str(fold))
        return None if entry is None else float(entry["min_ml"])  # type: ignore[arg-type]

    def put(self, style: str, fold: int, min_ml: float, how: str, scores: dict[float, float]) -> None:
        self.data.setdefault(style, {})[str(fold)] = {
            "min_ml": min_ml,
            "how": how,
            "validation_dice": {str(k): round(v, 6) for k, v in scores.items()},
        }
        atomic_write_json(self.path, self.data)

    def summary(self) -> dict[str, list[float]]:
        """style → chosen volumes of its folds, in fold order."""
        return {s: [float(e["min_ml"]) for _, e in sorted(f.items(), key=lambda kv: int(kv[0]))]  # type: ignore[arg-type]
                for s, f in self.data.items()}  # fmt: skip


def postprocess_volumes(
    cfg: StudyConfig,
    store: PatchStore,
    folds: pd.DataFrame,
    fold: int,
    models: dict[str, dict[str, list[nn.Module]]],
    device: torch.device,
    table: PostprocessTable,
) -> dict[str, float]:
    """The minimum component volume (mL) of each style for ``fold`` (0 = none).

    Styles of the paper recipe get 0; an ``iphbench`` style gets its fixed
    ``min_component_ml``, or with ``"auto"`` the volume chosen on the fold's validation
    subjects (:func:`choose_min_component_ml`), computed once and kept in ``table``.
    """
    setting = cfg.train.iphbench.min_component_ml
    out: dict[str, float] = {}
    auto: list[str] = []
    for style in models:
        if parse_style(style).recipe != "iphbench":
            out[style] = 0.0
        elif setting != "auto":
            out[style] = float(setting)
        elif (known := table.get(style, fold)) is not None:
            out[style] = known
        else:
            auto.append(style)
    if not auto:
        return out
    val = [str(s) for s in folds.loc[(folds["fold"] == fold) & (folds["role"] == "val"), "subject"]]
    cases: dict[str, list[tuple[np.ndarray, np.ndarray, float]]] = {s: [] for s in auto}
    for subject in val:
        prepared = store.load(subject)
        origins = store.patch_origins(subject, "brain")
        brain = np.asarray(prepared.brain, dtype=bool)
        ref = np.asarray(prepared.mask, dtype=bool)
        voxel_ml = float(np.prod(prepared.meta.spacing)) / 1000.0
        for style in auto:
            probs = predict_subject_views(prepared.image, origins, store.patch_size, models[style], device,
                                          batch_size=cfg.eval.batch_size)  # fmt: skip
            fused = fuse_views(probs) if len(probs) == 3 else next(iter(probs.values()))  # 2.5D when there
            cases[style].append((threshold(fused, cfg.eval.threshold) & brain, ref, voxel_ml))
    orientation = FUSED if all(len(models[s]) == 3 for s in auto) else "single view"
    for style in auto:
        chosen, scores = choose_min_component_ml(cases[style])
        table.put(
            style,
            fold,
            chosen,
            f"auto: smallest volume within one standard error of the best mean Dice of {len(val)} "
            f"validation subject(s), {orientation}, full protocol",
            scores,
        )
        out[style] = chosen
    return out


__all__ = [
    "CANDIDATES_ML",
    "MIN_TOLERANCE",
    "PostprocessTable",
    "choose_min_component_ml",
    "postprocess_volumes",
]
