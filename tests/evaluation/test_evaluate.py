"""Study evaluation on a tiny trained study: metrics.csv contract, protocols, alignment, resume.

The study (tests/_study.py) has unet and fpn in three views, two folds, eight subjects on four
sites whose files are stored RAS, LPS, SAR (permuted axes) and LAS, two of them hemorrhage-free.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from iphbench.config import StudyConfig
from iphbench.io import read_mask
from iphbench.layout import StudyLayout
from iphbench.preprocessing import restore
from iphbench.preprocessing.store import PatchStore
from iphbench.study.evaluate import METRIC_COLUMNS, EvaluationError, evaluate_study
from iphbench.study.predict import best_style, choose_style, trained_styles
from iphbench.views import FUSED, VIEWS


def run_dir(study: Path, style: str, view: str, fold: int) -> Path:
    return StudyLayout(study).run(style, view, fold).dir


DESIGN_COLUMNS = [
    "subject",
    "site",
    "age",
    "sex",
    "fold",
    "style",
    "orientation",
    "protocol",
    "dice",
    "iou",
    "hd95_mm",
    "precision",
    "recall",
    "ref_ml",
    "pred_ml",
]  # fmt: skip  (DESIGN.md, "Interfaces")
STYLES = ["unet", "fpn"]
ORIENTATIONS = [*VIEWS, FUSED]


@pytest.fixture(scope="module")
def evaluated(tiny_study: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A copy of the tiny study, evaluated once; returns it and the subjects reported as done."""
    study = tmp_path_factory.mktemp("evaluated") / "study"
    shutil.copytree(tiny_study, study)
    seen: list[str] = []
    evaluate_study(study, device="cpu", progress=lambda s, done, total: seen.append(s))
    return study, seen


def _metrics(study: Path) -> pd.DataFrame:
    return pd.read_csv(study / "metrics.csv", dtype={"subject": str, "site": str})


def _test_folds(study: Path) -> dict[str, int]:
    folds = pd.read_csv(study / "folds.csv", dtype={"subject": str})
    test = folds[folds["role"] == "test"]
    return dict(zip(test["subject"], test["fold"].astype(int), strict=True))


def _healthy(study: Path) -> set[str]:
    table = PatchStore(study / "prep").subjects_table
    return set(table.loc[table["ref_ml"] == 0, "subject"])


def _prediction(study: Path, protocol: str, style: str, subject: str, orientation: str) -> Path:
    return study / "predictions" / protocol / style / f"{subject}_{orientation}.nii.gz"


def _region(origins: np.ndarray, shape: tuple[int, ...], size: int) -> np.ndarray:
    region = np.zeros(shape, dtype=np.uint8)
    for x, y, z in origins:
        region[x : x + size, y : y + size, z : z + size] = 1
    return region


# -- metrics.csv contract --------------------------------------------------------------------------
def test_metrics_csv_has_the_design_columns_and_one_row_per_cell(evaluated: tuple[Path, list[str]]) -> None:
    study, seen = evaluated
    m = _metrics(study)
    assert list(m.columns) == [
        *DESIGN_COLUMNS,
        "status",
        "fov_diagonal_mm",
        "lesions_ref",
        "lesions_hit",
        "lesions_false",
    ]
    assert list(m.columns) == METRIC_COLUMNS
    tests, healthy = _test_folds(study), _healthy(study)
    assert sorted(seen) == sorted(tests)  # every test subject once
    assert len(healthy) == 2 and healthy < set(tests)
    assert not m.duplicated(["subject", "style", "orientation", "protocol"]).any()
    assert m["protocol"].notna().all() and set(m["protocol"]) == {"paper", "full"}
    expected = {
        (s, st, o, p)
        for s in tests
        for st in STYLES
        for o in ORIENTATIONS
        for p in (["full"] if s in healthy else ["paper", "full"])
    }
    got = set(m[["subject", "style", "orientation", "protocol"]].itertuples(index=False, name=None))
    assert got == expected
    cohort = pd.read_csv(StudyConfig.load(study / "config.yaml").cohort, dtype={"subject": str, "site": str})
    merged = m.merge(cohort[["subject", "site", "age", "sex"]], on="subject", suffixes=("", "_cohort"))
    for col in ("site", "age", "sex"):
        assert (merged[col] == merged[f"{col}_cohort"]).all(), col


