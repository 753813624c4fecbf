"""TransUNet with a VGG16 encoder (Chen et al., 2021; paper section 3.3, item 4).

Hybrid CNN-Transformer encoder (Chen et al., 2021, section 3.2): the VGG16 features at stride
16 are embedded token by token (a 1x1 convolution, i.e. patch size 1 on the CNN grid, as in
TransUNet's R50-ViT hybrid) and summed with a learned position embedding; a pre-norm ViT
encoder follows (multi-head self-attention and GELU MLP, dropout 0.1, final LayerNorm).
The tokens are reshaped to the stride-16 grid and a 3x3 conv-BN-ReLU maps them to 512
channels. The cascaded upsampler (CUP, section 3.2) then runs four stages of 2x bilinear
upsampling, concatenation with the VGG16 features of that scale, and two 3x3 conv-BN-ReLU
layers, with widths 256, 128, 64, 16; a 3x3 convolution gives the logits. TransUNet's ResNet
has no full-resolution feature, so its last stage has no skip; the VGG16 encoder has one and
it is used.

Defaults at width 64 are the paper's ViT-Base settings: 12 layers, 768 dims, 12 heads, MLP
3072. ``embed_dim`` and ``mlp_dim`` scale with ``width / 64`` (768 -> 12 * width,
3072 -> 48 * width), so the head dimension is ``width``; ``depth`` and ``heads`` stay 12.

The position embedding is learned for the grid of ``img_size`` (64 -> 4 x 4 tokens) and
bilinearly resampled in the forward pass for any other grid (e.g. 128 x 96 -> 8 x 6).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from iphbench.models._base import SegmentationModel
from iphbench.models._blocks import (
    conv_bn_relu,
    double_conv,
    head_init,
    init_weights,
    scale_decoder,
)
from iphbench.models._pretrained import build_vgg16_encoder
from iphbench.models._registry import register_model

#: Cascaded-upsampler widths at width 64, coarsest first (Chen et al., 2021).
CUP_CHANNELS: tuple[int, ...] = (256, 128, 64, 16)


class Attention(nn.Module):
    """Multi-head self-attention through ``F.scaled_dot_product_attention``."""

    def __init__(self, dim: int, heads: int, attention_dropout: float = 0.0, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"TransUNet embed_dim ({dim}) must be divisible by heads ({heads})")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_dropout = attention_dropout
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        p = self.attention_dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        return self.drop(self.proj(y.transpose(1, 2).reshape(b, n, d)))


class TransformerBlock(nn.Module):
    """Pre-norm ViT block: ``x + MSA(LN(x))``, then ``x + MLP(LN(x))`` (Chen et al., 2021, eq. 2-3)."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float, attention_dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, attention_dropout, dropout)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_dim, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TransUNet(SegmentationModel):
    """VGG16 TransUNet; H and W multiples of 16, any aspect ratio.

    Args:
        in_channels: Input channels (1 for NCCT).
        classes: Logit channels (1: hemorrhage).
        width: Channels of the first VGG16 block (64 = the paper's model); all layers scale.
        batch_norm: Batch norm after every 3x3 convolution.
        pretrained: Optional local file with ImageNet VGG16 weights (encoder only).
        depth: Transformer layers (12).
        embed_dim: Token dimension; default ``12 * width`` (768 at width 64).
        heads: Attention heads (12).
        mlp_dim: MLP hidden dimension; default ``48 * width`` (3072 at width 64).
        dropout: Dropout after the embedding, attention projection and MLP layers (0.1).
        attention_dropout: Dropout on attention weights (0.0).
        img_size: Input size the position embedding is learned for (64 -> 4 x 4 grid).
        decoder_channels: Cascaded-upsampler widths; default ``(256, 128, 64, 16) * width / 64``, at least 16 each.

    Example:
        >>> m = TransUNet(width=4)
        >>> m(torch.zeros(2, 1, 128, 96)).shape
        torch.Size([2, 1, 128, 96])
    """

    def __init__(
        self,
        in_channels: int = 1,
        classes: int = 1,
        width: int = 64,
        batch_norm: bool = True,
        pretrained: str | Path | None = None,
        depth: int = 12,
        embed_dim: int | None = None,
        heads: int = 12,
        mlp_dim: int | None = None,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        img_size: int = 64,
        decoder_channels: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(in_channels, classes)
        if img_size % self.required_multiple:
            raise ValueError(
                f"TransUNet img_size must be a multiple of {self.required_multiple}, got {img_size}"
            )
        self.encoder = build_vgg16_encoder(in_channels, width, batch_norm, pretrained)
        enc = self.encoder.out_channels
        dim = embed_dim or 12 * width
        mlp = mlp_dim or 48 * width
        self.grid = img_size // self.required_multiple
        self.patch_embed = nn.Conv2d(enc[-1], dim, kernel_size=1)
        self.pos_embed = nn.Parameter(torch.zeros(1, dim, self.grid, self.grid))
        self.embed_drop = nn.Dropout(dropout)
        self.blocks = nn.Sequential(
            *(TransformerBlock(dim, heads, mlp, dropout, attention_dropout) for _ in range(depth))
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        dec = tuple(decoder_channels or scale_decoder(CUP_CHANNELS, width))
        if len(dec) != 4:
            raise ValueError(f"TransUNet decoder_channels needs 4 entries, got {list(dec)}")
        self.conv_more = conv_bn_relu(dim, enc[-1], batch_norm=batch_norm)
        skips = enc[-2::-1]  # strides 8, 4, 2, 1
        c_prev = enc[-1]
        stages = []
        for c_skip, c_out in zip(skips, dec, strict=True):
            stages.append(double_conv(c_prev + c_skip, c_out, batch_norm=batch_norm))
            c_prev = c_out
        self.decoder = nn.ModuleList(stages)
        self.head = nn.Conv2d(c_prev, classes, kernel_size=3, padding=1)
        for module in (self.patch_embed, self.blocks, self.norm, self.conv_more, self.decoder):
            init_weights(module)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        head_init(self.head)

    def position_embedding(self, h: int, w: int) -> torch.Tensor:
        """The position embedding for an ``h`` x ``w`` token grid, shape ``(1, h * w, dim)``."""
        pos: torch.Tensor = self.pos_embed
        if (h, w) != (self.grid, self.grid):
            pos = F.interpolate(pos, size=(h, w), mode="bilinear", align_corners=False)
        return pos.flatten(2).transpose(1, 2)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        emb = self.patch_embed(features[-1])
        b, d, h, w = emb.shape
        tokens = self.embed_drop(emb.flatten(2).transpose(1, 2) + self.position_embedding(h, w))
        tokens = self.norm(self.blocks(tokens))
        y = self.conv_more(tokens.transpose(1, 2).reshape(b, d, h, w))
        for stage, skip in zip(self.decoder, features[-2::-1], strict=True):
            y = F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)
            y = stage(torch.cat([y, skip], dim=1))
        return self.head(y)


@register_model(label="Trans U-Net", colour="#2ca02c")
def transunet(in_channels: int = 1, classes: int = 1, width: int = 64, **kwargs: object) -> TransUNet:
    """TransUNet (Chen 2021) with a VGG16 encoder; see :class:`TransUNet`."""
    return TransUNet(in_channels, classes, width, **kwargs)  # type: ignore[arg-type]
