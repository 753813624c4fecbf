"""Did the models converge? Learning curves, training budgets and a warning for runs still improving.

A benchmark of under-trained models ranks nothing: the report shows, for every style and
view, the training and validation loss and the validation score per epoch (every fold), how
many optimiser steps and training slices each run saw, and lists the runs whose selection
score was still rising in the last tenth of their training (:func:`still_improving`).
Everything is read from the runs' ``history.csv`` and ``done.json``.
"""

from __future__ import annotations

import html
import logging
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from iphbench.layout import StudyLayout
from iphbench.report.figures import embedded_png, save_figure
from iphbench.study.postprocess import PostprocessTable
from iphbench.styles import ordered_style_names, parse_style, style_label
from iphbench.views import VIEWS

log = logging.getLogger(__name__)

#: A run counts as still improving when the best score of its last tenth beats the best before by more than this.
IMPROVING_MARGIN = 0.01


def load_histories(study: Path) -> pd.DataFrame:
    """Every run's ``history.csv`` with its style, view, fold, recipe and selection metric.

    Columns missing from older histories (step, slices, val_subject_dice) are filled where
    they can be derived and left empty otherwise.
    """
    frames = []
    for run, h in StudyLayout(study).histories():
        if h is None:
            continue
        info = run.read_done()
        recipe = parse_style(run.style).recipe
        h["style"], h["view"], h["fold"], h["recipe"] = run.style, run.view, run.fold, recipe
        h["select_on"] = info.get("select_on", "subject_dice" if recipe == "iphbench" else "iou")
        h["finished"] = run.finished
        frames.append(h)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _score_column(select_on: str) -> str:
    return "val_iou" if select_on == "iou" else "val_subject_dice"


def still_improving(scores: np.ndarray, margin: float = IMPROVING_MARGIN) -> bool:
    """Whether the best score of the last tenth of epochs (at least one) beats the best before it by ``margin``.

    Example:
        >>> still_improving(np.array([0.1, 0.3, 0.5, 0.6, 0.62, 0.7]))
        True
        >>> still_improving(np.array([0.1, 0.6, 0.7, 0.7, 0.7, 0.69]))
        False
    """
    scores = np.asarray(scores, dtype=float)
    scores = scores[np.isfinite(scores)]
    if len(scores) < 2:
        return len(scores) == 1  # one validation proves nothing about convergence
    tail = max(1, math.ceil(len(scores) / 10))
    return bool(scores[-tail:].max() > scores[:-tail].max() + margin)


def run_table(histories: pd.DataFrame) -> pd.DataFrame:
    """One row per run: style, view, fold, recipe, epochs, steps, slices, best epoch and score, still improving."""
    rows = []
    for (style, view, fold), h in histories.groupby(["style", "view", "fold"], sort=False):
        col = _score_column(str(h["select_on"].iloc[0]))
        scores = h[col].to_numpy(dtype=float) if col in h else np.array([])
        best = int(np.nanargmax(scores)) if len(scores) and np.isfinite(scores).any() else -1
        rows.append({
            "style": style, "view": view, "fold": int(fold), "recipe": h["recipe"].iloc[0],
            "select_on": h["select_on"].iloc[0], "epochs": len(h),
            "steps": int(h["step"].iloc[-1]) if "step" in h and h["step"].notna().all() else np.nan,
            "slices": int(h["slices"].iloc[-1]) if "slices" in h and h["slices"].notna().all() else np.nan,
            "best_epoch": best + 1 if best >= 0 else np.nan,
            "best_score": float(scores[best]) if best >= 0 else np.nan,
            "still_improving": still_improving(scores), "finished": bool(h["finished"].iloc[0]),
        })  # fmt: skip
    return pd.DataFrame(rows)


def figure_learning_curves(histories: pd.DataFrame) -> Figure:
    """Loss (training solid, validation dashed; left axis) and validation score (right axis) per
    epoch for every style (rows) and view (columns); one line per fold."""
    styles = ordered_style_names(histories["style"].unique())
    views = [v for v in VIEWS if v in set(histories["view"])] or sorted(set(histories["view"]))
    fig, axes = plt.subplots(len(styles), len(views), figsize=(3.6 * len(views), 2.6 * len(styles)),
                             squeeze=False, sharex=False)  # fmt: skip
    for i, style in enumerate(styles):
        for j, view in enumerate(views):
            ax = axes[i][j]
            sub = histories[(histories["style"] == style) & (histories["view"] == view)]
            right = ax.twinx()
            for _, h in sub.groupby("fold"):
                x = h["step"] if "step" in h and h["step"].notna().all() else h["epoch"]
                ax.plot(x, h["train_loss"], color="#1f77b4", lw=1, alpha=0.8)
                ax.plot(x, h["val_loss"], color="#1f77b4", lw=1, ls="--", alpha=0.8)
                col = _score_column(str(h["select_on"].iloc[0]))
                if col in h:
                    right.plot(x, h[col], color="#2ca02c", lw=1.2, alpha=0.9)
            right.set_ylim(0, 1)
            ax.set_title(f"{style_label(style)}, {view}", fontsize=9)
            ax.tick_params(labelsize=7)
            right.tick_params(labelsize=7, colors="#2ca02c")
            if j == 0:
                ax.set_ylabel("loss (train solid, val dashed)", fontsize=7)
            if j == len(views) - 1 and not sub.empty:
                right.set_ylabel(
                    f"val {_metric_name(str(sub['select_on'].iloc[0]))}", fontsize=7, color="#2ca02c"
                )
            if i == len(styles) - 1:
                ax.set_xlabel("optimiser steps", fontsize=8)
    fig.tight_layout()
    return fig


