"""The per-subject results table (``<study>/metrics.csv``): loading, the d_H95 policy, naming and row selection.

``metrics.csv`` holds one row per subject × style × orientation × protocol (docs/formats.md).
Everything in :mod:`iphbench.stats` and :mod:`iphbench.report` reads it through
:func:`load_metrics_table` (or :func:`load_metrics`), which applies the study's d_H95 policy once
(:class:`MetricsTable`), and picks its rows with :func:`select_rows`, so that the exclusion rules
(hemorrhage-free subjects, NaN d_H95 of missed lesions) live in one place and are counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from iphbench.config import HD95_POLICIES
from iphbench.evaluation.scoring import analysed_metrics
from iphbench.layout import StudyLayout
from iphbench.stats.formatting import text_labels
from iphbench.study.completeness import ResultsTableError, read_metrics
from iphbench.styles import NNUNET_ORIENTATIONS, ordered_style_names, style_label
from iphbench.views import FUSED, ORIENTATIONS

log = logging.getLogger(__name__)

#: Columns every metrics.csv must hold besides the analysed metrics (:func:`required_columns`).
LABEL_COLUMNS: tuple[str, ...] = ("subject", "site", "age", "sex", "style", "orientation", "protocol")
VOLUME_COLUMNS: tuple[str, ...] = ("ref_ml", "pred_ml")
PROTOCOL_ORDER: tuple[str, ...] = ("paper", "full")


def required_columns() -> tuple[str, ...]:
    """The columns :func:`load_metrics` requires: labels, the analysed metrics
    (:func:`iphbench.evaluation.scoring.analysed_metrics`) and the volumes."""
    return (*LABEL_COLUMNS, *analysed_metrics(), *VOLUME_COLUMNS)


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
    """Read ``metrics.csv`` (or the study folder holding it), refusing a cut or incomplete table.

    The file goes through :func:`iphbench.study.completeness.read_metrics`: it must end with a
    line end, every row must be whole, and, inside a study folder, it must hold one row per test
    subject × style × orientation × protocol. A truncated table would otherwise give statistics on
    the subjects that happened to survive the cut, without a word.

    Args:
        path: the CSV file, or a study folder containing ``metrics.csv``.

    Returns:
        The table with ``site``, ``sex``, ``style``, ``orientation``, ``protocol`` and ``subject`` as strings.

    Raises:
        MetricsTableError: the file is missing, cut short, damaged, lacks a required column or rows of its
            study (the message names the file and what to do).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.csv"
    if not path.is_file():
        raise MetricsTableError(f"{path} does not exist; run 'iphbench evaluate' on the study first")
    try:
        df = read_metrics(path, required_columns())
    except ResultsTableError as exc:
        raise MetricsTableError(str(exc)) from None
    if df.empty:
        raise MetricsTableError(f"{path} holds no rows; evaluation has not scored any subject")
    # labels as plain strings; never astype(str), which keeps NaN under pandas 3 (formatting.py)
    for col in ("subject", "site", "style", "orientation", "protocol"):
        df[col] = text_labels(df[col])
    df["sex"] = [s.strip().upper()[:1] for s in text_labels(df["sex"])]  # missing sex → "" (not M or F)
    df["age"] = pd.to_numeric(df["age"], errors="coerce")
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
    n_nan_empty: int = 0  # of the NaN rows, those of a missed lesion or a false alarm (status)


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
    empty = sub["status"].isin(["missed", "false_alarm"]) if "status" in sub else False
    n_nan_empty = int((nan & empty).sum())
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
        n_nan_empty=n_nan_empty,
    )


