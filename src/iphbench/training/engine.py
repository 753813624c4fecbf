"""What one training step needs: device, precision, model, optimiser, schedule, loss, augmentation.

On CUDA the hot loop uses bf16 autocast, channels-last, optionally ``torch.compile``, and no
host synchronisation inside an epoch (the step returns the loss on the device). The loss is
reduced in float32 outside autocast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from iphbench.config import TrainConfig
from iphbench.training.augment import Augmentation
from iphbench.training.loss import DiceFocalLoss
from iphbench.training.recipe import RunRecipe
from iphbench.training.schedule import Schedule, build_optimizer


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → first CUDA device if any, else CPU; otherwise ``torch.device(name)``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"train.device is {name!r} but no CUDA device is visible; use 'auto' or 'cpu'")
    return dev


def resolve_amp(amp: str, device: torch.device) -> torch.dtype:
    """Compute dtype: ``auto`` = bf16 on CUDA, float32 on CPU."""
    if amp == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp32":
        return torch.float32
    raise ValueError(f"train.amp must be 'auto', 'bf16' or 'fp32', got {amp!r}")


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager[Any]:
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@dataclass
class Engine:
    """Model, optimiser, schedule, loss and augmentation with their precision settings."""

    model: nn.Module  # the module whose state is saved
    forward: Callable[[Tensor], Tensor]  # model or its torch.compile'd wrapper
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    loss_fn: DiceFocalLoss
    device: torch.device
    dtype: torch.dtype
    augmentation: Augmentation | None = None

    @classmethod
    def build(
        cls,
        model: nn.Module,
        train_cfg: TrainConfig,
        device: torch.device,
        dtype: torch.dtype,
        recipe: RunRecipe | None = None,
    ) -> Engine:
        """``recipe`` defaults to the paper recipe of ``train_cfg``."""
        if recipe is None:
            from iphbench.config import PrepConfig
            from iphbench.training.recipe import resolve_recipe

            recipe = resolve_recipe(train_cfg, "paper", PrepConfig())
        cuda = device.type == "cuda"
        model = model.to(device)
        if cuda and train_cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        optimizer = build_optimizer(model, recipe, device)
        forward: Callable[[Tensor], Tensor] = model
        if cuda and train_cfg.compile:
            forward = torch.compile(model)
        loss_fn = DiceFocalLoss(
            beta=train_cfg.dice_beta, alpha=train_cfg.focal_alpha, gamma=train_cfg.focal_gamma
        )
        return cls(
            model,
            forward,
            optimizer,
            Schedule(optimizer, recipe),
            loss_fn,
            device,
            dtype,
            recipe.augmentation,
        )

    def step(self, x: Tensor, y: Tensor, gen: torch.Generator | None = None) -> Tensor:
        """One optimisation step (augmenting the batch first when the recipe says so); returns the
        detached loss on the device (no host sync)."""
        if self.augmentation is not None and gen is not None:
            x, y = self.augmentation(x, y, gen)
        with autocast(self.device, self.dtype):
            logits = self.forward(x)
        loss = self.loss_fn(logits, y)  # float32 reduction, outside autocast
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.schedule.after_step()
        return loss.detach()


__all__ = ["Engine", "autocast", "resolve_amp", "resolve_device"]
