"""Store the statistics of a study under ``<study>/stats/`` as CSV, Markdown and JSON.

Files (one set for all protocols; each row carries its protocol and orientation):

``regression.csv``   per-style OLS coefficients (paper eq. 6) with SE, t, p, 95% CI, n, R²
``mixed.csv``        mixed-model fixed effects, site variance, ICC, convergence
``anova.csv``        per metric: the one-way ANOVA (as published), the repeated-measures ANOVA and, when
                     its residuals are not normal, the Friedman test; column ``test`` names each
``posthoc.csv``      pairwise tests: unpaired t (as published), paired t or Wilcoxon signed-rank on the
                     same subjects; raw and Bonferroni p; column ``test`` names each
``detection.csv``    lesion-wise sensitivity, false lesions per scan, subjects found / missed per style
``normality.csv``    Shapiro-Wilk, skewness and kurtosis of each OLS model's residuals
``volume_agreement.csv`` / ``volume_by_site.csv`` / ``false_positive_free.csv``
``stats.md``         all of the above as Markdown tables
``summary.json``     everything, structured (NaN written as null)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd

from iphbench._files import atomic_write_text
from iphbench.layout import StudyLayout
from iphbench.stats.analysis import ProtocolStats, collect_notes, run_stats
from iphbench.stats.formatting import markdown_table
from iphbench.stats.metrics_table import display_name, load_metrics_table, ordered_protocols
from iphbench.stats.repeated import PAIRED_T, WILCOXON
from iphbench.study.learning import LearningCheck, check_learning, load_thresholds

log = logging.getLogger(__name__)

#: The ``test`` column of anova.csv and posthoc.csv: which test produced each p value.
ONE_WAY = "one-way ANOVA (as published)"
POSTHOC_TESTS = {
    "unpaired": "unpaired t-test (as published)",
    "paired": PAIRED_T,
    "wilcoxon": WILCOXON,
}


def write_stats(
    study_dir: str | Path,
    orientation: str | None = None,
    protocols: list[str] | None = None,
    min_site_n: int = 1,
    mixed: bool = True,
    hd95_when_empty: str | None = None,
) -> Path:
    """Run :func:`iphbench.stats.analysis.run_stats` on ``<study>/metrics.csv`` and write ``<study>/stats/``.

    Args:
        study_dir: the study folder.
        orientation: the orientation analysed; None = 2.5D (or a single view when there is none).
        protocols: protocols to analyse; None = every protocol present in metrics.csv.
        min_site_n: sites with fewer subjects are pooled in the fixed-effect models; 1 = none (eq. 6).
        mixed: also fit the mixed models.
        hd95_when_empty: d_H95 policy for a missed lesion or false alarm; None = the study's
            ``eval.hd95_when_empty`` (``worst`` when there is no config.yaml).

    Returns:
        The ``stats`` folder.
    """
    study_dir = Path(study_dir)
    table = load_metrics_table(study_dir, hd95_when_empty)
    protocols = protocols or ordered_protocols(table.df["protocol"].unique())
    results = [run_stats(table, orientation, p, min_site_n=min_site_n, mixed=mixed) for p in protocols]
    check = check_learning(table.df, study_dir, load_thresholds(study_dir))
    return save_stats(results, StudyLayout(study_dir).stats_dir, check)


def save_stats(results: list[ProtocolStats], out: str | Path, check: LearningCheck | None = None) -> Path:
    """Write already computed statistics (from :func:`run_stats`) as CSV, Markdown and JSON under ``out``.

    ``check`` (the study's :class:`iphbench.study.learning.LearningCheck`) puts its banner at the
    top of ``stats.md`` when a style did not learn, and is stored as ``learning_check.json``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tables = stats_tables(results)
    for name, table in tables.items():
        atomic_write_text(out / f"{name}.csv", table.to_csv(index=False))
    atomic_write_text(out / "stats.md", stats_markdown(results, tables, check))
    atomic_write_text(out / "summary.json", json.dumps(to_jsonable(results), indent=2) + "\n")
    if check is not None:
        verdict = {"meaningful": check.meaningful, "headline": check.headline(), **to_jsonable(check)}
        atomic_write_text(out / "learning_check.json", json.dumps(verdict, indent=2) + "\n")
    log.info("statistics written to %s", out)
    return out


def to_jsonable(obj: Any) -> Any:
    """Dataclasses → dicts, NaN/inf → None, recursively (strict JSON)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return obj


def stats_tables(results: list[ProtocolStats]) -> dict[str, pd.DataFrame]:
    """Flat tables (one row per coefficient, test, style...) of every protocol's statistics."""
    reg, mix, anova, post, norm, agree, by_site, fp, det = [], [], [], [], [], [], [], [], []
    for r in results:
        key = {"protocol": r.protocol, "orientation": r.orientation}
        for metric, ms in r.metrics.items():
            for o in ms.ols:
                for c in o.coefficients:
                    reg.append({**key, "metric": metric, "style": o.style, **dataclasses.asdict(c),
                                "n": o.n, "r2": o.r2, "adj_r2": o.adj_r2, "site_reference": o.site_reference,
                                "pooled_sites": ";".join(o.pooled_sites)})  # fmt: skip
                norm.append({**key, "metric": metric, "style": o.style, **dataclasses.asdict(o.normality)})
            for m in ms.mixed:
                for c in m.coefficients:
                    mix.append({**key, "metric": metric, "style": m.style, **dataclasses.asdict(c), "n": m.n,
                                "n_sites": m.n_sites, "site_variance": m.site_variance,
                                "residual_variance": m.residual_variance, "icc_site": m.icc_site,
                                "converged": m.converged})  # fmt: skip
            counts = {"n_used": ms.counts.used, "n_excluded_nan": ms.counts.nan_metric,
                      "n_excluded_hemorrhage_free": ms.counts.hemorrhage_free,
                      "n_excluded_not_common": ms.counts.not_common, "n_worst_case": ms.counts.worst_case,
                      "hd95_policy": r.hd95_policy if metric == "hd95_mm" else ""}  # fmt: skip
            if ms.anova is not None:
                a = ms.anova
                anova.append({**key, "metric": metric, "test": ONE_WAY, "label": a.label, "statistic": a.f,
                              "df_between": a.df_between, "df_within": a.df_within, "p": a.p,
                              "n_subjects": max(a.n_per_style.values(), default=0), **counts,
                              "shapiro_w": float("nan"), "shapiro_p": float("nan")})  # fmt: skip
            ss = ms.same_subjects
            for om in [] if ss is None else [ss.rm_anova, ss.friedman]:
                if om is not None and ss is not None:
                    anova.append({**key, "metric": metric, "test": om.test, "label": om.label, "statistic": om.stat,
                                  "df_between": om.df_num, "df_within": om.df_den, "p": om.p,
                                  "n_subjects": ss.n_subjects, **counts, "shapiro_w": ss.shapiro_w,
                                  "shapiro_p": ss.shapiro_p})  # fmt: skip
            for pw in [*ms.unpaired, *ms.paired]:
                post.append({**key, "test": POSTHOC_TESTS.get(pw.kind, pw.kind), **dataclasses.asdict(pw)})
        for va in r.agreement:
            row = {k: v for k, v in dataclasses.asdict(va).items() if k != "per_site"}
            agree.append({**key, **row})
            for sb in va.per_site:
                by_site.append({**key, "style": va.style, **dataclasses.asdict(sb)})
        for f in r.false_positive_free:
            fp.append({**key, **dataclasses.asdict(f)})
        for d in r.detection:
            det.append({**key, **dataclasses.asdict(d)})
    return {
        "regression": pd.DataFrame(reg),
        "mixed": pd.DataFrame(mix),
        "anova": pd.DataFrame(anova),
        "posthoc": pd.DataFrame(post),
        "normality": pd.DataFrame(norm),
        "volume_agreement": pd.DataFrame(agree),
        "volume_by_site": pd.DataFrame(by_site),
        "false_positive_free": pd.DataFrame(fp),
        "detection": pd.DataFrame(det),
    }


def stats_markdown(
    results: list[ProtocolStats],
    tables: dict[str, pd.DataFrame] | None = None,
    check: LearningCheck | None = None,
) -> str:
    """Markdown rendering of every table, with each protocol's notes, under the learning-check banner if any."""
    tables = tables if tables is not None else stats_tables(results)
    parts = ["# Statistics (paper section 3.5)\n"]
    if check is not None and not check.meaningful:
        lines = "\n".join(f"> - {ln}" for ln in check.lines())
        parts.append(f"> **{check.headline()}**\n>\n{lines}\n>\n> {check.explanation()}\n")
    for r in results:
        parts.append(
            f"## Protocol `{r.protocol}`, orientation {r.orientation}\n\n"
            f"{r.n_subjects} subjects with a hemorrhage, {r.n_sites} sites, styles: "
            f"{', '.join(display_name(s) for s in r.styles)}. d_H95 of a missed lesion or a false alarm: "
            f"policy '{r.hd95_policy}'. Every p value names its test (column `test`).\n"
        )
        notes = collect_notes(r)
        if notes:
            parts.append("Notes:\n\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    for name, table in tables.items():
        parts.append(f"## {name.replace('_', ' ')}\n\n{markdown_table(table)}")
    return "\n".join(parts)
