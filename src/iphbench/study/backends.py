"""Style backends: what the study needs from each kind of style, behind one protocol.

A study trains, evaluates and predicts with two kinds of style (``iphbench.styles``): the paper's
2D architectures under a training recipe (:class:`ModelBackend`), and nnU-Net v2 configurations as
reference styles (:class:`NnunetBackend`). The grid, the executors, evaluation and ``predict`` ask
:func:`backend_for` and call the :class:`StyleBackend` methods; none of them branches on the kind of
style. A new kind of style is one new backend class and one entry in :data:`BACKENDS`.

Each method is one stage of a style's life in a study:

- ``prepare``: once, before the style's runs train (nnU-Net: export, plans, preprocessing);
- ``train_fold``: one run of the grid, in its run folder;
- ``load_fold`` + ``FoldModels.test_prediction``: the fold's test subjects, as masks per orientation
  and protocol, in each scan's own grid (``iphbench evaluate`` scores them);
- ``load_predictor``: every finished fold, loaded once, segmenting new scans (``iphbench predict``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from torch import nn

from iphbench.config import StudyConfig, TrainConfig
from iphbench.inference import fuse_views, predict_subject_views, threshold
from iphbench.inference.scan import ScanPrediction, segment_scan
from iphbench.io import read_mask, read_volume
from iphbench.io.volume import Volume
from iphbench.layout import RunLayout, StudyLayout
from iphbench.masks import remove_small_components
from iphbench.nnunet import NnunetUnavailableError, orientation_of, require_nnunet
from iphbench.nnunet.predict import finished_folds, load_nnunet, predict_scan_nnunet
from iphbench.nnunet.prepare import prepare_nnunet
from iphbench.nnunet.run import read_test_prediction, run_nnunet_fold
from iphbench.preprocessing import restore
from iphbench.preprocessing.store import PatchStore, PreparedSubject
from iphbench.study.completeness import scored_protocols
from iphbench.study.postprocess import PostprocessTable, postprocess_volumes
from iphbench.styles import Style, parse_style
from iphbench.training.checkpoint import load_model
from iphbench.training.folds import read_folds
from iphbench.training.trainer import train_run
from iphbench.views import FUSED, VIEWS


class BackendUnavailableError(RuntimeError):
    """A backend's optional dependency is not installed (the message names the extra)."""


@dataclass
class SubjectCase:
    """One test subject as evaluation scores it: its prepared volume, reference and protocol regions."""

    subject: str
    fold: int
    prepared: PreparedSubject  # the patch store's image, brain mask and grid of the subject
    lesion_origins: np.ndarray  # origins of its lesion patches (the paper protocol's region)
    brain_origins: np.ndarray  # origins of its brain patches (the full protocol's patches)
    reference: Volume  # the reference mask (all zero for a subject without one), in the scan's grid
    regions: dict[str, np.ndarray]  # protocol → region in the padded grid (bool)
    protocols: list[str]  # the protocols this subject is scored under
    patch_size: int
    _canonical: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def voxel_ml(self) -> float:
        """One voxel of the prepared grid, mL."""
        return float(np.prod(self.prepared.meta.spacing)) / 1000.0

    @functools.cached_property
    def union_origins(self) -> np.ndarray:
        """Every patch either protocol predicts (lesion and brain patches, once each; computed once,
        read by every style)."""
        return np.unique(np.concatenate([self.lesion_origins, self.brain_origins]).reshape(-1, 3), axis=0)

    def canonical_region(self, protocol: str) -> np.ndarray:
        """A protocol's region in the scan's own grid (bool), computed once."""
        if protocol not in self._canonical:
            region = restore(self.regions[protocol].astype(np.uint8), self.prepared.meta, order=0)
            self._canonical[protocol] = region.astype(bool)
        return self._canonical[protocol]


@dataclass(frozen=True)
class EvalStudy:
    """A study as evaluation opens it once: what every backend's ``load_fold`` may need."""

    layout: StudyLayout
    config: StudyConfig
    views: list[str]  # the study's views, in the paper's order
    store: PatchStore
    folds: pd.DataFrame  # folds.csv
    device: torch.device
    postprocess: PostprocessTable  # the post-processing volumes chosen per style and fold


