"""The VGG16 encoder: Simonyan & Zisserman (2014), configuration D, without the classifier."""

from __future__ import annotations

import torch
from torch import nn

from iphbench.models import VGG16Encoder


def test_is_vgg16_configuration_d() -> None:
    with torch.device("meta"):
        enc = VGG16Encoder(in_channels=3, width=64, batch_norm=False)
    convs = enc.convs()
    assert len(convs) == 13
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert [c.out_channels for c in convs] == [64] * 2 + [128] * 2 + [256] * 3 + [512] * 6
    # torchvision's vgg16().features holds 14,714,688 parameters
    assert sum(p.numel() for p in enc.parameters()) == 14_714_688
    assert enc.norms() == []


def test_batch_norm_and_width() -> None:
    enc = VGG16Encoder(in_channels=1, width=4, batch_norm=True)
    assert len(enc.norms()) == 13
    assert all(c.bias is None for c in enc.convs())  # the norm's shift replaces the bias
    assert enc.out_channels == (4, 8, 16, 32, 32)


def test_features_and_strides() -> None:
    enc = VGG16Encoder(in_channels=1, width=4)
    feats = enc(torch.rand(2, 1, 64, 32))
    assert [f.shape[1] for f in feats] == list(enc.out_channels)
    assert [(64 // f.shape[2], 32 // f.shape[3]) for f in feats] == [(s, s) for s in enc.strides]
    assert all((f >= 0).all() for f in feats)  # each block ends with a ReLU
    assert sum(isinstance(m, nn.MaxPool2d) for m in enc.modules()) == 1  # one pooling module, used 4 times
