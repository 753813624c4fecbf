"""The per-subject results table (``<study>/metrics.csv``): loading, naming and row selection.

``metrics.csv`` holds one row per subject × style × orientation × protocol (docs/formats.md).
Everything in :mod:`iphbench.stats` and :mod:`iphbench.report` reads it through
:func:`load_metrics` and picks its rows with :func:`select_rows`, so that the exclusion rules
(hemorrhage-free subjects, NaN d_H95 of missed lesions) live in one place and are counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from iphbench.styles import ARCH_LABELS, NNUNET_ORIENTATIONS, ordered_style_names, style_label
from iphbench.views import FUSED, ORIENTATIONS

log = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = (
    "subject",
    "site",
    "age",
    "sex",
    "style",
    "orientation",
    "protocol",
    "dice",
    "iou",
    "hd95_mm",
    "ref_ml",
    "pred_ml",
)

#: Display names of the architectures (paper section 3.3) and nnU-Net reference styles.
STYLE_NAMES: dict[str, str] = ARCH_LABELS

#: Metrics of the paper (Tables 2-4), their labels and which direction is better.
METRIC_LABELS: dict[str, str] = {"dice": "F-measure", "iou": "IoU", "hd95_mm": "d_H95 (mm)"}
HIGHER_IS_BETTER: dict[str, bool] = {"dice": True, "iou": True, "hd95_mm": False}
PROTOCOL_ORDER: tuple[str, ...] = ("paper", "full")


class MetricsTableError(ValueError):
    """``metrics.csv`` is missing, malformed, or holds no rows for the requested selection."""


def display_name(style: str) -> str:
    """``"attention_unet"`` → ``"Attention U-Net"``, ``"unet+iphbench"`` → ``"U-Net (iphbench recipe)"``;
    unknown styles are shown as they are."""
    return style_label(style)


def ordered_styles(styles: object) -> list[str]:
    """Styles in the paper's column order: alphabetical by display name (Attention U-Net, FPN, Trans U-Net,
    U-Net), each architecture's other recipes after it, nnU-Net reference styles last."""
    return ordered_style_names(styles)  # type: ignore[arg-type]


def ordered_orientations(orientations: object) -> list[str]:
    """Orientations in the paper's row order (2DAxi, 2DCor, 2DSag, 2.5D), unknown ones last."""
    present = {str(o) for o in orientations}  # type: ignore[attr-defined]
    known = [o for o in ORIENTATIONS if o in present]
    return known + sorted(present - set(known))


def at_orientation(df: pd.DataFrame, orientation: str) -> pd.Series:
    """Rows analysed at ``orientation``: its own rows and, at the 2.5D headline, each nnU-Net reference style
    at the one orientation it predicts in (``3D`` or ``2D``), so that statistics and figures compare it with
    the fused 2D models on the same subjects (docs/nnunet.md)."""
    mask = df["orientation"] == orientation
    if orientation == FUSED:
        mask |= df["orientation"] == df["style"].map(NNUNET_ORIENTATIONS)
    return mask


def reference_note(styles: object) -> str:
    """A sentence naming the nnU-Net styles among ``styles`` and the orientation they enter with, or ``""``."""
    ref = [s for s in ordered_style_names(styles) if s in NNUNET_ORIENTATIONS]  # type: ignore[arg-type]
    if not ref:
        return ""
    shown = ", ".join(f"{style_label(s)} ({NNUNET_ORIENTATIONS[s]})" for s in ref)
    return f"nnU-Net reference styles enter with the orientation they predict in: {shown}"


def ordered_protocols(protocols: object) -> list[str]:
    """Protocols in the order paper, full, then any other."""
    present = {str(p) for p in protocols}  # type: ignore[attr-defined]
    known = [p for p in PROTOCOL_ORDER if p in present]
    return known + sorted(present - set(known))