class FoldModels(Protocol):
    """One fold of one style, loaded for evaluation."""

    def test_prediction(self, case: SubjectCase) -> dict[tuple[str, str], np.ndarray]:
        """``{(orientation, protocol): mask}`` for a test subject, bool, in the reference's grid, in
        the order metrics.csv lists them (protocols, then orientations)."""
        ...


class Predictor(Protocol):
    """Every finished fold of one style, loaded once, segmenting new scans (``iphbench predict``)."""

    @property
    def orientation(self) -> str:
        """2.5D, a view, or an nnU-Net style's own (3D, 2D)."""
        ...

    @property
    def n_models(self) -> int:
        """The fold models it averages."""
        ...

    def __call__(self, image: Volume, on_step: Callable[[str], None] | None = None) -> ScanPrediction: ...


class StyleBackend(Protocol):
    """What a kind of style does in a study (module docstring)."""

    name: str
    #: config sections (besides prep, models, folds, train) that change what this backend trains
    config_sections: tuple[str, ...]
    #: settings of those sections that change how fast, not what (left out of the study hash)
    unhashed: tuple[str, ...]

    def check_available(self) -> None:
        """Raise :class:`BackendUnavailableError` when an optional dependency is missing."""
        ...

    def prepare(self, config: StudyConfig, store: PatchStore, folds: pd.DataFrame, styles: list[str]) -> None:
        """Once per study run, before the runs of ``styles`` (this backend's) train."""
        ...

    def train_fold(
        self, config: StudyConfig, style: str, view: str, fold: int, run: RunLayout, train: TrainConfig
    ) -> dict[str, Any]:
        """Train one run (unless finished): the outcome's fields (best_val_iou, best_epoch, epochs_run, ...)."""
        ...

    def load_fold(self, study: EvalStudy, style: str, fold: int) -> FoldModels:
        """The fold's trained models, ready to predict its test subjects."""
        ...

    def load_predictor(
        self,
        layout: StudyLayout,
        config: StudyConfig,
        style: str,
        orientation: str,
        device: torch.device,
        min_component_ml: float = 0.0,
        models: Mapping[str, list[nn.Module]] | None = None,
    ) -> Predictor:
        """Every finished fold of ``style``, loaded once, for new scans."""
        ...


def parse_orientation(text: str) -> tuple[str, list[str]]:
    """``"2.5D"`` → fuse all three views; a single view name → that view only."""
    if text == FUSED:
        return FUSED, list(VIEWS)
    if text in VIEWS:
        return text, [text]
    raise ValueError(f"unknown orientation {text!r}; choose 2.5D or one of {', '.join(VIEWS)}")


# -- the paper's 2D architectures ------------------------------------------------------------------
@dataclass
class _ModelFold:
    """One fold of a 2D style: a model per view, and the post-processing volume chosen for the fold."""

    models: dict[str, list[nn.Module]]
    orientations: list[str]  # the views of ``models``, plus 2.5D when all three are there
    config: StudyConfig
    device: torch.device
    min_component_ml: float

    def test_prediction(self, case: SubjectCase) -> dict[tuple[str, str], np.ndarray]:
        eval_cfg = self.config.eval
        probs = predict_subject_views(
            case.prepared.image, case.union_origins, case.patch_size, self.models, self.device,
            batch_size=eval_cfg.batch_size,
        )  # fmt: skip
        orientations = self.orientations
        # threshold (and fuse) once per orientation; each protocol then only masks its region
        binaries = {
            o: threshold(fuse_views(probs) if o == FUSED else probs[o], eval_cfg.threshold)
            for o in orientations
        }
        out: dict[tuple[str, str], np.ndarray] = {}
        for protocol in case.protocols:
            region = case.regions[protocol]
            for orientation in orientations:
                binary = remove_small_components(
                    binaries[orientation] & region, case.voxel_ml, self.min_component_ml
                )
                out[(orientation, protocol)] = restore(
                    binary.astype(np.uint8), case.prepared.meta, order=0
                ).astype(bool)
        return out


