"""nnU-Net's ``splits_final.json`` from the study's ``folds.csv``: the same held-out subjects.

nnU-Net trains fold ``k`` on ``splits[k]["train"]`` and treats ``splits[k]["val"]`` as its
held-out cases. iphbench writes the file itself before any nnU-Net training, so nnU-Net never
draws its own split:

* ``val`` = the fold's **test** subjects (folds.csv role ``test``) that have a mask, exactly
  the subjects the 2D models of that fold never see. nnU-Net only logs a pseudo Dice on them
  during training; iphbench scores nnU-Net with ``checkpoint_final`` (never the checkpoint
  nnU-Net would pick on this set), and its own metrics, like every other style.
* ``train`` = the fold's ``train`` and ``val`` subjects (``nnunet.train_on_val``, default):
  nnU-Net selects no checkpoint, so it needs no validation subset, and trains on everything
  that is not held out, as nnU-Net's own cross-validation does. With
  ``train_on_val: false`` it trains on the ``train`` subjects only, the very set the 2D
  models take gradients from.

Subjects without a mask are not in the raw dataset and appear in neither list (they are
predicted, not scored). A fold whose test subjects all lack masks logs its pseudo Dice on its
``val`` subjects instead.

Example:
    >>> splits = make_splits(read_folds("study/folds.csv"), {"s1": "s1", ...})  # doctest: +SKIP
    >>> splits[0]["val"]  # the subjects folds.csv holds out in fold 0  # doctest: +SKIP
    ['s3', 's7']
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from iphbench._files import atomic_write_text


class SplitError(ValueError):
    """folds.csv cannot be turned into an nnU-Net split (a fold with nothing to train on)."""


def make_splits(
    folds: pd.DataFrame, cases: dict[str, str], train_on_val: bool = True
) -> list[dict[str, list[str]]]:
    """One ``{"train": [...], "val": [...]}`` per fold of ``folds`` (fold order), as nnU-Net case ids.

    Args:
        folds: the study's folds table (subject, site, fold, role).
        cases: ``{subject: case}`` of the subjects in the raw dataset (those with a mask).
        train_on_val: train on the fold's ``val`` subjects too (see the module docstring).
    """
    train_roles = ("train", "val") if train_on_val else ("train",)
    splits = []
    for fold in sorted(int(f) for f in folds["fold"].unique()):
        rows = folds[folds["fold"] == fold]
        held = _cases(rows, ("test",), cases)
        train = _cases(rows, train_roles, cases)
        if not held:  # nothing labelled is held out: nnU-Net still needs cases for its pseudo Dice
            held = _cases(rows, ("val",), cases)
            if not train_on_val:
                train = [c for c in train if c not in held]
        if not train:
            raise SplitError(
                f"fold {fold} of folds.csv leaves no subject with a mask to train nnU-Net on; "
                "use fewer folds or add subjects with masks"
            )
        splits.append({"train": train, "val": held})
    return splits


def _cases(rows: pd.DataFrame, roles: tuple[str, ...], cases: dict[str, str]) -> list[str]:
    subjects = sorted(rows.loc[rows["role"].isin(roles), "subject"].astype(str))
    return [cases[s] for s in subjects if s in cases]


def write_splits(splits: list[dict[str, list[str]]], path: str | Path) -> Path:
    """Write ``splits_final.json`` atomically."""
    atomic_write_text(path, json.dumps(splits, indent=2) + "\n")
    return Path(path)


def held_out_subjects(splits_path: str | Path, cases: dict[str, str]) -> list[set[str]]:
    """The subjects each fold of a ``splits_final.json`` holds out (its ``val`` cases), fold order."""
    subject_of = {c: s for s, c in cases.items()}
    splits = json.loads(Path(splits_path).read_text(encoding="utf-8"))
    return [{subject_of[c] for c in split["val"]} for split in splits]


__all__ = ["SplitError", "held_out_subjects", "make_splits", "write_splits"]
