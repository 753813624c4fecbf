"""Typed study configuration, loaded from YAML and saved resolved next to its results.

One study YAML holds every setting of the paper's method (DESIGN.md, "The method").
Unknown keys are errors, so a typo never silently falls back to a default, and every numeric
setting is checked against its valid range (:data:`SECTIONS`) when its section is built, from
YAML or in Python: the error names the full key, the rule and why (docs/training.md).

Example:
    >>> cfg = StudyConfig.from_dict({"cohort": "cohort.csv", "out": "study", "train": {"epochs": 3}})
    >>> cfg.train.epochs, cfg.train.lr
    (3, 0.0005)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from iphbench._files import atomic_write_text
from iphbench.views import VIEWS

#: The paper's four architectures (section 3.3): the default of ``models.names``. Which names exist
#: is the model registry's to say (``iphbench.models``; checked by ``iphbench.styles.study_styles``).
PAPER_ARCHITECTURES: tuple[str, ...] = ("unet", "attention_unet", "fpn", "transunet")
#: A voxel side outside this range (mm) is not a head CT grid: thick slices are ~5-10 mm, in-plane
#: ~0.2-1 mm. Scans are held to it (``iphbench.io``) and so is ``prep.target_spacing``.
MIN_SPACING_MM = 0.05
MAX_SPACING_MM = 20.0
#: Training recipes (``train.recipe``, docs/training.md).
RECIPE_NAMES: tuple[str, ...] = ("paper", "iphbench")
VIEW_NAMES: tuple[str, ...] = VIEWS
#: d_H95 policies for a missed lesion or a false alarm (``eval.hd95_when_empty``, docs/metrics.md).
HD95_POLICIES: tuple[str, ...] = ("worst", "exclude")
#: Weights of the negatives in the focal loss (``train.focal_alpha_negatives``, docs/training.md).
FOCAL_ALPHA_NEGATIVES: tuple[str, ...] = ("one_minus", "same")


@dataclass
class PrepConfig:
    """Preprocessing (paper section 3.2)."""

    brain_extraction: str = "ct"  # "ct" (fast, no model), "synthstrip" (needs mri_synthstrip), "none"
    hu_min: float = -30.0  # lower HU clip (paper: -30)
    hu_max: float = 100.0  # upper HU clip (paper: 100)
    out_min: float = 0.0  # value that hu_min maps to after min-max (paper: 0)
    out_max: float = 1.0  # value that hu_max maps to after min-max (paper: 1)
    target_spacing: list[float] | None = None  # resample to (x, y, z) mm; None = off, as the paper
    patch_size: int = 64  # cubic patch side in voxels; volumes are zero-padded to multiples of it (paper: 64)
    mask_labels: list[int] | None = None  # hemorrhage label values; None = masks are {0,1} or {0,255}

    def __post_init__(self) -> None:
        check_section(self)


@dataclass
class ModelConfig:
    """Which architectures to train and how wide (paper section 3.3)."""

    # registered architectures (iphbench.models) and nnU-Net reference styles (nnunet_2d, nnunet_3d_fullres)
    names: list[str] = field(default_factory=lambda: list(PAPER_ARCHITECTURES))
    width: int = 64  # channels of the first VGG16 block; 64 is the paper's VGG16
    batch_norm: bool = True  # batch norm after each encoder convolution (VGG16-BN)
    pretrained: str | None = None  # optional local file with ImageNet VGG16 weights; never downloaded
    # per-architecture extras {name: {kwarg: value}}, e.g. {"transunet": {"depth": 4}}
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_section(self)


@dataclass
class FoldsConfig:
    """Subject-level cross-validation (paper section 3.5)."""

    scheme: str = "kfold"  # "kfold" (stratified by site) or "loso" (leave one site out)
    k: int = 5  # number of folds for kfold (paper: 5)
    val_fraction: float = 0.15  # share of each fold's training subjects held out for model selection
    seed: int = 0  # seed of the split

    def __post_init__(self) -> None:
        check_section(self)


@dataclass
class IphbenchRecipe:
    """The ``iphbench`` training recipe (docs/training.md, "The iphbench recipe").

    Used by runs whose recipe is ``iphbench``; the ``paper`` recipe ignores this block. Every
    item can be switched off on its own (a share of 0, a range of 0, or false).
    """

    # sampling
    skip_empty_slices: bool = True  # never sample all-zero slices (padding, outside the brain)
    foreground_share: float = 0.5  # share of each batch from slices holding lesion; 0 = uniform
    # lesion-free context (what the `full` protocol and `predict` meet)
    context_share: float = (
        0.25  # share of each batch, and of validation slices, from lesion-free brain patches
    )
    context_patches_per_subject: int = 8  # most lesion-free brain patches read per subject
    # augmentation, applied to whole batches on the compute device
    flip: bool = True  # random in-plane flips along each axis (p = 0.5 each)
    rotate_deg: float = 15.0  # in-plane rotation drawn in ±rotate_deg; 0 = off
    scale: float = 0.15  # isotropic zoom drawn in [1 − scale, 1 + scale]; 0 = off
    # intensity ranges are those sites really differ by (water calibration within ±5 HU, a few HU of noise):
    # 2-3 times these cost 0.05-0.10 Dice on the hard synthetic preset (BENCHMARKS.md, "recipe ablation")
    hu_offset: float = 5.0  # HU offset before the window, drawn in ±hu_offset (site calibration); 0 = off
    hu_scale: float = 0.05  # HU scale before the window, drawn in 1 ± hu_scale; 0 = off
    gamma: float = 0.1  # gamma exp(u), u in ±gamma, on the windowed brain; 0 = off
    noise_hu: float = 3.0  # Gaussian noise with SD drawn in [0, noise_hu] HU; 0 = off
    blur_sigma: float = 0.5  # Gaussian blur with sigma drawn in [0, blur_sigma] pixels; 0 = off
    augment_p: float = 0.8  # probability that a slice gets the spatial and intensity changes
    # optimiser and schedule: a budget of optimiser steps, not epochs
    optimizer: str = "adamw"  # "adamw" (decoupled weight decay) or "adam"
    # peak learning rate; 1e-3 was too low at every width from 8 to 64 (BENCHMARKS.md, "Peak lr against width")
    lr: float = 2e-3
    weight_decay: float = 1e-4  # AdamW weight decay
    batch_size: int = 64  # slices per step, independent of the cohort's size
    steps: int = 6000  # optimiser steps of the whole run
    warmup_steps: int = 200  # linear warm-up from lr/100 to lr
    schedule: str = "cosine"  # decay after warm-up: "cosine", "poly" (power 0.9) or "constant"
    val_every: int = 250  # steps between validations (one row of history.csv)
    early_stopping_patience: int = 0  # validations without improvement before stopping; 0 = never
    # model selection and post-processing
    select_on: str = "subject_dice"  # "subject_dice" (mean per-subject Dice of validation subjects) or "iou"
    # drop predicted components below this mL (at evaluation and in predict, so not part of the training
    # hash); "auto" = chosen on each fold's validation subjects; 0 = off
    min_component_ml: float | str = "auto"

    def __post_init__(self) -> None:
        check_section(self)


@dataclass
class TrainConfig:
    """Training of one (model, view, fold) run (paper section 3.4)."""

    # "paper" (exactly as published), "iphbench" (our recipe, see `iphbench`), or both: [paper, iphbench]
    recipe: str | list[str] = "paper"
    # restrict a recipe to some architectures, e.g. {iphbench: [unet]}; a recipe not listed trains every architecture
    recipe_models: dict[str, list[str]] = field(default_factory=dict)
    epochs: int = 300  # maximum epochs (paper: 300)
    lr: float = 5e-4  # Adam learning rate (paper: 5e-4)
    batch_size: int = 256  # slices per optimisation step
    early_stopping_patience: int = 30  # epochs without a better validation IoU; 0 = never stop early
    plateau_patience: int = 10  # ReduceLROnPlateau patience on the validation loss
    plateau_factor: float = 0.5  # ReduceLROnPlateau factor
    dice_beta: float = 1.0  # beta of the F-beta Dice loss (paper eq. 1)
    focal_alpha: float = 0.25  # focal loss alpha (paper eq. 2)
    # weight of the negatives: "one_minus" (1 − α, Lin 2017 and Keras) or "same" (α, eq. 2 exactly as printed)
    focal_alpha_negatives: str = "one_minus"
    focal_gamma: float = 2.0  # focal loss gamma (paper eq. 2)
    steps_per_epoch: int | None = None  # steps per epoch; None = one pass over the training slices
    seed: int = 0  # seed of initialisation and sampling
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    amp: str = "auto"  # "auto" (bf16 on CUDA, fp32 on CPU), "bf16", "fp32"
    channels_last: bool = True  # channels-last memory format on CUDA
    # torch.compile the training step and validation: "auto" (on CUDA only), true or false
    compile: bool | str = "auto"
    # torch.compile mode: "default", "reduce-overhead" (CUDA graphs), "max-autotune-no-cudagraphs", "max-autotune"
    compile_mode: str = "default"
    # compiled-kernel cache: "auto" (<out>/cache/compile, shared by a grid's runs), a folder, or "none" (torch's default)
    compile_cache: str = "auto"
    gpu_resident: bool = True  # keep the training slices on the GPU when they fit
    checkpoint_every: int = (
        1  # write last.pt every N epochs and at the end (in the background); resume restarts there
    )
    iphbench: IphbenchRecipe = field(default_factory=IphbenchRecipe)  # settings of the iphbench recipe

    def __post_init__(self) -> None:
        check_section(self)

    @property
    def recipes(self) -> list[str]:
        """``recipe`` as a list (a study may train both recipes in one grid)."""
        return [self.recipe] if isinstance(self.recipe, str) else list(self.recipe)


@dataclass
class LearningCheckConfig:
    """When ``evaluate`` and the report say that the models did not learn (docs/evaluation.md, "Did the models learn?")."""

    min_dice: float = (
        0.2  # a style whose best mean Dice (2.5D, subjects with a hemorrhage) is below this did not learn
    )
    max_false_positive_ml: float = (
        150.0  # nor did one whose median false-positive mL on lesion-free scans is above this
    )
    min_val_rise: float = (
        0.05  # a run's validation Dice rose if it gained this over its first value (or reached min_dice)
    )

    def __post_init__(self) -> None:
        check_section(self)


@dataclass
class EvalConfig:
    """Evaluation protocols and thresholds (DESIGN.md, "Beyond the paper")."""

    protocols: list[str] = field(default_factory=lambda: ["paper", "full"])  # paper (lesion patches), full
    threshold: float = 0.5  # probability threshold after fusion
    save_predictions: bool = True  # write predicted masks as NIfTI in each scan's own grid
    batch_size: int = 512  # slices per inference batch
    # d_H95 of a missed lesion or a false alarm: "worst" (the scan's field-of-view diagonal) or "exclude" (NaN)
    hd95_when_empty: str = "worst"
    lesion_min_ml: float = (
        0.01  # connected components smaller than this are not lesions (lesion-wise detection)
    )
    learning_check: LearningCheckConfig = field(
        default_factory=LearningCheckConfig
    )  # "did the models learn?"

    def __post_init__(self) -> None:
        check_section(self)


@dataclass
class NnunetConfig:
    """nnU-Net v2 reference styles (``nnunet_2d``, ``nnunet_3d_fullres`` in ``models.names``; docs/nnunet.md).

    ``None`` keeps nnU-Net's own default; everything else about the networks, patches, spacing,
    normalisation and augmentation is planned by nnU-Net itself from the exported scans.
    """

    epochs: int | None = None  # training epochs of each fold; None = nnU-Net's default (1000)
    iterations_per_epoch: int | None = None  # training iterations per epoch; None = nnU-Net's default (250)
    val_iterations_per_epoch: int | None = (
        None  # pseudo-Dice batches per epoch (a log only); None = default (50)
    )
    train_on_val: bool = True  # train on folds.csv's train and val subjects (nnU-Net selects no checkpoint)
    test_time_mirroring: bool = True  # average predictions over mirrored inputs, as nnU-Net does by default
    preprocessing_workers: int = 2  # processes of nnU-Net's fingerprint extraction and preprocessing
    augmentation_workers: int | None = None  # data-augmentation processes; None = nnU-Net's default, 0 = none

    def __post_init__(self) -> None:
        check_section(self)


@dataclass
class StudyConfig:
    """A whole study: cohort, preprocessing, grid, training, evaluation and output folder."""

    cohort: str = "cohort.csv"  # cohort manifest CSV (relative to the YAML file's folder)
    out: str = "study"  # study folder (relative to the YAML file's folder)
    name: str = "iph-study"  # a label shown in the report
    views: list[str] = field(default_factory=lambda: list(VIEW_NAMES))  # subset of 2DAxi, 2DCor, 2DSag
    prep: PrepConfig = field(default_factory=PrepConfig)
    models: ModelConfig = field(default_factory=ModelConfig)
    folds: FoldsConfig = field(default_factory=FoldsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    nnunet: NnunetConfig = field(default_factory=NnunetConfig)  # settings of the nnU-Net reference styles

    def __post_init__(self) -> None:
        # each section checked itself when it was built (check_section); here the rules across sections
        if not self.views:
            raise ConfigError(f"views must list at least one of {list(VIEW_NAMES)}, got an empty list")
        bad_views = [v for v in self.views if v not in VIEW_NAMES]
        if bad_views:
            raise ConfigError(f"unknown views {bad_views}; valid views are {list(VIEW_NAMES)}")
        recipes = self.train.recipes
        bad_recipes = [r for r in recipes if r not in RECIPE_NAMES]
        if bad_recipes or not recipes or len(set(recipes)) != len(recipes):
            raise ConfigError(
                f"train.recipe must be one of {list(RECIPE_NAMES)} or a list of distinct ones, got {self.train.recipe!r}"
            )
        for name, archs in self.train.recipe_models.items():
            if (
                name not in recipes
                or not isinstance(archs, list)
                or any(a not in self.models.names for a in archs)
            ):
                raise ConfigError(
                    f"train.recipe_models maps a recipe of train.recipe ({recipes}) to architectures of models.names "
                    f"({self.models.names}), got {name!r}: {archs!r}"
                )

    # -- loading and saving -------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudyConfig:
        """Build from a plain dict (as loaded from YAML); unknown keys raise ConfigError."""
        return _from_dict(cls, data, "study")

    @classmethod
    def load(cls, path: str | Path) -> StudyConfig:
        """Load a study YAML; relative ``cohort`` and ``out`` are resolved against its folder."""
        path = Path(path)
        data = load_yaml_mapping(path, "study file")
        try:
            cfg = cls.from_dict(data)
        except ConfigError as exc:  # say which file holds the bad setting
            raise ConfigError(f"study file {path}: {exc}") from None
        base = path.resolve().parent
        cfg.cohort = str((base / cfg.cohort).resolve())
        cfg.out = str((base / cfg.out).resolve())
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return plain(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> None:
        """Save the resolved config (atomically)."""

        atomic_write_text(path, self.to_yaml())


class ConfigError(ValueError):
    """A study or preprocessing configuration is invalid."""


#: ``train.compile_mode`` values (iphbench.training.compiled.COMPILE_MODES)
COMPILE_MODES: tuple[str, ...] = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: TrainConfig fields that change how fast a run trains, never what it learns: left out of the
#: run's and the study's settings hash, so they can change between a run's start and its resume.
EXECUTION_SETTINGS: tuple[str, ...] = (
    "device",
    "checkpoint_every",
    "compile",
    "compile_mode",
    "compile_cache",
)


# -- the valid values of every setting ---------------------------------------------------------
#: Side of a 2D slice must divide by this: the VGG16 encoder of every architecture pools four
#: times (``iphbench.models.SegmentationModel.required_multiple``; kept here so that loading a
#: config does not import torch; tests/test_config.py checks that the two agree).
ENCODER_STRIDE = 16


@dataclass(frozen=True)
class Bound:
    """The valid values of one numeric setting and why (a row of :data:`SECTIONS`)."""

    low: float | None = None  # smallest valid value; None = no lower limit
    high: float | None = None  # largest valid value; None = no upper limit
    open_low: bool = False  # ``low`` itself is not valid
    open_high: bool = False  # ``high`` itself is not valid
    multiple_of: int | None = None  # the value must divide by this (and be positive)
    why: str = ""  # the reason, shown in the error

    def fits(self, value: float) -> bool:
        if self.multiple_of is not None and (value <= 0 or value % self.multiple_of):
            return False
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or (value < self.high if self.open_high else value <= self.high)

    def rule(self) -> str:
        """The rule as the end of "KEY must ...", e.g. ``be at least 1`` or ``lie in (0, 1)``."""
        if self.multiple_of is not None:
            return f"be a positive multiple of {self.multiple_of}"
        low, high = self.low, self.high
        if low is not None and high is not None:
            return f"lie in {'(' if self.open_low else '['}{low:g}, {high:g}{')' if self.open_high else ']'}"
        if low is not None:
            return f"be > {low:g}" if self.open_low else f"be at least {low:g}"
        if high is not None:
            return f"be < {high:g}" if self.open_high else f"be at most {high:g}"
        return "be a finite number"


#: Shorthands for the bounds that recur below.
def _at_least(low: float, why: str = "") -> Bound:
    return Bound(low=low, why=why)


def _positive(why: str = "") -> Bound:
    return Bound(low=0.0, open_low=True, why=why)


def _share(why: str = "") -> Bound:
    return Bound(low=0.0, high=1.0, why=why)


_SEED = _at_least(0, "NumPy and torch seeds are non-negative integers")
_OFF_AT_0 = "0 switches it off"


@dataclass(frozen=True)
class Section:
    """Where a config dataclass sits in a study YAML, the bounds of its numeric settings, and
    its rules across settings (called with the section and its key)."""

    key: str  # e.g. "train.iphbench"
    bounds: dict[str, Bound]
    rules: Callable[[Any, str], None] | None = None


def _prep_rules(p: PrepConfig, key: str) -> None:
    if not p.hu_min < p.hu_max:
        raise ConfigError(
            f"{key}.hu_min ({p.hu_min:g}) must be less than {key}.hu_max ({p.hu_max:g}): they are the HU window"
        )
    if not p.out_min < p.out_max:
        raise ConfigError(
            f"{key}.out_min ({p.out_min:g}) must be less than {key}.out_max ({p.out_max:g}): the window maps "
            "hu_min to out_min and hu_max to out_max, and 0 is the value outside the brain"
        )
    if p.target_spacing is not None:
        ts = p.target_spacing
        if len(ts) != 3 or not all(MIN_SPACING_MM <= v <= MAX_SPACING_MM for v in ts):
            raise ConfigError(
                f"{key}.target_spacing must be three voxel sides (x, y, z) in mm from {MIN_SPACING_MM:g} to "
                f"{MAX_SPACING_MM:g} (a head CT grid), or null to keep each scan's own, got {ts}"
            )
    labels = p.mask_labels
    if labels is not None and (not labels or len(set(labels)) != len(labels)):
        raise ConfigError(
            f"{key}.mask_labels must list distinct hemorrhage label values (or be null for {{0, 1}} masks), "
            f"got {labels}: an empty list would count no voxel as hemorrhage"
        )


def _models_rules(m: ModelConfig, key: str) -> None:
    if not m.names:
        raise ConfigError(
            f"{key}.names must list at least one architecture or nnU-Net style, got an empty list"
        )


def _folds_rules(f: FoldsConfig, key: str) -> None:
    if f.scheme not in ("kfold", "loso"):
        raise ConfigError(f"{key}.scheme must be 'kfold' or 'loso', got {f.scheme!r}")


def _iphbench_rules(r: IphbenchRecipe, key: str) -> None:
    if r.foreground_share + r.context_share > 1.0:
        raise ConfigError(
            f"{key}.foreground_share + context_share must be at most 1 (shares of one batch), got "
            f"{r.foreground_share} + {r.context_share}"
        )
    if r.warmup_steps > r.steps:
        raise ConfigError(
            f"{key}.warmup_steps ({r.warmup_steps}) must be at most {key}.steps ({r.steps}): a warm-up longer "
            "than the run never reaches the peak learning rate"
        )
    choices = {"optimizer": ("adamw", "adam"), "schedule": ("cosine", "poly", "constant"),
               "select_on": ("subject_dice", "iou")}  # fmt: skip
    for name, allowed in choices.items():
        if getattr(r, name) not in allowed:
            raise ConfigError(f"{key}.{name} must be one of {list(allowed)}, got {getattr(r, name)!r}")
    if isinstance(r.min_component_ml, str) and r.min_component_ml != "auto":
        raise ConfigError(
            f"{key}.min_component_ml must be 'auto' or a volume in mL >= 0, got {r.min_component_ml!r}"
        )


def _train_rules(t: TrainConfig, key: str) -> None:
    if t.compile not in ("auto", True, False):
        raise ConfigError(f"{key}.compile must be 'auto', true or false, got {t.compile!r}")
    if t.compile_mode not in COMPILE_MODES:
        raise ConfigError(f"{key}.compile_mode must be one of {list(COMPILE_MODES)}, got {t.compile_mode!r}")
    if t.focal_alpha_negatives not in FOCAL_ALPHA_NEGATIVES:
        raise ConfigError(
            f"{key}.focal_alpha_negatives must be one of {list(FOCAL_ALPHA_NEGATIVES)}, "
            f"got {t.focal_alpha_negatives!r}"
        )


def _eval_rules(e: EvalConfig, key: str) -> None:
    if e.hd95_when_empty not in HD95_POLICIES:
        raise ConfigError(
            f"{key}.hd95_when_empty must be one of {list(HD95_POLICIES)}, got {e.hd95_when_empty!r}"
        )
    bad = [p for p in e.protocols if p not in ("paper", "full")]
    if bad or not e.protocols:
        raise ConfigError(
            f"unknown protocols {bad}; valid protocols are ['paper', 'full']"
            if bad
            else f"{key}.protocols must list at least one of ['paper', 'full'], got an empty list"
        )


_NNUNET_DEFAULT = "or absent for nnU-Net's default"

#: Every config section: its key in a study YAML, the valid range of each numeric setting (a
#: test checks that no int or float setting is missing) and its rules across settings. Each
#: section checks itself when it is built (``__post_init__``), from YAML or in Python, so no
#: setting reaches training unchecked: ``train.epochs: 0`` used to "train" runs that wrote no
#: ``best.pt``, ``train.batch_size: -1`` to fail deep inside torch.
SECTIONS: dict[type, Section] = {
    PrepConfig: Section("prep", {
        "hu_min": Bound(why="HU"),
        "hu_max": Bound(why="HU"),
        "out_min": Bound(),
        "out_max": Bound(),
        "target_spacing": _positive("mm"),
        "patch_size": Bound(multiple_of=ENCODER_STRIDE, why=(
            f"a patch's slices go through the VGG16 encoder, whose four 2x2 poolings need sides divisible by "
            f"{ENCODER_STRIDE}; the paper uses 64")),
        "mask_labels": _at_least(1, "label values of hemorrhage; 0 is the background"),
    }, _prep_rules),
    ModelConfig: Section("models", {
        "width": _at_least(1, "channels of the first VGG16 block; the paper's is 64"),
    }, _models_rules),
    FoldsConfig: Section("folds", {
        "k": _at_least(2, "each fold tests on one part and trains on the others"),
        "val_fraction": Bound(0.0, 1.0, open_low=True, open_high=True,
                              why="share of a fold's training subjects held out for model selection"),
        "seed": _SEED,
    }, _folds_rules),
    IphbenchRecipe: Section("train.iphbench", {
        "foreground_share": _share("a share of each batch"),
        "context_share": _share("a share of each batch"),
        "context_patches_per_subject": _at_least(0, _OFF_AT_0),
        "rotate_deg": Bound(0.0, 180.0, why=f"rotations in ±rotate_deg; {_OFF_AT_0}"),
        "scale": Bound(0.0, 1.0, open_high=True, why=f"zoom in [1 - scale, 1 + scale]; {_OFF_AT_0}"),
        "hu_offset": _at_least(0, f"HU offset in ±hu_offset; {_OFF_AT_0}"),
        "hu_scale": Bound(0.0, 1.0, open_high=True, why=f"HU scale in 1 ± hu_scale; {_OFF_AT_0}"),
        "gamma": _at_least(0, _OFF_AT_0),
        "noise_hu": _at_least(0, _OFF_AT_0),
        "blur_sigma": _at_least(0, _OFF_AT_0),
        "augment_p": _share("a probability"),
        "lr": _positive("the peak learning rate"),
        "weight_decay": _at_least(0, _OFF_AT_0),
        "batch_size": _at_least(1, "slices per step"),
        "steps": _at_least(1, "optimiser steps of the run; 0 would train nothing"),
        "warmup_steps": _at_least(0, _OFF_AT_0),
        "val_every": _at_least(1, "steps between validations"),
        "early_stopping_patience": _at_least(0, "0 = never stop early"),
        "min_component_ml": _at_least(0, "a volume in mL, or 'auto'; 0 switches it off"),
    }, _iphbench_rules),
    TrainConfig: Section("train", {
        "epochs": _at_least(1, "0 epochs would train nothing and write no best.pt"),
        "lr": _positive("the Adam learning rate"),
        "batch_size": _at_least(1, "slices per optimisation step"),
        "early_stopping_patience": _at_least(0, "0 = never stop early"),
        "plateau_patience": _at_least(0, "validations without a lower loss before the rate is cut"),
        "plateau_factor": Bound(0.0, 1.0, open_low=True, open_high=True,
                                why="ReduceLROnPlateau multiplies the rate by it"),
        "dice_beta": _positive("beta of the F-beta Dice loss (paper eq. 1)"),
        "focal_alpha": _share("weight of the positives in the focal loss (paper eq. 2)"),
        "focal_gamma": _at_least(0, "focusing exponent of the focal loss (paper eq. 2); 0 = cross-entropy"),
        "steps_per_epoch": _at_least(1, "or absent for one pass over the training slices"),
        "seed": _SEED,
        "checkpoint_every": _at_least(1, "epochs between last.pt writes"),
    }, _train_rules),
    LearningCheckConfig: Section("eval.learning_check", {
        "min_dice": _share("a Dice"),
        "max_false_positive_ml": _at_least(0, "a volume in mL"),
        "min_val_rise": _share("a rise of the validation Dice"),
    }),
    EvalConfig: Section("eval", {
        "threshold": Bound(0.0, 1.0, open_low=True, open_high=True,
                           why="a probability threshold: 0 or 1 would mark every voxel or none"),
        "batch_size": _at_least(1, "slices per inference batch"),
        "lesion_min_ml": _at_least(0, "a volume in mL"),
    }, _eval_rules),
    NnunetConfig: Section("nnunet", {
        "epochs": _at_least(1, _NNUNET_DEFAULT),
        "iterations_per_epoch": _at_least(1, _NNUNET_DEFAULT),
        "val_iterations_per_epoch": _at_least(1, _NNUNET_DEFAULT),
        "preprocessing_workers": _at_least(1, "processes"),
        "augmentation_workers": _at_least(0, f"processes; 0 = none, {_NNUNET_DEFAULT}"),
    }),
}  # fmt: skip


def check_section(obj: Any) -> None:
    """Raise ConfigError naming the full key (``train.batch_size must be at least 1 (...), got -1``)
    when a setting of the config section ``obj`` is out of its range (:data:`SECTIONS`).

    Booleans, NaN and infinities are refused where a number is expected (YAML reads ``.nan``
    and ``.inf`` as floats; Python's ``True`` is an int).
    """
    section = SECTIONS[type(obj)]
    hints = typing.get_type_hints(type(obj))
    for name, bound in section.bounds.items():
        value = getattr(obj, name)
        kind, options = _number_kind(hints[name])
        if (value is None and type(None) in options) or (isinstance(value, str) and str in options):
            continue  # null = a default; a string setting ('auto') is checked by the section's rules
        where = f"{section.key}.{name}"
        if list in options:
            if not isinstance(value, list | tuple):
                raise ConfigError(f"{where} must be a list of numbers, got {value!r}")
            for i, item in enumerate(value):
                _check_number(f"{where}[{i}]", item, kind, bound)
        else:
            _check_number(where, value, kind, bound)
    if section.rules is not None:
        section.rules(obj, section.key)


def _check_number(where: str, value: Any, kind: type, bound: Bound) -> None:
    what = "an integer" if kind is int else "a number"
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (kind is int and isinstance(value, float))
    ):
        raise ConfigError(f"{where} must be {what}, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {value!r}")
    if not bound.fits(value):
        why = f" ({bound.why})" if bound.why else ""
        raise ConfigError(f"{where} must {bound.rule()}{why}, got {value!r}")


def _number_kind(tp: Any) -> tuple[type, set[Any]]:
    """(int or float, the other types a numeric setting's annotation allows: None, str, list)."""
    args = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    kind: type = float
    options: set[Any] = set()
    for arg in args:
        if typing.get_origin(arg) is list:
            options.add(list)
            arg = typing.get_args(arg)[0]
        if arg in (int, float):
            kind = arg
        else:
            options.add(arg)
    return kind, options


def numeric_settings(cls: type) -> list[str]:
    """The int and float settings of a config dataclass (each must have a :class:`Bound`)."""
    out = []
    for name, tp in typing.get_type_hints(cls).items():
        args = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
        flat = [typing.get_args(a)[0] if typing.get_origin(a) is list else a for a in args]
        if any(a in (int, float) for a in flat):
            out.append(name)
    return out


def load_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """Read a YAML file holding a mapping; ``what`` names the file in errors ("study file", ...)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must hold a mapping of settings, got {type(data).__name__}")
    return data


def plain(obj: Any) -> dict[str, Any]:
    """A config dataclass as plain data in the types its fields declare.

    ``rotate_deg=0`` set in Python becomes ``0.0``, as it does when read from YAML, so a config
    built in code and the same config saved and loaded again hash alike (a study trained from
    Python is not refused when evaluated from its ``config.yaml``).
    """
    return dataclasses.asdict(_from_dict(type(obj), dataclasses.asdict(obj), type(obj).__name__))


def config_hash(obj: Any) -> str:
    """Stable short hash of a dataclass or plain structure (sorted JSON, SHA-256, 16 hex chars)."""
    data = plain(obj) if dataclasses.is_dataclass(obj) and not isinstance(obj, type) else obj
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


T = TypeVar("T")


def _from_dict(cls: type[T], data: Any, where: str) -> T:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown setting(s) {unknown} in {where}; valid settings are {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        tp = hints[name]
        kwargs[name] = _coerce(tp, value, f"{where}.{name}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _from_dict(tp, value, where)  # type: ignore[arg-type]
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {value!r} does not fit {tp}")
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return str(value)
    return value
