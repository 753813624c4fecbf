"""Segment new scans with a trained study: the style, its models loaded once (``iphbench predict``).

:class:`ScanPredictor` opens a study, chooses the style (:func:`choose_style`: the one asked for,
else the best under the ``full`` protocol in metrics.csv), and has that style's backend load every
finished fold of it (``iphbench.study.backends``: the 2D models of a view, or an nnU-Net ensemble);
then it segments any number of scans. Each scan's mask is in the scan's own voxel grid, with its
hemorrhage volume in mL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from iphbench._device import resolve_device
from iphbench.config import StudyConfig
from iphbench.inference.scan import ScanPrediction
from iphbench.io.volume import Volume
from iphbench.layout import StudyLayout
from iphbench.study.backends import Predictor, backend_for
from iphbench.study.completeness import ResultsTableError, read_metrics
from iphbench.study.postprocess import PostprocessTable
from iphbench.styles import parse_style
from iphbench.views import FUSED

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StyleChoice:
    """The style ``predict`` uses and why."""

    style: str  # a folder under ``<study>/runs/``
    reason: str  # e.g. "best mean 2.5D Dice under the full protocol in metrics.csv (0.712)"


#: Protocols that choose the default style, in order: ``full`` first, because a new scan has no
#: reference mask and is predicted everywhere in the brain, as ``full`` scores (``paper`` predicts only
#: patches chosen from the reference mask; docs/evaluation.md).
CHOOSING_PROTOCOLS: tuple[str, ...] = ("full", "paper")


def trained_styles(study_dir: str | Path) -> list[str]:
    """Styles with at least one finished run (sorted)."""
    return StudyLayout(study_dir).trained_styles()


def best_style(study_dir: str | Path, styles: list[str] | None = None) -> StyleChoice | None:
    """The style with the highest mean 2.5D Dice in ``metrics.csv``, under ``full`` if scored, else ``paper``.

    Args:
        study_dir: the study folder.
        styles: only these styles compete (the trained ones); ``None``: every style in metrics.csv.

    Returns:
        The choice with the protocol and mean Dice that made it, or ``None`` without usable metrics.
    """
    path = StudyLayout(study_dir).metrics_csv
    if not path.exists():
        return None
    try:  # the one check of metrics.csv: a cut table must not choose the style either
        m = read_metrics(path, warn_file_only=False)[["style", "orientation", "protocol", "dice"]]
    except (ResultsTableError, KeyError) as exc:
        log.warning("%s; the default style is not chosen from it", exc)
        return None
    m = m[(m["orientation"] == FUSED) & m["dice"].notna()]
    if styles is not None:
        m = m[m["style"].astype(str).isin(styles)]
    for protocol in CHOOSING_PROTOCOLS:
        sel = m[m["protocol"] == protocol]
        if sel.empty:
            continue
        means = sel.groupby(sel["style"].astype(str))["dice"].mean()
        style = str(means.idxmax())
        note = "" if protocol == "full" else " (no full-protocol rows)"
        return StyleChoice(
            style,
            f"best mean 2.5D Dice under the {protocol} protocol in metrics.csv ({means[style]:.3f}){note}",
        )
    return None


def choose_style(study_dir: str | Path, style: str | None = None) -> StyleChoice:
    """The style to predict with: ``style`` if it has finished runs, else the best or default one.

    Without ``style``: :func:`best_style` among the trained styles; without metrics, ``fpn`` (the
    paper's best) when trained, else the first trained style.

    Raises:
        FileNotFoundError: the study has no finished run.
        ValueError: ``style`` has no finished run (the message lists the styles that have).
    """
    trained = trained_styles(study_dir)
    if not trained:
        raise FileNotFoundError(f"{study_dir} holds no finished training run; run 'iphbench study run' first")
    if style is not None:
        if style not in trained:
            raise ValueError(
                f"style {style!r} has no finished run in {StudyLayout(study_dir).runs}; "
                f"choose --style among the trained styles: {', '.join(trained)}"
            )
        return StyleChoice(style, "chosen with --style")
    best = best_style(study_dir, trained)
    if best is not None:
        return best
    if "fpn" in trained:
        return StyleChoice("fpn", "no metrics.csv yet: fpn, the paper's best style")
    return StyleChoice(trained[0], "no metrics.csv yet and fpn not trained: the first trained style")


def min_component_ml(study_dir: Path, cfg: StudyConfig, style: str) -> float:
    """The post-processing volume ``predict`` applies for ``style`` (docs/training.md).

    0 for the paper recipe; the fixed ``train.iphbench.min_component_ml`` if set; with ``"auto"``
    the median of the volumes evaluation chose on each fold's validation subjects
    (``eval/postprocess.json``), or 0 with a warning when the study was not evaluated yet.
    """
    if parse_style(style).recipe != "iphbench":
        return 0.0
    setting = cfg.train.iphbench.min_component_ml
    if setting != "auto":
        return float(setting)
    chosen = PostprocessTable(StudyLayout(study_dir).postprocess_json).summary().get(style)
    if not chosen:
        log.warning(
            "%s: no post-processing volume chosen yet (run 'iphbench evaluate'); predicting without", style
        )
        return 0.0
    return float(np.median(chosen))


class ScanPredictor:
    """A trained study's chosen style, loaded once, that segments any number of scans.

    Example:
        >>> predictor = ScanPredictor("study", orientation="2.5D", device="cpu")  # doctest: +SKIP
        >>> [predictor(read_volume(p)).volume_ml for p in scans]  # doctest: +SKIP
    """

    def __init__(
        self,
        study_dir: str | Path,
        style: str | None = None,
        orientation: str = FUSED,
        device: str = "auto",
        models: dict[str, list[torch.nn.Module]] | None = None,
    ) -> None:
        """Choose the style (:func:`choose_style`), check the orientation and load the models.

        Args:
            study_dir: a trained study folder.
            style: a style with finished runs; default :func:`choose_style`.
            orientation: ``2.5D`` or one view (an nnU-Net style: its own, or ``2.5D`` for it).
            device: ``auto``, ``cpu`` or ``cuda[:N]``.
            models: preloaded 2D models (view → list) of ``style``, to skip loading (the benchmark).

        Raises:
            FileNotFoundError: no finished run, or none for a requested view.
            ValueError: an unknown orientation or a style without finished runs.
        """
        self.layout = StudyLayout(study_dir)
        self.study_dir = self.layout.root
        self.cfg: StudyConfig = self.layout.config()
        self.choice = (
            StyleChoice(style, "chosen by the caller")
            if models is not None and style is not None
            else choose_style(self.study_dir, style)
        )
        self.device = resolve_device(device)
        self.min_component_ml = min_component_ml(self.study_dir, self.cfg, self.choice.style)
        t0 = time.perf_counter()
        self.predictor: Predictor = backend_for(self.choice.style).load_predictor(
            self.layout, self.cfg, self.choice.style, orientation, self.device, self.min_component_ml, models
        )
        self.load_seconds = time.perf_counter() - t0

    @property
    def style(self) -> str:
        return self.choice.style

    @property
    def orientation(self) -> str:
        return self.predictor.orientation

    @property
    def n_models(self) -> int:
        return self.predictor.n_models

    def __call__(self, image: Volume, on_step: Callable[[str], None] | None = None) -> ScanPrediction:
        """Segment one loaded scan (an :class:`iphbench.io.Volume` in HU); see :func:`predict_scan`."""
        prediction = self.predictor(image, on_step)
        prediction.seconds = {"load_models": self.load_seconds, **prediction.seconds}
        prediction.style_reason = self.choice.reason
        return prediction


def predict_scan(
    image: Volume,
    study_dir: str | Path,
    style: str | None = None,
    orientation: str = FUSED,
    device: str = "auto",
    models: dict[str, list[torch.nn.Module]] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> ScanPrediction:
    """Segment one loaded scan (a :class:`iphbench.io.Volume` in HU) with a trained study.

    For many scans, build one :class:`ScanPredictor` (models loaded once) and call it per scan.

    Args:
        image: the scan, as returned by ``iphbench.io.read_volume``.
        study_dir: a trained study folder.
        style: a style with finished runs (``runs/<style>/``); default :func:`choose_style`.
        orientation: ``2.5D`` or one view.
        device: ``auto``, ``cpu`` or ``cuda``.
        models: preloaded models (view → list) to skip loading; used by the benchmark.
        on_step: progress callback with a step name.

    Returns:
        A :class:`ScanPrediction` in the scan's canonical grid.
    """
    predictor = ScanPredictor(study_dir, style=style, orientation=orientation, device=device, models=models)
    return predictor(image, on_step=on_step)


__all__ = [
    "CHOOSING_PROTOCOLS",
    "ScanPredictor",
    "StyleChoice",
    "best_style",
    "choose_style",
    "min_component_ml",
    "predict_scan",
    "trained_styles",
]
