"""What one training step needs: device, precision, model, optimiser, schedule, loss, augmentation.

A step is: augment the batch (``iphbench`` recipe), forward and loss, backward, optimiser
step, learning-rate update. On CUDA it runs in bf16 autocast and channels-last, compiled by
default (``train.compile: auto``), and never waits for the GPU: the loss stays on the device,
the learning rate is a Python float handed to the fused Adam/AdamW kernel, and nothing reads a
value back to the host, so a whole epoch is queued ahead of the GPU (docs/training.md).

What compiles (``training/compiled.py``): the forward *and the loss* as one graph, so the
loss's sigmoid, focal terms and sums fuse into the network's last kernels, and AOTAutograd
compiles the matching backward; validation's forward, soft counts and hard counts likewise, on
batches padded to one size. The optimiser is not compiled: on CUDA it is already the fused
Adam/AdamW kernel (one multi-tensor launch per step), which a compiled ``optimizer.step`` would
not beat. The augmentation stays eager: it draws from a seeded ``torch.Generator`` (exact
resume), which ``torch.compile`` does not trace. With ``train.compile_mode: reduce-overhead`` the
compiled forward and backward replay as CUDA graphs (batches always have the same shape).
The loss is reduced in float32 outside autocast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from iphbench._device import resolve_device
from iphbench.config import PrepConfig, TrainConfig
from iphbench.training.augment import Augmentation
from iphbench.training.compiled import Guarded, compile_fn, resolve_compile, uses_cudagraphs
from iphbench.training.loss import DiceFocalLoss
from iphbench.training.recipe import RunRecipe, resolve_recipe
from iphbench.training.schedule import Schedule, build_optimizer


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
    """Model, optimiser, schedule, loss and augmentation with their precision and compile settings.

    ``compile_mode`` None runs everything eagerly (the CPU default, bit-identical to an
    uncompiled build); a mode name compiles the training loss and the validation batch with
    that ``torch.compile`` mode, each falling back to eager if its compilation fails.
    """

    model: nn.Module  # the module whose state is saved
    forward: Callable[[Tensor], Tensor]  # the model's eager forward
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    loss_fn: DiceFocalLoss
    device: torch.device
    dtype: torch.dtype
    augmentation: Augmentation | None = None
    compile_mode: str | None = None  # None: eager; else a torch.compile mode (training/compiled.py)
    train_fn: Guarded[Tensor] = field(init=False, repr=False)  # (x, y) -> loss, forward and loss in one graph
    eval_fn: Guarded[tuple[Tensor, Tensor]] = field(init=False, repr=False)  # (x, y, weight) -> (soft, hard)

    def __post_init__(self) -> None:
        mode = self.compile_mode
        self.train_fn = Guarded(
            self.loss, None if mode is None else compile_fn(self.loss, mode), "the training step"
        )
        self.eval_fn = Guarded(
            self.eval_batch, None if mode is None else compile_fn(self.eval_batch, mode), "validation"
        )

    @classmethod
    def build(
        cls,
        model: nn.Module,
        train_cfg: TrainConfig,
        device: torch.device,
        dtype: torch.dtype,
        recipe: RunRecipe | None = None,
    ) -> Engine:
        """``recipe`` defaults to the paper recipe of ``train_cfg``; ``train_cfg.compile`` and
        ``compile_mode`` decide compilation (:func:`~iphbench.training.compiled.resolve_compile`)."""
        if recipe is None:
            recipe = resolve_recipe(train_cfg, "paper", PrepConfig())
        cuda = device.type == "cuda"
        model = model.to(device)
        if cuda and train_cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        optimizer = build_optimizer(model, recipe, device)
        loss_fn = DiceFocalLoss(
            beta=train_cfg.dice_beta,
            alpha=train_cfg.focal_alpha,
            gamma=train_cfg.focal_gamma,
            alpha_on_negatives=train_cfg.focal_alpha_negatives,
        )
        return cls(
            model,
            model,
            optimizer,
            Schedule(optimizer, recipe),
            loss_fn,
            device,
            dtype,
            recipe.augmentation,
            train_cfg.compile_mode if resolve_compile(train_cfg.compile, device) else None,
        )

    @property
    def compiled(self) -> bool:
        """Whether the training step still runs compiled (False once compilation failed)."""
        return self.train_fn.active

    @property
    def compile_state(self) -> str:
        """``off``, the compile mode, or ``failed: <error>`` (recorded in ``done.json``)."""
        if self.compile_mode is None:
            return "off"
        failed = self.train_fn.error or self.eval_fn.error
        return f"failed, eager: {failed.splitlines()[0][:200]}" if failed else self.compile_mode

    # -- what compiles ------------------------------------------------------------------------
    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Forward (under autocast) and loss (float32, outside autocast) of a training batch."""
        with autocast(self.device, self.dtype):
            logits = self.forward(x)
        return self.loss_fn(logits, y)

    def eval_batch(self, x: Tensor, y: Tensor, weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Soft counts ``[tp, fp, fn, focal_sum, n]`` (float32) and per-slice hard ``[tp, fp, fn]`` at 0.5.

        ``weight`` (1 for real slices, 0 for padding) leaves padded slices out of the soft
        counts; the caller drops their rows of the hard counts.
        """
        with autocast(self.device, self.dtype):
            logits = self.forward(x)
        c = self.loss_fn.counts(logits, y, weight)
        pred = logits.float() > 0.0  # sigmoid(z) > 0.5
        ref = y.bool()
        hard = torch.stack(
            [
                (pred & ref).flatten(1).sum(1),
                (pred & ~ref).flatten(1).sum(1),
                (~pred & ref).flatten(1).sum(1),
            ],
            1,
        )
        return torch.stack([c.tp, c.fp, c.fn, c.focal_sum, c.n]), hard

    # -- the step -----------------------------------------------------------------------------
    def step(self, x: Tensor, y: Tensor, gen: torch.Generator | None = None) -> Tensor:
        """One optimisation step (augmenting the batch first when the recipe says so); returns the
        detached loss on the device (no host sync)."""
        if self.augmentation is not None and gen is not None:
            x, y = self.augmentation(x, y, gen)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.train_fn.run(
            lambda f: self._forward_backward(f, x, y),
            before_retry=lambda: self.optimizer.zero_grad(set_to_none=True),
        )
        self.optimizer.step()
        self.schedule.after_step()
        return loss.detach()

    def _forward_backward(self, loss_of: Callable[[Tensor, Tensor], Tensor], x: Tensor, y: Tensor) -> Tensor:
        # a compiled backward is built at the first backward, so a failing one falls back too
        self.mark_step()
        loss = loss_of(x, y)
        loss.backward()
        return loss

    def mark_step(self) -> None:
        """Tell CUDA-graph replay (``reduce-overhead``) that a new iteration begins."""
        if self.compile_mode is not None and uses_cudagraphs(self.compile_mode) and self.compiled:
            torch.compiler.cudagraph_mark_step_begin()


__all__ = ["Engine", "autocast", "resolve_amp", "resolve_device"]
