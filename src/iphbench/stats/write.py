"""Store the statistics of a study under ``<study>/stats/`` as CSV, Markdown and JSON.

Files (one set for all protocols; each row carries its protocol and orientation):

``regression.csv``   per-style OLS coefficients (paper eq. 6) with SE, t, p, 95% CI, n, R²
``mixed.csv``        mixed-model fixed effects, site variance, ICC, convergence
``anova.csv``        one-way ANOVA across styles per metric: F, both df, p
``posthoc.csv``      pairwise t-tests, unpaired (paper) and paired, raw and Bonferroni p
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
from iphbench.evaluation.learning import LearningCheck, check_learning, load_thresholds
from iphbench.stats.analysis import DEFAULT_METRICS, ProtocolStats, collect_notes, run_stats
from iphbench.stats.formatting import markdown_table
from iphbench.stats.metrics_table import display_name, load_metrics, ordered_protocols

log = logging.getLogger(__name__)


def write_stats(
    study_dir: str | Path,
    orientation: str | None = None,
    protocols: list[str] | None = None,
    min_site_n: int = 3,
    mixed: bool = True,
) -> Path:
    """Run :func:`iphbench.stats.analysis.run_stats` on ``<study>/metrics.csv`` and write ``<study>/stats/``.

    Args:
        study_dir: the study folder.
        orientation: the orientation analysed; None = 2.5D (or a single view when there is none).
        protocols: protocols to analyse; None = every protocol present in metrics.csv.
        min_site_n: sites with fewer subjects are pooled in the fixed-effect models.
        mixed: also fit the mixed models.

    Returns:
        The ``stats`` folder.
    """
    study_dir = Path(study_dir)
    df = load_metrics(study_dir)
    protocols = protocols or ordered_protocols(df["protocol"].unique())
    results = [run_stats(df, orientation, p, DEFAULT_METRICS, min_site_n, mixed) for p in protocols]
    check = check_learning(df, study_dir, load_thresholds(study_dir))
    return save_stats(results, study_dir / "stats", check)


def save_stats(results: list[ProtocolStats], out: str | Path, check: LearningCheck | None = None) -> Path:
    """Write already computed statistics (from :func:`run_stats`) as CSV, Markdown and JSON under ``out``.

    ``check`` (the study's :class:`iphbench.evaluation.learning.LearningCheck`) puts its banner at the
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
    reg, mix, anova, post, norm, agree, by_site, fp = [], [], [], [], [], [], [], []
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
            if ms.anova is not None:
                a = ms.anova
                anova.append({**key, "metric": metric, "f": a.f, "df_between": a.df_between,
                              "df_within": a.df_within, "p": a.p, "n_used": ms.counts.used,
                              "n_excluded_nan": ms.counts.nan_metric,
                              "n_excluded_hemorrhage_free": ms.counts.hemorrhage_free})  # fmt: skip
            for pw in [*ms.unpaired, *ms.paired]:
                post.append({**key, **dataclasses.asdict(pw)})
        for va in r.agreement:
            row = {k: v for k, v in dataclasses.asdict(va).items() if k != "per_site"}
            agree.append({**key, **row})
            for sb in va.per_site:
                by_site.append({**key, "style": va.style, **dataclasses.asdict(sb)})
        for f in r.false_positive_free:
            fp.append({**key, **dataclasses.asdict(f)})
    return {
        "regression": pd.DataFrame(reg),
        "mixed": pd.DataFrame(mix),
        "anova": pd.DataFrame(anova),
        "posthoc": pd.DataFrame(post),
        "normality": pd.DataFrame(norm),
        "volume_agreement": pd.DataFrame(agree),
        "volume_by_site": pd.DataFrame(by_site),
        "false_positive_free": pd.DataFrame(fp),
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
            f"{', '.join(display_name(s) for s in r.styles)}.\n"
        )
        notes = collect_notes(r)
        if notes:
            parts.append("Notes:\n\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    for name, table in tables.items():
        parts.append(f"## {name.replace('_', ' ')}\n\n{markdown_table(table)}")
    return "\n".join(parts)