def test_each_subject_is_scored_by_its_own_test_fold(evaluated: tuple[Path, list[str]]) -> None:
    study, _ = evaluated
    m, tests = _metrics(study), _test_folds(study)
    assert (m["fold"] == m["subject"].map(tests)).all()
    assert m["fold"].nunique() == 2


def test_saved_prediction_is_the_held_out_fold_models_output(evaluated: tuple[Path, list[str]]) -> None:
    """Recompute one subject's 2.5D full-protocol mask from its fold's checkpoints: identical."""
    from iphbench.inference import fuse_views, predict_subject_views, threshold
    from iphbench.training.checkpoint import load_model

    study, _ = evaluated
    tests, store = _test_folds(study), PatchStore(study / "prep")
    cfg = StudyConfig.load(study / "config.yaml")
    subject = next(s for s in sorted(tests) if s not in _healthy(study))
    prep = store.load(subject)
    origins = np.unique(
        np.concatenate([store.patch_origins(subject, "lesion"), store.patch_origins(subject, "brain")]),
        axis=0,
    )

    def mask_with_fold(style: str, fold: int) -> np.ndarray:
        models = {v: [load_model(run_dir(study, style, v, fold))] for v in VIEWS}
        probs = predict_subject_views(prep.image, origins, store.patch_size, models, torch.device("cpu"))
        binary = threshold(fuse_views(probs), cfg.eval.threshold) & np.asarray(prep.brain)
        return restore(binary, prep.meta, order=0)

    for style in STYLES:
        saved = read_mask(_prediction(study, "full", style, subject, FUSED)).array
        np.testing.assert_array_equal(saved, mask_with_fold(style, tests[subject]), err_msg=style)
    own = torch.load(run_dir(study, "fpn", "2DAxi", tests[subject]) / "best.pt", weights_only=True)
    other = torch.load(run_dir(study, "fpn", "2DAxi", 1 - tests[subject]) / "best.pt", weights_only=True)
    assert any(not torch.equal(own["model"][k], other["model"][k]) for k in own["model"])  # folds differ


def test_hemorrhage_free_subjects_report_their_false_positive_volume(
    evaluated: tuple[Path, list[str]],
) -> None:
    study, _ = evaluated
    m = _metrics(study)
    healthy = _healthy(study)
    rows = m[m["subject"].isin(healthy)]
    assert len(rows) == len(healthy) * len(STYLES) * len(ORIENTATIONS)
    assert set(rows["protocol"]) == {"full"} and (rows["ref_ml"] == 0).all()
    cohort = pd.read_csv(StudyConfig.load(study / "config.yaml").cohort, dtype={"subject": str})
    images = dict(zip(cohort["subject"], cohort["image"], strict=True))
    for r in rows.itertuples(index=False):
        img = nib.load(Path(StudyConfig.load(study / "config.yaml").cohort).parent / images[r.subject])
        voxel_ml = float(np.prod(img.header.get_zooms()[:3])) / 1000.0
        saved = np.asarray(nib.load(_prediction(study, "full", r.style, r.subject, r.orientation)).dataobj)
        assert r.pred_ml == pytest.approx(int(saved.sum()) * voxel_ml, rel=1e-6)
        assert r.status == ("false_alarm" if saved.any() else "both_empty")
    assert (rows["pred_ml"] > 0).any(), "no false positive at all: the check above would be vacuous"


def test_no_nan_dice_and_status_matches_the_volumes(evaluated: tuple[Path, list[str]]) -> None:
    m = _metrics(evaluated[0])
    assert m["dice"].notna().all() and m["iou"].notna().all()
    assert ((m["dice"] >= 0) & (m["dice"] <= 1)).all()
    ref, pred = m["ref_ml"] > 0, m["pred_ml"] > 0
    expected = np.select(
        [ref & pred, ref & ~pred, ~ref & pred], ["ok", "missed", "false_alarm"], default="both_empty"
    )
    assert (m["status"] == expected).all()
    # the default d_H95 policy 'worst': one empty mask takes the scan's field-of-view diagonal, never NaN
    empty = m["status"].isin(["missed", "false_alarm"])
    assert m["hd95_mm"].notna().all() and empty.any()
    assert (m.loc[empty, "hd95_mm"] == m.loc[empty, "fov_diagonal_mm"]).all()
    assert (m.loc[~empty, "hd95_mm"] < m.loc[~empty, "fov_diagonal_mm"]).all()
    # lesion-wise counts agree with the status: nothing found when missed, nothing false when both are empty
    assert (m.loc[m["status"] == "missed", "lesions_hit"] == 0).all()
    assert (
        (m.loc[m["status"] == "both_empty", ["lesions_ref", "lesions_hit", "lesions_false"]] == 0).all().all()
    )
    assert (m["lesions_hit"] <= m["lesions_ref"]).all() and (m.loc[m["ref_ml"] > 0, "lesions_ref"] >= 1).all()
    assert (m.loc[m["status"] == "both_empty", "dice"] == 1).all()
    assert m["status"].nunique() >= 2  # the study exercises more than one case