def subject_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per subject: subject, site, age, sex, ref_ml (taken from the paper protocol when present)."""
    order = {p: i for i, p in enumerate(ordered_protocols(df["protocol"].unique()))}
    ranked = df.assign(_rank=df["protocol"].map(order)).sort_values(["subject", "_rank"])
    first = ranked.drop_duplicates("subject")
    return first[["subject", "site", "age", "sex", "ref_ml"]].reset_index(drop=True)


def headline_orientation(orientations: object) -> str | None:
    """The orientation a study's statistics describe when none is asked for.

    2.5D (the paper's headline) when present; else the first single view in the paper's row order
    (a study trained on fewer than three views has no 2.5D); else the first other orientation
    (an nnU-Net-only table: ``3D`` or ``2D``); None when there is none at all.
    """
    present = ordered_orientations(orientations)
    if FUSED in present:
        return FUSED
    return present[0] if present else None


@dataclass
class Comparison:
    """The rows of one protocol that the statistics compare, and how they were chosen."""

    rows: pd.DataFrame  # one protocol; ``orientation`` relabelled to the compared one for reference styles
    orientation: str  # the orientation compared
    style_orientations: dict[str, str]  # style → the orientation its rows come from (differs for nnU-Net)
    notes: list[str]


def comparison_rows(df: pd.DataFrame, protocol: str, orientation: str | None = None) -> Comparison:
    """Choose the rows of ``protocol`` on which the styles are compared.

    With an explicit ``orientation`` only the styles that have it are compared. With None the
    headline is used (:func:`headline_orientation`, with a note when it is not 2.5D), and a
    reference style that has no such rows but one orientation of its own (nnU-Net's ``3D`` or
    ``2D``) enters the comparison with its own predictions, labelled: its whole-scan prediction
    is what it offers against the other styles' 2.5D fusion (docs/report.md, "Reference styles").

    Raises:
        MetricsTableError: no rows for ``protocol`` or ``orientation``.
    """
    prot = df[df["protocol"] == protocol]
    if prot.empty:
        raise MetricsTableError(
            f"metrics.csv has no rows for protocol {protocol!r}; it has {sorted(set(df['protocol']))}"
        )
    notes: list[str] = []
    explicit = orientation is not None
    if orientation is None:
        orientation = headline_orientation(prot["orientation"].unique())
        assert orientation is not None  # prot is not empty
        if orientation != FUSED:
            notes.append(
                f"there are no 2.5D rows (2.5D needs all three views): the statistics compare the styles "
                f"on {orientation}"
            )
    rows = prot[prot["orientation"] == orientation]
    if rows.empty:
        have = ordered_orientations(prot["orientation"].unique())
        raise MetricsTableError(
            f"metrics.csv has no rows for protocol {protocol!r}, orientation {orientation!r}; it has {have}"
        )
    style_orient = {s: orientation for s in rows["style"].unique()}
    if not explicit:
        extra = []
        for style, g in prot[~prot["style"].isin(list(style_orient))].groupby("style", sort=True):
            own = sorted(set(g["orientation"]))
            if len(own) == 1 and own[0] not in ORIENTATIONS:
                style_orient[str(style)] = own[0]
                extra.append(g.assign(orientation=orientation))
                notes.append(
                    f"{display_name(str(style))} has no {orientation} rows: it is compared with its own "
                    f"{own[0]} predictions beside the other styles' {orientation}"
                )
        if extra:
            rows = pd.concat([rows, *extra], ignore_index=True)
    others = sorted(set(prot["style"]) - set(style_orient))
    if others:
        notes.append(
            f"{', '.join(display_name(s) for s in ordered_styles(others))}: no {orientation} rows, not compared"
        )
    return Comparison(rows.reset_index(drop=True), orientation, style_orient, notes)


#: Statuses of a subject-row with exactly one empty mask: d_H95 is undefined there.
EMPTY_STATUSES: tuple[str, ...] = ("missed", "false_alarm")


def apply_hd95_policy(df: pd.DataFrame, policy: str = "worst") -> tuple[pd.DataFrame, list[str]]:
    """The metrics table with ``hd95_mm`` of missed lesions and false alarms set by ``policy``.

    ``worst`` gives them the scan's field-of-view diagonal (column ``fov_diagonal_mm``, written by
    ``evaluate``): every style is then averaged over the same subjects (MetricsReloaded; BraTS).
    ``exclude`` sets them to NaN: they are left out, tables show n per cell, and comparisons use the
    subjects every compared style scored. Row by row and idempotent. The statistics, tables and report
    apply it once, where the table is loaded (:class:`MetricsTable`), and pass the result down.

    Returns:
        A copy of ``df`` and notes (e.g. rows that cannot take the worst-case value because
        metrics.csv predates ``fov_diagonal_mm``).

    Raises:
        ValueError: an unknown policy.
    """
    if policy not in HD95_POLICIES:
        raise ValueError(f"d_H95 policy must be one of {list(HD95_POLICIES)}, got {policy!r}")
    out = df.copy()
    if "hd95_mm" not in out.columns or "status" not in out.columns:
        return out, []
    empty = out["status"].isin(EMPTY_STATUSES)
    if policy == "exclude":
        out.loc[empty, "hd95_mm"] = np.nan
        return out, []
    todo = empty & out["hd95_mm"].isna()
    fov = out["fov_diagonal_mm"] if "fov_diagonal_mm" in out.columns else pd.Series(np.nan, index=out.index)
    fill = todo & fov.notna()
    out.loc[fill, "hd95_mm"] = fov[fill]
    left = int((todo & ~fill).sum())
    notes = []
    if left:
        notes.append(
            f"{left} missed-lesion or false-alarm rows have no field-of-view diagonal in metrics.csv (evaluated "
            "before iphbench recorded it): they keep no d_H95 and are excluded; run 'iphbench evaluate' again "
            "to give them the worst-case value"
        )
    return out, notes


@dataclass(frozen=True)
class MetricsTable:
    """metrics.csv with the d_H95 policy applied once: what the statistics, tables and figures read.

    Build it with :func:`load_metrics_table` or :meth:`of`; functions that take one
    (:func:`iphbench.stats.analysis.run_stats`, :func:`iphbench.report.tables.metric_table`, ...)
    use its rows as they are and state its policy.
    """

    df: pd.DataFrame  # every row of metrics.csv, hd95_mm of missed lesions and false alarms set by the policy
    hd95_policy: str  # "worst" or "exclude" (eval.hd95_when_empty)
    notes: tuple[str, ...] = ()  # what the policy could not do (rows without a field-of-view diagonal)

    @classmethod
    def of(cls, data: MetricsTable | pd.DataFrame, hd95_when_empty: str | None = None) -> MetricsTable:
        """``data`` as a policed table: a :class:`MetricsTable` as it is, a DataFrame (rows of metrics.csv,
        e.g. from :func:`load_metrics`) with the policy applied (None = ``worst``).

        Raises:
            ValueError: an unknown policy, or a policy other than the one ``data`` already carries.
        """
        if isinstance(data, MetricsTable):
            if hd95_when_empty is not None and hd95_when_empty != data.hd95_policy:
                raise ValueError(
                    f"the metrics table already holds d_H95 under policy {data.hd95_policy!r}, not "
                    f"{hd95_when_empty!r}; load it again with the policy wanted"
                )
            return data
        policy = hd95_when_empty or "worst"
        df, notes = apply_hd95_policy(data, policy)
        return cls(df, policy, tuple(notes))


def study_hd95_policy(study_dir: str | Path) -> str:
    """``eval.hd95_when_empty`` of ``<study>/config.yaml``; ``worst`` when there is none or it cannot be read."""
    cfg = StudyLayout(study_dir).config_or_none()
    return cfg.eval.hd95_when_empty if cfg is not None else "worst"


def load_metrics_table(path: str | Path, hd95_when_empty: str | None = None) -> MetricsTable:
    """:func:`load_metrics`, then the d_H95 policy, applied once for everything computed from the table.

    Args:
        path: the study folder (or its ``metrics.csv``).
        hd95_when_empty: ``worst`` or ``exclude``; None = the study's ``eval.hd95_when_empty``
            (:func:`study_hd95_policy`; ``worst`` without a config.yaml).

    Raises:
        MetricsTableError: as :func:`load_metrics`.
        ValueError: an unknown policy.
    """
    path = Path(path)
    df = load_metrics(path)
    policy = hd95_when_empty or study_hd95_policy(path if path.is_dir() else path.parent)
    return MetricsTable.of(df, policy)


def common_subjects(rows: pd.DataFrame, metric: str, styles: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Rows of the subjects that every compared style scored (a finite ``metric``), and the styles compared.

    Styles with no value at all are not compared (the caller notes them). Used by every comparison
    across styles, so that no style is averaged over other subjects than the rest.
    """
    vals = rows[rows[metric].notna() & rows["style"].isin(styles)]
    compared = [s for s in styles if (vals["style"] == s).any()]
    if not compared:
        return vals.iloc[0:0], []
    per_subject = vals.groupby("subject")["style"].nunique()
    keep = set(per_subject[per_subject == len(compared)].index)
    return vals[vals["subject"].isin(keep)].reset_index(drop=True), compared
