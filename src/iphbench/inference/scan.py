"""Segment a new scan with a trained study: no reference mask needed (``iphbench predict``).

The scan goes through the study's own preprocessing (brain extraction, window, padding),
every patch touching the brain is predicted by the chosen style's models of all folds
(their probabilities averaged: a fold ensemble), the views are fused (2.5D) or one view is
used, predictions outside the brain are set to 0, and the mask is returned in the scan's
own voxel grid with its hemorrhage volume in mL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from iphbench.config import MODEL_NAMES, StudyConfig
from iphbench.styles import NNUNET_STYLES
from iphbench.views import FUSED, VIEWS

log = logging.getLogger(__name__)


@dataclass
class ScanPrediction:
    """Result of :func:`predict_scan`."""

    mask: np.ndarray  # uint8, canonical grid of the scan
    probability: np.ndarray  # float32, canonical grid of the scan
    volume_ml: float  # predicted hemorrhage volume in mL
    style: str
    orientation: str
    n_models: int
    seconds: dict[str, float] = field(default_factory=dict)  # time per stage


def best_style(study_dir: Path) -> str | None:
    """The style with the highest 2.5D mean Dice under the paper protocol in metrics.csv, if any."""
    path = Path(study_dir) / "metrics.csv"
    if not path.exists():
        return None
    m = pd.read_csv(path)
    sel = m[(m["orientation"] == FUSED) & (m["protocol"] == "paper")]
    if sel.empty:
        return None
    return str(sel.groupby("style")["dice"].mean().idxmax())


def default_style(study_dir: Path, cfg: StudyConfig) -> str:
    """Without metrics: fpn (the paper's best) if it was trained, else the first trained style."""
    trained = [m for m in cfg.models.names if any((Path(study_dir) / "runs" / m).glob("*/fold*/done.json"))]
    if not trained:
        raise FileNotFoundError(f"{study_dir} holds no finished training run; run 'iphbench study run' first")
    return "fpn" if "fpn" in trained else trained[0]


def load_style_models(
    study_dir: Path, style: str, views: list[str], device: str | torch.device
) -> dict[str, list[object]]:
    """All finished fold models of ``style`` for each view in ``views``."""
    from iphbench.training.checkpoint import load_model

    out: dict[str, list[object]] = {}
    for view in views:
        runs = sorted(p.parent for p in (Path(study_dir) / "runs" / style / view).glob("fold*/done.json"))
        if not runs:
            raise FileNotFoundError(
                f"no finished {style} {view} model in {study_dir}/runs/{style}/{view}; "
                f"train it with 'iphbench study run' or choose another --model"
            )
        out[view] = [load_model(r, device) for r in runs]
    return out


def parse_orientation(text: str) -> tuple[str, list[str]]:
    """``"2.5D"`` → fuse all three views; a single view name → that view only."""
    if text == FUSED:
        return FUSED, list(VIEWS)
    if text in VIEWS:
        return text, [text]
    raise ValueError(f"unknown orientation {text!r}; choose 2.5D or one of {', '.join(VIEWS)}")


def predict_scan(
    image: object,
    study_dir: str | Path,
    style: str | None = None,
    orientation: str = FUSED,
    device: str = "auto",
    models: dict[str, list[object]] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> ScanPrediction:
    """Segment one loaded scan (a :class:`iphbench.io.Volume` in HU) with a trained study.

    Args:
        image: the scan, as returned by ``iphbench.io.read_volume``.
        study_dir: a trained study folder.
        style: architecture name; default the best style in metrics.csv, else ``fpn``.
        orientation: ``2.5D`` or one view.
        device: ``auto``, ``cpu`` or ``cuda``.
        models: preloaded models (view → list) to skip loading; used by the benchmark.
        on_step: progress callback with a step name.

    Returns:
        A :class:`ScanPrediction` in the scan's canonical grid.
    """
    from iphbench.inference import fuse_views, predict_patches, resolve_device, threshold
    from iphbench.preprocessing import prepare_volume, restore
    from iphbench.preprocessing.patching import extract_patches, scatter_patches, select_patches

    study_dir = Path(study_dir)
    cfg = StudyConfig.load(study_dir / "config.yaml")
    style = style or best_style(study_dir) or default_style(study_dir, cfg)
    if style in NNUNET_STYLES:  # a reference style predicts the whole scan itself (iphbench.nnunet.predict)
        from iphbench.nnunet.predict import predict_scan_nnunet

        return predict_scan_nnunet(image, study_dir, style, orientation, device, on_step)
    if style not in MODEL_NAMES:
        raise ValueError(f"unknown model {style!r}; valid models are {', '.join(MODEL_NAMES)}")
    orientation, views = parse_orientation(orientation)
    dev = resolve_device(device)
    seconds: dict[str, float] = {}
    step = on_step or (lambda _name: None)

    t0 = time.perf_counter()
    if models is None:
        models = load_style_models(study_dir, style, views, dev)
    seconds["load_models"] = time.perf_counter() - t0
    step("models loaded")

    t0 = time.perf_counter()
    prepared = prepare_volume(image, cfg.prep)  # type: ignore[arg-type]
    size = cfg.prep.patch_size
    origins = select_patches(prepared.mask, prepared.brain, size, "brain")
    seconds["preprocess"] = time.perf_counter() - t0
    step("preprocessed")

    t0 = time.perf_counter()
    patches = extract_patches(prepared.image, origins, size)
    by_view = {
        v: predict_patches(models[v], patches, v, dev, batch_size=cfg.eval.batch_size)  # type: ignore[arg-type]
        for v in views
    }
    # fuse and zero outside the brain on the patches, then place them once: one pass over
    # the padded volume instead of one per view plus two for fusion and masking
    prob_patches = fuse_views(by_view, views) if orientation == FUSED else by_view[orientation]
    prob_patches *= extract_patches(prepared.brain, origins, size)
    prob = scatter_patches(prob_patches, origins, prepared.image.shape, dtype=np.float32)
    seconds["inference"] = time.perf_counter() - t0
    step("predicted")

    t0 = time.perf_counter()
    mask = threshold(prob, cfg.eval.threshold)
    mask_c = restore(mask, prepared.meta, order=0).astype(np.uint8)
    prob_c = restore(prob, prepared.meta, order=1).astype(np.float32)
    voxel_ml = float(np.prod(image.spacing)) / 1000.0  # type: ignore[attr-defined]
    seconds["restore"] = time.perf_counter() - t0
    n_models = sum(len(v) for v in models.values())
    return ScanPrediction(
        mask_c, prob_c, float(mask_c.sum()) * voxel_ml, style, orientation, n_models, seconds
    )
