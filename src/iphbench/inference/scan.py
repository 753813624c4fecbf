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
from typing import Any

import numpy as np
import torch

from iphbench.config import StudyConfig
from iphbench.evaluation.completeness import ResultsTableError, read_metrics
from iphbench.styles import parse_style
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
    style_reason: str = ""  # how the style was chosen (printed by ``iphbench predict``)
    #: volume of the brain mask the prediction was made within, mL; NaN when none was extracted (nnU-Net)
    brain_ml: float = float("nan")

    @property
    def n_lesions(self) -> int:
        """Connected components of the mask (26-connectivity)."""
        return count_lesions(self.mask)


@dataclass(frozen=True)
class StyleChoice:
    """The style ``predict`` uses and why."""

    style: str  # a folder under ``<study>/runs/``
    reason: str  # e.g. "best mean 2.5D Dice under the full protocol in metrics.csv (0.712)"


#: Protocols that choose the default style, in order: ``full`` first, because a new scan has no
#: reference mask and is predicted everywhere in the brain, as ``full`` scores (``paper`` predicts only
#: patches chosen from the reference mask; docs/evaluation.md).
CHOOSING_PROTOCOLS: tuple[str, ...] = ("full", "paper")


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


def count_lesions(mask: np.ndarray) -> int:
    """Number of connected components of a binary mask, 26-connectivity (face, edge or corner)."""
    from iphbench.evaluation.lesions import label_lesions

    return label_lesions(np.asarray(mask) > 0, voxel_ml=1.0, min_size_ml=0.0)[1]


def trained_styles(study_dir: str | Path) -> list[str]:
    """Styles with at least one finished run: ``runs/<style>/<view>/fold*/done.json`` (sorted)."""
    runs = Path(study_dir) / "runs"
    if not runs.is_dir():
        return []
    return sorted(p.name for p in runs.iterdir() if p.is_dir() and any(p.glob("*/fold*/done.json")))


def best_style(study_dir: str | Path, styles: list[str] | None = None) -> StyleChoice | None:
    """The style with the highest mean 2.5D Dice in ``metrics.csv``, under ``full`` if scored, else ``paper``.

    Args:
        study_dir: the study folder.
        styles: only these styles compete (the trained ones); ``None``: every style in metrics.csv.

    Returns:
        The choice with the protocol and mean Dice that made it, or ``None`` without usable metrics.
    """
    path = Path(study_dir) / "metrics.csv"
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
                f"style {style!r} has no finished run in {Path(study_dir) / 'runs'}; "
                f"choose --style among the trained styles: {', '.join(trained)}"
            )
        return StyleChoice(style, "chosen with --style")
    best = best_style(study_dir, trained)
    if best is not None:
        return best
    if "fpn" in trained:
        return StyleChoice("fpn", "no metrics.csv yet: fpn, the paper's best style")
    return StyleChoice(trained[0], "no metrics.csv yet and fpn not trained: the first trained style")


def default_style(study_dir: Path, cfg: StudyConfig | None = None) -> str:
    """Without metrics: fpn (the paper's best) if it was trained, else the first trained style."""
    trained = trained_styles(study_dir)
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
                f"train it with 'iphbench study run' or choose another --style or --views"
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


