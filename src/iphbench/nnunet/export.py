"""The study's cohort as an nnU-Net v2 raw dataset (``<study>/nnunet/raw/Dataset501_iphbench``).

nnU-Net plans its own spacing, patch size and CT normalisation from the data, so it gets the
cohort's *original* scans in HU and their binary masks, not iphbench's skull-stripped,
windowed and padded patch store. Every scan is read with iphbench's readers (NIfTI, NRRD, MHA
or a DICOM series folder; mask labels as ``prep.mask_labels`` says) and written as NIfTI in
the canonical RAS+ voxel order with its affine: nnU-Net's SimpleITK reader then sees the array
iphbench works with, transposed (``z, y, x``), and :mod:`iphbench.nnunet.predict` feeds new
scans to the networks the same way. Subjects without a mask are not exported (they can be
predicted, not trained on).

``cases.csv`` beside ``dataset.json`` maps each subject to its nnU-Net case id (the subject's
name when it is a safe file name, a cleaned one otherwise).

Example:
    >>> export_dataset("study", store.subjects_table, mask_labels=None)  # doctest: +SKIP
    {'synth001': 'synth001', ...}
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from iphbench._files import atomic_path, atomic_write_text
from iphbench.io import read_mask, read_volume
from iphbench.nnunet._env import folders

log = logging.getLogger(__name__)

FILE_ENDING = ".nii.gz"
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*(_[A-Za-z0-9.-]+)*")


def case_ids(subjects: Iterable[str]) -> dict[str, str]:
    """nnU-Net case id of each subject: its own name when safe, else a cleaned, unique one.

    nnU-Net finds a case's channels by the suffix ``_0000`` and matches labels by name, so a
    case id is kept to letters, digits, ``.``, ``-`` and single underscores.
    """
    out: dict[str, str] = {}
    taken: set[str] = set()
    for subject in subjects:
        s = str(subject)
        case = s if _SAFE.fullmatch(s) and not re.search(r"_\d{4}$", s) else _clean(s)
        base, n = case, 1
        while case in taken:
            n += 1
            case = f"{base}-{n}"
        taken.add(case)
        out[s] = case
    return out


def _clean(subject: str) -> str:
    text = re.sub(r"[^A-Za-z0-9.-]+", "-", subject).strip("-.") or "case"
    return f"s-{text}"


def export_dataset(
    study_dir: str | Path,
    subjects: pd.DataFrame,
    mask_labels: Sequence[int] | None = None,
) -> dict[str, str]:
    """Write (or complete) the raw dataset: ``imagesTr``, ``labelsTr``, ``dataset.json``, ``cases.csv``.

    Args:
        study_dir: the study folder.
        subjects: one row per subject with ``subject``, ``image`` and ``mask`` (the patch
            store's ``subjects.csv``); rows without a mask are skipped.
        mask_labels: label values counted as hemorrhage (``prep.mask_labels``).

    Returns:
        ``{subject: case}`` of the exported (labelled) subjects. Cases already written are kept.
    """
    root = folders(study_dir).dataset_raw
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    labelled = subjects[[_has(m) for m in subjects.get("mask", pd.Series([""] * len(subjects)))]]
    cases = case_ids(labelled["subject"].astype(str))
    written = 0
    for row in labelled.itertuples(index=False):
        subject = str(row.subject)
        case = cases[subject]
        image_out = root / "imagesTr" / f"{case}_0000{FILE_ENDING}"
        label_out = root / "labelsTr" / f"{case}{FILE_ENDING}"
        if image_out.is_file() and label_out.is_file():
            continue
        image = read_volume(str(row.image))
        mask = read_mask(str(row.mask), labels=mask_labels, like=image)
        _write_canonical(_image_array(image.array), image.affine, image_out)
        _write_canonical(mask.array.astype(np.uint8), image.affine, label_out)
        written += 1
    atomic_write_text(
        root / "cases.csv",
        pd.DataFrame({"subject": list(cases), "case": list(cases.values())}).to_csv(index=False),
    )
    dataset = {
        "channel_names": {"0": "CT"},  # nnU-Net's CT normalisation (foreground percentiles, z-score)
        "labels": {"background": 0, "hemorrhage": 1},
        "numTraining": len(cases),
        "file_ending": FILE_ENDING,
        "overwrite_image_reader_writer": "SimpleITKIO",
        "name": "iphbench",
        "description": "an iphbench study's cohort: original scans in HU, canonical RAS+ voxel order",
    }
    atomic_write_text(root / "dataset.json", json.dumps(dataset, indent=2) + "\n")
    log.info("nnU-Net raw dataset %s: %d cases (%d written now)", root, len(cases), written)
    return cases


def read_cases(study_dir: str | Path) -> dict[str, str]:
    """``{subject: case}`` from ``cases.csv`` (written by :func:`export_dataset`)."""
    path = folders(study_dir).dataset_raw / "cases.csv"
    table = pd.read_csv(path, dtype=str)
    return dict(zip(table["subject"], table["case"], strict=True))


def _has(path: object) -> bool:
    return isinstance(path, str) and path.strip() != ""


def _image_array(hu: np.ndarray) -> np.ndarray:
    """HU as int16 when every value is a whole number in range (as scanners store them), else float32."""
    a = np.asarray(hu)
    if np.issubdtype(a.dtype, np.integer) or (
        a.size and np.all(np.isfinite(a)) and np.array_equal(a, np.round(a))
    ):
        if a.size == 0 or (a.min() >= np.iinfo(np.int16).min and a.max() <= np.iinfo(np.int16).max):
            return a.astype(np.int16)
    return a.astype(np.float32)


def _write_canonical(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    img = nib.Nifti1Image(array, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    with atomic_path(path, suffix=FILE_ENDING) as tmp:
        nib.save(img, str(tmp))


__all__ = ["FILE_ENDING", "case_ids", "export_dataset", "read_cases"]