@dataclass
class _ModelPredictor:
    """Every finished fold of a 2D style for each view asked for (``iphbench predict``)."""

    models: dict[str, list[nn.Module]]
    config: StudyConfig
    style: str
    orientation: str
    device: torch.device
    min_component_ml: float

    @property
    def n_models(self) -> int:
        return sum(len(v) for v in self.models.values())

    def __call__(self, image: Volume, on_step: Callable[[str], None] | None = None) -> ScanPrediction:
        step = on_step or (lambda _name: None)
        step("models loaded")
        mask, prob, brain_ml, seconds = segment_scan(
            image, self.models, self.config.prep, self.config.eval, self.orientation, self.device,
            self.min_component_ml, step,
        )  # fmt: skip
        voxel_ml = float(np.prod(image.spacing)) / 1000.0
        return ScanPrediction(
            mask, prob, float(mask.sum()) * voxel_ml, self.style, self.orientation, self.n_models, seconds,
            brain_ml=brain_ml,
        )  # fmt: skip


class ModelBackend:
    """The paper's 2D architectures (``iphbench.models``) trained per view under a recipe."""

    name = "models"
    config_sections: tuple[str, ...] = ()
    unhashed: tuple[str, ...] = ()

    def check_available(self) -> None:
        return None

    def prepare(self, config: StudyConfig, store: PatchStore, folds: pd.DataFrame, styles: list[str]) -> None:
        return None  # the patch store is the study's own preparation

    def train_fold(
        self, config: StudyConfig, style: str, view: str, fold: int, run: RunLayout, train: TrainConfig
    ) -> dict[str, Any]:
        layout = StudyLayout(config.out)
        s = parse_style(style)
        result = train_run(
            layout.prep, read_folds(layout.folds_csv), s.arch, view, fold, run.dir, config.models, train,
            recipe=s.recipe,
        )  # fmt: skip
        return {
            "best_val_iou": result.best_val_iou,
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "compile": result.compile,
        }

    def load_fold(self, study: EvalStudy, style: str, fold: int) -> FoldModels:
        models = {
            view: [load_model(study.layout.run(style, view, fold).dir, study.device)] for view in study.views
        }
        with torch.inference_mode():
            chosen = postprocess_volumes(
                study.config, study.store, study.folds, fold, {style: models}, study.device, study.postprocess
            )
        orientations = parse_style(style).orientations(study.views)
        return _ModelFold(models, orientations, study.config, study.device, chosen[style])

    def load_predictor(
        self,
        layout: StudyLayout,
        config: StudyConfig,
        style: str,
        orientation: str,
        device: torch.device,
        min_component_ml: float = 0.0,
        models: Mapping[str, list[nn.Module]] | None = None,
    ) -> Predictor:
        orientation, views = parse_orientation(orientation)
        if models is None:
            loaded = load_style_models(layout, style, views, device)
        else:
            loaded = {view: list(models[view]) for view in views}
        return _ModelPredictor(loaded, config, style, orientation, device, min_component_ml)


def load_style_models(
    layout: StudyLayout, style: str, views: Sequence[str], device: torch.device
) -> dict[str, list[nn.Module]]:
    """Every finished fold model of a 2D ``style`` for each view in ``views`` (``iphbench predict``).

    Raises:
        FileNotFoundError: a view has no finished run.
    """
    loaded: dict[str, list[nn.Module]] = {}
    for view in views:
        runs = layout.finished_runs(style, view)
        if not runs:
            raise FileNotFoundError(
                f"no finished {style} {view} model in {layout.runs / style / view}; "
                f"train it with 'iphbench study run' or choose another --style or --views"
            )
        loaded[view] = [load_model(r.dir, device) for r in sorted(runs, key=lambda r: r.dir)]
    return loaded


# -- nnU-Net v2 reference styles ---------------------------------------------------------------------
@dataclass
class _NnunetFold:
    """One fold of an nnU-Net style: its saved whole-scan predictions of the test subjects."""

    run: RunLayout
    orientation: str

    def test_prediction(self, case: SubjectCase) -> dict[tuple[str, str], np.ndarray]:
        whole = read_test_prediction(self.run.dir, case.subject, case.reference)
        # kept inside the same region as the 2D styles' prediction, protocol by protocol
        return {(self.orientation, p): whole & case.canonical_region(p) for p in case.protocols}


