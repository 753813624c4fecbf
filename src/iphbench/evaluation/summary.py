"""A compact summary of metrics.csv for the terminal: mean Dice, IoU and d_H95 per protocol, orientation and style."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.table import Table


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
    """Rich table of :func:`summarise`; each row names its protocol."""
    m = pd.read_csv(metrics_csv)
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
