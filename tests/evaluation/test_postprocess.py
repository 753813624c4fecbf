"""Post-processing of the iphbench recipe: small components removed, the volume chosen on validation subjects."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from iphbench.masks import remove_small_components
from iphbench.study.evaluate import evaluate_study
from iphbench.study.postprocess import CANDIDATES_ML, choose_min_component_ml


def test_components_below_the_volume_go_and_26_neighbours_count_as_one() -> None:
    m = np.zeros((8, 8, 8), bool)
    m[0, 0, 0] = True  # 1 voxel
    m[1, 1, 1] = True  # touches the first by a corner: one component of 2 under 26-connectivity
    m[4:7, 4:7, 4:7] = True  # 27 voxels
    assert remove_small_components(m, voxel_ml=0.01, min_ml=0.02).sum() == 29  # 2 voxels = 0.02 mL: kept
    assert remove_small_components(m, voxel_ml=0.01, min_ml=0.03).sum() == 27
    assert remove_small_components(m, voxel_ml=0.01, min_ml=0.0).sum() == 29  # 0 = off
    assert remove_small_components(np.zeros((3, 3, 3)), 0.01, 1.0).sum() == 0


def test_choice_takes_a_clear_gain_and_prefers_the_smaller_volume_on_ties() -> None:
    ref = np.zeros((10, 10, 10), bool)
    ref[2:6, 2:6, 2:6] = True  # 64 voxels
    pred = ref.copy()
    pred[8, 8, 8] = pred[8, 8, 9] = pred[8, 9, 8] = True  # a 3-voxel false positive: Dice 0.977
    chosen, scores = choose_min_component_ml([(pred, ref, 0.001)], candidates=(0.0, 0.005, 0.1))
    assert chosen == 0.005 and scores[0.005] == 1.0 and scores[0.0] < 1.0 and scores[0.1] == 0.0
    # nothing to gain: the smallest candidate (off) is kept
    assert choose_min_component_ml([(ref, ref, 0.001)], candidates=(0.0, 0.005))[0] == 0.0
    # a lesion-free subject with one speck: Dice 0 before, 1 after (both empty)
    empty = np.zeros_like(ref)
    speck = empty.copy()
    speck[1, 1, 1] = True
    assert choose_min_component_ml([(speck, empty, 0.001)], candidates=(0.0, 0.002))[0] == 0.002


def test_choice_ignores_a_gain_smaller_than_the_tolerance_or_its_standard_error() -> None:
    ref = np.zeros((10, 10, 10), bool)
    ref[2:6, 2:6, 2:6] = True
    one_speck = ref.copy()
    one_speck[8, 8, 8] = True  # Dice 0.992 → 1.0 when removed: +0.008, under the 0.01 least tolerance
    assert choose_min_component_ml([(one_speck, ref, 0.001)], candidates=(0.0, 0.005))[0] == 0.0
    assert choose_min_component_ml([(one_speck, ref, 0.001)], (0.0, 0.005), min_tolerance=0.0)[0] == 0.005
    # lesion-free subjects with one speck each (Dice 0 → 1 when removed) beside unchanged subjects
    empty = np.zeros_like(ref)
    speck = empty.copy()
    speck[1, 1, 1] = True
    unchanged = (ref, ref, 0.001)
    one_of_four = [(speck, empty, 0.001)] + [unchanged] * 3  # paired gain 0.25 ± SE 0.25: not resolved
    chosen, scores = choose_min_component_ml(one_of_four, candidates=(0.0, 0.0015))
    assert scores[0.0015] == 1.0 and scores[0.0] == 0.75 and chosen == 0.0
    three_of_four = [(speck, empty, 0.001)] * 3 + [unchanged]  # gain 0.75 ± 0.25: taken
    assert choose_min_component_ml(three_of_four, candidates=(0.0, 0.0015))[0] == 0.0015
    # removing < 1.5 μL helps one lesion-free subject and deletes three small true lesions
    small = np.zeros_like(ref)
    small[5, 5, 5] = True
    trade = [(speck, empty, 0.001)] + [(small, small, 0.001)] * 3
    chosen, scores = choose_min_component_ml(trade, candidates=(0.0, 0.0015))
    assert scores[0.0] == 0.75 and scores[0.0015] == 0.25 and chosen == 0.0


def _study(root: Path, min_component_ml: object) -> Path:
    from tests._study import build_tiny_study

    train = {
        "recipe": ["paper", "iphbench"], "epochs": 1, "batch_size": 8, "steps_per_epoch": 1, "device": "cpu",
        "iphbench": {"batch_size": 8, "steps": 2, "val_every": 1, "warmup_steps": 1, "context_patches_per_subject": 2,
                     "min_component_ml": min_component_ml},
    }  # fmt: skip
    study = build_tiny_study(root, styles=("unet",), train=train)
    evaluate_study(study, device="cpu")
    return study


@pytest.fixture(scope="module")
def both_recipes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _study(tmp_path_factory.mktemp("recipes"), "auto")


def test_both_recipes_are_styles_and_only_iphbench_is_postprocessed(both_recipes: Path) -> None:
    metrics = pd.read_csv(both_recipes / "metrics.csv")
    assert set(metrics["style"]) == {"unet", "unet+iphbench"}
    table = json.loads((both_recipes / "eval" / "postprocess.json").read_text())
    assert set(table) == {"unet+iphbench"}
    folds = pd.read_csv(both_recipes / "folds.csv")
    assert set(table["unet+iphbench"]) == {str(f) for f in folds["fold"].unique()}
    for entry in table["unet+iphbench"].values():
        assert entry["how"].startswith("auto: smallest volume within one standard error")
        scores = {float(k): v for k, v in entry["validation_dice"].items()}  # the rule: unit tests above
        assert float(entry["min_ml"]) in scores and set(scores) == set(CANDIDATES_ML)


def test_a_fixed_volume_applies_to_every_saved_prediction(tmp_path: Path) -> None:
    """With 100 L as the minimum (untrained models fill whole brains), the iphbench style predicts nothing; the paper style is untouched."""
    study = _study(tmp_path, 1e5)
    metrics = pd.read_csv(study / "metrics.csv")
    ours = metrics[metrics["style"] == "unet+iphbench"]
    assert (ours["pred_ml"] == 0).all()
    paper = metrics[metrics["style"] == "unet"]
    assert (paper["pred_ml"] > 0).any(), "the nearly untrained paper models should predict something"
    table = (
        json.loads((study / "eval" / "postprocess.json").read_text())
        if (study / "eval" / "postprocess.json").exists()
        else {}
    )
    assert table == {}  # a fixed volume is not chosen, so nothing is recorded as chosen
    for path in (study / "predictions" / "full" / "unet+iphbench").glob("*.nii.gz"):
        assert not (np.asarray(nib.load(path).dataobj) > 0).any(), path


def test_predict_applies_the_median_of_the_chosen_volumes(both_recipes: Path) -> None:
    from iphbench.config import StudyConfig
    from iphbench.study.predict import ScanPredictor, min_component_ml

    cfg = StudyConfig.load(both_recipes / "config.yaml")
    table = json.loads((both_recipes / "eval" / "postprocess.json").read_text())
    chosen = [float(e["min_ml"]) for e in table["unet+iphbench"].values()]
    assert min_component_ml(both_recipes, cfg, "unet+iphbench") == float(np.median(chosen))
    assert min_component_ml(both_recipes, cfg, "unet") == 0.0  # the paper recipe is never post-processed
    predictor = ScanPredictor(both_recipes, style="unet+iphbench", device="cpu")
    assert predictor.min_component_ml == float(np.median(chosen))
