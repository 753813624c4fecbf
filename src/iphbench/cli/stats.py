"""`iphbench stats STUDY`: the paper's statistics (section 3.5) on a study's metrics.csv.

Writes ``<study>/stats/`` (CSV, Markdown, JSON; see ``iphbench.stats.write``) and prints the key
results: the one-way ANOVA across styles, the post-hoc pairwise tests with Bonferroni correction
and the regression's volume terms, per protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from iphbench.cli._app import HD95_POLICY_OPTION, MIN_SITE_N_OPTION, app, console, fail

if TYPE_CHECKING:
    from rich.table import Table

    from iphbench.stats import MetricStats, ProtocolStats
    from iphbench.study.learning import LearningCheck


def resolve_study(path: Path) -> Path:
    """A study folder, or the folder named by a study YAML's ``out`` setting."""
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        from iphbench.config import ConfigError, StudyConfig

        try:
            return Path(StudyConfig.load(path).out)
        except ConfigError as exc:
            raise fail(str(exc)) from None
    if not path.is_dir():
        raise fail(f"{path} is neither a study folder nor a study YAML file")
    return path


@app.command(
    "stats", help="Run the paper's statistics on STUDY/metrics.csv, write STUDY/stats/ and print key results."
)
def stats_cmd(
    study: Path = typer.Argument(..., help="Study folder (holding metrics.csv) or its study YAML."),
    orientation: str | None = typer.Option(
        None,
        "--orientation",
        help="Orientation analysed: 2DAxi, 2DCor, 2DSag, 2.5D. Default: 2.5D (a single view when there is none).",
    ),
    protocol: list[str] | None = typer.Option(
        None, "--protocol", help="paper or full; repeat for both. Default: every protocol in metrics.csv."
    ),
    min_site_n: int = MIN_SITE_N_OPTION,
    hd95_when_empty: str | None = HD95_POLICY_OPTION,
    mixed: bool = typer.Option(
        True, "--mixed/--no-mixed", help="Also fit the random-site-intercept mixed model."
    ),
) -> None:
    folder = resolve_study(study)
    results, check, out = _run_stats(folder, orientation, protocol, min_site_n, hd95_when_empty, mixed)
    _print_stats(results, check, out)


def _run_stats(
    folder: Path,
    orientation: str | None,
    protocol: list[str] | None,
    min_site_n: int,
    hd95_when_empty: str | None,
    mixed: bool,
) -> tuple[list[ProtocolStats], LearningCheck, Path]:
    """Load metrics.csv, apply the d_H95 policy once, run every protocol's statistics and write STUDY/stats/."""
    from iphbench.layout import StudyLayout
    from iphbench.stats import (
        HD95_POLICIES,
        MetricsTable,
        MetricsTableError,
        load_metrics,
        ordered_protocols,
        run_stats,
        save_stats,
        study_hd95_policy,
    )
    from iphbench.study.learning import check_learning, load_thresholds

    try:
        df = load_metrics(folder)
        protocols = protocol or ordered_protocols(df["protocol"].unique())
        bad = [p for p in protocols if p not in set(df["protocol"])]
        if bad:
            raise fail(
                f"protocol(s) {bad} not in {folder / 'metrics.csv'}; it has {sorted(set(df['protocol']))}",
                code=2,
            )
        policy = hd95_when_empty or study_hd95_policy(folder)
        if policy not in HD95_POLICIES:
            raise fail(f"--hd95-when-empty must be one of {list(HD95_POLICIES)}, got {policy!r}", code=2)
        table = MetricsTable.of(df, policy)
        results = [run_stats(table, orientation, p, min_site_n=min_site_n, mixed=mixed) for p in protocols]
        check = check_learning(table.df, folder, load_thresholds(folder))
        out = save_stats(results, StudyLayout(folder).stats_dir, check)
    except (MetricsTableError, OSError) as exc:
        raise fail(str(exc)) from None
    return results, check, out


def _print_stats(results: list[ProtocolStats], check: LearningCheck, out: Path) -> None:
    """The learning-check panel, then per protocol the omnibus, post-hoc and regression tables and the notes."""
    from rich.markup import escape

    from iphbench.stats import collect_notes
    from iphbench.study.summary import learning_panel

    if not check.meaningful:
        console.print(learning_panel(check))
    for r in results:
        console.rule(
            f"[bold]{escape(r.protocol)} protocol[/], {escape(r.orientation)}: {r.n_subjects} subjects, "
            f"{r.n_sites} site{'s' if r.n_sites != 1 else ''}"
        )
        for table in _result_tables(r):
            console.print(table)
        for note in collect_notes(r):
            console.print(f"[yellow]note:[/] {escape(note)}")
    console.print(f"statistics written to [bold]{escape(str(out))}[/]")


def _result_tables(r: ProtocolStats) -> tuple[Table, Table, Table]:
    """The omnibus tests, the post-hoc tests and the regression's volume slopes of one protocol."""
    from rich.table import Table

    from iphbench.report.narrative import model_terms

    anova = Table(title="Omnibus tests across styles", show_edge=False)
    for col in ("metric", "test", "statistic", "p", "n rows", "excluded (NaN)"):
        anova.add_column(col)
    post = Table(title="Post-hoc tests, Bonferroni-corrected p", show_edge=False)
    for col in ("metric", "pair", "mean diff", "unpaired t p (as published)", "same subjects p", "test"):
        post.add_column(col)
    fitted = [o for ms in r.metrics.values() for o in ms.ols]
    reg = Table(
        title=f"Regression: reference-volume slope per mL, OLS ~ {model_terms(fitted)}", show_edge=False
    )
    for col in ("metric", "style", "slope", "p", "R²", "n"):
        reg.add_column(col)
    for ms in r.metrics.values():
        _add_metric_rows(ms, anova, post, reg)
    return anova, post, reg


def _add_metric_rows(ms: MetricStats, anova: Table, post: Table, reg: Table) -> None:
    """One metric's rows of the three tables of :func:`_result_tables`."""
    from iphbench.evaluation.scoring import metric_info
    from iphbench.stats import display_name, format_num, format_p

    label = metric_info(ms.metric).label
    used, nan = str(ms.counts.used), str(ms.counts.nan_metric)
    if ms.anova is not None:
        a = ms.anova
        anova.add_row(
            label, "one-way ANOVA (as published)", f"{a.label} = {a.f:.3f}", format_p(a.p), used, nan
        )
    ss = ms.same_subjects
    for om in [] if ss is None else [ss.rm_anova, ss.friedman]:
        if om is not None:
            anova.add_row(label, om.test, f"{om.label} = {om.stat:.3f}", format_p(om.p), used, nan)
    paired = {(t.style_a, t.style_b): t for t in ms.paired}
    test = ss.posthoc_test if ss is not None else "n/a"
    for t in ms.unpaired:
        pt = paired.get((t.style_a, t.style_b))
        post.add_row(label, f"{display_name(t.style_a)} vs {display_name(t.style_b)}", f"{t.mean_diff:+.3f}",
                     format_p(t.p_bonferroni), format_p(pt.p_bonferroni) if pt else "n/a", test)  # fmt: skip
    for o in ms.ols:
        c = o.coefficient("ref_ml")
        if c is not None:
            reg.add_row(
                label,
                display_name(o.style),
                format_num(c.estimate, 4),
                format_p(c.p),
                f"{o.r2:.2f}",
                str(o.n),
            )
