"""Every figure is written as PNG and PDF and is not blank."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from iphbench.report.figures import (
    figure_age_vs_f,
    figure_colour,
    figure_site_boxplots,
    figure_volume_agreement,
    save_figure,
    volume_log_ratio,
)
from iphbench.report.overlays import figure_overlays, load_case, pick_cases
from iphbench.stats import load_metrics


def _not_blank(png: Path) -> None:
    assert png.stat().st_size > 5_000
    img = mpimg.imread(png)[..., :3]
    assert img.shape[0] > 200 and img.shape[1] > 200
    assert float(img.var()) > 1e-3  # not a flat canvas


@pytest.mark.parametrize("make", [figure_age_vs_f, figure_site_boxplots, figure_volume_agreement])
def test_metric_figures_are_written(fake_study: Path, tmp_path: Path, make) -> None:  # type: ignore[no-untyped-def]
    df = load_metrics(fake_study)
    png, pdf = save_figure(make(df, "2.5D", "paper"), tmp_path, make.__name__)
    _not_blank(png)
    assert pdf.read_bytes()[:4] == b"%PDF" and pdf.stat().st_size > 2_000


def test_overlay_figure_picks_large_and_small_and_is_drawn(fake_study: Path, tmp_path: Path) -> None:
    df = load_metrics(fake_study)
    picks = pick_cases(df, fake_study, "paper")
    assert [label for _, label in picks] == ["large", "small"]
    ref = df.drop_duplicates("subject").set_index("subject")["ref_ml"]
    assert ref[picks[0][0]] > ref[picks[1][0]]
    cases = [load_case(df, fake_study, s, lab, "paper") for s, lab in picks]
    assert all(c.predictions and all(p is not None for p in c.predictions.values()) for c in cases)
    (png,) = save_figure(figure_overlays(cases, "paper"), tmp_path, "fig1", formats=("png",))
    _not_blank(png)
    img = mpimg.imread(png)[..., :3]
    # the true-positive green of the overlays is present
    green = (img[..., 1] > 0.5) & (img[..., 0] < 0.4) & (img[..., 2] < 0.6)
    assert green.sum() > 500


def test_volume_log_ratio_is_clipped_and_handles_empty_predictions() -> None:
    r = volume_log_ratio(np.array([0.0, 5.0, 10.0, 100.0]), np.array([5.0, 5.0, 5.0, 5.0]))
    np.testing.assert_allclose(r, [-2.0, 0.0, 1.0, 2.0])


def test_styles_take_their_registered_colour_and_others_the_next_default_one() -> None:
    paper = [figure_colour(s, 0) for s in ("attention_unet", "fpn", "transunet", "unet")]
    assert paper == ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"]  # the models' registry (@register_model)
    # a recipe variant is a column of its own: the default colour of its place, as an nnU-Net or unknown style
    assert figure_colour("unet+iphbench", 4) == "C4"
    assert figure_colour("nnunet_3d_fullres", 5) == "C5" and figure_colour("my_style", 2) == "C2"
