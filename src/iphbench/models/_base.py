"""The base class of every segmentation model: input validation, then the architecture.

A template method in the manner of segmentation_models_pytorch's ``SegmentationModel``:
:meth:`SegmentationModel.forward` checks the input and calls :meth:`_forward`, which each
architecture implements. Models return logits; the caller applies the sigmoid (paper
section 3.3: one sigmoid output).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class SegmentationModel(nn.Module):
    """A 2D segmentation network ``(B, C, H, W) -> logits (B, classes, H, W)``.

    Attributes:
        required_multiple: H and W must be multiples of this (16 for the VGG16 encoder's
            four max-poolings).
        in_channels: Input channels the model was built for.
        classes: Output logit channels.
        model_args: Arguments that rebuild this architecture with
            ``create_model(**model_args)`` (set by the factory; excludes ``pretrained``,
            since the weights come from the checkpoint).
    """

    required_multiple: int = 16

    def __init__(self, in_channels: int, classes: int) -> None:
        super().__init__()
        if in_channels < 1 or classes < 1:
            raise ValueError(f"in_channels and classes must be >= 1, got {in_channels} and {classes}")
        self.in_channels = in_channels
        self.classes = classes
        self.model_args: dict[str, Any] = {}

    def check_input_shape(self, x: torch.Tensor) -> None:
        """Raise a ValueError naming the shape and what to do when ``x`` does not fit.

        Only static shape information is read, so the check costs nothing under
        ``torch.compile`` (it becomes a guard).
        """
        if x.dim() != 4:
            raise ValueError(
                f"{type(self).__name__} expects a (B, C, H, W) batch of 2D slices, got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} was built for {self.in_channels} input channel(s) but got an input of "
                f"shape {tuple(x.shape)}; pass in_channels={x.shape[1]} to create_model or fix the input"
            )
        h, w = int(x.shape[2]), int(x.shape[3])
        m = self.required_multiple
        if h % m or w % m:
            raise ValueError(
                f"{type(self).__name__} needs H and W to be multiples of {m}, got an input of shape "
                f"{tuple(x.shape)} (H={h}, W={w}); pad the slice up to the next multiple of {m} "
                f"(the paper's 64x64 patches are fine)"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Validate ``x`` and return logits of shape ``(B, classes, H, W)``."""
        self.check_input_shape(x)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
