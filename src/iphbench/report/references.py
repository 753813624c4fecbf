"""What the report states about the nnU-Net reference styles: version, settings, time, results.

Everything comes from the runs' ``done.json`` (written when each fold finished, so it is the
nnunetv2 version and the settings the fold was really trained with) and from metrics.csv.
Reading it needs no nnunetv2.

Example:
    >>> for line in describe_references("study", load_metrics("study")):  # doctest: +SKIP
    ...     print(line)
    nnU-Net 3d_fullres (3D): nnunetv2 2.8.1, configuration 3d_fullres of nnU-Net's default plans ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iphbench.layout import StudyLayout
from iphbench.nnunet import DEFAULT_EPOCHS, DEFAULT_ITERATIONS, ORIENTATIONS
from iphbench.styles import style_label


def reference_runs(study_dir: str | Path) -> dict[str, list[dict[str, Any]]]:
    """``{style: [done.json of each finished fold]}`` of the study's nnU-Net styles (fold order)."""
    out: dict[str, list[dict[str, Any]]] = {}
    layout = StudyLayout(study_dir)
    for style, orientation in ORIENTATIONS.items():
        finished = sorted(layout.finished_runs(style, orientation), key=lambda r: r.fold)
        runs = [done for done in (r.read_done() for r in finished) if done]
        if runs:
            out[style] = runs
    return out


def describe_references(study_dir: str | Path, metrics: pd.DataFrame | None = None) -> list[str]:
    """One paragraph per nnU-Net style of the study: version, plans, schedule, subjects, time, mean F-measure."""
    lines = []
    for style, runs in reference_runs(study_dir).items():
        first = runs[0]
        versions = sorted({str(r.get("nnunetv2")) for r in runs})
        epochs, iters = first.get("epochs"), first.get("iterations_per_epoch")
        default = epochs == DEFAULT_EPOCHS and iters == DEFAULT_ITERATIONS
        schedule = f"{epochs} epochs × {iters} iterations" + (
            " (nnU-Net's default)"
            if default
            else f" (reduced; nnU-Net's default is {DEFAULT_EPOCHS} × {DEFAULT_ITERATIONS})"
        )
        subjects = "train and val" if first.get("train_on_val", True) else "train"
        mirror = "with" if first.get("test_time_mirroring", True) else "without"
        seconds = [sum(float(v) for v in (r.get("seconds") or {}).values()) for r in runs]
        text = (
            f"{style_label(style)} ({ORIENTATIONS[style]}): nnunetv2 {', '.join(versions)}, configuration "
            f"{first.get('configuration')} of nnU-Net's default plans ({first.get('plans')}: patch "
            f"{_dims(first.get('patch_size'))} voxels, batch {first.get('batch_size')}, spacing "
            f"{_dims(first.get('spacing'))} mm, z × y × x), nnU-Net's default trainer for {schedule}, "
            f"trained on each fold's {subjects} subjects of folds.csv and scored with its final checkpoint "
            f"{mirror} test-time mirroring on the fold's test subjects; {len(runs)} fold(s), "
            f"{np.mean(seconds):.0f} s per fold on {first.get('device')} (training and test predictions)."
        )
        if metrics is not None:
            text += _results(metrics, style)
        lines.append(text)
    return lines


def _results(metrics: pd.DataFrame, style: str) -> str:
    parts = []
    sel = metrics[(metrics["style"] == style) & (metrics["ref_ml"] > 0)]
    for protocol, g in sel.groupby("protocol", sort=False):
        v = g["dice"].astype(float)
        parts.append(f"{protocol} protocol F-measure {v.mean():.3f} ± {v.std(ddof=1):.3f} (n = {len(v)})")
    return (" " + "; ".join(parts) + ".") if parts else ""


def _dims(values: object) -> str:
    if not isinstance(values, list | tuple):
        return str(values)
    return " × ".join(f"{float(v):g}" for v in values)


__all__ = ["describe_references", "reference_runs"]
