"""A compact summary of metrics.csv for the terminal: mean Dice, IoU and d_H95 per protocol, orientation and
style, and the "did the models learn?" verdict (:mod:`iphbench.study.learning`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from iphbench.study.completeness import read_metrics
from iphbench.study.learning import LearningCheck, check_learning, load_thresholds


def summarise(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean Dice/IoU/d_H95 and counts of missed and false-alarm rows per protocol × orientation × style."""
    g = metrics.groupby(["protocol", "orientation", "style"], sort=True)
    out = g.agg(
        n=("subject", "count"),
        dice=("dice", "mean"),
        iou=("iou", "mean"),
        hd95_mm=("hd95_mm", "mean"),
        missed=("status", lambda s: int((s == "missed").sum())),
        false_alarm=("status", lambda s: int((s == "false_alarm").sum())),
    )
    return out.reset_index()


def summary_table(metrics_csv: str | Path) -> Table:
    """Rich table of :func:`summarise`; each row names its protocol.

    Raises:
        ResultsTableError: metrics.csv is cut short or lacks rows (:func:`read_metrics`).
    """
    m = read_metrics(metrics_csv)
    s = summarise(m)
    table = Table(title=f"{Path(metrics_csv)}: mean per protocol, orientation and style")
    for col in ("protocol", "orientation", "style", "n", "Dice", "IoU", "d_H95 mm", "missed", "false alarm"):
        table.add_column(col, justify="right" if col not in ("protocol", "orientation", "style") else "left")
    for r in s.itertuples(index=False):
        table.add_row(
            r.protocol, r.orientation, r.style, str(r.n), f"{r.dice:.3f}", f"{r.iou:.3f}",
            "n/a" if pd.isna(r.hd95_mm) else f"{r.hd95_mm:.2f}", str(r.missed), str(r.false_alarm),
        )  # fmt: skip
    return table


def learning_panel(check: LearningCheck) -> RenderableType:
    """A red panel when a style did not learn (headline, one line per style, thresholds); else one green line."""
    if check.meaningful:
        names = ", ".join(s.style for s in check.styles)
        return Text(
            f"learning check: every style learned ({names}); thresholds in eval.learning_check", style="green"
        )
    body = [Text(check.headline(), style="bold red")]
    body += [Text(f"• {line}") for line in check.lines()]
    body.append(Text(check.explanation(), style="dim"))
    return Panel(Group(*body), title="results are not meaningful", border_style="red")


def study_learning_check(study_dir: str | Path) -> LearningCheck:
    """:func:`check_learning` of a study folder: its metrics.csv, runs' history.csv and config thresholds.

    Raises:
        ResultsTableError: metrics.csv is cut short or lacks rows (:func:`read_metrics`).
    """
    study = Path(study_dir)
    metrics = read_metrics(study / "metrics.csv")
    return check_learning(metrics, study, load_thresholds(study))
