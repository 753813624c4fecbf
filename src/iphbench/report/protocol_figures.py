"""The figures of one protocol in the report: Fig. 1 (overlays), Fig. 2, Fig. 3 and the volume agreement.

Each is drawn, saved under ``<study>/figures/`` (PNG, and PDF when asked) and given its caption; a
figure that cannot be drawn is replaced by a sentence saying why, so that one broken file never
costs the whole report.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from iphbench.layout import StudyLayout
from iphbench.report.figures import (
    figure_age_vs_f,
    figure_site_boxplots,
    figure_volume_agreement,
    save_figure,
)
from iphbench.report.overlays import figure_overlays, load_case, pick_cases

log = logging.getLogger(__name__)


@dataclass
class ReportFigure:
    """A saved figure and its caption."""

    number: str  # "1", "2", "3" or "V"
    caption: str
    png: Path


def protocol_figures(
    df: pd.DataFrame,
    frame: pd.DataFrame,
    study: Path,
    protocol: str,
    orientation: str,
    formats: tuple[str, ...],
) -> tuple[list[ReportFigure], list[str]]:
    """Fig. 1 from ``df`` (every orientation), Fig. 2, 3 and V from ``frame`` (the compared rows), and the
    sentences saying which could not be drawn."""
    out = StudyLayout(study).figures_dir
    figs, problems = _overlay_figure(df, study, protocol, formats)
    tag = f"{protocol} protocol"
    specs = [
        ("2", figure_age_vs_f, f"fig2_age_vs_f_{protocol}",
         f"Figure 2 ({tag}, {orientation}): age vs F-measure per style. Marker size: predicted hemorrhage volume; "
         "colour: predicted/reference volume, red under-estimated, green correct, blue over-estimated."),
        ("3", figure_site_boxplots, f"fig3_site_boxplots_{protocol}",
         f"Figure 3 ({tag}, {orientation}): F-measure per site and style; N is the number of subjects per site."),
        ("V", figure_volume_agreement, f"figV_volume_agreement_{protocol}",
         f"Figure V ({tag}, {orientation}, beyond the paper): predicted vs reference volume with the identity "
         "line (top) and Bland-Altman plots with the bias and 95% limits of agreement (bottom)."),
    ]  # fmt: skip
    for number, fn, stem, caption in specs:
        try:
            png = save_figure(fn(frame, orientation, protocol), out, stem, formats=formats)[0]
        except ValueError as exc:  # e.g. no subject with a hemorrhage: say so instead of failing the report
            log.warning("Figure %s (%s) not drawn: %s", number, protocol, exc)
            problems.append(f"Figure {number} ({tag}) could not be drawn: {exc}")
            continue
        figs.append(ReportFigure(number, caption, png))
    return figs, problems


def _overlay_figure(
    df: pd.DataFrame, study: Path, protocol: str, formats: tuple[str, ...]
) -> tuple[list[ReportFigure], list[str]]:
    """Fig. 1 of one protocol, or why it is absent."""
    tag = f"{protocol} protocol"
    picks = pick_cases(df, study, protocol)
    if not picks:
        return [], [
            f"Figure 1 ({tag}) is absent: no subject has an image and mask in prep/subjects.csv and predicted masks "
            f"under predictions/{protocol}/."
        ]
    out = StudyLayout(study).figures_dir
    try:
        labels = _mask_labels(study)
        cases = [load_case(df, study, s, lab, protocol, labels) for s, lab in picks]
        fig = figure_overlays(cases, protocol, _window(study))
        png = save_figure(fig, out, f"fig1_overlays_{protocol}", formats=formats)[0]
    except Exception as exc:  # a broken file must not cost the whole report
        log.warning("Figure 1 (%s) not drawn: %s", protocol, exc)
        return [], [f"Figure 1 ({tag}) could not be drawn: {exc}"]
    who = " and ".join(f"{c.subject} ({c.label}, {c.ref_ml:.1f} mL)" for c in cases)
    caption = (
        f"Figure 1 ({tag}): qualitative segmentations of {who}. Rows: 2DAxi, 2DCor, 2DSag (each in its own plane) "
        "and 2.5D (axial plane), through the lesion's centre of mass; columns: styles. Green true positive, red "
        "false positive, blue false negative, yellow reference contour; the subject's F-measure top left. "
        "Anterior/superior up, patient right on the viewer's right."
    )
    return [ReportFigure("1", caption, png)], []


def _mask_labels(study: Path) -> list[int] | None:
    cfg = StudyLayout(study).config_or_none()
    return cfg.prep.mask_labels if cfg is not None else None


def _window(study: Path) -> tuple[float, float]:
    cfg = StudyLayout(study).config_or_none()
    return (cfg.prep.hu_min, cfg.prep.hu_max) if cfg is not None else (-30.0, 100.0)


__all__ = ["ReportFigure", "protocol_figures"]
