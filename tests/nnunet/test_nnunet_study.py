"""A tiny end-to-end study with nnU-Net reference styles on CPU: train, predict, evaluate, report, predict a new scan.

Eight tiny synthetic subjects (~64×64×32, four sites stored in four axis orders, two without a
hemorrhage), two folds, U-Net (paper recipe) beside nnunet_3d_fullres and nnunet_2d trained by
iphbench's nnU-Net trainer for one epoch of one iteration. The models are untrained: the tests
check the plumbing (same folds, same regions, same metrics, files, resume), not accuracy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("nnunetv2")

pytestmark = pytest.mark.slow

STYLES = ("unet", "nnunet_3d_fullres", "nnunet_2d")
NNUNET = {"nnunet_3d_fullres": "3D", "nnunet_2d": "2D"}
SETTINGS = {
    "epochs": 1,
    "iterations_per_epoch": 1,
    "val_iterations_per_epoch": 1,
    "test_time_mirroring": False,
    "preprocessing_workers": 1,
    "augmentation_workers": 0,
}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from _study import PATCH, VAL_FRACTION, K, _folds_seed, study_dict
    from iphbench.config import PrepConfig, StudyConfig
    from iphbench.preprocessing.store import PatchStore, prepare_store
    from iphbench.study.grid import run_study
    from iphbench.synth import generate_cohort

    root = tmp_path_factory.mktemp("nnunet_study")
    cohort = generate_cohort(
        root / "cohort", n_subjects=8, n_sites=4, seed=3, size="tiny", healthy_fraction=0.25
    )
    out = root / "study"
    assert prepare_store(cohort, out / "prep", PrepConfig(patch_size=PATCH), workers=1, progress=False).ok
    seed = _folds_seed(PatchStore(out / "prep").subjects_table, K, VAL_FRACTION)
    cfg = StudyConfig.from_dict(study_dict(cohort, out, STYLES, seed, nnunet=SETTINGS))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    env = _nnunet_env()
    try:
        result = run_study(cfg, executor="local", devices=["cpu"])
    finally:
        torch.set_num_threads(threads)
    assert result.ok, result.failed
    return {"out": out, "cohort": cohort, "config": cfg, "result": result, "env": env}


def _nnunet_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k.startswith("nnUNet_")}


def _test_subjects(out: Path, fold: int) -> list[str]:
    folds = pd.read_csv(out / "folds.csv", dtype={"subject": str})
    return sorted(folds.loc[(folds["fold"] == fold) & (folds["role"] == "test"), "subject"])


def test_runs_follow_the_run_folder_contract(study: dict[str, Any]) -> None:
    out = study["out"]
    outcomes = {(o["style"], o["view"], o["fold"]): o for o in study["result"].outcomes}
    for style, orientation in NNUNET.items():
        for k in range(2):
            run = out / "runs" / style / orientation / f"fold{k}"
            assert outcomes[(style, orientation, k)]["status"] == "done"
            done = json.loads((run / "done.json").read_text())
            assert done["configuration"] == style.removeprefix("nnunet_") and done["epochs"] == 1
            assert done["iterations_per_epoch"] == 1 and done["checkpoint"] == "final" and done["nnunetv2"]
            assert json.loads((run / "status.json").read_text())["state"] == "done"
            assert not (run / "error.txt").exists()
            assert sorted(p.name[: -len(".nii.gz")] for p in (run / "test").iterdir()) == _test_subjects(
                out, k
            )
            weights = torch.load(run / "model.pt", map_location="cpu", weights_only=True)  # plain tensors
            assert weights["configuration"] == done["configuration"]
            nnunet_fold = Path(done["nnunet_fold_dir"])
            assert (nnunet_fold / "checkpoint_final.pth").is_file()
            assert not (nnunet_fold / "checkpoint_best.pth").exists()  # never chosen on the test subjects
    # nnU-Net's folders are the study's, whatever the environment says
    assert (out / "nnunet" / "raw" / "Dataset501_iphbench" / "imagesTr").is_dir()
    import matplotlib

    assert _nnunet_env() == study["env"]  # nothing left behind in this process
    assert matplotlib.rcParams["font.size"] == matplotlib.rcParamsDefault["font.size"]  # nnU-Net's plot style


def test_nnunet_split_file_holds_out_exactly_the_test_subjects_of_folds_csv(study: dict[str, Any]) -> None:
    from iphbench.nnunet.export import read_cases
    from iphbench.nnunet.splits import held_out_subjects

    out = study["out"]
    splits = out / "nnunet" / "preprocessed" / "Dataset501_iphbench" / "splits_final.json"
    held = held_out_subjects(splits, read_cases(out))
    assert [sorted(h) for h in held] == [_test_subjects(out, 0), _test_subjects(out, 1)]


def test_export_is_the_original_scan_in_canonical_order(study: dict[str, Any]) -> None:
    import nibabel as nib

    from iphbench.io import read_mask, read_volume
    from iphbench.preprocessing.store import PatchStore

    info = PatchStore(study["out"] / "prep").subjects_table.set_index("subject")
    raw = study["out"] / "nnunet" / "raw" / "Dataset501_iphbench"
    for subject in info.index[:4]:  # four sites, four axis orders on disk
        scan = read_volume(info.loc[subject, "image"])
        exported = nib.load(raw / "imagesTr" / f"{subject}_0000.nii.gz")
        # HU as read from the cohort's file: not windowed, skull-stripped, padded or resampled
        np.testing.assert_array_equal(np.asarray(exported.dataobj), scan.array)
        np.testing.assert_allclose(exported.affine, scan.affine, atol=1e-4)
        mask = read_mask(info.loc[subject, "mask"], like=scan)
        np.testing.assert_array_equal(
            np.asarray(nib.load(raw / "labelsTr" / f"{subject}.nii.gz").dataobj), mask.array
        )


@pytest.fixture(scope="module")
def evaluated(study: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from iphbench.report.html import write_report
    from iphbench.stats.write import write_stats
    from iphbench.study.evaluate import evaluate_study

    out = tmp_path_factory.mktemp("evaluated") / "study"
    shutil.copytree(study["out"], out, symlinks=True)
    evaluate_study(out, device="cpu")
    write_stats(out)
    write_report(out, pdf=False)
    return out


def test_metrics_rows_regions_and_predictions_match_our_styles(evaluated: Path) -> None:
    from iphbench.io import read_mask, read_volume
    from iphbench.preprocessing import restore
    from iphbench.preprocessing.store import PatchStore

    m = pd.read_csv(evaluated / "metrics.csv", dtype={"subject": str})
    store = PatchStore(evaluated / "prep")
    info = store.subjects_table.set_index("subject")
    unet = m[(m["style"] == "unet") & (m["orientation"] == "2.5D")]
    for style, orientation in NNUNET.items():
        rows = m[m["style"] == style]
        assert set(rows["orientation"]) == {orientation}
        for protocol in ("paper", "full"):  # the same subjects and folds as U-Net under each protocol
            ours = rows[rows["protocol"] == protocol].set_index("subject")["fold"].sort_index()
            theirs = unet[unet["protocol"] == protocol].set_index("subject")["fold"].sort_index()
            pd.testing.assert_series_equal(ours, theirs)
        assert len(rows[rows["protocol"] == "full"]) == 8 and (rows["ref_ml"] == 0).sum() == 2
        for subject, fold in rows[["subject", "fold"]].drop_duplicates().itertuples(index=False):
            run = evaluated / "runs" / style / orientation / f"fold{fold}"
            scan = read_volume(info.loc[subject, "image"])
            whole = read_mask(run / "test" / f"{subject}.nii.gz", like=scan).array.astype(bool)
            prepared = store.load(subject)
            brain = restore(np.asarray(prepared.brain, dtype=np.uint8), prepared.meta, order=0).astype(bool)
            full = read_mask(
                evaluated / "predictions" / "full" / style / f"{subject}_{orientation}.nii.gz"
            ).array
            np.testing.assert_array_equal(full.astype(bool), whole & brain)
            paper = evaluated / "predictions" / "paper" / style / f"{subject}_{orientation}.nii.gz"
            origins = store.patch_origins(subject, "lesion")
            assert paper.is_file() == (len(origins) > 0)
            if len(origins):
                region = np.zeros(prepared.image.shape, dtype=np.uint8)
                for x, y, z in origins:
                    region[x : x + 32, y : y + 32, z : z + 32] = 1
                region_c = restore(region, prepared.meta, order=0).astype(bool)
                np.testing.assert_array_equal(read_mask(paper).array.astype(bool), whole & region_c)


def test_statistics_tables_and_report_include_the_reference_rows(evaluated: Path) -> None:
    stats = (evaluated / "stats" / "stats.md").read_text()
    for label, own in (("nnU-Net 3d_fullres", "3D"), ("nnU-Net 2d", "2D")):
        assert f"{label} has no 2.5D rows: it is compared with its own {own} predictions" in stats
    anova = pd.read_csv(evaluated / "stats" / "posthoc.csv")
    assert {"nnunet_3d_fullres", "nnunet_2d"} <= set(anova["style_a"]) | set(anova["style_b"])
    table = pd.read_csv(evaluated / "tables" / "table2_dice_paper.csv")
    cell = table[(table["style"] == "nnunet_3d_fullres") & (table["orientation"] == "3D")]
    assert len(cell) == 1 and np.isfinite(cell["mean"].iloc[0])
    report = (evaluated / "report.html").read_text()
    assert "nnU-Net reference styles" in report and "nnunetv2 2.8" in report
    assert "1 epochs × 1 iterations (reduced" in report


def test_predict_a_new_scan_with_the_nnunet_style(study: dict[str, Any], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from iphbench.cli import app
    from iphbench.io import read_mask, read_volume

    scan = next((study["cohort"].parent / "images").glob("*.nii.gz"))
    out = tmp_path / "mask.nii.gz"
    res = CliRunner().invoke(
        app, ["predict", str(scan), "--study", str(study["out"]), "--style", "nnunet_3d_fullres", "-o", str(out),
              "--device", "cpu", "--probability", str(tmp_path / "prob.nii.gz")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "nnunet_3d_fullres" in res.output and "3D" in res.output and "2 model(s)" in res.output
    assert read_mask(out, like=read_volume(scan)).shape == read_volume(scan).shape
    bad = CliRunner().invoke(
        app, ["predict", str(scan), "--study", str(study["out"]), "--style", "nnunet_3d_fullres", "-o", str(out),
              "--views", "2DCor"],
    )  # fmt: skip
    assert bad.exit_code != 0 and "choose --views 3D" in bad.output


def test_finished_nnunet_runs_are_not_trained_again(study: dict[str, Any]) -> None:
    from iphbench.config import StudyConfig
    from iphbench.study.grid import run_study

    out = study["out"]
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("model.pt")}
    again = run_study(StudyConfig.from_dict(study["config"].to_dict()), executor="local", devices=["cpu"])
    assert again.ok and again.outcomes == [] and len(again.skipped) == len(again.runs)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_a_fold_resumes_after_training_and_through_ray(study: dict[str, Any], tmp_path: Path) -> None:
    """An interrupted fold (nnU-Net's final checkpoint written, the run not finished) ends through Ray."""
    pytest.importorskip("ray")
    from iphbench.config import StudyConfig
    from iphbench.study.grid import run_study

    out = tmp_path / "study"
    shutil.copytree(study["out"], out, symlinks=True)
    data = study["config"].to_dict()
    data["out"] = str(out)
    # nnU-Net's own fold folder lives inside the study, so the copy has its own checkpoint_final.pth
    run = out / "runs" / "nnunet_3d_fullres" / "3D" / "fold1"
    for name in ("done.json", "model.pt"):
        (run / name).unlink()
    shutil.rmtree(run / "test")
    result = run_study(StudyConfig.from_dict(data), executor="ray", styles=["nnunet_3d_fullres"], folds=[1])
    assert result.ok, result.failed
    done = json.loads((run / "done.json").read_text())
    assert done["epochs_run"] == 1 and done["nnunet_fold_dir"].startswith(str(out))
    assert sorted(p.name[: -len(".nii.gz")] for p in (run / "test").iterdir()) == _test_subjects(out, 1)
