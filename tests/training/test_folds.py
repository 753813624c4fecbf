"""Subject-level folds: no shared subjects, each tested once, LOSO holds out whole sites, determinism."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from iphbench.config import FoldsConfig
from iphbench.training.folds import FoldsError, fold_subjects, make_folds, read_folds, write_folds


def _subjects(sizes: dict[str, int]) -> pd.DataFrame:
    rows = [(f"{site}_{i:03d}", site) for site, n in sizes.items() for i in range(n)]
    return pd.DataFrame(rows, columns=["subject", "site"])


SIZES = {"A": 20, "B": 9, "C": 3, "D": 1}


def _check_partition(folds: pd.DataFrame, subjects: pd.DataFrame) -> None:
    tested = folds[folds.role == "test"]
    # every subject is tested exactly once
    assert sorted(tested.subject) == sorted(subjects.subject)
    for fold in folds.fold.unique():
        f = folds[folds.fold == fold]
        # one row per subject in every fold, and train/val/test are disjoint by construction of roles
        assert sorted(f.subject) == sorted(subjects.subject)
        train, val, test = (set(fold_subjects(folds, int(fold), r)) for r in ("train", "val", "test"))
        assert not (train & test) and not (val & test) and not (train & val)
        assert len(val) >= 1 and len(train) >= 1 and len(test) >= 1


def test_kfold_partition_and_site_stratification() -> None:
    subjects = _subjects(SIZES)
    folds = make_folds(subjects, FoldsConfig(k=5, val_fraction=0.2, seed=3))
    _check_partition(folds, subjects)
    tested = folds[folds.role == "test"]
    sizes = tested.groupby("fold").size()
    assert sizes.max() - sizes.min() <= 1
    per_site = tested.groupby(["site", "fold"]).size().unstack(fill_value=0)
    for site, n in SIZES.items():
        counts = per_site.loc[site]
        assert counts.max() - counts.min() <= 1, f"site {site} not spread: {counts.tolist()}"
        assert counts.sum() == n
    # the three subjects of site C are in three different test folds
    assert (per_site.loc["C"] > 0).sum() == 3
    # val is about val_fraction of the training subjects
    f0 = folds[folds.fold == 0]
    n_trainval = (f0.role != "test").sum()
    assert (f0.role == "val").sum() == round(0.2 * n_trainval)


def test_same_seed_same_folds_other_seed_differs() -> None:
    subjects = _subjects(SIZES)
    a = make_folds(subjects, FoldsConfig(seed=7))
    b = make_folds(
        subjects.sample(frac=1.0, random_state=1), FoldsConfig(seed=7)
    )  # row order must not matter
    pd.testing.assert_frame_equal(a, b)
    c = make_folds(subjects, FoldsConfig(seed=8))
    assert not a.equals(c)


def test_loso_holds_out_whole_sites() -> None:
    subjects = _subjects(SIZES)
    folds = make_folds(subjects, FoldsConfig(scheme="loso", seed=0))
    assert folds.fold.nunique() == len(SIZES)
    for fold in range(len(SIZES)):
        test = folds[(folds.fold == fold) & (folds.role == "test")]
        assert test.site.nunique() == 1
        site = test.site.iloc[0]
        assert len(test) == SIZES[site]
        rest = folds[(folds.fold == fold) & (folds.role != "test")]
        assert site not in set(rest.site)
    _check_partition(folds, subjects)


def test_errors_name_the_problem(tmp_path) -> None:
    with pytest.raises(FoldsError, match="cannot make 5 folds from 3 subjects"):
        make_folds(_subjects({"A": 3}), FoldsConfig(k=5))
    with pytest.raises(FoldsError, match="at least two sites"):
        make_folds(_subjects({"A": 6}), FoldsConfig(scheme="loso"))
    dup = pd.concat([_subjects({"A": 4}), _subjects({"A": 1})])
    with pytest.raises(FoldsError, match="more than once"):
        make_folds(dup, FoldsConfig(k=2))
    with pytest.raises(FoldsError, match="does not exist"):
        read_folds(tmp_path / "nope.csv")


def test_roundtrip_csv(tmp_path) -> None:
    subjects = _subjects({"A": 5, "B": 5})
    subjects["subject"] = ["007", *subjects.subject[1:]]  # a numeric-looking id stays a string
    folds = make_folds(subjects, FoldsConfig(k=2))
    write_folds(folds, tmp_path / "folds.csv")
    pd.testing.assert_frame_equal(read_folds(tmp_path / "folds.csv"), folds)


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 12), min_size=1, max_size=5),
    k=st.integers(2, 5),
    seed=st.integers(0, 1000),
)
def test_kfold_properties_hold_for_any_cohort(sizes: list[int], k: int, seed: int) -> None:
    subjects = _subjects({f"S{i}": n for i, n in enumerate(sizes)})
    assume(len(subjects) >= 3 * k)  # at least two train+val subjects per fold
    folds = make_folds(subjects, FoldsConfig(k=k, seed=seed))
    _check_partition(folds, subjects)
