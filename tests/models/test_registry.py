"""The registry and factory machinery."""

from __future__ import annotations

import pytest
from torch import nn

from iphbench.config import MODEL_NAMES
from iphbench.models import is_model, list_models, register_model
from iphbench.models._registry import _model_entrypoints, _model_to_module


def test_list_models_pattern() -> None:
    assert list_models("*unet") == ["attention_unet", "transunet", "unet"]
    assert list_models("f*") == ["fpn"]
    assert list_models("nothing*") == []
    assert is_model("fpn") and not is_model("vgg16")


def test_registry_agrees_with_the_study_config() -> None:
    assert sorted(MODEL_NAMES) == list_models()


def test_register_and_duplicate() -> None:
    def tiny_test_model(in_channels: int = 1, classes: int = 1, width: int = 64) -> nn.Module:
        return nn.Conv2d(in_channels, classes, 1)

    try:
        register_model(tiny_test_model)
        assert "tiny_test_model" in list_models()
        register_model(tiny_test_model)  # the same function again is harmless

        def other() -> nn.Module:
            return nn.Identity()

        other.__name__ = "tiny_test_model"
        with pytest.raises(ValueError, match="registered twice"):
            register_model(other)
    finally:
        _model_entrypoints.pop("tiny_test_model", None)
        _model_to_module.pop("tiny_test_model", None)
    assert "tiny_test_model" not in list_models()
