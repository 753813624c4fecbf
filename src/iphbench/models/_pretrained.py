"""Optional ImageNet VGG16 weights from a local file (never downloaded).

The paper trains from random initialisation; this loader is for users who want an
ImageNet start. It reads a state dict in torchvision's layout, ``vgg16`` (for
``batch_norm=False``) or ``vgg16_bn`` (for ``batch_norm=True``): keys ``features.<i>.weight``
and ``features.<i>.bias`` for the 13 convolutions, plus ``features.<i>.running_mean`` etc.
for the batch norms; ``classifier.*`` keys are ignored. The first convolution's RGB
weights are adapted to the model's input channels (summed for one channel).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch

from iphbench.models._blocks import init_weights
from iphbench.models.vgg16 import VGG16_BLOCKS, VGG16Encoder

log = logging.getLogger(__name__)

_BN_PARAMS = ("weight", "bias", "running_mean", "running_var")


def torchvision_vgg16_indices(batch_norm: bool) -> list[tuple[int, int | None]]:
    """Indices in torchvision's ``features`` Sequential of each (convolution, batch norm).

    Example:
        >>> torchvision_vgg16_indices(False)[:3]
        [(0, None), (2, None), (5, None)]
        >>> torchvision_vgg16_indices(True)[:3]
        [(0, 1), (3, 4), (7, 8)]
    """
    out: list[tuple[int, int | None]] = []
    idx = 0
    for n_convs, _ in VGG16_BLOCKS:
        for _ in range(n_convs):
            out.append((idx, idx + 1 if batch_norm else None))
            idx += 3 if batch_norm else 2  # conv, (bn), relu
        idx += 1  # max-pool
    return out


def adapt_input_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Adapt an RGB first-convolution weight ``(out, 3, k, k)`` to ``in_channels`` inputs.

    One channel: the RGB kernels are summed (a grey image repeated as RGB gives the same
    response). Three: unchanged. Other counts: RGB repeated cyclically and scaled by
    ``3 / in_channels`` (as timm's ``adapt_input_conv``).
    """
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    if in_channels == 3:
        return weight
    reps = math.ceil(in_channels / 3)
    return weight.repeat(1, reps, 1, 1)[:, :in_channels] * (3.0 / in_channels)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained VGG16 weights file {path} does not exist; iphbench never downloads weights: save a "
            f"torchvision vgg16/vgg16_bn state dict there (torch.save(model.state_dict(), path)) or pass "
            f"pretrained=None for the paper's random initialisation"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"pretrained VGG16 weights file {path} could not be read as a torch state dict: {exc}"
        ) from exc
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"pretrained VGG16 weights file {path} does not hold a state dict of tensors")
    return obj


def load_vgg16_weights(encoder: VGG16Encoder, path: str | Path, in_channels: int) -> None:
    """Copy ImageNet VGG16 weights from a local file into ``encoder``, in place.

    With batch norm, torchvision's convolution biases are folded into the norms' running
    means (``BN(conv(x) + b)`` equals ``BN'(conv(x))`` with ``running_mean' = running_mean - b``).

    Args:
        encoder: The encoder to fill (width must be 64 for ImageNet weights).
        path: A ``torch.save``-d torchvision ``vgg16`` or ``vgg16_bn`` state dict.
        in_channels: The model's input channels; the first convolution is adapted to them.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it cannot be read or its keys or shapes do not match; the message
            lists the first few mismatches.
    """
    path = Path(path)
    state = _read_state_dict(path)
    features = {k: v for k, v in state.items() if k.startswith("features.")}
    convs, norms = encoder.convs(), encoder.norms()
    expected: dict[str, tuple[int, ...]] = {}
    for n, (ci, bi) in enumerate(torchvision_vgg16_indices(encoder.batch_norm)):
        conv = convs[n]
        w_shape = tuple(conv.weight.shape)
        if n == 0:
            w_shape = (w_shape[0], 3, *w_shape[2:])  # the file holds RGB kernels
        expected[f"features.{ci}.weight"] = w_shape
        expected[f"features.{ci}.bias"] = (conv.out_channels,)
        if bi is not None:
            for p in _BN_PARAMS:
                expected[f"features.{bi}.{p}"] = (conv.out_channels,)
    problems = [f"missing {k}" for k in expected if k not in features]
    problems += [
        f"unexpected {k}"
        for k in features
        if k not in expected and not k.endswith("num_batches_tracked")  # optional in files
    ]
    problems += [
        f"{k}: file has {tuple(features[k].shape)}, model needs {shape}"
        for k, shape in expected.items()
        if k in features and tuple(features[k].shape) != shape
    ]
    if problems:
        kind = "vgg16_bn" if encoder.batch_norm else "vgg16"
        raise ValueError(
            f"pretrained weights {path} do not match the VGG16 encoder (width={encoder.out_channels[0]}, "
            f"batch_norm={encoder.batch_norm}): {len(problems)} problem(s), e.g. {'; '.join(problems[:5])}. "
            f"Expected a torchvision {kind} state dict with width=64"
            + ("; for plain vgg16 weights pass batch_norm=False" if encoder.batch_norm else "")
        )
    with torch.no_grad():
        for n, (ci, bi) in enumerate(torchvision_vgg16_indices(encoder.batch_norm)):
            w = features[f"features.{ci}.weight"]
            if n == 0:
                w = adapt_input_conv(w, in_channels)
            convs[n].weight.copy_(w)
            b = features[f"features.{ci}.bias"]
            if bi is None:
                bias = convs[n].bias
                assert bias is not None  # convolutions without batch norm carry a bias
                bias.copy_(b)
            else:
                bn = norms[n]
                bn.weight.copy_(features[f"features.{bi}.weight"])
                bn.bias.copy_(features[f"features.{bi}.bias"])
                assert bn.running_mean is not None and bn.running_var is not None
                bn.running_mean.copy_(features[f"features.{bi}.running_mean"] - b)
                bn.running_var.copy_(features[f"features.{bi}.running_var"])
    log.info(
        "loaded ImageNet VGG16 weights from %s (first convolution adapted to %d channel(s))",
        path,
        in_channels,
    )


def build_vgg16_encoder(
    in_channels: int, width: int, batch_norm: bool, pretrained: str | Path | None
) -> VGG16Encoder:
    """A VGG16 encoder, randomly initialised or filled from a local ImageNet file."""
    encoder = VGG16Encoder(in_channels=in_channels, width=width, batch_norm=batch_norm)
    init_weights(encoder)
    if pretrained is not None:
        load_vgg16_weights(encoder, pretrained, in_channels)
    return encoder
