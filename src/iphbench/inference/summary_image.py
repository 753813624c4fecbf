"""A per-scan summary PNG for quick review of a prediction (``iphbench predict --summary-png``).

Two panels, both axial, in the report's display convention (``iphbench.report.overlays``: the
canonical RAS+ slice through ``np.rot90``, anterior up, the patient's right on the viewer's right):

1. the axial slice with the largest predicted area, the CT in the study's HU window, the
   predicted contour in red (the middle slice when nothing is predicted);
2. an overview of the whole scan: the maximum-intensity projection of the predicted
   probability along the axial axis over the mean CT projection (the head's outline), with the
   contour of the projected mask, so every predicted component shows wherever it lies.

The title gives the subject, volume in mL, number of lesions, style and orientation.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt
import numpy as np

from iphbench._files import atomic_path
from iphbench.inference.scan import ScanPrediction
from iphbench.io.volume import Volume

CONTOUR = "#ff2a2a"


def largest_slice(mask: np.ndarray) -> int:
    """Index of the axial slice (canonical axis 2) with the most mask voxels; the middle one if empty."""
    area = np.asarray(mask).reshape(-1, mask.shape[2]).sum(axis=0) if mask.ndim == 3 else np.zeros(1)
    return int(np.argmax(area)) if area.any() else mask.shape[2] // 2


def write_summary_png(
    image: Volume,
    result: ScanPrediction,
    path: str | Path,
    subject: str = "",
    window: tuple[float, float] = (-30.0, 100.0),
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write the two-panel summary of ``result`` on ``image`` (both canonical) to ``path`` (PNG, atomic).

    Args:
        image: the scan in HU, as read.
        result: its prediction (canonical grid).
        path: output ``.png``.
        subject: shown in the title.
        window: HU shown from black to white (the paper's clip range by default).
        metadata: PNG text chunks to add (``iphbench predict`` stamps its images here, so a
            later run recognises them as its own: ``iphbench.study.outputs.written_by_predict``).
    """
    ct, mask, prob = np.asarray(image.array), np.asarray(result.mask) > 0, np.asarray(result.probability)
    sx, sy, _ = image.spacing
    aspect = sy / sx  # rows of np.rot90(slice) run along y
    k = largest_slice(mask)
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.4), dpi=100)
    ax = axes[0]
    ax.imshow(np.rot90(ct[:, :, k]), cmap="gray", vmin=window[0], vmax=window[1], aspect=aspect)
    if mask[:, :, k].any():
        ax.contour(np.rot90(mask[:, :, k].astype(float)), levels=[0.5], colors=CONTOUR, linewidths=1.0)
    area_ml = float(mask[:, :, k].sum()) * image.voxel_volume_ml
    ax.set_title(f"axial slice {k + 1}/{ct.shape[2]}: largest predicted area ({area_ml:.2f} mL)", fontsize=9)

    ax = axes[1]
    mean_ct = np.clip(ct, window[0], window[1]).mean(axis=2)
    ax.imshow(np.rot90(mean_ct), cmap="gray", aspect=aspect)
    mip = prob.max(axis=2)
    shown = np.ma.masked_less(np.rot90(mip), 0.05)
    ax.imshow(shown, cmap="magma", vmin=0.0, vmax=1.0, alpha=0.8, aspect=aspect)
    footprint = mask.any(axis=2)
    if footprint.any():
        ax.contour(np.rot90(footprint.astype(float)), levels=[0.5], colors=CONTOUR, linewidths=1.0)
    ax.set_title("overview: axial maximum-intensity projection of the probability", fontsize=9)
    for a in axes:
        a.set_xticks([])
        a.set_yticks([])
    who = f"{subject}: " if subject else ""
    fig.suptitle(
        f"{who}{result.volume_ml:.2f} mL predicted, {result.n_lesions} lesion(s); "
        f"{result.style}, {result.orientation} (anterior up, patient's right on the right)",
        fontsize=10,
    )
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", metadata=dict(metadata or {}))
    plt.close(fig)
    return Path(path)
