"""Importing an nnU-Net v2 raw dataset folder as an iphbench cohort manifest.

An nnU-Net v2 raw dataset holds ``dataset.json`` (``channel_names``, ``labels``,
``file_ending``), ``imagesTr/<case>_0000<ending>`` (one file per channel; iphbench needs
the single CT channel ``_0000``), ``labelsTr/<case><ending>`` and optionally ``imagesTs/``.
nnU-Net knows nothing of sites, ages or sexes, so they come from an optional covariates
CSV keyed by case id; cases without covariates get site ``"unknown"`` (and empty age/sex,
which ``iphbench validate`` then reports).

Example:
    >>> import_nnunet("Dataset101_IPH", "cohort.csv", covariates_csv="covariates.csv")  # doctest: +SKIP
    PosixPath('cohort.csv')
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from iphbench._files import atomic_write_text
from iphbench.io.cohort import sniff_delimiter

logger = logging.getLogger(__name__)

KEY_COLUMNS: tuple[str, ...] = (
    "subject",
    "case",
    "case_id",
    "identifier",
    "id",
)  # accepted covariate key names
UNKNOWN_SITE = "unknown"


class NnunetImportError(ValueError):
    """The nnU-Net folder cannot be imported; the message names the file and the fix."""


def import_nnunet(
    dataset_dir: str | Path,
    out_csv: str | Path,
    covariates_csv: str | Path | None = None,
    label_values: Sequence[int] | None = None,
    include_test: bool = False,
) -> Path:
    """Write a cohort manifest for an nnU-Net v2 raw dataset.

    Args:
        dataset_dir: the ``DatasetXXX_Name`` folder (with dataset.json, imagesTr, labelsTr).
        out_csv: the manifest to write; image/mask paths in it are relative to its folder.
        covariates_csv: optional CSV keyed by case id (column subject, case, case_id,
            identifier or id) with site, age, sex and any extra columns.
        label_values: label values counted as hemorrhage; checked against dataset.json and
            written to a ``mask_labels`` column that ``validate_cohort`` honours. Needed when the
            dataset has several foreground labels.
        include_test: also list ``imagesTs`` cases (without masks).

    Returns:
        ``out_csv``.

    Raises:
        NnunetImportError: missing dataset.json, more than one channel, unknown label values,
            no cases, cases without a label file (all listed), or an unusable covariates CSV.
    """
    root = Path(dataset_dir)
    out_csv = Path(out_csv)
    meta = _read_dataset_json(root)
    ending = str(meta.get("file_ending", ".nii.gz"))
    labels_field = _check_labels(root, meta, label_values)
    rows = _cases(root, ending, "imagesTr", "labelsTr")
    if include_test and (root / "imagesTs").is_dir():
        rows += _cases(root, ending, "imagesTs", None)
    if not rows:
        raise NnunetImportError(
            f"no cases found: {root / 'imagesTr'} holds no files named <case>_0000{ending}"
        )
    df = pd.DataFrame(rows)
    df = _merge_covariates(df, covariates_csv)
    base = out_csv.resolve().parent
    for col in ("image", "mask"):
        df[col] = [os.path.relpath(p, base) if p else "" for p in df[col]]
    if labels_field:
        df["mask_labels"] = [labels_field if m else "" for m in df["mask"]]
    front = ["subject", "site", "age", "sex", "image", "mask"]
    df = df[front + [c for c in df.columns if c not in front]]
    atomic_write_text(out_csv, df.to_csv(index=False))
    logger.info("wrote %d cases from %s to %s", len(df), root, out_csv)
    return out_csv


def _read_dataset_json(root: Path) -> dict[str, Any]:
    path = root / "dataset.json"
    if not path.is_file():
        raise NnunetImportError(
            f"{path} not found: is {root} an nnU-Net v2 raw dataset folder (DatasetXXX_Name)?"
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NnunetImportError(f"cannot parse {path}: {exc}") from None
    channels = meta.get("channel_names", meta.get("modality", {}))
    if len(channels) > 1:
        names = ", ".join(f"{k}: {v}" for k, v in channels.items())
        raise NnunetImportError(
            f"{path} declares {len(channels)} input channels ({names}); iphbench segments non-contrast CT "
            "from one channel: make a dataset with the CT channel only"
        )
    if channels and str(next(iter(channels.values()))).strip().lower() not in ("ct", "ncct"):
        logger.warning(
            "%s: the only channel is %r, not CT; iphbench expects non-contrast CT in HU", path, channels
        )
    return dict(meta)


def _check_labels(root: Path, meta: dict[str, Any], label_values: Sequence[int] | None) -> str:
    labels: dict[str, Any] = dict(meta.get("labels", {}))
    if any(isinstance(v, list) for v in labels.values()):
        if label_values is None:
            raise NnunetImportError(
                f"{root / 'dataset.json'} uses region-based labels; give label_values (--labels) "
                "with the label values that are hemorrhage"
            )
    values = {int(v) for v in labels.values() if not isinstance(v, list)}
    foreground = sorted(values - {0})
    if label_values is not None:
        unknown = sorted(set(label_values) - values) if values else []
        if unknown:
            raise NnunetImportError(
                f"label value(s) {unknown} are not in {root / 'dataset.json'} (labels: {labels}); pick from {foreground}"
            )
        return " ".join(str(int(v)) for v in label_values)
    if len(foreground) > 1:
        logger.warning(
            "%s has %d foreground labels (%s); the masks are label maps: give label_values (--labels) "
            "to say which are hemorrhage, or `iphbench validate` will refuse them",
            root / "dataset.json",
            len(foreground),
            labels,
        )
    return ""


def _cases(root: Path, ending: str, images: str, labels: str | None) -> list[dict[str, str]]:
    folder = root / images
    if not folder.is_dir():
        if labels is None:
            return []
        raise NnunetImportError(f"{folder} not found: an nnU-Net raw dataset keeps its training scans there")
    suffix = f"_0000{ending}"
    cases = sorted(p.name[: -len(suffix)] for p in folder.iterdir() if p.name.endswith(suffix))
    extra = sorted(
        p.name for p in folder.iterdir() if p.name.endswith(ending) and not p.name.endswith(suffix)
    )
    if extra:
        raise NnunetImportError(
            f"{folder} holds files of other channels (e.g. {extra[0]}); iphbench needs the CT channel _0000 only"
        )
    rows, missing = [], []
    for case in cases:
        mask = ""
        if labels is not None:
            label = root / labels / f"{case}{ending}"
            if not label.is_file():
                missing.append(str(label))
            mask = str(label.resolve())
        image = str((folder / f"{case}{suffix}").resolve())
        rows.append({"subject": case, "image": image, "mask": mask, "nnunet_set": images})
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise NnunetImportError(f"{len(missing)} training case(s) have no label file: {shown}")
    return rows


def _merge_covariates(df: pd.DataFrame, covariates_csv: str | Path | None) -> pd.DataFrame:
    if covariates_csv is None:
        logger.warning("no covariates CSV: every case gets site %r and empty age/sex", UNKNOWN_SITE)
        return df.assign(site=UNKNOWN_SITE, age="", sex="")
    path = Path(covariates_csv)
    if not path.is_file():
        raise NnunetImportError(f"covariates CSV not found: {path}")
    with path.open(encoding="utf-8-sig", errors="replace") as fh:  # the manifest's separators: , ; or tab
        delimiter = sniff_delimiter(fh.readline())
    cov = pd.read_csv(
        path, sep=delimiter, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig"
    )
    cov.columns = [str(c).strip() for c in cov.columns]
    key = next((c for c in KEY_COLUMNS if c in cov.columns), None)
    if key is None:
        raise NnunetImportError(
            f"{path} has no case-id column; name one of: {', '.join(KEY_COLUMNS)} (columns: {list(cov.columns)})"
        )
    cov = cov.rename(columns={key: "subject"})
    cov["subject"] = cov["subject"].str.strip()
    dup = cov["subject"][cov["subject"].duplicated()].unique().tolist()
    if dup:
        raise NnunetImportError(f"{path}: case id(s) {dup[:10]} appear more than once")
    cov = cov.drop(columns=[c for c in ("image", "mask", "nnunet_set") if c in cov.columns])
    for col in ("site", "age", "sex"):
        if col not in cov.columns:
            logger.warning("%s has no %r column", path, col)
            cov[col] = ""
    merged = df.merge(cov, on="subject", how="left", indicator=True)
    absent = merged.loc[merged["_merge"] == "left_only", "subject"].tolist()
    if absent:
        logger.warning(
            "%d case(s) are not in %s and get site %r: %s",
            len(absent),
            path,
            UNKNOWN_SITE,
            ", ".join(absent[:10]),
        )
    unused = sorted(set(cov["subject"]) - set(df["subject"]))
    if unused:
        logger.warning("%d row(s) of %s match no case: %s", len(unused), path, ", ".join(unused[:10]))
    merged = merged.drop(columns="_merge")
    for col in cov.columns:
        merged[col] = merged[col].fillna("")
    merged.loc[merged["subject"].isin(absent), "site"] = UNKNOWN_SITE
    return merged
