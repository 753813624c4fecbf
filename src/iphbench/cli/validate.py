"""`iphbench validate COHORT.csv`: check a cohort manifest and its scans, list every problem.

Prints subjects per site, the range of voxel spacings and shapes, the reference hemorrhage
volume in mL per subject, then every issue with its subject and file. Exits 1 when there
is at least one error, 0 otherwise (warnings do not fail).
"""

from __future__ import annotations

from pathlib import Path

import typer

from iphbench.cli._app import app, console, fail


def parse_labels(text: str | None) -> list[int] | None:
    """``"1,2"`` → ``[1, 2]``; ``None``/empty → ``None``."""
    if not text:
        return None
    try:
        return [int(v) for v in text.replace(" ", ",").split(",") if v]
    except ValueError:
        raise fail(
            f"--mask-labels {text!r} is not a comma-separated list of integers (e.g. 1,2)", code=2
        ) from None


@app.command("validate", help="Check a cohort manifest and its scans; list every problem; exit 1 on errors.")
def validate_cmd(
    cohort: Path = typer.Argument(..., help="Cohort manifest (CSV: subject, site, age, sex, image, mask)."),
    mask_labels: str | None = typer.Option(
        None, "--mask-labels", help="Label values counted as hemorrhage in label-map masks, e.g. 1,2."
    ),
    no_files: bool = typer.Option(False, "--no-files", help="Check the table only; do not read scans."),
) -> None:
    from rich.markup import escape
    from rich.table import Table

    from iphbench.io.cohort import CohortError, load_cohort, validate_cohort

    labels = parse_labels(mask_labels)
    try:
        df = load_cohort(cohort)
    except CohortError as exc:
        raise fail(str(exc)) from None
    report = validate_cohort(df, mask_labels=labels, check_files=not no_files, progress=len(df) >= 10)
    summary = report.summary

    console.print(f"[bold]{escape(str(cohort))}[/]: {len(df)} subjects")
    if len(summary):
        per_site = Table(title="Subjects per site")
        for col in ("site", "subjects", "with mask", "median mL"):
            per_site.add_column(col, justify="left" if col == "site" else "right")
        for site, group in summary.groupby(summary["site"].fillna(""), sort=True):
            labelled = group["ref_ml"].dropna()
            median = f"{labelled.median():.2f}" if len(labelled) else "-"
            per_site.add_row(escape(str(site) or "(none)"), str(len(group)), str(len(labelled)), median)
        console.print(per_site)
        spacings = [s for s in summary["spacing"] if isinstance(s, tuple)]
        if spacings:
            lo = [min(s[i] for s in spacings) for i in range(3)]
            hi = [max(s[i] for s in spacings) for i in range(3)]
            console.print(
                "Voxel spacing (mm, RAS x/y/z): "
                + ", ".join(
                    f"{a:.3g}..{b:.3g}" if a != b else f"{a:.3g}" for a, b in zip(lo, hi, strict=True)
                )
            )
        if summary["shape"].notna().any():
            per_subject = Table(title="Per subject")
            for col in ("subject", "site", "shape", "spacing (mm)", "hemorrhage mL"):
                per_subject.add_column(col, justify="right" if col == "hemorrhage mL" else "left")
            for row in summary.itertuples(index=False):
                shape = "x".join(map(str, row.shape)) if isinstance(row.shape, tuple) else "-"
                spacing = "x".join(f"{s:.3g}" for s in row.spacing) if isinstance(row.spacing, tuple) else "-"
                ml = f"{row.ref_ml:.2f}" if row.ref_ml == row.ref_ml else "-"
                per_subject.add_row(escape(str(row.subject)), escape(str(row.site)), shape, spacing, ml)
            console.print(per_subject)

    for issue in report.issues:
        colour = "red" if issue.severity == "error" else "yellow"
        who = f"[{issue.subject}] " if issue.subject else ""
        where = f"  ({issue.file})" if issue.file and issue.file not in issue.message else ""
        console.print(f"[{colour}]{issue.severity}[/]: {escape(who + issue.message + where)}", soft_wrap=True)
    n_err, n_warn = len(report.errors), len(report.warnings)
    if n_err:
        console.print(
            f"[bold red]{n_err} error(s)[/], {n_warn} warning(s): the cohort cannot be used as it is."
        )
        raise typer.Exit(1)
    console.print(f"[bold green]ok[/]: no errors, {n_warn} warning(s).")
