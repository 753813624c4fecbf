from __future__ import annotations

import typing
from pathlib import Path

import pytest

from iphbench.config import ConfigError, PrepConfig, StudyConfig, config_hash


def test_defaults_are_the_papers_settings() -> None:
    cfg = StudyConfig()
    assert (cfg.prep.hu_min, cfg.prep.hu_max, cfg.prep.patch_size) == (-30.0, 100.0, 64)
    assert (cfg.train.lr, cfg.train.epochs, cfg.train.focal_alpha, cfg.train.focal_gamma) == (
        5e-4,
        300,
        0.25,
        2.0,
    )
    assert cfg.folds.k == 5 and cfg.views == ["2DAxi", "2DCor", "2DSag"]
    assert cfg.models.names == ["unet", "attention_unet", "fpn", "transunet"] and cfg.models.width == 64


def test_load_resolves_paths_and_round_trips(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "cohort: data/c.csv\nout: study\ntrain: {epochs: 3, lr: 0.001}\nprep: {target_spacing: [1, 1, 2]}\n"
    )
    cfg = StudyConfig.load(tmp_path / "s.yaml")
    assert cfg.cohort == str((tmp_path / "data" / "c.csv").resolve()) and cfg.out == str(
        (tmp_path / "study").resolve()
    )
    assert cfg.train.epochs == 3 and cfg.train.lr == 0.001 and cfg.prep.target_spacing == [1.0, 1.0, 2.0]
    cfg.save(tmp_path / "resolved.yaml")
    again = StudyConfig.load(tmp_path / "resolved.yaml")
    assert again == cfg and config_hash(again) == config_hash(cfg)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"trian": {}}, r"unknown setting\(s\) \['trian'\] in study"),
        ({"train": {"epochs": "many"}}, r"study\.train\.epochs must be an integer"),
        ({"train": {"channels_last": "yes"}}, r"must be true or false"),
        ({"views": ["2DAxi", "3D"]}, r"unknown views \['3D'\]"),
        ({"folds": {"scheme": "bootstrap"}}, r"folds\.scheme must be 'kfold' or 'loso'"),
        ({"eval": {"protocols": ["paper", "whole"]}}, r"unknown protocols \['whole'\]"),
        ({"prep": [1, 2]}, r"study\.prep must be a mapping"),
        (
            {"eval": {"hd95_when_empty": "nan"}},
            r"eval\.hd95_when_empty must be one of \['worst', 'exclude'\]",
        ),
        (
            {"eval": {"lesion_min_ml": -1}},
            r"eval\.lesion_min_ml must be at least 0 \(a volume in mL\), got -1",
        ),
        ({"train": {"focal_alpha_negatives": "both"}}, r"train\.focal_alpha_negatives must be one of"),
    ],
)
def test_bad_settings_are_named(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        StudyConfig.from_dict(data)


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml does not exist"):
        StudyConfig.load(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(ConfigError, match=r"list\.yaml must hold a mapping"):
        StudyConfig.load(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("train: {epochs: [\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml is not valid YAML"):
        StudyConfig.load(tmp_path / "broken.yaml")


def test_config_hash_changes_with_any_setting() -> None:
    assert config_hash(PrepConfig()) == config_hash(PrepConfig())
    assert config_hash(PrepConfig()) != config_hash(PrepConfig(hu_max=90.0))


def test_issue_12_settings_default_and_load() -> None:
    cfg = StudyConfig()
    assert (cfg.eval.hd95_when_empty, cfg.eval.lesion_min_ml, cfg.train.focal_alpha_negatives) == (
        "worst",
        0.01,
        "one_minus",
    )
    cfg = StudyConfig.from_dict(
        {
            "eval": {"hd95_when_empty": "exclude", "lesion_min_ml": 0.05},
            "train": {"focal_alpha_negatives": "same"},
        }
    )
    assert (cfg.eval.hd95_when_empty, cfg.eval.lesion_min_ml, cfg.train.focal_alpha_negatives) == (
        "exclude",
        0.05,
        "same",
    )


def test_a_config_built_in_python_hashes_like_its_yaml(tmp_path: Path) -> None:
    """Ints in float fields (rotate_deg=0) are canonical floats before hashing, as YAML loading makes them."""
    from iphbench.config import IphbenchRecipe, ModelConfig, TrainConfig
    from iphbench.study.grid import study_hash
    from iphbench.training.run_files import run_settings

    built = StudyConfig(
        cohort=str(tmp_path / "c.csv"), out=str(tmp_path), prep=PrepConfig(hu_min=-30, hu_max=100),
        train=TrainConfig(lr=1, iphbench=IphbenchRecipe(rotate_deg=0, scale=0, lr=1)),
    )  # fmt: skip
    built.save(tmp_path / "config.yaml")
    loaded = StudyConfig.load(tmp_path / "config.yaml")
    assert loaded.train.iphbench.rotate_deg == 0.0 and isinstance(loaded.train.iphbench.rotate_deg, float)
    assert study_hash(built) == study_hash(loaded)
    assert config_hash(built.prep) == config_hash(loaded.prep)
    args = ("unet", "2DAxi", 0, ModelConfig(), built.train, ["a"], ["b"], "iphbench")
    assert run_settings(*args) == run_settings(
        "unet", "2DAxi", 0, ModelConfig(), loaded.train, ["a"], ["b"], "iphbench"
    )
    assert study_hash(built) != study_hash(StudyConfig(cohort="c.csv", out=str(tmp_path),
                                                       train=TrainConfig(lr=2)))  # fmt: skip


def test_every_numeric_setting_has_a_valid_range() -> None:
    """No int or float setting escapes the table of bounds (issue 20): each section of a study is in
    SECTIONS, and each of its numeric settings has a Bound."""
    import dataclasses

    from iphbench.config import SECTIONS, numeric_settings

    reachable, todo = set(), [StudyConfig]
    while todo:
        cls = todo.pop()
        for f in dataclasses.fields(cls):
            tp = typing.get_type_hints(cls)[f.name]
            if dataclasses.is_dataclass(tp) and tp not in reachable:
                reachable.add(tp)
                todo.append(tp)
    assert {cls.__name__ for cls in reachable} == set(SECTIONS)
    for cls in reachable:
        assert set(numeric_settings(cls)) == set(SECTIONS[cls.__name__].bounds), cls.__name__
    assert not numeric_settings(StudyConfig)


def test_python_built_sections_are_checked_too() -> None:
    from iphbench.config import EvalConfig, TrainConfig

    with pytest.raises(ConfigError, match=r"^train\.epochs must be at least 1 .*got 0$"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match=r"^train\.lr must be a number, got True$"):
        TrainConfig(lr=True)
    with pytest.raises(ConfigError, match=r"^train\.batch_size must be an integer, got 2\.5$"):
        TrainConfig(batch_size=2.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^eval\.threshold must be a finite number, got nan$"):
        EvalConfig(threshold=float("nan"))


def test_encoder_stride_is_what_every_model_needs() -> None:
    """prep.patch_size is checked against config.ENCODER_STRIDE without importing torch: it must be
    the models' own required multiple."""
    from iphbench.config import ENCODER_STRIDE
    from iphbench.models import create_model, list_models

    for name in list_models():
        assert create_model(name, width=4).required_multiple == ENCODER_STRIDE, name


def test_the_yaml_examples_of_the_docs_load() -> None:
    import re

    import yaml

    root = Path(__file__).resolve().parents[1]
    blocks = [
        block
        for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]
        for block in re.findall(r"```yaml\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
    ]
    assert len(blocks) >= 4
    for block in blocks:
        StudyConfig.from_dict(yaml.safe_load(block))


def test_model_names_are_the_registry_s_to_check() -> None:
    """The config holds names; which exist is the model registry's to say (iphbench.styles)."""
    from iphbench.styles import study_styles

    cfg = StudyConfig.from_dict({"models": {"names": ["resnet", "unet"]}})
    with pytest.raises(
        ConfigError, match=r"unknown models \['resnet'\] in models\.names; valid models are \["
    ):
        study_styles(cfg.models.names, cfg.train.recipes)
