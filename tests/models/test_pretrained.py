"""Loading ImageNet VGG16 weights from a local file (torchvision layout), with a fake file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from iphbench.models import VGG16Encoder, adapt_input_conv, create_model, list_models, load_vgg16_weights

WIDTH = 8  # the loader is width-agnostic; real ImageNet files need width 64


def torchvision_like_features(width: int, batch_norm: bool) -> nn.Sequential:
    """A stand-in for torchvision's ``vgg16(_bn).features`` with the same layer indices."""
    cfg = [1, 1, "M", 2, 2, "M", 4, 4, 4, "M", 8, 8, 8, "M", 8, 8, 8, "M"]
    layers: list[nn.Module] = []
    c_in = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        assert isinstance(v, int)
        layers.append(nn.Conv2d(c_in, v * width, 3, padding=1))  # torchvision convs keep their bias
        if batch_norm:
            layers.append(nn.BatchNorm2d(v * width))
        layers.append(nn.ReLU(inplace=True))
        c_in = v * width
    seq = nn.Sequential(*layers)
    with torch.no_grad():  # non-trivial statistics so that bias folding is exercised
        for m in seq.modules():
            if isinstance(m, nn.Conv2d):
                assert m.bias is not None
                m.bias.uniform_(-0.5, 0.5)
            if isinstance(m, nn.BatchNorm2d):
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return seq.eval()


def save_fake_vgg16(path: Path, width: int, batch_norm: bool) -> nn.Sequential:
    torch.manual_seed(7)
    ref = torchvision_like_features(width, batch_norm)
    state = {f"features.{k}": v for k, v in ref.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)  # ignored by the loader
    torch.save(state, path)
    return ref


@pytest.mark.parametrize("batch_norm", [True, False])
def test_encoder_matches_the_torchvision_layout(tmp_path: Path, batch_norm: bool) -> None:
    path = tmp_path / "vgg16.pth"
    ref = save_fake_vgg16(path, WIDTH, batch_norm)
    enc = VGG16Encoder(in_channels=3, width=WIDTH, batch_norm=batch_norm)
    load_vgg16_weights(enc, path, in_channels=3)
    enc.eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = ref[:-1](x)  # all but the final max-pool: the stride-16 block-5 features
        got = enc(x)[-1]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_one_channel_adaptation_sums_rgb(tmp_path: Path) -> None:
    """A grey slice through the adapted model equals that slice repeated as RGB through the original."""
    path = tmp_path / "vgg16_bn.pth"
    save_fake_vgg16(path, WIDTH, batch_norm=True)
    grey, rgb = VGG16Encoder(1, WIDTH), VGG16Encoder(3, WIDTH)
    load_vgg16_weights(grey, path, in_channels=1)
    load_vgg16_weights(rgb, path, in_channels=3)
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            grey.eval()(x)[-1], rgb.eval()(x.repeat(1, 3, 1, 1))[-1], rtol=1e-4, atol=1e-5
        )


def test_adapt_input_conv_other_counts() -> None:
    w = torch.randn(4, 3, 3, 3)
    assert torch.equal(adapt_input_conv(w, 3), w)
    torch.testing.assert_close(adapt_input_conv(w, 1), w.sum(1, keepdim=True))
    w5 = adapt_input_conv(w, 5)
    assert w5.shape == (4, 5, 3, 3)
    torch.testing.assert_close(w5[:, 3], w[:, 0] * 3 / 5)


@pytest.mark.parametrize("name", list_models())
def test_create_model_with_pretrained(tmp_path: Path, name: str) -> None:
    path = tmp_path / "vgg16_bn.pth"
    save_fake_vgg16(path, WIDTH, batch_norm=True)
    state = torch.load(path, weights_only=True)
    model = create_model(name, width=WIDTH, pretrained=str(path))
    convs = model.encoder.convs()
    torch.testing.assert_close(convs[0].weight, state["features.0.weight"].sum(1, keepdim=True))
    torch.testing.assert_close(convs[12].weight, state["features.40.weight"])
    assert "pretrained" not in model.model_args  # weights come from checkpoints, not the file
    assert model(torch.rand(1, 1, 32, 32)).shape == (1, 1, 32, 32)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match=r"nope\.pth does not exist.*never downloads"):
        create_model("unet", width=WIDTH, pretrained=str(path))


def test_width_mismatch_lists_shapes(tmp_path: Path) -> None:
    path = tmp_path / "vgg16_bn.pth"
    save_fake_vgg16(path, WIDTH, batch_norm=True)
    with pytest.raises(
        ValueError, match=r"features\.0\.weight: file has \(8, 3, 3, 3\), model needs \(4, 3, 3, 3\)"
    ):
        create_model("fpn", width=4, pretrained=str(path))


def test_plain_vgg16_into_batch_norm_model(tmp_path: Path) -> None:
    path = tmp_path / "vgg16.pth"
    save_fake_vgg16(path, WIDTH, batch_norm=False)
    with pytest.raises(ValueError, match=r"missing features\.1\.weight.*pass batch_norm=False"):
        create_model("unet", width=WIDTH, pretrained=str(path))
    create_model("unet", width=WIDTH, pretrained=str(path), batch_norm=False)  # the right pairing loads


def test_not_a_state_dict(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"bad\.pth could not be read"):
        create_model("unet", width=WIDTH, pretrained=str(bad))
    listy = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listy)
    with pytest.raises(ValueError, match="does not hold a state dict"):
        create_model("unet", width=WIDTH, pretrained=str(listy))
