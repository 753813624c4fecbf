"""Did the models learn? The check behind ``evaluate``'s warning and the report's banner.

A benchmark of models that did not learn ranks nothing: two untrained styles still differ
"significantly" (their noise differs), and the statistics would report that difference as if
it said something about the architectures. A style counts as *not learned* when any of these
holds (thresholds in the study config, ``eval.learning_check``; docs/evaluation.md):

1. **Dice floor**: its best mean Dice over the protocols, in its headline orientation (2.5D, or
   an nnU-Net style's own ``3D``/``2D``) and over subjects with a hemorrhage, is below
   ``min_dice`` (default 0.2). The paper's styles reach about 0.8; an untrained network scores
   near 0.
2. **False positives**: under the ``full`` protocol, the median predicted volume on lesion-free
   scans is above ``max_false_positive_ml`` (default 150 mL). Hemorrhages beyond 100-150 mL are
   rare and nearly always fatal; a model that "finds" that much in a scan without one is
   segmenting something else (an untrained one fills the brain, about 1.2 L).
3. **Flat validation curves**: in more than half of its runs the validation Dice
   (``history.csv``: ``val_dice``, else ``val_subject_dice``, else ``val_iou``) never rose by
   ``min_val_rise`` (default 0.05) above its first value and never reached ``min_dice``.

The study is *not meaningful* when no style learned; when only some did not, comparisons
involving them are not meaningful. Checks that cannot be applied (no lesion-free scans, no
``full`` protocol, no ``history.csv``) are said so in ``notes``; they never raise.

Example:
    >>> import pandas as pd
    >>> m = pd.DataFrame({"subject": ["a", "b"], "style": "unet", "orientation": "2.5D",
    ...                   "protocol": "paper", "dice": [0.05, 0.09], "ref_ml": [3.0, 9.0], "pred_ml": 0.0})
    >>> check = check_learning(m)
    >>> check.meaningful, check.styles[0].reasons[0]
    (False, 'best mean Dice 0.070 (2.5D, paper protocol) is below 0.2')
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from iphbench.config import LearningCheckConfig
from iphbench.layout import StudyLayout
from iphbench.styles import ordered_style_names, style_label
from iphbench.views import FUSED, ORIENTATIONS

log = logging.getLogger(__name__)

#: history.csv columns read as the validation score, in order of preference.
VALIDATION_COLUMNS: tuple[str, ...] = ("val_dice", "val_subject_dice", "val_iou")


@dataclass
class StyleLearning:
    """What the check found for one style."""

    style: str
    orientation: str  # the orientation judged: 2.5D, a reference style's own, or its best single view
    best_dice: float  # best mean Dice over the protocols (subjects with a hemorrhage); NaN if none
    best_dice_protocol: str  # the protocol of best_dice
    fp_median_ml: float  # median false-positive mL per lesion-free scan (full protocol); NaN if none
    n_lesion_free: int  # lesion-free scans behind fp_median_ml
    runs: int  # runs with a readable validation curve
    runs_flat: int  # of which never rose
    reasons: list[str] = field(default_factory=list)  # why it did not learn; empty when it did

    @property
    def learned(self) -> bool:
        return not self.reasons


@dataclass
class LearningCheck:
    """The verdict for a study: per style, with the thresholds used and what could not be checked."""

    styles: list[StyleLearning]
    thresholds: LearningCheckConfig
    notes: list[str] = field(default_factory=list)  # checks that could not be applied

    @property
    def meaningful(self) -> bool:
        """True when every style learned (no banner)."""
        return all(s.learned for s in self.styles)

    @property
    def not_learned(self) -> list[str]:
        return [s.style for s in self.styles if not s.learned]

    def headline(self) -> str:
        """One sentence for the banner; empty when every style learned."""
        if self.meaningful:
            return ""
        if not any(s.learned for s in self.styles):
            return "These results are not meaningful: the models did not learn."
        names = ", ".join(style_label(s) for s in self.not_learned)
        return f"Not every style learned: comparisons involving {names} are not meaningful."

    def lines(self) -> list[str]:
        """One line per style that did not learn, with the numbers that show it."""
        return [f"{style_label(s.style)}: {'; '.join(s.reasons)}." for s in self.styles if not s.learned]

    def explanation(self) -> str:
        """What the banner means and where the thresholds are set."""
        t = self.thresholds
        return (
            "The statistics are still computed and shown, but differences between models that did not learn "
            "say nothing about the architectures. Thresholds (study config, eval.learning_check): "
            f"min_dice {t.min_dice:g}, max_false_positive_ml {t.max_false_positive_ml:g}, "
            f"min_val_rise {t.min_val_rise:g}."
        )

    def text(self) -> str:
        """Headline, one line per style that did not learn, and the explanation (plain text)."""
        if self.meaningful:
            return ""
        return "\n".join([self.headline(), *(f"- {ln}" for ln in self.lines()), self.explanation()])


def headline_orientations(orientations: set[str]) -> list[str]:
    """Orientations a style is judged on: 2.5D when present, else a reference style's own (``3D``),
    else every single view it has (the best of them counts)."""
    if FUSED in orientations:
        return [FUSED]
    own = sorted(o for o in orientations if o not in ORIENTATIONS)
    return own[:1] if own else [o for o in ORIENTATIONS if o in orientations]


def check_learning(
    metrics: pd.DataFrame,
    study_dir: str | Path | None = None,
    thresholds: LearningCheckConfig | None = None,
) -> LearningCheck:
    """Judge whether each style of a study learned (module docstring).

    Args:
        metrics: the metrics table (columns style, orientation, protocol, dice, ref_ml, pred_ml).
        study_dir: the study folder, for the runs' ``history.csv``; None skips the curve check.
        thresholds: ``eval.learning_check`` of the study; None = the defaults.
    """
    t = thresholds or LearningCheckConfig()
    notes: list[str] = []
    histories = _histories(Path(study_dir), notes) if study_dir is not None else {}
    if study_dir is not None and not histories:
        notes.append("no readable runs/*/*/fold*/history.csv: the validation curves were not checked")
    styles = []
    for style in ordered_style_names(metrics["style"].unique()):
        rows = metrics[metrics["style"] == style]
        styles.append(_judge(style, rows, histories.get(style, []), t))
    if "full" not in set(metrics["protocol"]):
        notes.append("no full protocol in metrics.csv: false positives on lesion-free scans were not checked")
    elif not (metrics.loc[metrics["protocol"] == "full", "ref_ml"] <= 0).any():
        notes.append(
            "no lesion-free scan in the study: false positives on lesion-free scans were not checked"
        )
    return LearningCheck(styles, t, notes)


def _judge(style: str, rows: pd.DataFrame, curves: list[np.ndarray], t: LearningCheckConfig) -> StyleLearning:
    candidates = headline_orientations({str(o) for o in rows["orientation"].unique()})
    pos = rows[rows["orientation"].isin(candidates) & (rows["ref_ml"] > 0)]
    means = pos.groupby(["orientation", "protocol"])["dice"].mean().dropna()
    if len(means):
        (orient, best_p), best = means.idxmax(), float(means.max())
        orient, best_p = str(orient), str(best_p)
    else:
        orient, best_p, best = candidates[0], "", math.nan
    free = rows[(rows["orientation"] == orient) & (rows["protocol"] == "full") & (rows["ref_ml"] <= 0)]
    fp_ml = pd.to_numeric(free["pred_ml"], errors="coerce").dropna()
    fp = float(fp_ml.median()) if len(fp_ml) else math.nan
    flat = [c for c in curves if _never_rose(c, t)]
    reasons = []
    if math.isfinite(best) and best < t.min_dice:
        reasons.append(f"best mean Dice {best:.3f} ({orient}, {best_p} protocol) is below {t.min_dice:g}")
    if math.isfinite(fp) and fp > t.max_false_positive_ml:
        reasons.append(
            f"median false-positive volume on {len(fp_ml)} lesion-free scans is {fp:.0f} mL ({orient}, full "
            f"protocol), above {t.max_false_positive_ml:g} mL: more than any plausible hemorrhage"
        )
    if curves and 2 * len(flat) > len(curves):
        tops = [float(np.max(c)) for c in curves]
        reasons.append(
            f"its validation Dice never rose in {len(flat)} of {len(curves)} runs "
            f"(best validation values {min(tops):.3f} to {max(tops):.3f})"
        )
    return StyleLearning(style, orient, best, best_p, fp, len(fp_ml), len(curves), len(flat), reasons)


def _never_rose(curve: np.ndarray, t: LearningCheckConfig) -> bool:
    top = float(np.max(curve))
    return top < t.min_dice and top - float(curve[0]) < t.min_val_rise


def _histories(study: Path, notes: list[str]) -> dict[str, list[np.ndarray]]:
    """Validation curves per style from the runs' ``history.csv`` (columns read by name)."""
    out: dict[str, list[np.ndarray]] = {}
    bad: list[str] = []
    layout = StudyLayout(study)
    for run, hist in layout.histories():
        col = next((c for c in VALIDATION_COLUMNS if c in hist.columns), None) if hist is not None else None
        values = (
            pd.to_numeric(hist[col], errors="coerce").to_numpy(float)
            if hist is not None and col
            else np.empty(0)
        )
        values = values[np.isfinite(values)]
        if values.size == 0:
            bad.append(str(run.history.relative_to(layout.root)))
            continue
        out.setdefault(run.style, []).append(values)
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        notes.append(
            f"{len(bad)} history.csv file(s) had no validation values ({', '.join(VALIDATION_COLUMNS)}): {shown}"
        )
    return out


def load_thresholds(study_dir: str | Path) -> LearningCheckConfig:
    """``eval.learning_check`` from ``<study>/config.yaml``; the defaults when there is none or it is invalid."""
    cfg = StudyLayout(study_dir).config_or_none()
    return cfg.eval.learning_check if cfg is not None else LearningCheckConfig()


__all__ = [
    "VALIDATION_COLUMNS",
    "LearningCheck",
    "StyleLearning",
    "check_learning",
    "headline_orientations",
    "load_thresholds",
]
