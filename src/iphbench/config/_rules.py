"""The valid values of every setting of ``iphbench.config``: a range and its reason per number, and each
section's rules across settings, checked when a section is built (:func:`check_section`).

``train.epochs: 0`` used to "train" runs that wrote no ``best.pt`` and ``train.batch_size: -1`` to fail
deep inside torch; now both are refused when the config is read, naming the key and the rule.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from iphbench.config._yaml import ConfigError

if TYPE_CHECKING:
    from iphbench.config import (
        EvalConfig,
        FoldsConfig,
        IphbenchRecipe,
        ModelConfig,
        PrepConfig,
        TrainConfig,
    )

#: A voxel side outside this range (mm) is not a head CT grid: thick slices are ~5-10 mm, in-plane
#: ~0.2-1 mm. Scans are held to it (``iphbench.io``) and so is ``prep.target_spacing``.
MIN_SPACING_MM = 0.05
MAX_SPACING_MM = 20.0
#: d_H95 policies for a missed lesion or a false alarm (``eval.hd95_when_empty``, docs/metrics.md).
HD95_POLICIES: tuple[str, ...] = ("worst", "exclude")
#: Weights of the negatives in the focal loss (``train.focal_alpha_negatives``, docs/training.md).
FOCAL_ALPHA_NEGATIVES: tuple[str, ...] = ("one_minus", "same")
#: ``train.compile_mode`` values (iphbench.training.compiled.COMPILE_MODES)
COMPILE_MODES: tuple[str, ...] = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
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
SECTIONS: dict[str, Section] = {
    "PrepConfig": Section("prep", {
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
    "ModelConfig": Section("models", {
        "width": _at_least(1, "channels of the first VGG16 block; the paper's is 64"),
    }, _models_rules),
    "FoldsConfig": Section("folds", {
        "k": _at_least(2, "each fold tests on one part and trains on the others"),
        "val_fraction": Bound(0.0, 1.0, open_low=True, open_high=True,
                              why="share of a fold's training subjects held out for model selection"),
        "seed": _SEED,
    }, _folds_rules),
    "IphbenchRecipe": Section("train.iphbench", {
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
    "TrainConfig": Section("train", {
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
    "LearningCheckConfig": Section("eval.learning_check", {
        "min_dice": _share("a Dice"),
        "max_false_positive_ml": _at_least(0, "a volume in mL"),
        "min_val_rise": _share("a rise of the validation Dice"),
    }),
    "EvalConfig": Section("eval", {
        "threshold": Bound(0.0, 1.0, open_low=True, open_high=True,
                           why="a probability threshold: 0 or 1 would mark every voxel or none"),
        "batch_size": _at_least(1, "slices per inference batch"),
        "lesion_min_ml": _at_least(0, "a volume in mL"),
    }, _eval_rules),
    "NnunetConfig": Section("nnunet", {
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
    section = SECTIONS[type(obj).__name__]
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


__all__ = [
    "COMPILE_MODES",
    "ENCODER_STRIDE",
    "FOCAL_ALPHA_NEGATIVES",
    "HD95_POLICIES",
    "MAX_SPACING_MM",
    "MIN_SPACING_MM",
    "SECTIONS",
    "Bound",
    "Section",
    "check_section",
    "numeric_settings",
]