# -- protocols and alignment, on the saved NIfTIs ----------------------------------------------------
def test_protocol_regions_hold_on_saved_predictions(evaluated: tuple[Path, list[str]]) -> None:
    """paper: nothing outside the lesion patches; full: nothing outside the brain mask."""
    study, _ = evaluated
    store = PatchStore(study / "prep")
    size = store.patch_size
    full_outside_lesion_patches = paper_voxels = 0
    for subject in _test_folds(study):
        prep = store.load(subject)
        lesion = restore(
            _region(store.patch_origins(subject, "lesion"), prep.image.shape, size), prep.meta, 0
        )
        brain = restore(np.asarray(prep.brain), prep.meta, 0)
        for style in STYLES:
            for o in ORIENTATIONS:
                full = read_mask(_prediction(study, "full", style, subject, o)).array
                assert not (full & (1 - brain)).any(), (
                    f"{subject} {style} {o}: full protocol outside the brain"
                )
                full_outside_lesion_patches += int((full & (1 - lesion)).sum())
                paper_path = _prediction(study, "paper", style, subject, o)
                if not lesion.any():
                    assert not paper_path.exists(), (
                        "a hemorrhage-free subject has no paper-protocol prediction"
                    )
                    continue
                paper = read_mask(paper_path).array
                assert not (paper & (1 - lesion)).any(), (
                    f"{subject} {style} {o}: paper outside lesion patches"
                )
                paper_voxels += int(paper.sum())
    assert paper_voxels > 0 and full_outside_lesion_patches > 0, "predictions empty: checks would be vacuous"


def test_saved_predictions_align_with_the_original_scans(evaluated: tuple[Path, list[str]]) -> None:
    study, _ = evaluated
    cohort_csv = Path(StudyConfig.load(study / "config.yaml").cohort)
    cohort = pd.read_csv(cohort_csv, dtype={"subject": str})
    orders = set()
    for row in cohort.itertuples(index=False):
        image = nib.load(cohort_csv.parent / row.image)
        orders.add("".join(nib.aff2axcodes(image.affine)))
        files = sorted((study / "predictions").glob(f"*/*/{row.subject}_*.nii.gz"))
        assert len(files) == len(STYLES) * len(ORIENTATIONS) * (1 if row.lesion_ml == 0 else 2)
        for f in files:
            pred = nib.load(f)
            assert pred.shape == image.shape, f
            np.testing.assert_allclose(pred.affine, image.affine, atol=1e-5, err_msg=str(f))
    assert {"LPS", "SAR"} <= orders  # non-canonical storage orders were exercised


# -- resume and cache invalidation --------------------------------------------------------------------
def test_resume_recomputes_only_the_missing_subject_and_a_new_done_json_redoes_all(
    evaluated: tuple[Path, list[str]], tmp_path: Path
) -> None:
    study = tmp_path / "study"
    shutil.copytree(evaluated[0], study)
    before = (study / "metrics.csv").read_bytes()
    cached = sorted((study / "eval").glob("*.csv"))
    victim = cached[3]
    mtimes = {p.name: p.stat().st_mtime_ns for p in cached if p != victim}
    victim.unlink()

    seen: list[str] = []
    evaluate_study(study, device="cpu", progress=lambda s, d, t: seen.append(s))
    assert seen == [victim.stem]
    assert {p.name: p.stat().st_mtime_ns for p in cached if p != victim} == mtimes
    assert (study / "metrics.csv").read_bytes() == before

    done = run_dir(study, "unet", "2DCor", 0) / "done.json"
    info = json.loads(done.read_text())
    info["retrained"] = True  # what a retrained run leaves: a new done.json
    done.write_text(json.dumps(info))
    seen.clear()
    evaluate_study(study, device="cpu", progress=lambda s, d, t: seen.append(s))
    assert sorted(seen) == sorted(p.stem for p in cached)
    assert (study / "metrics.csv").read_bytes() == before  # same weights, same numbers