def load_metrics(path: str | Path) -> pd.DataFrame:
    """Read ``metrics.csv`` (or the study folder holding it) and check its columns.

    Args:
        path: the CSV file, or a study folder containing ``metrics.csv``.

    Returns:
        The table with ``site``, ``sex``, ``style``, ``orientation``, ``protocol`` and ``subject`` as strings.

    Raises:
        MetricsTableError: the file is missing or lacks a required column (the message names both).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.csv"
    if not path.is_file():
        raise MetricsTableError(f"{path} does not exist; run 'iphbench evaluate' on the study first")
    try:
        df = pd.read_csv(path, dtype={"subject": str, "site": str, "sex": str})
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise MetricsTableError(
            f"{path} is not a readable metrics table ({exc}); run 'iphbench evaluate' on the study again"
        ) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise MetricsTableError(f"{path} lacks column(s) {missing}; it must hold {list(REQUIRED_COLUMNS)}")
    if df.empty:
        raise MetricsTableError(f"{path} holds no rows; evaluation has not scored any subject")
    for col in ("subject", "site", "sex", "style", "orientation", "protocol"):
        df[col] = df[col].astype(str)
    df["sex"] = df["sex"].str.strip().str.upper().str[:1]
    if "status" not in df.columns:
        df["status"] = np.where(df["hd95_mm"].isna(), "missed", "ok")
    return df


@dataclass
class Selection:
    """Rows of one metric chosen for a model, with what was left out and why."""

    rows: pd.DataFrame  # the kept rows (subject-level, one per subject × style)
    n_hemorrhage_free: (
        int  # subject-rows with ref_ml == 0 left out (their false positives are reported apart)
    )
    n_nan: int  # subject-rows whose metric is NaN (d_H95 of a missed lesion or a false alarm)
    n_missing_covariate: int  # subject-rows with no age or sex


def select_rows(
    df: pd.DataFrame,
    metric: str,
    orientation: str,
    protocol: str,
    styles: list[str] | None = None,
    covariates: bool = True,
    references: bool = True,
) -> Selection:
    """Pick the subject-level rows of one metric for one orientation and protocol.

    Hemorrhage-free subjects (``ref_ml == 0``, present only under the ``full`` protocol) are left
    out because the paper's statistics describe segmentation of present hemorrhages (their
    false-positive volume is reported by :func:`iphbench.stats.agreement.false_positive_free`).
    Rows with a NaN metric (d_H95 when one mask is empty) are left out and counted.

    Args:
        df: the table from :func:`load_metrics`.
        metric: ``dice``, ``iou``, ``hd95_mm`` or any numeric column.
        orientation: ``2DAxi``, ``2DCor``, ``2DSag`` or ``2.5D``.
        protocol: ``paper`` or ``full``.
        styles: restrict to these styles; None = all.
        covariates: also drop rows lacking age or sex (needed by the regression models).
        references: at 2.5D, include nnU-Net reference styles at their own orientation (:func:`at_orientation`);
            False keeps the rows labelled ``orientation`` only (the tables' rows).
    """
    if metric not in df.columns:
        raise MetricsTableError(f"metrics.csv has no column {metric!r}; columns are {list(df.columns)}")
    at = at_orientation(df, orientation) if references else df["orientation"] == orientation
    sub = df[at & (df["protocol"] == protocol)]
    if styles is not None:
        sub = sub[sub["style"].isin(styles)]
    free = sub["ref_ml"] <= 0
    sub = sub[~free]
    nan = sub[metric].isna()
    sub = sub[~nan]
    n_missing_cov = 0
    if covariates:
        bad = sub["age"].isna() | ~sub["sex"].isin(["M", "F"])
        n_missing_cov = int(bad.sum())
        sub = sub[~bad]
    return Selection(
        rows=sub.reset_index(drop=True),
        n_hemorrhage_free=int(free.sum()),
        n_nan=int(nan.sum()),
        n_missing_covariate=n_missing_cov,
    )


def subject_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per subject: subject, site, age, sex, ref_ml (taken from the paper protocol when present)."""
    order = {p: i for i, p in enumerate(ordered_protocols(df["protocol"].unique()))}
    ranked = df.assign(_rank=df["protocol"].map(order)).sort_values(["subject", "_rank"])
    first = ranked.drop_duplicates("subject")
    return first[["subject", "site", "age", "sex", "ref_ml"]].reset_index(drop=True)
