"""``iphbench evaluate STUDY``: score every held-out subject and write metrics.csv."""

from __future__ import annotations

from pathlib import Path

import typer

from iphbench.cli._app import app, console, fail


@app.command("evaluate")
def evaluate_cmd(
    study: Path = typer.Argument(..., help="Study folder (holds config.yaml, folds.csv, prep/, runs/)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda[:N]."),
) -> None:
    """Score every held-out subject under the paper and full protocols and write STUDY/metrics.csv.

    Each test subject is predicted by the models of the fold that held it out; predicted masks are
    written to STUDY/predictions/ in each scan's own grid."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from iphbench.study.evaluate import EvaluationError, evaluate_study
    from iphbench.study.summary import learning_panel, study_learning_check, summary_table
    from iphbench.training.checkpoint import CheckpointError

    try:
        with Progress(
            TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            TextColumn("{task.description}"), console=console,
        ) as bar:  # fmt: skip
            task = bar.add_task("", total=None)

            def step(subject: str, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total, description=subject)

            out = evaluate_study(study, device=device, progress=step)
    except (EvaluationError, CheckpointError, OSError, ValueError) as exc:  # ValueError: a damaged table
        raise fail(str(exc)) from None
    try:  # read back through the same checks as every reader of metrics.csv (evaluation/completeness.py)
        table, check = summary_table(out), study_learning_check(study)
    except (OSError, ValueError) as exc:  # ValueError: ResultsTableError, a cut or incomplete table
        raise fail(str(exc)) from None
    console.print(table)
    console.print(learning_panel(check))
    for note in check.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    console.print(f"metrics written to [bold]{out}[/]")
