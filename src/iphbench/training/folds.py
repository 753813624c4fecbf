"""Subject-level cross-validation splits: k-fold stratified by site, and leave-one-site-out.

Splits are made by subject, never by slice or patch, so one patient never sits in both the
training and the test set of a fold (DESIGN.md, "Known faults"). Each fold also holds out a
validation subset of its training subjects, used for model selection (best validation IoU)
and the learning-rate scheduler; the test subjects are never seen during training
(paper section 3.5: five-fold cross-validation).

The table has one row per subject × fold with ``role`` in ``train | val | test``.

Example:
    >>> import pandas as pd
    >>> from iphbench.config import FoldsConfig
    >>> subjects = pd.DataFrame({"subject": [f"s{i}" for i in range(10)], "site": ["A"] * 6 + ["B"] * 4})
    >>> folds = make_folds(subjects, FoldsConfig(k=5, seed=0))
    >>> sorted(folds.groupby("fold").size().tolist())
    [10, 10, 10, 10, 10]
    >>> folds[folds.role == "test"].groupby("fold").size().tolist()
    [2, 2, 2, 2, 2]
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from iphbench._files import atomic_write_text
from iphbench.config import FoldsConfig

FOLD_COLUMNS: tuple[str, ...] = ("subject", "site", "fold", "role")
ROLES: tuple[str, ...] = ("train", "val", "test")


class FoldsError(ValueError):
    """The subjects cannot be split as asked (too few subjects or sites)."""


def _deal_order(subjects: pd.DataFrame, rng: np.random.Generator) -> list[str]:
    """Subjects ordered so that dealing them round-robin spreads every site over the folds.

    Sites are visited in a random order; within a site subjects are shuffled. Concatenating
    the sites and dealing the list round-robin gives each fold ⌊n_site/k⌋ or ⌈n_site/k⌉
    subjects of every site, and fold sizes that differ by at most one.
    """
    sites = sorted(subjects["site"].astype(str).unique())
    order: list[str] = []
    for site in rng.permutation(np.array(sites, dtype=object)):
        members = sorted(subjects.loc[subjects["site"].astype(str) == site, "subject"].astype(str))
        order.extend(str(s) for s in rng.permutation(np.array(members, dtype=object)))
    return order


def _split_val(
    train: list[str],
    site_of: dict[str, str],
    fraction: float,
    rng: np.random.Generator,
    lesion_free: set[str] | None = None,
) -> set[str]:
    """Pick ``max(1, round(fraction·n))`` validation subjects from ``train``, spread over sites.

    Subjects in ``lesion_free`` (no lesion patch) are not picked: validation scores lesion
    patches only (paper section 3.2), so they would leave nothing to select the model on.
    """
    n_val = max(1, round(fraction * len(train)))
    if len(train) - n_val < 1:
        raise FoldsError(
            f"a fold has only {len(train)} training subject(s): too few to hold out {n_val} for validation; "
            "use fewer folds or more subjects"
        )
    candidates = [s for s in train if s not in (lesion_free or set())]
    if len(candidates) < n_val + 1:
        raise FoldsError(
            f"a fold has only {len(candidates)} training subject(s) with a hemorrhage: too few to hold out "
            f"{n_val} for validation and train on the rest; use fewer folds or more subjects with a lesion"
        )
    train = candidates
    frame = pd.DataFrame({"subject": train, "site": [site_of[s] for s in train]})
    order = _deal_order(frame, rng)
    # Interleave the sites (one subject of each site in turn) so small sites are not skipped.
    by_site: dict[str, list[str]] = {}
    for s in order:
        by_site.setdefault(site_of[s], []).append(s)
    interleaved: list[str] = []
    queues = list(by_site.values())
    while any(queues):
        for q in queues:
            if q:
                interleaved.append(q.pop(0))
    return set(interleaved[:n_val])


def make_folds(
    subjects_df: pd.DataFrame, config: FoldsConfig | None = None, lesion_free: Iterable[str] = ()
) -> pd.DataFrame:
    """Split subjects into folds by subject (paper section 3.5; DESIGN.md "Beyond the paper" for LOSO).

    Args:
        subjects_df: one row per subject with columns ``subject`` and ``site`` (extra columns ignored).
        config: scheme (``kfold`` stratified by site, or ``loso``), ``k``, ``val_fraction`` and ``seed``.
        lesion_free: subjects without a lesion patch; they are kept out of validation (validation
            scores lesion patches only, so they would leave nothing to select the model on) but
            still train and test. ``iphbench study run`` passes them from the patch store.

    Returns:
        DataFrame with columns ``subject, site, fold, role``: one row per subject × fold; every
        subject has role ``test`` in exactly one fold. For LOSO, fold ``i`` tests the i-th site
        in sorted order. The same seed always gives the same table.

    Raises:
        FoldsError: duplicated subjects, fewer subjects than folds, or fewer than two sites for LOSO.
    """
    config = config or FoldsConfig()
    for col in ("subject", "site"):
        if col not in subjects_df.columns:
            raise FoldsError(f"the subjects table needs a {col!r} column; it has {list(subjects_df.columns)}")
    subjects = subjects_df[["subject", "site"]].astype(str).reset_index(drop=True)
    dup = subjects["subject"][subjects["subject"].duplicated()].unique().tolist()
    if dup:
        raise FoldsError(f"subjects listed more than once: {dup[:5]}; each subject must appear once")
    site_of = dict(zip(subjects["subject"], subjects["site"], strict=True))
    no_lesion = {str(s) for s in lesion_free}
    rng = np.random.default_rng(config.seed)

    if config.scheme == "kfold":
        if config.k < 2:
            raise FoldsError(f"folds.k must be at least 2, got {config.k}")
        if len(subjects) < config.k:
            raise FoldsError(f"cannot make {config.k} folds from {len(subjects)} subjects; lower folds.k")
        order = _deal_order(subjects, rng)
        test_fold = {s: i % config.k for i, s in enumerate(order)}
        n_folds = config.k
    elif config.scheme == "loso":
        sites = sorted(subjects["site"].unique())
        if len(sites) < 2:
            only = f"every subject is from site {sites[0]!r}" if sites else "there are no sites"
            raise FoldsError(
                f"leave-one-site-out (folds.scheme: loso) needs at least two sites, but {only}: there is no "
                "other site to test on. Use folds.scheme: kfold for a single-site cohort"
            )
        test_fold = {s: sites.index(site_of[s]) for s in subjects["subject"]}
        n_folds = len(sites)
    else:
        raise FoldsError(f"folds.scheme must be 'kfold' or 'loso', got {config.scheme!r}")

    rows: list[tuple[str, str, int, str]] = []
    for fold in range(n_folds):
        train = sorted(s for s in subjects["subject"] if test_fold[s] != fold)
        fold_rng = np.random.default_rng([config.seed, fold])
        val = _split_val(train, site_of, config.val_fraction, fold_rng, no_lesion)
        for s in subjects["subject"]:
            role = "test" if test_fold[s] == fold else ("val" if s in val else "train")
            rows.append((s, site_of[s], fold, role))
    table = pd.DataFrame(rows, columns=list(FOLD_COLUMNS))
    return table.sort_values(["fold", "subject"], kind="stable").reset_index(drop=True)


def fold_subjects(folds: pd.DataFrame, fold: int, role: str) -> list[str]:
    """Subjects with ``role`` (train, val or test) in ``fold``, sorted."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    known = sorted(folds["fold"].unique().tolist())
    if fold not in known:
        raise FoldsError(f"fold {fold} is not in the folds table; folds are {known}")
    sel = folds[(folds["fold"] == fold) & (folds["role"] == role)]
    return sorted(sel["subject"].astype(str).tolist())


def n_folds(folds: pd.DataFrame) -> int:
    """Number of folds in a folds table."""
    return int(folds["fold"].nunique())


def write_folds(folds: pd.DataFrame, path: str | Path) -> None:
    """Write ``folds.csv`` atomically."""
    atomic_write_text(path, folds[list(FOLD_COLUMNS)].to_csv(index=False))


def read_folds(path: str | Path) -> pd.DataFrame:
    """Read a ``folds.csv`` written by :func:`write_folds`, checking its columns."""
    path = Path(path)
    if not path.exists():
        raise FoldsError(f"folds file {path} does not exist; run 'iphbench study run' to make it")
    table = pd.read_csv(path, dtype={"subject": str, "site": str, "fold": int, "role": str})
    missing = [c for c in FOLD_COLUMNS if c not in table.columns]
    if missing:
        raise FoldsError(f"folds file {path} lacks columns {missing}")
    return table


__all__ = [
    "FOLD_COLUMNS",
    "FoldsError",
    "fold_subjects",
    "make_folds",
    "n_folds",
    "read_folds",
    "write_folds",
]
