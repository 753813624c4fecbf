"""U-Net with a VGG16 encoder (Ronneberger et al., 2015; paper section 3.3, item 1).

Decoder: at each of the four up-stages a 2x2 transposed convolution ("up-convolution")
doubles the resolution, the encoder features of that scale are concatenated, and two 3x3
conv-BN-ReLU layers follow. Decoder widths mirror the encoder (512, 256, 128, 64 at width
64), as in the original U-Net; a 1x1 convolution gives the logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from iphbench.models._base import SegmentationModel
from iphbench.models._blocks import double_conv, head_init, init_weights, scale_decoder
from iphbench.models._pretrained import build_vgg16_encoder
from iphbench.models._registry import register_model

#: Decoder widths at width 64, coarsest first. The segmentation_models family (Keras and
#: PyTorch) uses 256-128-64-32(-16) behind a VGG16 encoder; the paper's Keras implementation
#: with a VGG16 backbone belongs to that family, and these widths halve the decoder's cost
#: against Ronneberger's mirrored 512-256-128-64 (still available via ``decoder_channels``).
UNET_DECODER_CHANNELS: tuple[int, ...] = (256, 128, 64, 32)


class UNetDecoder(nn.Module):
    """Up-convolution, skip concatenation and two 3x3 convolutions per stage.

    Args:
        encoder_channels: Channels of the encoder features, finest first (five entries).
        decoder_channels: Output channels of the four stages, coarsest first.
        batch_norm: Batch norm in the stage convolutions.
        gates: Optional modules ``gate(skip, g) -> skip`` applied to each skip before the
            concatenation, with ``g`` the coarser decoder features (Attention U-Net);
            coarsest stage first.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        decoder_channels: Sequence[int],
        batch_norm: bool = True,
        gates: Sequence[nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if len(decoder_channels) != len(encoder_channels) - 1:
            raise ValueError(
                f"decoder_channels needs {len(encoder_channels) - 1} entries (one per up-stage), got {list(decoder_channels)}"
            )
        skips = list(encoder_channels[-2::-1])  # coarsest skip first
        c_prev = encoder_channels[-1]
        ups, convs = [], []
        for c_skip, c_out in zip(skips, decoder_channels, strict=True):
            ups.append(nn.ConvTranspose2d(c_prev, c_out, kernel_size=2, stride=2))
            convs.append(double_conv(c_out + c_skip, c_out, batch_norm=batch_norm))
            c_prev = c_out
        self.ups = nn.ModuleList(ups)
        self.convs = nn.ModuleList(convs)
        self.gates = nn.ModuleList(gates or [])
        if self.gates and len(self.gates) != len(self.ups):
            raise ValueError(f"need one gate per up-stage ({len(self.ups)}), got {len(self.gates)}")
        self.out_channels = c_prev

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Decode encoder features (finest first) to the full-resolution decoder map."""
        x = features[-1]
        for i, (up, conv) in enumerate(zip(self.ups, self.convs, strict=True)):
            skip = features[-2 - i]
            if len(self.gates):
                skip = self.gates[i](skip, x)
            x = conv(torch.cat([up(x), skip], dim=1))
        return x


class UNet(SegmentationModel):
    """VGG16 U-Net: ``(B, C, H, W) -> logits (B, classes, H, W)``, H and W multiples of 16.

    Args:
        in_channels: Input channels (1 for NCCT).
        classes: Logit channels (1: hemorrhage).
        width: Channels of the first VGG16 block (64 = the paper's model); all layers scale.
        batch_norm: Batch norm after every 3x3 convolution.
        pretrained: Optional local file with ImageNet VGG16 weights (see ``_pretrained``).
        decoder_channels: The four decoder widths, coarsest first; default
            ``(256, 128, 64, 32) * width / 64``, at least 16 each.

    Example:
        >>> m = UNet(width=4)
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
        decoder_channels: Sequence[int] | None = None,
    ) -> None:
        super().__init__(in_channels, classes)
        self.encoder = build_vgg16_encoder(in_channels, width, batch_norm, pretrained)
        enc = self.encoder.out_channels
        dec = tuple(decoder_channels or scale_decoder(UNET_DECODER_CHANNELS, width))
        gates = self._make_gates(enc, dec, batch_norm)
        self.decoder = UNetDecoder(enc, dec, batch_norm=batch_norm, gates=gates)
        self.head = nn.Conv2d(dec[-1], classes, kernel_size=1)
        init_weights(self.decoder)
        head_init(self.head)

    def _make_gates(
        self, encoder_channels: Sequence[int], decoder_channels: Sequence[int], batch_norm: bool
    ) -> list[nn.Module] | None:
        """Modules applied to the skips; none in the plain U-Net (hook for Attention U-Net)."""
        return None

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.decoder(self.encoder(x)))


@register_model(label="U-Net", colour="#9467bd")
def unet(in_channels: int = 1, classes: int = 1, width: int = 64, **kwargs: object) -> UNet:
    """U-Net (Ronneberger 2015) with a VGG16 encoder; see :class:`UNet`."""
    return UNet(in_channels, classes, width, **kwargs)  # type: ignore[arg-type]
