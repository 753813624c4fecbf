"""Segment one scan with loaded 2D models: the scan's own preprocessing, every brain patch, fusion.

The scan goes through the study's preprocessing (brain extraction, window, padding), every patch
touching the brain is predicted by the given models of each view (their probabilities averaged: a
fold ensemble), the views are fused (2.5D) or one view is used, predictions outside the brain are
set to 0, and the mask is returned in the scan's own voxel grid with its hemorrhage volume in mL
(:func:`segment_scan`). Which study, style and models: ``iphbench.study.predict``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from iphbench.config import EvalConfig, PrepConfig
from iphbench.inference.fusion import fuse_views, threshold
from iphbench.inference.predictor import predict_patches
from iphbench.io.volume import Volume
from iphbench.masks import count_lesions, remove_small_components
from iphbench.preprocessing import prepare_volume, restore
from iphbench.preprocessing.patching import extract_patches, scatter_patches, select_patches
from iphbench.views import FUSED


@dataclass
class ScanPrediction:
    """One segmented scan (:func:`segment_scan`, or a reference style's own prediction)."""

    mask: np.ndarray  # uint8, canonical grid of the scan
    probability: np.ndarray  # float32, canonical grid of the scan
    volume_ml: float  # predicted hemorrhage volume in mL
    style: str
    orientation: str
    n_models: int
    seconds: dict[str, float] = field(default_factory=dict)  # time per stage
    style_reason: str = ""  # how the style was chosen (printed by ``iphbench predict``)
    #: volume of the brain mask the prediction was made within, mL; NaN when none was extracted (nnU-Net)
    brain_ml: float = float("nan")

    @property
    def n_lesions(self) -> int:
        """Connected components of the mask (26-connectivity)."""
        return count_lesions(self.mask)


#: Above this predicted volume a scan is flagged: the largest spontaneous intraparenchymal
#: hemorrhages in ICH trial cohorts are about 100-150 mL, so a larger prediction is almost always a
#: failure or an input that is not a head CT.
MAX_PLAUSIBLE_ML = 150.0
#: Above this share of the brain mask a prediction is flagged: a hematoma displaces brain but never
#: fills half of it; half the brain "bleeding" means the model saw something it was not trained on
#: (another modality, a missed window, a failed brain extraction).
MAX_BRAIN_FRACTION = 0.5
#: Above this many connected components a prediction is flagged as speckle: a patient has one
#: hematoma, occasionally a few (multifocal bleeds, satellites); dozens of islands are noise.
MAX_PLAUSIBLE_LESIONS = 50


def plausibility_warnings(volume_ml: float, n_lesions: int, brain_ml: float = float("nan")) -> list[str]:
    """Why a prediction looks implausible for a spontaneous IPH (empty when it does not).

    The flags do not change the prediction: it is still written, and the user judges it
    (``iphbench predict`` puts them in ``predictions.csv``'s ``warnings`` column and on the console).

    Args:
        volume_ml: predicted hemorrhage volume, mL.
        n_lesions: connected components of the predicted mask.
        brain_ml: volume of the brain mask, mL; NaN or 0 skips the brain-share check.

    Example:
        >>> plausibility_warnings(12.0, 1, 1200.0)
        []
        >>> plausibility_warnings(700.0, 3, 1200.0)[0][:40]
        'implausible prediction: 700.0 mL of hemo'
    """
    found = []
    if volume_ml > MAX_PLAUSIBLE_ML:
        found.append(
            f"implausible prediction: {volume_ml:.1f} mL of hemorrhage (above {MAX_PLAUSIBLE_ML:g} mL, larger "
            "than the largest spontaneous IPHs): check that the input is a non-contrast head CT and review the mask"
        )
    if np.isfinite(brain_ml) and brain_ml > 0 and volume_ml > MAX_BRAIN_FRACTION * brain_ml:
        found.append(
            f"implausible prediction: {volume_ml:.1f} mL is {volume_ml / brain_ml:.0%} of the brain mask "
            f"({brain_ml:.1f} mL; above {MAX_BRAIN_FRACTION:.0%}): review the mask and the brain extraction"
        )
    if n_lesions > MAX_PLAUSIBLE_LESIONS:
        found.append(
            f"implausible prediction: {n_lesions} lesions (above {MAX_PLAUSIBLE_LESIONS}; speckle): review the mask"
        )
    return found


def segment_scan(
    image: Volume,
    models: Mapping[str, Sequence[nn.Module]],
    prep: PrepConfig,
    settings: EvalConfig,
    orientation: str,
    device: torch.device,
    min_component_ml: float = 0.0,
    on_step: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, float, dict[str, float]]:
    """Segment one scan (in HU) with loaded 2D models of one style.

    Args:
        image: the scan, as returned by ``iphbench.io.read_volume``.
        models: view → the fold models of that view (their probabilities are averaged).
        prep: the study's preprocessing settings (the models were trained on them).
        settings: the study's evaluation settings (threshold, batch size).
        orientation: ``2.5D`` (fuse the views of ``models``) or one view.
        device: where the models run.
        min_component_ml: drop predicted components smaller than this (the ``iphbench`` recipe).
        on_step: progress callback with a step name.

    Returns:
        The mask (uint8) and probability (float32) in the scan's canonical grid, the brain mask's
        volume in mL, and the seconds per stage.
    """
    views = list(models)
    seconds: dict[str, float] = {}
    step = on_step or (lambda _name: None)

    t0 = time.perf_counter()
    prepared = prepare_volume(image, prep)
    size = prep.patch_size
    origins = select_patches(prepared.mask, prepared.brain, size, "brain")
    seconds["preprocess"] = time.perf_counter() - t0
    step("preprocessed")

    t0 = time.perf_counter()
    patches = extract_patches(prepared.image, origins, size)
    by_view = {
        v: predict_patches(list(models[v]), patches, v, device, batch_size=settings.batch_size) for v in views
    }
    # fuse and zero outside the brain on the patches, then place them once: one pass over
    # the padded volume instead of one per view plus two for fusion and masking
    prob_patches = fuse_views(by_view, views) if orientation == FUSED else by_view[orientation]
    prob_patches *= extract_patches(prepared.brain, origins, size)
    prob = scatter_patches(prob_patches, origins, prepared.image.shape, dtype=np.float32)
    seconds["inference"] = time.perf_counter() - t0
    step("predicted")

    t0 = time.perf_counter()
    mask = threshold(prob, settings.threshold)
    grid_ml = float(np.prod(prepared.meta.spacing)) / 1000.0  # one voxel of the prepared grid
    if min_component_ml > 0:
        mask = remove_small_components(mask, grid_ml, min_component_ml).astype(np.uint8)
    # the brain's volume: the plausibility flags compare the prediction with it
    brain_ml = float(prepared.brain.sum(dtype=np.int64)) * grid_ml
    mask_c = restore(mask, prepared.meta, order=0).astype(np.uint8)
    prob_c = restore(prob, prepared.meta, order=1).astype(np.float32)
    seconds["restore"] = time.perf_counter() - t0
    return mask_c, prob_c, brain_ml, seconds


__all__ = [
    "MAX_BRAIN_FRACTION",
    "MAX_PLAUSIBLE_LESIONS",
    "MAX_PLAUSIBLE_ML",
    "ScanPrediction",
    "plausibility_warnings",
    "segment_scan",
]
