"""Fig. 1 of the paper: qualitative overlays for a large and a small hemorrhage.

For each chosen subject a block of rows (2DAxi, 2DCor, 2DSag, 2.5D) × one column per style shows
the slice through the centre of mass of the reference mask: the CT in a brain window, the
reference contour, and the prediction coloured as true positive / false positive / false
negative, with the subject's F-measure (for that style, orientation and protocol) top left.

Display convention (every panel): arrays are canonical RAS+ (docs/formats.md); a slice is shown
with ``np.rot90`` so that anterior (axial) or superior (coronal, sagittal) is up and the
patient's right is on the viewer's right (neurological convention). The 2DAxi, 2DCor and 2DSag
rows cut the volume in their own plane; the 2.5D row is shown in the axial plane. Panels are
cropped around the lesion so that small hemorrhages stay visible.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from iphbench.io import read_mask, read_volume
from iphbench.layout import StudyLayout
from iphbench.stats.metrics_table import display_name, ordered_styles

log = logging.getLogger(__name__)

# canonical axis cut by each row; nnU-Net's whole-volume 3D / 2D predictions are shown axially like 2.5D
ROW_PLANE = {"2DAxi": 2, "2DCor": 1, "2DSag": 0, "2.5D": 2, "3D": 2, "2D": 2}
PLANE_NAME = {2: "axial", 1: "coronal", 0: "sagittal"}
TP, FP, FN = (0.0, 0.78, 0.33), (0.9, 0.1, 0.1), (0.1, 0.45, 1.0)
REF_CONTOUR = "#ffd600"


@dataclass
class OverlayCase:
    """One subject of Fig. 1 with its volumes in canonical order."""

    subject: str
    label: str  # "large" or "small"
    age: float
    sex: str
    ref_ml: float
    image: np.ndarray
    mask: np.ndarray
    spacing: tuple[float, float, float]
    predictions: dict[tuple[str, str], np.ndarray | None]  # (style, orientation) → mask or None when missing
    dice: dict[tuple[str, str], float]


def prediction_path(study_dir: Path, protocol: str, style: str, subject: str, orientation: str) -> Path:
    """``<study>/predictions/<protocol>/<style>/<subject>_<orientation>.nii.gz`` (docs/formats.md)."""
    return StudyLayout(study_dir).prediction(protocol, style, subject, orientation)


def pick_cases(
    df: pd.DataFrame, study_dir: str | Path, protocol: str = "paper", small_quantile: float = 0.25
) -> list[tuple[str, str]]:
    """Choose the large and the small hemorrhage for Fig. 1.

    Among subjects with a hemorrhage under ``protocol`` whose image and mask are listed in
    ``prep/subjects.csv`` and who have at least one predicted mask: the largest reference
    volume, and the subject closest to the ``small_quantile`` of reference volume (the very
    smallest lesions are often a few voxels, invisible at figure scale).

    Returns:
        ``[(subject, "large"), (subject, "small")]`` (one entry if only one subject qualifies).
    """
    study_dir = Path(study_dir)
    cohort = _cohort(study_dir)
    sub = df[(df["protocol"] == protocol) & (df["ref_ml"] > 0)].drop_duplicates("subject")
    ok = []
    for s in sub.itertuples(index=False):
        row = cohort.get(str(s.subject))
        if not row or not row.get("image") or not row.get("mask"):
            continue
        if any(StudyLayout(study_dir).predictions_dir(protocol).glob(f"*/{s.subject}_*.nii*")):
            ok.append((str(s.subject), float(s.ref_ml)))
    if not ok:
        return []
    ok.sort(key=lambda t: t[1])
    large = ok[-1]
    rest = ok[:-1]
    if not rest:
        return [(large[0], "large")]
    target = float(np.quantile([v for _, v in ok], small_quantile))
    small = min(rest, key=lambda t: abs(t[1] - target))
    return [(large[0], "large"), (small[0], "small")]


def _cohort(study_dir: Path) -> dict[str, dict[str, str]]:
    path = StudyLayout(study_dir).prep / "subjects.csv"  # the patch store's table of subjects
    if not path.is_file():
        return {}
    table = pd.read_csv(path, dtype=str).fillna("")
    return {r["subject"]: r for r in table.to_dict("records")}


def load_case(
    df: pd.DataFrame,
    study_dir: str | Path,
    subject: str,
    label: str,
    protocol: str,
    labels: list[int] | None = None,
) -> OverlayCase:
    """Read the CT, reference mask and every style's predicted masks of one subject (canonical RAS+)."""
    study_dir = Path(study_dir)
    row = _cohort(study_dir)[subject]
    image = read_volume(row["image"])
    mask = read_mask(row["mask"], labels=labels, like=image)
    rows = df[(df["subject"] == subject) & (df["protocol"] == protocol)]
    preds: dict[tuple[str, str], np.ndarray | None] = {}
    dice: dict[tuple[str, str], float] = {}
    for r in rows.itertuples(index=False):
        key = (str(r.style), str(r.orientation))
        dice[key] = float(r.dice)
        path = prediction_path(study_dir, protocol, key[0], subject, key[1])
        if path.is_file():
            pred = read_mask(path)
            preds[key] = pred.array if pred.shape == image.shape else None
            if preds[key] is None:
                log.warning(
                    "%s has shape %s but the scan has %s; panel left empty", path, pred.shape, image.shape
                )
        else:
            preds[key] = None
    first = rows.iloc[0]
    return OverlayCase(subject, label, float(first["age"]), str(first["sex"]), float(first["ref_ml"]), image.array,
                       mask.array, image.spacing, preds, dice)  # fmt: skip


