"""Per-architecture configuration: the settings docs/models.md promises, checked on the built modules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from iphbench.models import FPN, AttentionGate, AttentionUNet, TransUNet, UNet, create_model


def convs_out(module: nn.Module) -> list[int]:
    return [m.out_channels for m in module.modules() if isinstance(m, nn.Conv2d)]


def test_unet_default_decoder_widths() -> None:
    """Default decoder 256-128-64-32 (segmentation_models family); skips keep the encoder's widths."""
    with torch.device("meta"):
        model = create_model("unet", width=64)
    assert isinstance(model, UNet) and not isinstance(model, AttentionUNet)
    assert [u.out_channels for u in model.decoder.ups] == [256, 128, 64, 32]
    assert all(u.kernel_size == (2, 2) and u.stride == (2, 2) for u in model.decoder.ups)
    # up-convolution output + encoder skip (512, 256, 128, 64) concatenated
    assert [s[0][0].in_channels for s in model.decoder.convs] == [256 + 512, 128 + 256, 64 + 128, 32 + 64]
    assert model.head.kernel_size == (1, 1)


def test_unet_mirrored_decoder_on_request() -> None:
    """Ronneberger's mirrored decoder (512-256-128-64) is one setting away."""
    with torch.device("meta"):
        model = create_model("unet", width=64, decoder_channels=(512, 256, 128, 64))
    assert [u.out_channels for u in model.decoder.ups] == [512, 256, 128, 64]
    assert [s[0][0].in_channels for s in model.decoder.convs] == [1024, 512, 256, 128]


def test_unet_custom_decoder_channels() -> None:
    model = create_model("unet", width=4, decoder_channels=(16, 8, 4, 2))
    assert [u.out_channels for u in model.decoder.ups] == [16, 8, 4, 2]
    assert model(torch.rand(1, 1, 32, 32)).shape == (1, 1, 32, 32)
    with pytest.raises(ValueError, match="needs 4 entries"):
        create_model("unet", width=4, decoder_channels=(16, 8))


def test_attention_gates_on_every_skip() -> None:
    with torch.device("meta"):
        model = create_model("attention_unet", width=64)
    gates = list(model.decoder.gates)
    assert len(gates) == 4 and all(isinstance(g, AttentionGate) for g in gates)
    # skip channels (F_x), gating channels (F_g, the coarser decoder state) and F_int = F_x / 2
    assert [g.theta_x.in_channels for g in gates] == [512, 256, 128, 64]
    assert [g.phi_g.in_channels for g in gates] == [512, 256, 128, 64]
    assert [g.theta_x.out_channels for g in gates] == [256, 128, 64, 32]
    assert all(g.theta_x.stride == (2, 2) and g.psi.out_channels == 1 for g in gates)


def test_attention_coefficients() -> None:
    torch.manual_seed(0)
    gate = AttentionGate(8, 16).eval()
    x, g = torch.rand(2, 8, 16, 16), torch.rand(2, 16, 8, 8)
    alpha = gate.attention(x, g)
    assert alpha.shape == (2, 1, 16, 16)
    assert (alpha > 0).all() and (alpha < 1).all()
    with torch.no_grad():  # psi = 0 gives alpha = 1/2 everywhere: the gate then halves its input
        gate.psi.weight.zero_()
        gate.psi.bias.zero_()
        nn.init.eye_(gate.out[0].weight[:, :, 0, 0])
    torch.testing.assert_close(gate.attention(x, g), torch.full_like(alpha, 0.5))
    assert gate.out[1].running_var is not None
    expected = (0.5 * x - gate.out[1].running_mean[:, None, None]) / torch.sqrt(
        gate.out[1].running_var[:, None, None] + 1e-5
    )
    torch.testing.assert_close(gate(x, g), expected)


def test_fpn_channels() -> None:
    with torch.device("meta"):
        model = create_model("fpn", width=64)
    assert isinstance(model, FPN)
    assert [m.in_channels for m in model.lateral] == [128, 256, 512, 512]  # encoder strides 2, 4, 8, 16
    assert convs_out(model.lateral) == [256] * 4 and convs_out(model.smooth) == [256] * 4
    assert [len(b.convs) for b in model.branches] == [1, 1, 2, 3]
    assert [b.n_up for b in model.branches] == [0, 1, 2, 3]
    assert set(convs_out(model.branches)) == {128}
    small = create_model("fpn", width=4, pyramid_channels=12, segmentation_channels=6)
    assert convs_out(small.lateral) == [12] * 4 and set(convs_out(small.branches)) == {6}


def test_transunet_paper_defaults_at_width_64() -> None:
    with torch.device("meta"):
        model = create_model("transunet", width=64)
    assert isinstance(model, TransUNet)
    assert len(model.blocks) == 12
    block = model.blocks[0]
    assert block.attn.heads == 12
    assert block.attn.qkv.in_features == 768 and block.mlp[0].out_features == 3072
    assert model.pos_embed.shape == (1, 768, 4, 4)
    assert model.conv_more[0].out_channels == 512
    assert [s[1][0].out_channels for s in model.decoder] == [256, 128, 64, 16]


def test_transunet_scales_and_overrides() -> None:
    model = create_model("transunet", width=8)
    assert model.blocks[0].attn.qkv.in_features == 96 and model.blocks[0].mlp[0].out_features == 384
    model = create_model("transunet", width=4, depth=2, embed_dim=32, heads=4, mlp_dim=64, img_size=128)
    assert (
        len(model.blocks) == 2 and model.blocks[0].attn.heads == 4 and model.pos_embed.shape == (1, 32, 8, 8)
    )
    assert model(torch.rand(1, 1, 64, 96)).shape == (1, 1, 64, 96)
    with pytest.raises(ValueError, match="divisible by heads"):
        create_model("transunet", width=4, embed_dim=30, heads=4)
    with pytest.raises(ValueError, match="img_size must be a multiple of 16"):
        create_model("transunet", width=4, img_size=60)


def test_transunet_position_embedding_resampling() -> None:
    model = create_model("transunet", width=4)
    torch.testing.assert_close(model.position_embedding(4, 4), model.pos_embed.flatten(2).transpose(1, 2))
    pos = model.position_embedding(8, 6)
    assert pos.shape == (1, 48, 48)
    # a constant embedding stays constant when resampled
    with torch.no_grad():
        model.pos_embed.fill_(0.25)
    torch.testing.assert_close(model.position_embedding(8, 6), torch.full((1, 48, 48), 0.25))
