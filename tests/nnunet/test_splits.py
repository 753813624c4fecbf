"""nnU-Net's split file from folds.csv, case ids, the nnunet config block and the missing extra (no nnunetv2 needed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from iphbench.config import ConfigError, FoldsConfig, StudyConfig
from iphbench.nnunet import NnunetUnavailableError, require_nnunet
from iphbench.nnunet.export import case_ids
from iphbench.nnunet.splits import SplitError, held_out_subjects, make_splits, write_splits
from iphbench.study.grid import StudyError, plan_runs, study_hash
from iphbench.training.folds import make_folds


def _folds(k: int = 5, n: int = 23) -> pd.DataFrame:
    subjects = pd.DataFrame(
        {"subject": [f"sub-{i:03d}" for i in range(n)], "site": [f"S{i % 4}" for i in range(n)]}
    )
    return make_folds(subjects, FoldsConfig(k=k, val_fraction=0.2, seed=7))


@pytest.mark.parametrize("scheme", ["kfold", "loso"])
def test_split_file_holds_out_exactly_the_test_subjects_of_folds_csv(tmp_path: Path, scheme: str) -> None:
    subjects = pd.DataFrame(
        {"subject": [f"s{i}" for i in range(17)], "site": [f"S{i % 3}" for i in range(17)]}
    )
    folds = make_folds(subjects, FoldsConfig(scheme=scheme, k=4, val_fraction=0.2, seed=1))
    cases = case_ids(subjects["subject"])
    path = write_splits(make_splits(folds, cases), tmp_path / "splits_final.json")
    held = held_out_subjects(path, cases)
    assert len(held) == folds["fold"].nunique()
    for k, subjects_k in enumerate(held):
        test = set(folds.loc[(folds["fold"] == k) & (folds["role"] == "test"), "subject"])
        assert subjects_k == test
    splits = json.loads(path.read_text())
    for k, split in enumerate(splits):
        rows = folds[folds["fold"] == k]
        assert set(split["train"]) == set(rows.loc[rows["role"] != "test", "subject"])  # train and val
        assert not set(split["train"]) & set(split["val"])


def test_train_on_val_false_trains_on_the_train_role_only() -> None:
    folds = _folds()
    cases = case_ids(folds["subject"].unique())
    for k, split in enumerate(make_splits(folds, cases, train_on_val=False)):
        rows = folds[folds["fold"] == k]
        assert set(split["train"]) == set(rows.loc[rows["role"] == "train", "subject"])


def test_subjects_without_a_mask_are_in_no_list_and_a_fold_needs_training_cases() -> None:
    folds = _folds(k=2, n=8)
    test0 = sorted(folds.loc[(folds["fold"] == 0) & (folds["role"] == "test"), "subject"])
    labelled = {s: s for s in folds["subject"].unique() if s != test0[0]}
    splits = make_splits(folds, labelled)
    assert test0[0] not in splits[0]["val"] + splits[0]["train"] + splits[1]["train"]
    assert splits[0]["val"] == test0[1:]
    with pytest.raises(SplitError, match=r"fold 0 .* no subject with a mask"):
        make_splits(folds, {s: s for s in test0})


def test_case_ids_keep_safe_names_and_clean_the_others() -> None:
    ids = case_ids(["synth001", "sub-01", "a_b", "x y", "x/y", "scan_0000", "x-y"])
    assert ids["synth001"] == "synth001" and ids["sub-01"] == "sub-01" and ids["a_b"] == "a_b"
    assert ids["x y"] == "s-x-y" and ids["x/y"] == "s-x-y-2" and ids["scan_0000"].startswith("s-")
    assert len(set(ids.values())) == len(ids)


def test_nnunet_settings_are_checked_and_leave_other_studies_hashes_alone() -> None:
    with pytest.raises(ConfigError, match=r"nnunet\.epochs must be at least 1"):
        StudyConfig.from_dict({"nnunet": {"epochs": 0}})
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['epoch'\] in study\.nnunet"):
        StudyConfig.from_dict({"nnunet": {"epoch": 3}})
    plain = StudyConfig.from_dict({"models": {"names": ["unet"]}})
    assert study_hash(plain) == study_hash(
        StudyConfig.from_dict({"models": {"names": ["unet"]}, "nnunet": {"epochs": 5}})
    )
    nn = {"models": {"names": ["unet", "nnunet_3d_fullres"]}}
    assert study_hash(StudyConfig.from_dict(nn)) != study_hash(
        StudyConfig.from_dict({**nn, "nnunet": {"epochs": 5}})
    )
    workers = {**nn, "nnunet": {"preprocessing_workers": 8, "augmentation_workers": 0}}
    assert study_hash(StudyConfig.from_dict(nn)) == study_hash(StudyConfig.from_dict(workers))


def test_asking_for_an_nnunet_style_without_the_extra_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "nnunetv2", None)  # import nnunetv2 now raises ImportError
    with pytest.raises(NnunetUnavailableError, match=r"iphbench\[nnunet\]"):
        require_nnunet()
    cfg = StudyConfig.from_dict({"models": {"names": ["unet", "nnunet_3d_fullres"]}, "views": ["2DCor"]})
    with pytest.raises(StudyError, match=r"nnU-Net styles need nnunetv2.*iphbench\[nnunet\]"):
        plan_runs(cfg, 2)
    runs = plan_runs(cfg, 2, styles=["unet"])  # the study's other styles still plan
    assert [str(r) for r in runs] == ["unet/2DCor/fold0", "unet/2DCor/fold1"]


def test_plan_puts_nnunet_runs_in_their_own_orientation_folder() -> None:
    pytest.importorskip("nnunetv2")
    cfg = StudyConfig.from_dict(
        {"models": {"names": ["unet", "nnunet_3d_fullres", "nnunet_2d"]}, "views": ["2DCor"]}
    )
    runs = [str(r) for r in plan_runs(cfg, 2, folds=[1])]
    assert runs == ["unet/2DCor/fold1", "nnunet_2d/2D/fold1", "nnunet_3d_fullres/3D/fold1"]
    assert [str(r) for r in plan_runs(cfg, 2, views=["3D"], folds=[0])] == ["nnunet_3d_fullres/3D/fold0"]
    with pytest.raises(StudyError, match="not in this study"):
        plan_runs(cfg, 2, views=["2DAxi"])