def _crop_box(
    mask2d: np.ndarray, spacing2d: tuple[float, float], margin_mm: float = 20.0
) -> tuple[slice, slice]:
    idx = np.argwhere(mask2d)
    if idx.size == 0:
        return slice(None), slice(None)
    lo, hi = idx.min(0), idx.max(0) + 1
    out = []
    for d in range(2):
        extent_mm = (hi[d] - lo[d]) * spacing2d[d]
        m = int(np.ceil(max(margin_mm, 0.6 * extent_mm) / spacing2d[d]))
        out.append(slice(max(0, lo[d] - m), min(mask2d.shape[d], hi[d] + m)))
    return out[0], out[1]


def _cut(vol: np.ndarray, axis: int, index: int) -> np.ndarray:
    return np.take(vol, index, axis=axis)


def figure_overlays(
    cases: list[OverlayCase], protocol: str = "paper", window: tuple[float, float] = (-30.0, 100.0)
) -> Figure:
    """Draw Fig. 1 from loaded cases (see :func:`load_case`)."""
    if not cases:
        raise ValueError("Fig. 1 needs at least one subject with an image, a mask and predictions")
    styles = ordered_styles({k[0] for c in cases for k in c.predictions})
    orients = [o for o in ROW_PLANE if any(k[1] == o for c in cases for k in c.predictions)]
    nrow, ncol = len(cases) * len(orients), len(styles)
    width, height = 2.1 * ncol + 0.8, 2.2 * nrow + 0.3 * len(cases) + 1.0
    fig, axes = plt.subplots(nrow, ncol, figsize=(width, height), squeeze=False)
    # fixed margins in inches: tight_layout cannot shrink a tall grid of image panels gracefully
    fig.subplots_adjust(left=0.75 / width, right=1 - 0.1 / width, top=1 - 0.85 / height, bottom=0.45 / height,
                        wspace=0.06, hspace=0.12 + 0.3 * (len(cases) > 1) / len(orients))  # fmt: skip
    for ci, case in enumerate(cases):
        com = np.round(np.argwhere(case.mask).mean(0)).astype(int)
        for oi, orient in enumerate(orients):
            axis = ROW_PLANE[orient]
            keep = [d for d in range(3) if d != axis]
            sp2 = (case.spacing[keep[0]], case.spacing[keep[1]])
            ref2 = _cut(case.mask, axis, int(com[axis])) > 0
            box = _crop_box(ref2, sp2)
            ref_c = ref2[box]
            img_c = _cut(case.image, axis, int(com[axis]))[box]
            aspect = sp2[1] / sp2[0]
            for si, style in enumerate(styles):
                ax = axes[ci * len(orients) + oi, si]
                ax.imshow(
                    np.rot90(img_c),
                    cmap="gray",
                    vmin=window[0],
                    vmax=window[1],
                    aspect=aspect,
                    interpolation="nearest",
                )
                pred = case.predictions.get((style, orient))
                if pred is not None:
                    p = _cut(pred, axis, int(com[axis]))[box] > 0
                    rgba = np.zeros((*p.shape, 4))
                    for m, colour in ((p & ref_c, TP), (p & ~ref_c, FP), (~p & ref_c, FN)):
                        rgba[m, :3] = colour
                        rgba[m, 3] = 0.55
                    ax.imshow(np.rot90(rgba), aspect=aspect, interpolation="nearest")
                    f = case.dice.get((style, orient), float("nan"))
                    ax.text(0.03, 0.97, f"F = {f:.3f}", transform=ax.transAxes, va="top", ha="left", fontsize=8,
                            color="k", bbox={"facecolor": "white", "alpha": 0.8, "pad": 1.5, "lw": 0})  # fmt: skip
                else:
                    ax.text(
                        0.5, 0.5, "no prediction", transform=ax.transAxes, ha="center", color="w", fontsize=8
                    )
                if ref_c.any():
                    ax.contour(
                        np.rot90(ref_c.astype(float)), levels=[0.5], colors=REF_CONTOUR, linewidths=0.8
                    )
                ax.set_xticks([])
                ax.set_yticks([])
                if ci == 0 and oi == 0:
                    ax.set_title(display_name(style), fontsize=10)
                if si == 0:
                    ax.set_ylabel(f"{orient}\n({PLANE_NAME[axis]})", fontsize=9)
        letter = chr(ord("A") + ci)
        sex = {"M": "male", "F": "female"}.get(case.sex, case.sex)
        top = axes[ci * len(orients), 0]
        top.annotate(f"Patient {letter} ({case.label}): {case.subject}, {case.age:.0f}-year-old {sex}, IPH {case.ref_ml:.1f} mL",
                     xy=(0, 1), xycoords="axes fraction", xytext=(0, 16 if ci == 0 else 4), textcoords="offset points",
                     fontsize=10, fontweight="bold", ha="left", va="bottom")  # fmt: skip
    handles = [Patch(color=TP, label="true positive"), Patch(color=FP, label="false positive"),
               Patch(color=FN, label="false negative"), Patch(edgecolor=REF_CONTOUR, facecolor="none", label="reference contour")]  # fmt: skip
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False, fontsize=9)
    fig.suptitle(f"Segmentations per orientation and style ({protocol} protocol)\n"
                 "anterior (axial) or superior (coronal, sagittal) up; patient right on the viewer's right",
                 fontsize=10, y=1 - 0.1 / height, va="top")  # fmt: skip
    return fig
