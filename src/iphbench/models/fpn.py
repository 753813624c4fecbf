"""FPN with a VGG16 encoder (Lin et al., 2017; Kirillov et al., 2019; paper section 3.3, item 3).

Pyramid (Lin et al., 2017, section 3): the encoder features of blocks 2-5 (strides 2, 4, 8,
16; the VGG16 encoder has no stride-32 stage) each pass a lateral 1x1 convolution to 256
channels; a top-down pathway adds each coarser map, upsampled 2x by nearest neighbour, to the
finer lateral; a 3x3 convolution on each merged map gives P2-P5.

Head (the semantic branch of panoptic FPN, Kirillov et al., 2019, section 3.1 and Fig. 3):
each level runs 3x3 conv-BN-ReLU layers of 128 channels, each followed by a 2x bilinear
upsampling, until it reaches the finest level's stride (P2: one convolution, no upsampling;
P5: three convolutions and upsamplings); the four maps are summed, a 1x1 convolution gives
the logits and a 2x bilinear upsampling brings them to full resolution. Kirillov et al. use
group norm; here the norm is batch norm (or none), as in the encoder and the Keras
``segmentation_models`` FPN the paper's code builds on.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from iphbench.models._base import SegmentationModel
from iphbench.models._blocks import conv_bn_relu, head_init, init_weights, scale_channels
from iphbench.models._pretrained import build_vgg16_encoder
from iphbench.models._registry import register_model


class SemanticBranch(nn.Module):
    """One level's branch: ``n_up`` x (3x3 conv-BN-ReLU, 2x bilinear up), or one conv if ``n_up == 0``."""

    def __init__(self, in_channels: int, channels: int, n_up: int, batch_norm: bool = True) -> None:
        super().__init__()
        n_convs = max(1, n_up)
        self.convs = nn.ModuleList(
            conv_bn_relu(in_channels if i == 0 else channels, channels, batch_norm=batch_norm)
            for i in range(n_convs)
        )
        self.n_up = n_up

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = conv(x)
            if self.n_up:
                x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return x


class FPN(SegmentationModel):
    """VGG16 FPN with a panoptic-FPN semantic head; H and W multiples of 16.

    Args:
        in_channels: Input channels (1 for NCCT).
        classes: Logit channels (1: hemorrhage).
        width: Channels of the first VGG16 block (64 = the paper's model); all layers scale.
        batch_norm: Batch norm after every 3x3 convolution of encoder and head.
        pretrained: Optional local file with ImageNet VGG16 weights.
        pyramid_channels: Channels of P2-P5; default ``256 * width / 64``.
        segmentation_channels: Channels of the semantic branches; default ``128 * width / 64``.

    Example:
        >>> m = FPN(width=4)
        >>> m(torch.zeros(2, 1, 64, 64)).shape
        torch.Size([2, 1, 64, 64])
    """

    def __init__(
        self,
        in_channels: int = 1,
        classes: int = 1,
        width: int = 64,
        batch_norm: bool = True,
        pretrained: str | Path | None = None,
        pyramid_channels: int | None = None,
        segmentation_channels: int | None = None,
    ) -> None:
        super().__init__(in_channels, classes)
        self.encoder = build_vgg16_encoder(in_channels, width, batch_norm, pretrained)
        p_ch = pyramid_channels or scale_channels(256, width)
        s_ch = segmentation_channels or scale_channels(128, width)
        levels = self.encoder.out_channels[1:]  # strides 2, 4, 8, 16
        self.lateral = nn.ModuleList(nn.Conv2d(c, p_ch, kernel_size=1) for c in levels)
        self.smooth = nn.ModuleList(nn.Conv2d(p_ch, p_ch, kernel_size=3, padding=1) for _ in levels)
        self.branches = nn.ModuleList(
            SemanticBranch(p_ch, s_ch, n_up=i, batch_norm=batch_norm) for i in range(len(levels))
        )
        self.head = nn.Conv2d(s_ch, classes, kernel_size=1)
        for module in (self.lateral, self.smooth, self.branches):
            init_weights(module)
        head_init(self.head)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.encoder(x)[1:]
        # top-down pathway, coarsest first (Lin et al., 2017, Fig. 3)
        p = self.lateral[-1](c[-1])
        pyramid = [self.smooth[-1](p)]
        for i in range(len(c) - 2, -1, -1):
            p = self.lateral[i](c[i]) + F.interpolate(p, scale_factor=2.0, mode="nearest")
            pyramid.insert(0, self.smooth[i](p))
        merged = self.branches[0](pyramid[0])
        for branch, level in zip(self.branches[1:], pyramid[1:], strict=True):
            merged = merged + branch(level)
        return F.interpolate(self.head(merged), scale_factor=2.0, mode="bilinear", align_corners=False)


@register_model(label="FPN", colour="#ff7f0e")
def fpn(in_channels: int = 1, classes: int = 1, width: int = 64, **kwargs: object) -> FPN:
    """FPN (Lin 2017) with the panoptic-FPN head (Kirillov 2019) on a VGG16 encoder; see :class:`FPN`."""
    return FPN(in_channels, classes, width, **kwargs)  # type: ignore[arg-type]
