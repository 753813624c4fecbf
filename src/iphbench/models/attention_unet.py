"""Attention U-Net with a VGG16 encoder (Oktay et al., 2018; paper section 3.3, item 2).

The U-Net of :mod:`iphbench.models.unet` with an additive attention gate on each of the
four skips. The gate follows Oktay et al. (2018), section 2 ("Attention Gates in U-Net
Model", eq. 1-2, Fig. 2) and their reference code's 2D grid-attention block:

    q = psi^T ReLU(W_x^T x + W_g^T g + b_g) + b_psi,   alpha = sigmoid(q),   x_hat = W(alpha * x)

with ``x`` the skip features, ``g`` the gating signal (the coarser decoder features, i.e. the
input of that stage's up-convolution), ``W_x`` a 2x2 stride-2 convolution that brings ``x``
to ``g``'s grid, ``W_g`` and ``psi`` 1x1 convolutions, ``F_int = F_x / 2`` intermediate
channels, ``alpha`` resampled bilinearly to ``x``'s grid, and ``W`` a 1x1 convolution with
batch norm.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from iphbench.models._registry import register_model
from iphbench.models.unet import UNet


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al., 2018, eq. 1-2).

    Args:
        skip_channels: Channels ``F_x`` of the gated skip features.
        gating_channels: Channels ``F_g`` of the coarser gating signal (half the skip's size).
        inter_channels: ``F_int``; default ``skip_channels // 2`` (at least 1).
        batch_norm: Batch norm after the output 1x1 convolution ``W``.

    Example:
        >>> gate = AttentionGate(8, 16)
        >>> gate(torch.zeros(2, 8, 32, 32), torch.zeros(2, 16, 16, 16)).shape
        torch.Size([2, 8, 32, 32])
    """

    def __init__(
        self,
        skip_channels: int,
        gating_channels: int,
        inter_channels: int | None = None,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        f_int = inter_channels or max(1, skip_channels // 2)
        self.theta_x = nn.Conv2d(skip_channels, f_int, kernel_size=2, stride=2, bias=False)
        self.phi_g = nn.Conv2d(gating_channels, f_int, kernel_size=1, bias=True)
        self.psi = nn.Conv2d(f_int, 1, kernel_size=1, bias=True)
        out: list[nn.Module] = [nn.Conv2d(skip_channels, skip_channels, kernel_size=1, bias=not batch_norm)]
        if batch_norm:
            out.append(nn.BatchNorm2d(skip_channels))
        self.out = nn.Sequential(*out)

    def attention(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Attention coefficients ``alpha`` in (0, 1), shape ``(B, 1, H_x, W_x)``."""
        q = self.psi(F.relu(self.theta_x(x) + self.phi_g(g)))
        return F.interpolate(torch.sigmoid(q), size=x.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Gate the skip ``x`` (B, F_x, H, W) with the coarser ``g`` (B, F_g, H/2, W/2)."""
        return self.out(self.attention(x, g) * x)


class AttentionUNet(UNet):
    """VGG16 Attention U-Net; same arguments as :class:`~iphbench.models.unet.UNet`.

    Example:
        >>> m = AttentionUNet(width=4)
        >>> m(torch.zeros(2, 1, 32, 48)).shape
        torch.Size([2, 1, 32, 48])
    """

    def _make_gates(
        self, encoder_channels: Sequence[int], decoder_channels: Sequence[int], batch_norm: bool
    ) -> list[nn.Module]:
        # stage i gates skip encoder_channels[-2 - i] with the coarser decoder state:
        # the bottleneck for the first stage, then the previous stage's output
        skips = encoder_channels[-2::-1]
        gating = (encoder_channels[-1], *decoder_channels[:-1])
        return [
            AttentionGate(c_x, c_g, batch_norm=batch_norm) for c_x, c_g in zip(skips, gating, strict=True)
        ]


@register_model(label="Attention U-Net", colour="#1f77b4")
def attention_unet(
    in_channels: int = 1, classes: int = 1, width: int = 64, **kwargs: object
) -> AttentionUNet:
    """Attention U-Net (Oktay 2018) with a VGG16 encoder; see :class:`AttentionUNet`."""
    return AttentionUNet(in_channels, classes, width, **kwargs)  # type: ignore[arg-type]