def min_component_ml(study_dir: Path, cfg: StudyConfig, style: str) -> float:
    """The post-processing volume ``predict`` applies for ``style`` (docs/training.md).

    0 for the paper recipe; the fixed ``train.iphbench.min_component_ml`` if set; with ``"auto"``
    the median of the volumes evaluation chose on each fold's validation subjects
    (``eval/postprocess.json``), or 0 with a warning when the study was not evaluated yet.
    """
    from iphbench.styles import parse_style

    if parse_style(style).recipe != "iphbench":
        return 0.0
    setting = cfg.train.iphbench.min_component_ml
    if setting != "auto":
        return float(setting)
    from iphbench.evaluation.postprocess import PostprocessTable

    chosen = PostprocessTable(Path(study_dir) / "eval" / "postprocess.json").summary().get(style)
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
        models: dict[str, list[object]] | None = None,
    ) -> None:
        """Choose the style (:func:`choose_style`), check the orientation and load the models.

        Raises:
            FileNotFoundError: no finished run, or none for a requested view.
            ValueError: an unknown orientation or a style without finished runs.
        """
        from iphbench.inference import resolve_device

        self.study_dir = Path(study_dir)
        self.cfg = StudyConfig.load(self.study_dir / "config.yaml")
        self.choice = (
            StyleChoice(style, "chosen by the caller")
            if models is not None and style is not None
            else choose_style(self.study_dir, style)
        )
        self.device = resolve_device(device)
        t0 = time.perf_counter()
        self.nnunet: Any = None
        if parse_style(self.choice.style).is_nnunet:  # a reference style predicts the whole scan itself
            from iphbench.nnunet.predict import finished_folds, load_nnunet, orientation_of

            own = orientation_of(self.choice.style)
            if orientation not in (FUSED, own):
                raise ValueError(f"{self.choice.style} predicts the volume as {own}; choose --views {own}")
            self.orientation, self.views = own, list[str]()
            self.nnunet = load_nnunet(
                finished_folds(self.study_dir, self.choice.style),
                self.device,
                self.cfg.nnunet.test_time_mirroring,
            )
            self.models = {}
        else:
            self.orientation, self.views = parse_orientation(orientation)
            self.models = models or load_style_models(
                self.study_dir, self.choice.style, self.views, self.device
            )
        self.load_seconds = time.perf_counter() - t0
        self.min_component_ml = min_component_ml(self.study_dir, self.cfg, self.choice.style)

    @property
    def style(self) -> str:
        return self.choice.style

    @property
    def n_models(self) -> int:
        if self.nnunet is not None:
            return int(self.nnunet.n_folds)
        return sum(len(v) for v in self.models.values())

    def __call__(self, image: object, on_step: Callable[[str], None] | None = None) -> ScanPrediction:
        """Segment one loaded scan (an :class:`iphbench.io.Volume` in HU); see :func:`predict_scan`."""
        from iphbench.inference import fuse_views, predict_patches, threshold
        from iphbench.preprocessing import prepare_volume, restore
        from iphbench.preprocessing.patching import extract_patches, scatter_patches, select_patches

        if self.nnunet is not None:
            from iphbench.nnunet.predict import predict_scan_nnunet

            return predict_scan_nnunet(
                image, self.study_dir, self.style, self.orientation, self.device, on_step, model=self.nnunet
            )
        cfg, dev, views, orientation = self.cfg, self.device, self.views, self.orientation
        seconds: dict[str, float] = {"load_models": self.load_seconds}
        step = on_step or (lambda _name: None)
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
            v: predict_patches(self.models[v], patches, v, dev, batch_size=cfg.eval.batch_size)  # type: ignore[arg-type]
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
        grid_ml = float(np.prod(prepared.meta.spacing)) / 1000.0  # one voxel of the prepared grid
        if self.min_component_ml > 0:
            from iphbench.evaluation.postprocess import remove_small_components

            mask = remove_small_components(mask, grid_ml, self.min_component_ml).astype(np.uint8)
        # the brain's volume: the plausibility flags compare the prediction with it
        brain_ml = float(prepared.brain.sum(dtype=np.int64)) * grid_ml
        mask_c = restore(mask, prepared.meta, order=0).astype(np.uint8)
        prob_c = restore(prob, prepared.meta, order=1).astype(np.float32)
        voxel_ml = float(np.prod(image.spacing)) / 1000.0  # type: ignore[attr-defined]
        seconds["restore"] = time.perf_counter() - t0
        return ScanPrediction(
            mask_c,
            prob_c,
            float(mask_c.sum()) * voxel_ml,
            self.style,
            orientation,
            self.n_models,
            seconds,
            self.choice.reason,
            brain_ml,
        )


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