def test_cache_key_follows_checkpoint_files(evaluated: tuple[Path, list[str]], tmp_path: Path) -> None:
    """Touching done.json or rewriting best.pt (done.json unchanged) makes the cached results stale."""
    import os

    from iphbench.study.evaluate import _eval_key

    study = tmp_path / "study"
    shutil.copytree(evaluated[0], study, ignore=shutil.ignore_patterns("predictions", "eval", "prep"))
    cfg = StudyConfig.load(study / "config.yaml")
    key = _eval_key(StudyLayout(study), cfg)
    assert _eval_key(StudyLayout(study), cfg) == key
    done = run_dir(study, "unet", "2DAxi", 1) / "done.json"
    st = done.stat()
    os.utime(done, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    touched = _eval_key(StudyLayout(study), cfg)
    assert touched != key
    best = run_dir(study, "fpn", "2DSag", 1) / "best.pt"
    best.write_bytes(best.read_bytes())  # same bytes, new file: what a retrained run leaves
    os.utime(best, ns=(best.stat().st_atime_ns, best.stat().st_mtime_ns + 10**9))
    assert _eval_key(StudyLayout(study), cfg) not in (key, touched)


def test_missing_runs_are_listed(evaluated: tuple[Path, list[str]], tmp_path: Path) -> None:
    study = tmp_path / "study"
    shutil.copytree(evaluated[0], study, ignore=shutil.ignore_patterns("predictions", "eval"))
    for style, view, fold in (("fpn", "2DSag", 1), ("unet", "2DAxi", 0)):
        (run_dir(study, style, view, fold) / "done.json").unlink()
    with pytest.raises(EvaluationError, match="2 training run") as info:
        evaluate_study(study, device="cpu")
    assert "fpn/2DSag/fold1" in str(info.value) and "unet/2DAxi/fold0" in str(info.value)
    assert "iphbench study run" in str(info.value)


def test_an_edited_config_is_refused(evaluated: tuple[Path, list[str]], tmp_path: Path) -> None:
    """config.yaml changed after training (here the learning rate) no longer matches study.json."""
    study = tmp_path / "study"
    shutil.copytree(evaluated[0], study, ignore=shutil.ignore_patterns("predictions", "eval"))
    cfg = StudyConfig.load(study / "config.yaml")
    cfg.train.lr = 0.1
    cfg.save(study / "config.yaml")
    with pytest.raises(EvaluationError, match="different config"):
        evaluate_study(study, device="cpu")


def test_edited_evaluation_settings_re_evaluate_instead_of_refusing(
    evaluated: tuple[Path, list[str]],
) -> None:
    """The eval section does not change what was trained: it is keyed by eval/key.json, not study.json."""
    from iphbench.study.evaluate import _eval_key
    from iphbench.study.grid import check_study

    study = evaluated[0]
    cfg = StudyConfig.load(study / "config.yaml")
    key = _eval_key(StudyLayout(study), cfg)
    for change in ({"threshold": 0.3}, {"hd95_when_empty": "exclude"}, {"lesion_min_ml": 0.5}):
        edited = StudyConfig.load(study / "config.yaml")
        for name, value in change.items():
            setattr(edited.eval, name, value)
        assert check_study(study, edited)  # accepted ...
        assert _eval_key(StudyLayout(study), edited) != key  # ... and evaluated again
    edited = StudyConfig.load(study / "config.yaml")
    edited.eval.learning_check.min_dice = 0.5  # a banner threshold changes no metric: no re-evaluation
    assert check_study(study, edited) and _eval_key(StudyLayout(study), edited) == key


def test_default_style_without_metrics_is_a_trained_one(
    evaluated: tuple[Path, list[str]], tmp_path: Path
) -> None:
    study = tmp_path / "study"
    ignore = shutil.ignore_patterns("predictions", "eval", "prep", "metrics.csv")
    shutil.copytree(evaluated[0], study, ignore=ignore)
    assert choose_style(study).style == "fpn"  # the paper's best, when trained
    shutil.rmtree(study / "runs" / "fpn")
    assert choose_style(study).style == "unet"  # never a style that was not trained
    shutil.rmtree(study / "runs" / "unet")
    with pytest.raises(FileNotFoundError, match="no finished training run"):
        choose_style(study)


def test_not_a_study_folder(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match=r"config\.yaml is missing"):
        evaluate_study(tmp_path, device="cpu")


# -- best_style ---------------------------------------------------------------------------------------
def _write_metrics(path: Path, dice: dict[tuple[str, str, str], list[float]]) -> None:
    rows = [
        {"subject": f"s{i}", "style": style, "orientation": orientation, "protocol": protocol, "dice": d}
        for (style, orientation, protocol), values in dice.items()
        for i, d in enumerate(values)
    ]
    pd.DataFrame(rows).to_csv(path / "metrics.csv", index=False)


def test_best_style_is_the_highest_mean_full_dice_in_2_5d(tmp_path: Path) -> None:
    """The full protocol chooses (a new scan is predicted everywhere in the brain, as full scores it)."""
    dice = {  # (style, orientation, protocol) -> per-subject Dice
        ("unet", FUSED, "full"): [0.80, 0.70, 1.0],  # mean 0.833: the best under full
        ("fpn", FUSED, "full"): [0.90, 0.64, 0.0],  # a false alarm on the hemorrhage-free subject
        ("transunet", FUSED, "full"): [0.99, 0.10, 1.0],  # best single subject, lower mean
        ("fpn", FUSED, "paper"): [0.90, 0.64],  # the best under paper: not what chooses
        ("unet", FUSED, "paper"): [0.80, 0.70],
        ("unet+iphbench", "2DCor", "full"): [0.99, 0.99, 1.0],  # a single view does not count
    }
    _write_metrics(tmp_path, dice)
    choice = best_style(tmp_path)
    assert choice is not None and choice.style == "unet"
    assert "full protocol" in choice.reason and "0.833" in choice.reason
    # only trained styles compete
    choice = best_style(tmp_path, styles=["fpn", "transunet"])
    assert choice is not None and choice.style == "transunet"
    assert best_style(tmp_path / "nowhere") is None


def test_best_style_falls_back_to_paper_and_says_so(tmp_path: Path) -> None:
    _write_metrics(tmp_path, {("unet", FUSED, "paper"): [0.80, 0.70], ("fpn", FUSED, "paper"): [0.90, 0.64]})
    choice = best_style(tmp_path)
    assert choice is not None and choice.style == "fpn"
    assert "paper protocol" in choice.reason and "no full-protocol rows" in choice.reason
    (tmp_path / "metrics.csv").write_text("")  # unreadable: no choice, no traceback
    assert best_style(tmp_path) is None


def test_choose_style_validates_against_finished_runs_not_architecture_names(
    tiny_study: Path, tmp_path: Path
) -> None:
    """A style is a folder of finished runs (``unet+iphbench`` is not an architecture name)."""
    study = tmp_path / "study"
    shutil.copytree(tiny_study, study, ignore=shutil.ignore_patterns("predictions", "eval", "prep"))
    shutil.copytree(study / "runs" / "unet", study / "runs" / "unet+iphbench")
    assert trained_styles(study) == ["fpn", "unet", "unet+iphbench"]
    assert choose_style(study, "unet+iphbench").style == "unet+iphbench"
    with pytest.raises(ValueError, match=r"style 'transunet' has no finished run.*fpn, unet, unet\+iphbench"):
        choose_style(study, "transunet")
    assert not (study / "metrics.csv").exists()
    assert choose_style(study).style == "fpn"
    assert "no metrics.csv" in choose_style(study).reason


def test_summary_names_each_protocol(evaluated: tuple[Path, list[str]]) -> None:
    from iphbench.study.summary import summarise

    m = _metrics(evaluated[0])
    s = summarise(m)
    assert set(s["protocol"]) == {"paper", "full"}
    assert s["n"].sum() == len(m)
    full = s[(s["protocol"] == "full") & (s["style"] == "fpn") & (s["orientation"] == FUSED)].iloc[0]
    sel = m[(m["protocol"] == "full") & (m["style"] == "fpn") & (m["orientation"] == FUSED)]
    assert full["dice"] == pytest.approx(sel["dice"].mean())
    assert full["missed"] == (sel["status"] == "missed").sum()
