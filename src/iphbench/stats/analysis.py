"""The whole statistical analysis of one protocol and orientation (paper sections 3.5 and 4).

:func:`run_stats` is a pure function of the metrics table: for each metric (F-measure, IoU,
d_H95) it fits the per-style OLS of paper eq. 6, the paper's one-way ANOVA across styles and its
post-hoc unpaired t-tests with Bonferroni correction ("as published"), the comparisons on the same
subjects (repeated-measures ANOVA, or Friedman and Wilcoxon tests when its residuals are not normal;
:mod:`iphbench.stats.repeated`), the random-site-intercept mixed model, the volume agreement and the
lesion-wise detection. Comparisons across styles use the subjects that every compared style scored.
d_H95 of a missed lesion or a false alarm follows the policy the table was loaded with (``worst`` by
default, :class:`iphbench.stats.metrics_table.MetricsTable`). Nothing is read or written here;
:func:`iphbench.stats.write.write_stats` stores the result under ``<study>/stats/``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from iphbench.evaluation.scoring import analysed_metrics, metric_info
from iphbench.stats.agreement import FalsePositiveFree, VolumeAgreement, false_positive_free, volume_agreement
from iphbench.stats.comparison import AnovaResult, PairwiseResult, one_way_anova, pairwise_unpaired
from iphbench.stats.detection import DetectionSummary, detection_summary, has_lesion_columns
from iphbench.stats.metrics_table import (
    MetricsTable,
    common_subjects,
    comparison_rows,
    display_name,
    ordered_styles,
    select_rows,
)
from iphbench.stats.regression import SINGLE_SITE_NOTE, MixedResult, OLSResult, fit_mixed, fit_ols
from iphbench.stats.repeated import SameSubjects, same_subject_comparison

log = logging.getLogger(__name__)


@dataclass
class RowCounts:
    """How many subject-rows of one metric entered the models and how many were left out, and why."""

    used: int  # subject × style rows in the comparisons (the regressions also need age and sex)
    hemorrhage_free: int  # left out: ref_ml == 0 (full protocol)
    nan_metric: int  # left out: metric is NaN (under `exclude`: d_H95 of a missed lesion or false alarm)
    missing_covariate: int  # left out of the regressions: no age or sex
    worst_case: int = 0  # d_H95 rows holding the worst-case value (missed lesion or false alarm, `worst`)
    not_common: int = 0  # left out of the comparisons: a subject that not every compared style scored


@dataclass
class MetricStats:
    """All the statistics of one metric."""

    metric: str
    counts: RowCounts
    ols: list[OLSResult]  # one per style that could be fitted
    mixed: list[MixedResult]  # one per style (empty for a single-site cohort)
    anova: AnovaResult | None  # the paper's one-way ANOVA ("as published")
    unpaired: list[PairwiseResult]  # the paper's post-hoc unpaired t-tests ("as published")
    same_subjects: SameSubjects | None  # beyond the paper: RM ANOVA, or Friedman + Wilcoxon
    notes: list[str] = field(default_factory=list)

    @property
    def paired(self) -> list[PairwiseResult]:
        """Post-hoc tests on the same subjects (paired t or Wilcoxon, see ``same_subjects``)."""
        return self.same_subjects.posthoc if self.same_subjects is not None else []


@dataclass
class ProtocolStats:
    """Statistics of one protocol and orientation."""

    protocol: str
    orientation: str
    styles: list[str]  # in display order
    n_subjects: int  # distinct subjects with a hemorrhage in this selection
    n_sites: int
    min_site_n: int
    metrics: dict[str, MetricStats]
    agreement: list[VolumeAgreement]
    false_positive_free: list[FalsePositiveFree]
    notes: list[str] = field(default_factory=list)
    style_orientations: dict[str, str] = field(default_factory=dict)  # style → orientation of its rows
    hd95_policy: str = "worst"  # d_H95 of a missed lesion or false alarm: "worst" or "exclude"
    detection: list[DetectionSummary] = field(default_factory=list)  # lesion-wise and subject-level


def run_stats(
    df: MetricsTable | pd.DataFrame,
    orientation: str | None = None,
    protocol: str = "paper",
    metrics: Sequence[str] | None = None,
    min_site_n: int = 1,
    mixed: bool = True,
    pool_sd: bool = True,
    hd95_when_empty: str | None = None,
) -> ProtocolStats:
    """Run the paper's statistics (and the additions) on one protocol and orientation.

    Args:
        df: the metrics table with its d_H95 policy applied
            (:func:`iphbench.stats.metrics_table.load_metrics_table`), or the rows of metrics.csv, to
            which ``hd95_when_empty`` is applied here.
        orientation: rows to analyse; None = the headline, 2.5D (or a single view when there is
            no 2.5D; nnU-Net reference styles with their own orientation beside it), see
            :func:`iphbench.stats.metrics_table.comparison_rows`.
        protocol: ``paper`` or ``full``.
        metrics: outcome columns; None = the analysed metrics of the metric table (``dice``, ``iou``,
            ``hd95_mm``).
        min_site_n: sites with fewer subjects are pooled in the fixed-effect models; 1 (default) keeps
            every site its own level, as the paper's eq. 6.
        mixed: also fit the random-site-intercept mixed models (the slowest part).
        pool_sd: post-hoc unpaired tests with the pooled sd of R's ``pairwise.t.test`` (True) or Welch (False).
        hd95_when_empty: d_H95 of a missed lesion or false alarm of a DataFrame ``df``, ``worst`` (None)
            or ``exclude`` (:func:`iphbench.stats.metrics_table.apply_hd95_policy`); a
            :class:`MetricsTable` already carries its policy.

    Raises:
        MetricsTableError: no rows for this orientation and protocol.
        ValueError: an unknown policy, or one unlike the policy of a :class:`MetricsTable`.
    """
    table = MetricsTable.of(df, hd95_when_empty)
    comp = comparison_rows(table.df, protocol, orientation)
    sel_all, orientation = comp.rows, comp.orientation
    styles = ordered_styles(sel_all["style"].unique())
    positive = sel_all[sel_all["ref_ml"] > 0]
    notes: list[str] = [*comp.notes, *table.notes]
    n_sites = int(positive["site"].nunique())
    if positive.empty:
        notes.append("no subject has a hemorrhage in these rows: there is nothing to compare")
    elif n_sites == 1:
        notes.append(
            f"the cohort has a single site ({positive['site'].iloc[0]}): the site term (Sitename in eq. 6) was "
            "dropped from the regressions"
            + (
                "; the mixed model (random intercept per site) was skipped, it needs at least two sites"
                if mixed
                else ""
            )
        )
    per_site = positive.groupby("site")["subject"].nunique()
    lone = sorted(str(x) for x in per_site[per_site == 1].index)
    if lone and n_sites > 1:
        how = (
            f"pooled with the other sites under {min_site_n} subjects in the regressions"
            if min_site_n > 1
            else "its own site level in the regressions fits that subject exactly (it adds no residual)"
        )
        notes.append(f"site(s) {', '.join(lone)} have a single subject with a hemorrhage: {how}")
    if len(styles) == 1:
        notes.append(f"only one style ({display_name(styles[0])}): there is no comparison between styles")
    free_sites = sorted(set(sel_all.loc[sel_all["ref_ml"] <= 0, "site"]) - set(positive["site"]))
    if free_sites and not positive.empty:
        notes.append(
            f"site(s) {', '.join(free_sites)} have only hemorrhage-free subjects: they appear in the "
            "false-positive summary, not in the models"
        )
    out: dict[str, MetricStats] = {}
    for metric in analysed_metrics() if metrics is None else metrics:
        out[metric] = _metric_stats(
            sel_all, metric, orientation, protocol, styles, min_site_n, mixed and n_sites > 1, pool_sd,
            table.hd95_policy,
        )  # fmt: skip
    detection: list[DetectionSummary] = []
    if has_lesion_columns(sel_all):
        detection = [d for s in styles if (d := detection_summary(sel_all, s)) is not None]
    else:
        notes.append(
            "metrics.csv has no lesion-wise columns (lesions_ref, lesions_hit, lesions_false): no detection "
            "table; run 'iphbench evaluate' again to add them"
        )
    return ProtocolStats(
        protocol=protocol,
        orientation=orientation,
        styles=styles,
        n_subjects=int(positive["subject"].nunique()),
        n_sites=n_sites,
        min_site_n=min_site_n,
        metrics=out,
        agreement=[volume_agreement(sel_all, s) for s in styles],
        false_positive_free=[fp for s in styles if (fp := false_positive_free(sel_all, s)) is not None],
        notes=notes,
        style_orientations=comp.style_orientations,
        hd95_policy=table.hd95_policy,
        detection=detection,
    )


def _metric_stats(
    df: pd.DataFrame,
    metric: str,
    orientation: str,
    protocol: str,
    styles: list[str],
    min_site_n: int,
    mixed: bool,
    pool_sd: bool,
    policy: str,
) -> MetricStats:
    sel = select_rows(df, metric, orientation, protocol, styles)
    rows = sel.rows  # for the models, which need age and sex
    scored = select_rows(df, metric, orientation, protocol, styles, covariates=False).rows
    compare, compared = common_subjects(scored, metric, styles)  # the same subjects for every style
    worst = (
        int(scored["status"].isin(["missed", "false_alarm"]).sum())
        if metric == "hd95_mm" and "status" in scored.columns
        else 0
    )
    counts = RowCounts(
        len(compare),
        sel.n_hemorrhage_free,
        sel.n_nan,
        sel.n_missing_covariate,
        worst,
        len(scored) - len(compare),
    )
    notes = []
    label = metric_info(metric).label
    if worst and policy == "worst":
        notes.append(
            f"{worst} subject-rows with a missed lesion or a false alarm take the worst-case {label}, the "
            "diagonal of the scan's field of view (policy 'worst')"
        )
    if sel.n_nan:
        why = (
            f"{sel.n_nan_empty} of the {sel.n_nan} are missed lesions or false alarms"
            + (" (policy 'exclude')" if policy == "exclude" else "")
            if sel.n_nan_empty
            else "none of them a missed lesion or a false alarm: the value is absent from metrics.csv"
        )
        if scored.empty:
            notes.append(
                f"no subject-row has a {label} value ({why}): it has no models, tests or table cells"
            )
        else:
            notes.append(f"{sel.n_nan} subject-rows with no {label} were excluded ({why})")
    if sel.n_missing_covariate:
        notes.append(
            f"{sel.n_missing_covariate} subject-rows without age or sex were excluded from the models"
        )
    left_out = [s for s in styles if s not in compared]
    if left_out and compared:
        notes.append(f"{', '.join(display_name(s) for s in left_out)}: no {label} value, not compared")
    if counts.not_common and len(compared) > 1:
        n_common = compare["subject"].nunique()
        notes.append(
            f"comparisons use the {n_common} subjects scored by all {len(compared)} compared styles "
            f"({counts.not_common} subject-rows of other subjects left out)"
        )
    ols, mixed_res = [], []
    for style in styles:
        srows = rows[rows["style"] == style]
        if len(srows) < 3:
            notes.append(f"{display_name(style)}: {len(srows)} subjects with data; no regression")
            continue
        try:
            ols.append(fit_ols(srows, metric, style, min_site_n))
        except ValueError as exc:
            notes.append(f"{display_name(style)}: regression not fitted ({exc})")
            log.warning("%s", exc)
        if mixed and srows["site"].nunique() > 1:
            m = fit_mixed(srows, metric, style)
            if m is not None:
                mixed_res.append(m)
    anova = None
    try:
        anova = one_way_anova(compare, metric, compared)
    except ValueError as exc:
        notes.append(f"ANOVA not computed: {exc}")
    same = same_subject_comparison(compare, metric, compared) if len(compared) > 1 else None
    if same is not None:
        notes.extend(same.notes)
    return MetricStats(
        metric=metric,
        counts=counts,
        ols=ols,
        mixed=mixed_res,
        anova=anova,
        unpaired=pairwise_unpaired(compare, metric, compared, pool_sd=pool_sd),
        same_subjects=same,
        notes=notes,
    )


def collect_notes(ps: ProtocolStats) -> list[str]:
    """Every note of a protocol's analysis, de-duplicated: one line per distinct note, naming where it applies.

    A note raised for every style of a metric is written once for the metric; a note raised for
    every metric is written once for the analysis.
    """
    where: dict[str, list[tuple[str, str]]] = {}
    for metric, ms in ps.metrics.items():
        for n in ms.notes:
            where.setdefault(n, []).append((metric, "*"))
        for o in ms.ols:
            for n in o.notes:
                if n == SINGLE_SITE_NOTE and ps.n_sites == 1:
                    continue  # the protocol's own single-site note says it once
                where.setdefault(n, []).append((metric, o.style))
        for m in ms.mixed:
            for n in m.notes:
                where.setdefault(f"mixed model: {n}", []).append((metric, m.style))
    out = list(ps.notes)
    all_metrics = list(ps.metrics)
    for note, places in where.items():
        metrics = list(dict.fromkeys(m for m, _ in places))
        styles = list(dict.fromkeys(s for _, s in places if s != "*"))
        full_styles = not styles or set(styles) == set(ps.styles)
        if full_styles and metrics == all_metrics:
            out.append(note)
        elif full_styles:
            out.append(f"{', '.join(metric_info(m).label for m in metrics)}: {note}")
        else:
            shown = ", ".join(display_name(s) for s in styles)
            out.append(f"{', '.join(metric_info(m).label for m in metrics)} ({shown}): {note}")
    return out