def convergence_html(study: Path, formats: tuple[str, ...] = ("png", "pdf")) -> tuple[str, list[str]]:
    """The report's "Training and convergence" section and its warnings (runs still improving).

    Returns ("", []) when the study has no run histories (e.g. a metrics.csv from elsewhere).
    """
    histories = load_histories(study)
    if histories.empty:
        return "", []
    runs = run_table(histories)
    h = ["<h2>Training and convergence</h2>"]
    summary = (
        runs.groupby(["style", "view"], sort=False)
        .agg(runs=("fold", "size"), epochs=("epochs", "median"), steps=("steps", "median"),
             slices=("slices", "median"), best_score=("best_score", "mean"), improving=("still_improving", "sum"),
             select_on=("select_on", "first"))
        .reset_index()
    )  # fmt: skip
    summary = summary.iloc[np.argsort([ordered_style_names(summary["style"]).index(s) for s in summary["style"]],
                                      kind="stable")]  # fmt: skip
    body = "".join(
        f"<tr><th>{html.escape(style_label(r.style))}</th><td>{html.escape(r.view)}</td><td>{r.runs}</td>"
        f"<td>{r.epochs:.0f}</td><td>{_int(r.steps)}</td><td>{_int(r.slices)}</td>"
        f"<td>{html.escape(_metric_name(r.select_on))} {r.best_score:.3f}</td><td>{int(r.improving)}</td></tr>"
        for r in summary.itertuples()
    )
    h.append(
        '<div class="table-wrap"><table><caption>Training budget and outcome per style and view (median over folds '
        "of epochs, optimiser steps and training slices seen; mean over folds of the best validation score, on the "
        "metric each run selected its checkpoint by).</caption><thead><tr><th>Style</th><th>View</th><th>Runs</th>"
        "<th>Epochs</th><th>Steps</th><th>Slices</th><th>Best validation score</th><th>Still improving</th></tr>"
        f"</thead><tbody>{body}</tbody></table></div>"
    )
    warnings: list[str] = []
    improving = runs[runs["still_improving"]]
    if len(improving):
        listed = ", ".join(f"{r.style}/{r.view}/fold{r.fold}" for r in improving.itertuples())
        warnings.append(
            f"{len(improving)} of {len(runs)} runs were still improving in the last tenth of their training (best "
            f"validation score of the last tenth of epochs above the best before it by more than {IMPROVING_MARGIN}): "
            f"{listed}. Their styles may rank lower than they would with a longer budget."
        )
    try:
        png = save_figure(figure_learning_curves(histories), Path(study) / "figures", "learning_curves",
                          formats=formats)[0]  # fmt: skip
        h.append(
            f"<figure>{embedded_png(png)}<figcaption>Learning curves per style (rows) and view (columns), one line per fold, "
            "against optimiser steps: training loss (solid blue) and validation loss (dashed blue) on the left axis, "
            "the validation score each run selects on (green: IoU for the paper recipe, mean per-subject Dice for the "
            "iphbench recipe) on the right axis.</figcaption></figure>"
        )
    except Exception as exc:  # a figure must not cost the report
        log.warning("learning curves not drawn: %s", exc)
        h.append(f'<p class="note">The learning curves could not be drawn: {html.escape(str(exc))}</p>')
    h.append(_postprocess_html(Path(study)))
    return "\n".join(h), warnings


def _postprocess_html(study: Path) -> str:
    path = StudyLayout(study).postprocess_json
    if not path.exists():
        return ""
    chosen = PostprocessTable(path).summary()
    if not chosen:
        return ""
    parts = "; ".join(
        f"{style_label(s)}: {', '.join(f'{v:g}' for v in vols)} mL (folds in order)"
        for s, vols in chosen.items()
    )
    return (
        f"<p>Post-processing (iphbench recipe): predicted components smaller than a volume chosen on each fold's "
        f"validation subjects (the smallest volume within one standard error of the best validation Dice) were "
        f"removed before scoring: {html.escape(parts)}.</p>"
    )


def _metric_name(select_on: str) -> str:
    return "IoU" if select_on == "iou" else "subject Dice"


def _int(value: float) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{int(value):,}"


__all__ = ["IMPROVING_MARGIN", "convergence_html", "figure_learning_curves", "load_histories", "run_table",
           "still_improving"]  # fmt: skip
