"""Styles: names, labels, order, and the grid of a study with both recipes and nnU-Net."""

from __future__ import annotations

import pytest

from iphbench.config import ConfigError, StudyConfig
from iphbench.study.grid import grid_styles, plan_runs
from iphbench.styles import Style, ordered_style_names, parse_style, study_styles, style_label


@pytest.mark.parametrize(
    ("name", "arch", "recipe", "label"),
    [
        ("unet", "unet", "paper", "U-Net"),
        ("unet+iphbench", "unet", "iphbench", "U-Net (iphbench recipe)"),
        ("attention_unet+iphbench", "attention_unet", "iphbench", "Attention U-Net (iphbench recipe)"),
        ("nnunet_3d_fullres", "nnunet_3d_fullres", "nnunet", "nnU-Net 3d_fullres"),
        ("mystery", "mystery", "paper", "mystery"),
    ],
)
def test_parse_and_label_round_trip(name: str, arch: str, recipe: str, label: str) -> None:
    s = parse_style(name)
    assert (s.arch, s.recipe, s.label, s.name) == (arch, recipe, label, name)
    assert style_label(name) == label


def test_table_order_pairs_recipes_and_puts_nnunet_last() -> None:
    names = ["unet+iphbench", "nnunet_3d_fullres", "unet", "fpn", "attention_unet", "fpn+iphbench"]
    assert ordered_style_names(names) == [
        "attention_unet", "fpn", "fpn+iphbench", "unet", "unet+iphbench", "nnunet_3d_fullres",
    ]  # fmt: skip


def test_study_styles_cross_architectures_with_recipes_once() -> None:
    styles = study_styles(["unet", "nnunet_2d", "unet"], ["paper", "iphbench"])
    assert styles == [Style("unet"), Style("unet", "iphbench"), Style("nnunet_2d", "nnunet")]


def test_config_recipe_forms_and_errors() -> None:
    assert StudyConfig.from_dict({}).train.recipes == ["paper"]
    both = StudyConfig.from_dict({"train": {"recipe": ["paper", "iphbench"]}, "models": {"names": ["fpn"]}})
    assert grid_styles(both) == ["fpn", "fpn+iphbench"]
    assert [str(r) for r in plan_runs(both, 1, styles=["fpn+iphbench"], views=["2DAxi"])] == [
        "fpn+iphbench/2DAxi/fold0"
    ]
    for bad in ("nope", ["paper", "paper"], []):
        with pytest.raises(ConfigError, match=r"train\.recipe"):
            StudyConfig.from_dict({"train": {"recipe": bad}})


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("foreground_share", 1.5, "foreground_share"),
        ("context_share", 0.8, "at most 1"),  # with the default foreground_share 0.5
        ("rotate_deg", -1.0, "rotate_deg"),
        ("schedule", "linear", "schedule"),
        ("min_component_ml", "sometimes", "min_component_ml"),
        ("steps", 0, "steps"),
    ],
)
def test_iphbench_recipe_settings_are_checked(key: str, value: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        StudyConfig.from_dict({"train": {"iphbench": {key: value}}})


def test_recipe_models_restricts_a_recipe_to_some_architectures() -> None:
    cfg = StudyConfig.from_dict({
        "models": {"names": ["unet", "fpn"]},
        "train": {"recipe": ["paper", "iphbench"], "recipe_models": {"iphbench": ["unet"]}},
    })  # fmt: skip
    assert grid_styles(cfg) == ["fpn", "unet", "unet+iphbench"]
    for bad in ({"iphbench": ["transunet"]}, {"nnunet": ["unet"]}, {"iphbench": "unet"}):
        with pytest.raises(ConfigError, match="recipe_models"):
            StudyConfig.from_dict({
                "models": {"names": ["unet", "fpn"]}, "train": {"recipe": ["paper", "iphbench"], "recipe_models": bad},
            })  # fmt: skip
