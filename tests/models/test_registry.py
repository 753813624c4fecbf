"""The registry and factory machinery."""

from __future__ import annotations

import pytest
from torch import nn

from iphbench.config import PAPER_ARCHITECTURES
from iphbench.models import is_model, list_models, model_info, register_model, unregister_model


def test_list_models_pattern() -> None:
    assert list_models("*unet") == ["attention_unet", "transunet", "unet"]
    assert list_models("f*") == ["fpn"]
    assert list_models("nothing*") == []
    assert is_model("fpn") and not is_model("vgg16")


def test_the_paper_architectures_are_registered() -> None:
    assert sorted(PAPER_ARCHITECTURES) == list_models()


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
        unregister_model("tiny_test_model")
    assert "tiny_test_model" not in list_models()


def test_a_registration_carries_its_label_colour_and_defaults() -> None:
    @register_model(label="Tiny Net", colour="#123456", depth=2)
    def tiny_labelled_model(
        in_channels: int = 1, classes: int = 1, width: int = 64, depth: int = 1
    ) -> nn.Module:
        return nn.Conv2d(in_channels, classes, 1)

    try:
        info = model_info("tiny_labelled_model")
        assert (info.label, info.colour, dict(info.defaults)) == ("Tiny Net", "#123456", {"depth": 2})
        assert info.module == __name__
    finally:
        unregister_model("tiny_labelled_model")
    with pytest.raises(KeyError, match="valid models are"):
        model_info("tiny_labelled_model")