@dataclass
class _NnunetPredictor:
    """An nnU-Net style's fold ensemble (``iphbench predict``): the whole scan, then the brain mask."""

    model: Any
    layout: StudyLayout
    style: str
    orientation: str
    device: torch.device

    @property
    def n_models(self) -> int:
        return int(self.model.n_folds)

    def __call__(self, image: Volume, on_step: Callable[[str], None] | None = None) -> ScanPrediction:
        return predict_scan_nnunet(
            image, self.layout.root, self.style, self.orientation, self.device, on_step, model=self.model
        )


class NnunetBackend:
    """nnU-Net v2 configurations (``nnunet_2d``, ``nnunet_3d_fullres``) as reference styles (docs/nnunet.md)."""

    name = "nnunet"
    config_sections: tuple[str, ...] = ("nnunet",)
    unhashed: tuple[str, ...] = ("nnunet.preprocessing_workers", "nnunet.augmentation_workers")

    def check_available(self) -> None:
        try:
            require_nnunet()
        except NnunetUnavailableError as exc:
            raise BackendUnavailableError(str(exc)) from None

    def prepare(self, config: StudyConfig, store: PatchStore, folds: pd.DataFrame, styles: list[str]) -> None:
        prepare_nnunet(config, store.subjects_table, folds, styles)

    def train_fold(
        self, config: StudyConfig, style: str, view: str, fold: int, run: RunLayout, train: TrainConfig
    ) -> dict[str, Any]:
        done = run_nnunet_fold(config, style, fold, run.dir, train.device)
        return {"best_val_iou": None, "best_epoch": None, "epochs_run": done["epochs_run"]}

    def load_fold(self, study: EvalStudy, style: str, fold: int) -> FoldModels:
        orientation = orientation_of(style)
        return _NnunetFold(study.layout.run(style, orientation, fold), orientation)

    def load_predictor(
        self,
        layout: StudyLayout,
        config: StudyConfig,
        style: str,
        orientation: str,
        device: torch.device,
        min_component_ml: float = 0.0,
        models: Mapping[str, list[nn.Module]] | None = None,
    ) -> Predictor:
        own = orientation_of(style)
        if orientation not in (FUSED, own):
            raise ValueError(f"{style} predicts the volume as {own}; choose --views {own}")
        model = load_nnunet(finished_folds(layout.root, style), device, config.nnunet.test_time_mirroring)
        return _NnunetPredictor(model, layout, style, own, device)


#: The backend of each kind of style (``iphbench.styles.Style.backend``).
BACKENDS: dict[str, StyleBackend] = {"models": ModelBackend(), "nnunet": NnunetBackend()}


def backend_for(style: str | Style) -> StyleBackend:
    """The backend that trains, evaluates and predicts ``style``."""
    return BACKENDS[parse_style(str(style)).backend]


def load_case(
    layout: StudyLayout, config: StudyConfig, store: PatchStore, info: pd.Series, subject: str, fold: int
) -> SubjectCase:
    """A test subject as evaluation scores it (:class:`SubjectCase`)."""
    prepared = store.load(subject)
    size = store.config.patch_size
    lesion_origins = store.patch_origins(subject, "lesion")
    brain_origins = store.patch_origins(subject, "brain")
    mask_path = info.get("mask")
    if isinstance(mask_path, str) and mask_path != "":
        reference = read_mask(mask_path, labels=config.prep.mask_labels)
    else:
        like = read_volume(str(info["image"]))
        reference = like.with_array(np.zeros(like.shape, dtype=np.uint8))
    padded = prepared.image.shape
    regions = {
        "paper": _region_of(lesion_origins, padded, size),
        "full": np.asarray(prepared.brain, dtype=bool),
    }
    protocols = scored_protocols(config.eval.protocols, len(lesion_origins) > 0)
    return SubjectCase(
        subject, fold, prepared, lesion_origins, brain_origins, reference, regions, protocols, size
    )


def _region_of(origins: np.ndarray, shape: tuple[int, ...], size: int) -> np.ndarray:
    region = np.zeros(shape, dtype=bool)
    for x, y, z in origins:
        region[x : x + size, y : y + size, z : z + size] = True
    return region


__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "EvalStudy",
    "FoldModels",
    "ModelBackend",
    "NnunetBackend",
    "Predictor",
    "StyleBackend",
    "SubjectCase",
    "backend_for",
    "load_case",
    "load_style_models",
    "parse_orientation",
]
