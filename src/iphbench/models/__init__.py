"""The model zoo: a VGG16 encoder with four decoders (paper section 3.3).

``create_model(name, in_channels=1, classes=1, width=64, **kwargs)`` builds ``unet``
(Ronneberger 2015), ``attention_unet`` (Oktay 2018), ``fpn`` (Lin 2017 with the panoptic FPN
head of Kirillov 2019) or ``transunet`` (Chen 2021); ``list_models()`` names them. Every
model maps ``(B, C, H, W)`` to logits ``(B, classes, H, W)`` with H and W multiples of
``model.required_multiple`` (16). See docs/models.md.

Example:
    >>> import torch
    >>> from iphbench.models import create_model, list_models
    >>> list_models()
    ['attention_unet', 'fpn', 'transunet', 'unet']
    >>> create_model("fpn", width=4)(torch.zeros(1, 1, 64, 64)).shape
    torch.Size([1, 1, 64, 64])
"""

from __future__ import annotations

# importing the architecture modules registers them
from iphbench.models import attention_unet as attention_unet
from iphbench.models import fpn as fpn
from iphbench.models import transunet as transunet
from iphbench.models import unet as unet
from iphbench.models._base import SegmentationModel
from iphbench.models._factory import create_model
from iphbench.models._pretrained import adapt_input_conv, load_vgg16_weights
from iphbench.models._registry import (
    ModelInfo,
    is_model,
    list_models,
    model_info,
    register_model,
    unregister_model,
)
from iphbench.models.attention_unet import AttentionGate, AttentionUNet
from iphbench.models.fpn import FPN
from iphbench.models.transunet import TransUNet
from iphbench.models.unet import UNet
from iphbench.models.vgg16 import VGG16Encoder

__all__ = [
    "FPN",
    "AttentionGate",
    "AttentionUNet",
    "ModelInfo",
    "SegmentationModel",
    "TransUNet",
    "UNet",
    "VGG16Encoder",
    "adapt_input_conv",
    "create_model",
    "is_model",
    "list_models",
    "load_vgg16_weights",
    "model_info",
    "register_model",
    "unregister_model",
]
