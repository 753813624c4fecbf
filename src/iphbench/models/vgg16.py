"""The VGG16 encoder shared by all four architectures (paper section 3.3).

VGG16 (Simonyan & Zisserman, 2014, configuration D): 13 3x3 convolutions in five blocks of
2, 2, 3, 3, 3 layers with 64, 128, 256, 512, 512 channels, ReLU after each (batch norm before
the ReLU when ``batch_norm``), 2x2 max-pooling between blocks. The fifth pooling and the
classifier are not used: the deepest features sit at stride 16, so inputs must be multiples
of 16 and a 64x64 patch reaches a 4x4 bottleneck.
"""

from __future__ import annotations

import torch
from torch import nn

from iphbench.models._blocks import conv_bn_relu, scale_channels

#: Convolutions per block and channels per block at width 64 (VGG16, configuration D).
VGG16_BLOCKS: tuple[tuple[int, int], ...] = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


class VGG16Encoder(nn.Module):
    """VGG16 convolutional encoder returning the features of every block.

    Args:
        in_channels: Input channels (1 for NCCT).
        width: Channels of the first block; every block scales with it (64 = VGG16).
        batch_norm: Batch norm after each convolution (VGG16-BN).

    Attributes:
        out_channels: Channels of the five returned feature maps.
        strides: Their strides relative to the input (1, 2, 4, 8, 16).

    Example:
        >>> enc = VGG16Encoder(in_channels=1, width=8)
        >>> [tuple(f.shape) for f in enc(torch.zeros(2, 1, 64, 64))]
        [(2, 8, 64, 64), (2, 16, 32, 32), (2, 32, 16, 16), (2, 64, 8, 8), (2, 64, 4, 4)]
    """

    strides: tuple[int, ...] = (1, 2, 4, 8, 16)

    def __init__(self, in_channels: int = 1, width: int = 64, batch_norm: bool = True) -> None:
        super().__init__()
        self.batch_norm = batch_norm
        self.out_channels: tuple[int, ...] = tuple(scale_channels(c, width) for _, c in VGG16_BLOCKS)
        self.pool = nn.MaxPool2d(2, 2)
        blocks = []
        c_in = in_channels
        for (n_convs, _), c_out in zip(VGG16_BLOCKS, self.out_channels, strict=True):
            layers = []
            for _ in range(n_convs):
                layers.append(conv_bn_relu(c_in, c_out, batch_norm=batch_norm))
                c_in = c_out
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features of the five blocks, finest first (before each block's pooling)."""
        features = []
        for i, block in enumerate(self.blocks):
            if i:
                x = self.pool(x)
            x = block(x)
            features.append(x)
        return features

    def convs(self) -> list[nn.Conv2d]:
        """The 13 convolutions in order (used to load ImageNet weights)."""
        return [m for m in self.modules() if isinstance(m, nn.Conv2d)]

    def norms(self) -> list[nn.BatchNorm2d]:
        """The 13 batch norms in order (empty without batch norm)."""
        return [m for m in self.modules() if isinstance(m, nn.BatchNorm2d)]
