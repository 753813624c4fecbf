"""Trained nnU-Net folds on a scan, in iphbench's canonical grid (study evaluation and ``iphbench predict``).

Each finished fold of a reference style keeps, in its run folder, ``model.pt`` (the final
weights as plain tensors, loadable with ``torch.load(weights_only=True)``), and the
``plans.json`` and ``dataset.json`` it was trained with. :func:`load_nnunet` rebuilds the
network from the plans with nnU-Net's ``nnUNetTrainer.build_network_architecture`` and hands
the weights of every fold to ``nnUNetPredictor`` (a fold ensemble; one fold for the study's
own test predictions). :func:`predict_volume` gives it the scan the way the raw dataset
stored it (canonical RAS+ array, transposed to nnU-Net's ``z, y, x``), so nnU-Net resamples,
normalises and slides its window exactly as in training, and returns the mask and the
hemorrhage probability in the scan's canonical grid.

Example:
    >>> from iphbench.io import read_volume
    >>> model = load_nnunet(finished_folds("study", "nnunet_3d_fullres"), "cpu")  # doctest: +SKIP
    >>> mask, prob = predict_volume(model, read_volume("ct.nii.gz"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iphbench._device import resolve_device
from iphbench.inference.scan import ScanPrediction
from iphbench.layout import StudyLayout
from iphbench.nnunet import orientation_of, require_nnunet
from iphbench.preprocessing import prepare_volume, restore
from iphbench.training.checkpoint import load_checkpoint
from iphbench.views import FUSED

MODEL_FILE = "model.pt"


@dataclass
class NnunetModel:
    """A loaded nnU-Net fold ensemble (``predictor`` is an ``nnUNetPredictor``)."""

    predictor: Any
    configuration: str
    n_folds: int


def finished_folds(study_dir: str | Path, style: str) -> list[Path]:
    """Run folders of ``style`` whose ``done.json`` exists (``runs/<style>/<3D|2D>/fold<k>``), fold order."""
    runs = StudyLayout(study_dir).finished_runs(style, orientation_of(style))
    return [r.dir for r in sorted(runs, key=lambda r: r.fold)]


def load_nnunet(run_dirs: Sequence[Path], device: str | torch.device, mirroring: bool = True) -> NnunetModel:
    """The networks of ``run_dirs`` (folds of one style) as one nnU-Net predictor on ``device``."""
    require_nnunet("predicting with an nnU-Net style")
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    if not run_dirs:
        raise FileNotFoundError("no finished nnU-Net fold to predict with; run 'iphbench study run' first")
    first = Path(run_dirs[0])
    plans = json.loads((first / "plans.json").read_text(encoding="utf-8"))
    dataset_json = json.loads((first / "dataset.json").read_text(encoding="utf-8"))
    payloads = [load_checkpoint(Path(d) / MODEL_FILE) for d in run_dirs]
    configuration = str(payloads[0]["configuration"])
    if any(str(p["configuration"]) != configuration for p in payloads):
        raise ValueError(
            f"the folds in {[str(d) for d in run_dirs]} were trained with different configurations"
        )
    plans_manager = PlansManager(plans)
    config_manager = plans_manager.get_configuration(configuration)
    n_in = determine_num_input_channels(plans_manager, config_manager, dataset_json)
    n_out = plans_manager.get_label_manager(dataset_json).num_segmentation_heads
    network = nnUNetTrainer.build_network_architecture(
        plans_manager, config_manager, n_in, n_out, enable_deep_supervision=False
    )
    network.load_state_dict(payloads[0]["network_weights"])
    dev = torch.device(device)
    mirror_axes = payloads[0].get("mirror_axes")
    predictor = nnUNetPredictor(
        tile_step_size=0.5, use_gaussian=True, use_mirroring=mirroring and mirror_axes is not None,
        perform_everything_on_device=dev.type == "cuda", device=dev, verbose=False, allow_tqdm=False,
    )  # fmt: skip
    predictor.manual_initialization(
        network, plans_manager, config_manager, [p["network_weights"] for p in payloads], dataset_json,
        "nnUNetTrainer", tuple(mirror_axes) if mirror_axes is not None else None,
    )  # fmt: skip
    return NnunetModel(predictor, configuration, len(payloads))


def predict_volume(model: NnunetModel, image: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mask (uint8) and hemorrhage probability (float32) of a canonical scan (:class:`iphbench.io.Volume`)."""
    array = np.asarray(image.array, dtype=np.float32).transpose(2, 1, 0)[None]
    props = {"spacing": [float(s) for s in image.spacing[::-1]]}
    with torch.inference_mode():
        seg, prob = model.predictor.predict_single_npy_array(array, props, None, None, True)
    mask = np.ascontiguousarray(np.asarray(seg).transpose(2, 1, 0) > 0).astype(np.uint8)
    probability = np.ascontiguousarray(np.asarray(prob[1], dtype=np.float32).transpose(2, 1, 0))
    return mask, probability


def predict_scan_nnunet(
    image: Any,
    study_dir: str | Path,
    style: str,
    orientation: str | None = None,
    device: str | torch.device = "auto",
    on_step: Callable[[str], None] | None = None,
    model: NnunetModel | None = None,
) -> ScanPrediction:
    """``iphbench predict`` for an nnU-Net style: the fold ensemble, then the brain mask, as the `full` protocol scores.

    Args:
        image: the scan (``iphbench.io.read_volume``).
        study_dir: a study that trained ``style``.
        style: ``nnunet_3d_fullres`` or ``nnunet_2d``.
        orientation: None, ``2.5D`` (the CLI's default, read as "the style's own") or the style's own
            orientation (``3D`` / ``2D``); anything else is an error.
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        on_step: progress callback with a step name.
        model: the fold ensemble already loaded (:func:`load_nnunet`), e.g. once for many scans.

    Returns:
        An :class:`iphbench.inference.scan.ScanPrediction`.
    """
    own = orientation_of(style)
    if orientation not in (None, FUSED, own):
        raise ValueError(f"{style} predicts the volume as {own}; choose --views {own} (or leave the default)")
    layout = StudyLayout(study_dir)
    cfg = layout.config()
    step = on_step or (lambda _name: None)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    if model is None:
        model = load_nnunet(
            finished_folds(layout.root, style), resolve_device(str(device)), cfg.nnunet.test_time_mirroring
        )
    seconds["load_models"] = time.perf_counter() - t0
    step("models loaded")
    t0 = time.perf_counter()
    prepared = prepare_volume(image, cfg.prep)
    brain = restore(np.asarray(prepared.brain, dtype=np.uint8), prepared.meta, order=0).astype(bool)
    seconds["preprocess"] = time.perf_counter() - t0
    step("brain mask")
    t0 = time.perf_counter()
    mask, prob = predict_volume(model, image)
    seconds["inference"] = time.perf_counter() - t0
    step("predicted")
    mask = (mask.astype(bool) & brain).astype(np.uint8)
    prob = np.where(brain, prob, 0.0).astype(np.float32)
    volume_ml = float(mask.sum()) * float(np.prod(image.spacing)) / 1000.0
    return ScanPrediction(
        mask=mask, probability=prob, volume_ml=volume_ml, style=style, orientation=own, n_models=model.n_folds,
        seconds=seconds,
    )  # fmt: skip


__all__ = [
    "MODEL_FILE",
    "NnunetModel",
    "finished_folds",
    "load_nnunet",
    "predict_scan_nnunet",
    "predict_volume",
]
