"""Small building blocks shared by the architectures (internal)."""

from __future__ import annotations

import math

from torch import nn


def scale_channels(channels: int, width: int) -> int:
    """Scale a channel count given for the paper's width 64 to ``width`` (at least 1).

    Example:
        >>> scale_channels(512, 64), scale_channels(512, 16), scale_channels(16, 4)
        (512, 128, 1)
    """
    return max(1, round(channels * width / 64))


#: Floor on the scaled decoder widths of narrow models: at width 8 a 2- or 4-channel
#: full-resolution stage learned far more slowly on CPU (U-Net) or not at all in a demo's
#: few steps (TransUNet); widths >= 32 are unaffected (docs/models.md).
MIN_DECODER_CHANNELS = 16


def scale_decoder(channels: tuple[int, ...], width: int) -> tuple[int, ...]:
    """Scale decoder widths given for width 64 to ``width``, with a floor of MIN_DECODER_CHANNELS.

    Example:
        >>> scale_decoder((256, 128, 64, 32), 8), scale_decoder((256, 128, 64, 32), 64)
        ((32, 16, 16, 16), (256, 128, 64, 32))
    """
    return tuple(max(MIN_DECODER_CHANNELS, scale_channels(c, width)) for c in channels)


def conv_bn_relu(
    in_channels: int, out_channels: int, *, batch_norm: bool = True, kernel_size: int = 3
) -> nn.Sequential:
    """``kernel_size`` convolution (same padding), optional batch norm, ReLU.

    The convolution has a bias only without batch norm (the norm's shift replaces it).
    """
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=not batch_norm)
    ]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def double_conv(in_channels: int, out_channels: int, *, batch_norm: bool = True) -> nn.Sequential:
    """Two 3x3 conv-(BN)-ReLU layers: the U-Net stage of Ronneberger et al. (2015), section 2."""
    return nn.Sequential(
        conv_bn_relu(in_channels, out_channels, batch_norm=batch_norm),
        conv_bn_relu(out_channels, out_channels, batch_norm=batch_norm),
    )


def init_weights(module: nn.Module) -> None:
    """Random initialisation used by every model (the paper trains from scratch).

    Convolutions: He (Kaiming) uniform for ReLU, zero bias, as the Keras ``segmentation_models``
    decoders (``he_uniform``). Norm layers: weight 1, bias 0. Linear layers: Xavier uniform,
    near-zero bias, as ViT (Dosovitskiy et al., 2021) and TransUNet.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.normal_(m.bias, std=1e-6)


def head_init(conv: nn.Conv2d) -> None:
    """Initialise a logit head: Xavier-like scale, zero bias (sigmoid starts near 0.5)."""
    bound = 1.0 / math.sqrt(conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1])
    nn.init.uniform_(conv.weight, -bound, bound)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
