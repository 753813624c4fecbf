"""`iphbench report STUDY`: write the self-contained HTML report (tables, figures, statistics in words)."""

from __future__ import annotations

from pathlib import Path

import typer

from iphbench.cli._app import HD95_POLICY_OPTION, MIN_SITE_N_OPTION, app, console, fail


@app.command(
    "report",
    help="Write STUDY/report.html: Table 1-4, Fig. 1-3, volume agreement, statistics, config, versions.",
)
def report_cmd(
    study: Path = typer.Argument(..., help="Study folder (holding metrics.csv) or its study YAML."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output HTML file (default STUDY/report.html)."
    ),
    orientation: str | None = typer.Option(
        None,
        "--orientation",
        help="Orientation of the statistics and Fig. 2-3. Default: 2.5D (a single view when there is none).",
    ),
    min_site_n: int = MIN_SITE_N_OPTION,
    hd95_when_empty: str | None = HD95_POLICY_OPTION,
    pdf: bool = typer.Option(
        True, "--pdf/--no-pdf", help="Also write each figure as PDF under STUDY/figures/."
    ),
    mixed: bool = typer.Option(
        True, "--mixed/--no-mixed", help="Also fit the random-site-intercept mixed model."
    ),
) -> None:
    from rich.markup import escape

    from iphbench.cli.stats import resolve_study
    from iphbench.report import write_report
    from iphbench.stats import MetricsTableError

    folder = resolve_study(study)
    with console.status("writing the report (statistics, tables, figures)..."):
        try:
            path = write_report(
                folder, out=out, orientation=orientation, min_site_n=min_site_n, pdf=pdf, mixed=mixed,
                hd95_when_empty=hd95_when_empty,
            )  # fmt: skip
        except (MetricsTableError, OSError, ValueError) as exc:  # ValueError: an unknown d_H95 policy
            raise fail(str(exc)) from None
    size = path.stat().st_size / 1e6
    console.print(f"report written to [bold]{escape(str(path))}[/] ({size:.1f} MB, self-contained)")
