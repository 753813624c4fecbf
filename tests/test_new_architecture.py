"""A fifth architecture is its own module plus one registration line (issue 21, "must show").

The test defines a tiny segmentation model here, registers it with ``@register_model(label=...,
colour=...)`` and, with no other change to iphbench, follows its name everywhere a model name
travels: ``create_model``, a study's ``models.names`` (``iphbench.styles.study_styles``), the grid
(``iphbench.study.grid.run_study``), the evaluation (``metrics.csv``), the labels and colours of
``iphbench.styles`` and the statistics and report tables. In iphbench itself the registration line
is the import of the model's module in ``src/iphbench/models/__init__.py`` (docs/models.md,
"Adding an architecture").

The grid trains in this process (the local executor with one device and one run per device), so
a model registered in the test is visible to the runs; a worker process would not see it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from torch import nn

from _study import PATCH, VAL_FRACTION, K, _folds_seed, study_dict
from iphbench.config import ConfigError, PrepConfig, StudyConfig
from iphbench.models import (
    SegmentationModel,
    create_model,
    is_model,
    list_models,
    model_info,
    register_model,
    unregister_model,
)
from iphbench.preprocessing.store import PatchStore, prepare_store
from iphbench.report.tables import metric_table
from iphbench.stats import write_stats
from iphbench.study.evaluate import evaluate_study
from iphbench.study.grid import GridResult, run_study
from iphbench.styles import known_names, study_styles, style_colour, style_label
from iphbench.synth import generate_cohort

NAME, LABEL, COLOUR = "tiny_net", "Tiny Net", "#17becf"
VIEW = "2DAxi"


class TinyNet(SegmentationModel):
    """conv-BN-ReLU, one 2x2 max-pooling, nearest upsampling, 1x1 logits: H and W must be even."""

    required_multiple = 2

    def __init__(self, in_channels: int, classes: int, width: int, batch_norm: bool = True) -> None:
        super().__init__(in_channels, classes)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.BatchNorm2d(width) if batch_norm else nn.Identity(),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Upsample(scale_factor=2, mode="nearest"),
        )
        self.head = nn.Conv2d(width, classes, 1)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def tiny_net() -> Iterator[str]:
    """The fifth architecture, registered as an architecture module would register it; removed afterwards."""

    @register_model(label=LABEL, colour=COLOUR)
    def tiny_net(in_channels: int = 1, classes: int = 1, width: int = 64, **kwargs: Any) -> TinyNet:
        return TinyNet(in_channels, classes, width, **kwargs)

    yield NAME
    unregister_model(NAME)
    assert not is_model(NAME)


@pytest.fixture(scope="module")
def study(tiny_net: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny study of tiny_net and unet (one view, two folds, 1 epoch, width 4, 32³ patches), trained
    in this process and evaluated."""
    root = tmp_path_factory.mktemp("new_architecture")
    cohort = generate_cohort(
        root / "cohort", n_subjects=8, n_sites=4, seed=3, size="tiny", healthy_fraction=0.25
    )
    out = root / "study"
    assert prepare_store(cohort, out / "prep", PrepConfig(patch_size=PATCH), workers=1, progress=False).ok
    seed = _folds_seed(PatchStore(out / "prep").subjects_table, K, VAL_FRACTION)
    cfg = StudyConfig.from_dict(study_dict(cohort, out, [tiny_net, "unet"], seed, views=[VIEW]))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # one device, one run per device: the runs train in this process, where tiny_net is registered
        result = run_study(cfg, executor="local", devices=["cpu"], runs_per_device=1)
    finally:
        torch.set_num_threads(threads)
    metrics = evaluate_study(out, device="cpu")
    return {"out": out, "cohort": cohort, "config": cfg, "result": result, "metrics": metrics}


def test_create_model_builds_it(tiny_net: str) -> None:
    assert tiny_net in list_models() and list_models("tiny*") == [tiny_net]
    model = create_model(tiny_net, width=4)
    assert isinstance(model, TinyNet) and model.required_multiple == 2
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 1, 32, 32)
    assert model.model_args == {"name": tiny_net, "in_channels": 1, "classes": 1, "width": 4}
    with pytest.raises(ValueError, match="multiples of 2"):
        model(torch.zeros(1, 1, 33, 32))
    info = model_info(tiny_net)
    assert (info.label, info.colour, info.module) == (LABEL, COLOUR, __name__)


def test_its_label_and_colour_travel_with_the_registration(tiny_net: str) -> None:
    assert style_label(tiny_net) == LABEL
    assert style_label(f"{tiny_net}+iphbench") == f"{LABEL} (iphbench recipe)"
    assert style_colour(tiny_net) == COLOUR and style_colour(f"{tiny_net}+iphbench") == COLOUR


def test_a_study_accepts_it_in_models_names(tiny_net: str) -> None:
    styles = study_styles([tiny_net, "unet"], ["paper", "iphbench"])
    # table order: alphabetical by label, "Tiny Net" before "U-Net"
    assert [s.name for s in styles] == [tiny_net, f"{tiny_net}+iphbench", "unet", "unet+iphbench"]
    assert styles[0].label == LABEL and styles[0].backend == "models"
    assert tiny_net in known_names()


def test_an_unregistered_name_is_refused_with_the_valid_names(tiny_net: str) -> None:
    with pytest.raises(ConfigError, match=r"unknown models \['tiny_nett'\] in models.names") as err:
        study_styles(["tiny_nett", "unet"], ["paper"])
    for name in (tiny_net, "unet", "attention_unet", "fpn", "transunet"):
        assert repr(name) in str(err.value)


def test_the_grid_trains_it_in_this_process(study: dict[str, Any], tiny_net: str) -> None:
    result: GridResult = study["result"]
    assert result.ok, result.failed
    assert sorted({(o["style"], o["view"]) for o in result.done}) == [(tiny_net, VIEW), ("unet", VIEW)]
    assert len(result.done) == 2 * K and {o["pid"] for o in result.done} == {os.getpid()}
    for fold in range(K):
        run = Path(study["out"]) / "runs" / tiny_net / VIEW / f"fold{fold}"
        assert (run / "done.json").is_file() and (run / "best.pt").is_file()


def test_evaluation_writes_its_rows(study: dict[str, Any], tiny_net: str) -> None:
    df = pd.read_csv(study["metrics"], dtype={"subject": str})
    assert set(df["style"]) == {tiny_net, "unet"} and set(df["orientation"]) == {VIEW}
    mine, unet = df[df["style"] == tiny_net], df[df["style"] == "unet"]
    assert len(mine) == len(unet) > 0  # the same subjects and protocols as the paper's U-Net
    assert sorted(mine["subject"].unique()) == sorted(unet["subject"].unique())


def test_stats_and_report_tables_label_it(study: dict[str, Any], tiny_net: str) -> None:
    df = pd.read_csv(study["metrics"], dtype={"subject": str})
    table = metric_table(df, "dice", "paper")
    assert table.styles == [tiny_net, "unet"]
    assert f"| Orientation | {LABEL} | U-Net |" in table.to_markdown()
    assert LABEL in table.to_latex() and LABEL in table.to_html()

    stats = write_stats(study["out"], mixed=False)
    text = (stats / "stats.md").read_text(encoding="utf-8")
    assert f"styles: {LABEL}, U-Net." in text  # the statistics' summary, in table order
    assert f"- {LABEL}: best mean Dice" in text  # the learning check names it too
