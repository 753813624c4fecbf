"""A run's recipe, resolved: the concrete settings one (style, view, fold) run trains with.

``train.recipe`` names a recipe (docs/training.md): ``paper`` is the published one (section
3.4: Adam 5e-4, ReduceLROnPlateau on the validation loss, epochs over the lesion-patch slices,
the model with the best validation IoU); ``iphbench`` is ours (the ``train.iphbench`` block:
balanced sampling with lesion-free context, augmentation on the device, AdamW with warm-up
and decay over a budget of optimiser steps, selection on the mean per-subject Dice).
:func:`resolve_recipe` turns the study's training settings and a recipe name into one
:class:`RunRecipe`, so the trainer never branches on the recipe's name.

Example:
    >>> from iphbench.config import PrepConfig, TrainConfig
    >>> r = resolve_recipe(TrainConfig(), "iphbench", PrepConfig())
    >>> r.optimizer, r.schedule, r.select_on, r.epochs
    ('adamw', 'cosine', 'subject_dice', 24)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from iphbench.config import PrepConfig, TrainConfig
from iphbench.training.augment import Augmentation


@dataclass(frozen=True)
class RunRecipe:
    """Everything about how a run trains that the recipe decides."""

    name: str  # "paper" or "iphbench"
    batch_size: int  # slices per optimiser step
    epochs: int  # validations of the run (an epoch ends with one)
    steps_per_epoch: int | None  # None: one pass over the training slices (paper default)
    total_steps: int | None  # budget of optimiser steps (iphbench); the last epoch may be shorter
    optimizer: str  # "adam" or "adamw"
    lr: float
    weight_decay: float
    schedule: str  # "plateau" (per validation) or "cosine", "poly", "constant" (per step, after warm-up)
    warmup_steps: int
    plateau_patience: int
    plateau_factor: float
    early_stopping_patience: int  # epochs (validations) without a better selection score; 0 = never
    select_on: str  # "iou" (pooled validation IoU, the paper) or "subject_dice"
    skip_empty: bool  # drop all-zero slices
    foreground_share: float  # 0 with context_share 0: uniform batches (the paper's shuffle)
    context_share: float
    context_patches_per_subject: int
    augmentation: Augmentation | None

    @property
    def balanced(self) -> bool:
        """Batches composed by share (:class:`~iphbench.training.sampling.BalancedSampler`)."""
        return self.name != "paper"

    def steps_in_epoch(self, epoch: int, default: int) -> int:
        """Steps of epoch ``epoch`` (1-based); ``default`` is one pass when ``steps_per_epoch`` is None."""
        per = self.steps_per_epoch or default
        if self.total_steps is None:
            return per
        return max(0, min(per, self.total_steps - (epoch - 1) * per))

    @property
    def selection_key(self) -> str:
        """The history column a run's best checkpoint is chosen on."""
        return "val_iou" if self.select_on == "iou" else "val_subject_dice"


def resolve_recipe(train: TrainConfig, name: str, prep: PrepConfig) -> RunRecipe:
    """The :class:`RunRecipe` of recipe ``name`` under the study's ``train`` and ``prep`` settings."""
    if name == "paper":
        return RunRecipe(
            name="paper",
            batch_size=train.batch_size,
            epochs=train.epochs,
            steps_per_epoch=train.steps_per_epoch,
            total_steps=None,
            optimizer="adam",
            lr=train.lr,
            weight_decay=0.0,
            schedule="plateau",
            warmup_steps=0,
            plateau_patience=train.plateau_patience,
            plateau_factor=train.plateau_factor,
            early_stopping_patience=train.early_stopping_patience,
            select_on="iou",
            skip_empty=False,
            foreground_share=0.0,
            context_share=0.0,
            context_patches_per_subject=0,
            augmentation=None,
        )
    if name != "iphbench":
        raise ValueError(f"unknown training recipe {name!r}; valid recipes are ['paper', 'iphbench']")
    r = train.iphbench
    augmentation = Augmentation(
        hu_per_unit=(prep.hu_max - prep.hu_min) / max(prep.out_max - prep.out_min, 1e-6),
        hu_min=prep.hu_min,
        flip=r.flip,
        rotate_deg=r.rotate_deg,
        scale=r.scale,
        hu_offset=r.hu_offset,
        hu_scale=r.hu_scale,
        gamma=r.gamma,
        noise_hu=r.noise_hu,
        blur_sigma=r.blur_sigma,
        p=r.augment_p,
    )
    return RunRecipe(
        name="iphbench",
        batch_size=r.batch_size,
        epochs=math.ceil(r.steps / r.val_every),
        steps_per_epoch=r.val_every,
        total_steps=r.steps,
        optimizer=r.optimizer,
        lr=r.lr,
        weight_decay=r.weight_decay,
        schedule=r.schedule,
        warmup_steps=r.warmup_steps,
        plateau_patience=0,
        plateau_factor=1.0,
        early_stopping_patience=r.early_stopping_patience,
        select_on=r.select_on,
        skip_empty=r.skip_empty_slices,
        foreground_share=r.foreground_share,
        context_share=r.context_share,
        context_patches_per_subject=r.context_patches_per_subject if r.context_share > 0 else 0,
        augmentation=augmentation if augmentation.enabled else None,
    )


__all__ = ["RunRecipe", "resolve_recipe"]
