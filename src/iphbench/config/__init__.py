"""Typed study configuration, loaded from YAML and saved resolved next to its results.

One study YAML holds every setting of the paper's method (DESIGN.md, "The method").
Unknown keys are errors, so a typo never silently falls back to a default (``config._yaml``), and
every numeric setting is checked against its valid range when its section is built, from YAML or
in Python: the error names the full key, the rule and why (``config._rules``, docs/training.md).

Example:
    >>> cfg = StudyConfig.from_dict({"cohort": "cohort.csv", "out": "study", "train": {"epochs": 3}})
    >>> cfg.train.epochs, cfg.train.lr
    (3, 0.0005)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from iphbench._files import atomic_write_text
from iphbench.config._rules import (
    COMPILE_MODES,
    ENCODER_STRIDE,
    FOCAL_ALPHA_NEGATIVES,
    HD95_POLICIES,
    MAX_SPACING_MM,
    MIN_SPACING_MM,
    SECTIONS,
    Bound,
    Section,
    check_section,
    numeric_settings,
)
from iphbench.config._yaml import ConfigError, config_hash, from_mapping, load_yaml_mapping, plain
from iphbench.views import VIEWS

#: The paper's four architectures (section 3.3): the default of ``models.names``. Which names exist
#: is the model registry's to say (``iphbench.models``; checked by ``iphbench.styles.study_styles``).
PAPER_ARCHITECTURES: tuple[str, ...] = ("unet", "attention_unet", "fpn", "transunet")
#: Training recipes (``train.recipe``, docs/training.md).
RECIPE_NAMES: tuple[str, ...] = ("paper", "iphbench")
VIEW_NAMES: tuple[str, ...] = VIEWS


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
        return from_mapping(cls, data, "study")

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


#: TrainConfig fields that change how fast a run trains, never what it learns: left out of the
#: run's and the study's settings hash, so they can change between a run's start and its resume.
EXECUTION_SETTINGS: tuple[str, ...] = (
    "device",
    "checkpoint_every",
    "compile",
    "compile_mode",
    "compile_cache",
)


__all__ = [
    "COMPILE_MODES",
    "ENCODER_STRIDE",
    "EXECUTION_SETTINGS",
    "FOCAL_ALPHA_NEGATIVES",
    "HD95_POLICIES",
    "MAX_SPACING_MM",
    "MIN_SPACING_MM",
    "PAPER_ARCHITECTURES",
    "RECIPE_NAMES",
    "SECTIONS",
    "VIEW_NAMES",
    "Bound",
    "ConfigError",
    "EvalConfig",
    "FoldsConfig",
    "IphbenchRecipe",
    "LearningCheckConfig",
    "ModelConfig",
    "NnunetConfig",
    "PrepConfig",
    "Section",
    "StudyConfig",
    "TrainConfig",
    "check_section",
    "config_hash",
    "from_mapping",
    "load_yaml_mapping",
    "numeric_settings",
    "plain",
]
