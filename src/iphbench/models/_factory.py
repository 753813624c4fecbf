"""The one model factory: ``create_model(name, in_channels=1, classes=1, width=64, **kwargs)``."""

from __future__ import annotations

from typing import Any

from iphbench.models._base import SegmentationModel
from iphbench.models._registry import model_entrypoint, model_info


def create_model(
    name: str, in_channels: int = 1, classes: int = 1, width: int = 64, **kwargs: Any
) -> SegmentationModel:
    """Build a registered segmentation model (paper section 3.3).

    Args:
        name: One of :func:`~iphbench.models.list_models` (``unet``, ``attention_unet``,
            ``fpn``, ``transunet``).
        in_channels: Input channels (1: one NCCT slice).
        classes: Logit channels (1: hemorrhage; apply the sigmoid outside the model).
        width: Channels of the first VGG16 block; 64 is the paper's VGG16, every layer
            scales with ``width / 64``.
        **kwargs: Per-architecture settings; common to all: ``batch_norm: bool = True``,
            ``pretrained: str | None = None`` (a local ImageNet VGG16 state dict file).

    Returns:
        A :class:`~iphbench.models._base.SegmentationModel` mapping ``(B, in_channels, H, W)``
        to logits ``(B, classes, H, W)``; ``model.required_multiple`` gives the size H and W
        must be multiples of, ``model.model_args`` the arguments that rebuild it.

    Raises:
        KeyError: If ``name`` is not registered; the message lists the valid names.
        TypeError: If ``kwargs`` holds a setting the model does not take.
        ValueError: If ``width`` is not a positive integer.

    Example:
        >>> from iphbench.models import create_model
        >>> m = create_model("unet", width=4)
        >>> m.required_multiple, m.model_args["name"]
        (16, 'unet')
    """
    fn = model_entrypoint(name)
    kwargs = {**model_info(name).defaults, **kwargs}  # the registration's defaults, unless given
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer (64 = the paper's VGG16), got {width!r}")
    try:
        model = fn(in_channels=in_channels, classes=classes, width=width, **kwargs)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        raise TypeError(
            f"model {name!r} does not take one of the settings {sorted(kwargs)}: {exc}; "
            f"see docs/models.md for each model's settings"
        ) from exc
    if not isinstance(model, SegmentationModel):
        raise TypeError(
            f"model {name!r} is registered but builds a {type(model).__name__}, not a SegmentationModel"
        )
    args = {k: v for k, v in kwargs.items() if k != "pretrained"}
    model.model_args = {"name": name, "in_channels": in_channels, "classes": classes, "width": width, **args}
    return model
