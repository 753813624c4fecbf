"""Optimiser and learning-rate schedule of a run (docs/training.md).

* ``plateau`` (the paper, section 3.4): Adam at a fixed rate, multiplied by ``plateau_factor``
  when the validation loss has not improved for ``plateau_patience`` validations.
* ``cosine`` / ``poly`` / ``constant`` (the ``iphbench`` recipe): a rate set at every optimiser
  step — linear warm-up from 1 % of the peak over ``warmup_steps``, then cosine decay to 0,
  polynomial decay ``(1 − t)^0.9`` (nnU-Net's), or the peak held — over the run's budget of
  steps, so the schedule depends on steps taken, not on the cohort's size.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from iphbench.training.recipe import RunRecipe

POLY_POWER = 0.9


def build_optimizer(model: nn.Module, recipe: RunRecipe, device: torch.device) -> torch.optim.Optimizer:
    """Adam (paper) or AdamW (decoupled weight decay), fused on CUDA."""
    fused = True if device.type == "cuda" else None
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(
            model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, fused=fused
        )
    if recipe.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=recipe.lr, fused=fused)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}; use 'adam' or 'adamw'")


def lr_factor(step: int, recipe: RunRecipe) -> float:
    """Multiplier of the peak rate before optimiser step ``step`` (0-based) of a per-step schedule."""
    warm = recipe.warmup_steps
    if warm > 0 and step < warm:
        return 0.01 + 0.99 * step / warm
    if recipe.schedule == "constant" or recipe.total_steps is None:
        return 1.0
    t = min(1.0, (step - warm) / max(1, recipe.total_steps - warm))
    if recipe.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t))
    if recipe.schedule == "poly":
        return (1.0 - t) ** POLY_POWER
    raise ValueError(f"unknown schedule {recipe.schedule!r}")


class Schedule:
    """The run's learning-rate control: call :meth:`after_step` after each optimiser step and
    :meth:`after_validation` after each validation; its state goes into ``last.pt``."""

    def __init__(self, optimizer: torch.optim.Optimizer, recipe: RunRecipe) -> None:
        self.per_step = recipe.schedule != "plateau"
        self.scheduler: Any
        if self.per_step:
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, recipe))
        else:
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=recipe.plateau_factor, patience=recipe.plateau_patience
            )

    def after_step(self) -> None:
        if self.per_step:
            self.scheduler.step()

    def after_validation(self, val_loss: float) -> None:
        if not self.per_step:
            self.scheduler.step(val_loss)

    def state_dict(self) -> dict[str, Any]:
        return dict(self.scheduler.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)


__all__ = ["Schedule", "build_optimizer", "lr_factor"]
