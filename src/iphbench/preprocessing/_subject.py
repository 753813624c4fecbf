"""One subject of the patch store: read, prepare, write its files, then its ``done`` marker.

Runs inside worker processes (spawn-safe: a top-level function taking and returning plain
data). See docs/formats.md for the files written.
"""

from __future__ import annotations

import json
import logging
import math
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iphbench._files import atomic_save_npy, atomic_write_json, atomic_write_text
from iphbench.config import PrepConfig, from_mapping
from iphbench.io import read_mask, read_volume
from iphbench.io.cohort import subject_id_problem
from iphbench.preprocessing.patching import patch_counts, patch_origins
from iphbench.preprocessing.pipeline import prepare_volume

log = logging.getLogger(__name__)

SUBJECT_FILES: tuple[str, ...] = (
    "image.npy",
    "mask.npy",
    "brain.npy",
    "meta.json",
    "patches.csv",
    "summary.json",
)
PATCH_COLUMNS: tuple[str, ...] = ("ox", "oy", "oz", "lesion_voxels", "brain_voxels")
DERIVED_COLUMNS: tuple[str, ...] = (
    "shape_x",
    "shape_y",
    "shape_z",
    "spacing_x",
    "spacing_y",
    "spacing_z",
    "ref_ml",
    "n_lesion_patches",
    "n_brain_patches",
)


def check_subject_id(subject: str) -> str:
    """Return ``subject`` if it is usable as a folder name, else raise a ValueError saying why.

    The rule is ``iphbench.io.cohort.subject_id_problem``, the one ``validate`` reports, so an id
    that validates is never refused here.
    """
    problem = subject_id_problem(subject)
    if problem:
        raise ValueError(problem)
    return subject


def subject_dir(root: str | Path, subject: str) -> Path:
    return Path(root) / "subjects" / check_subject_id(subject)


def input_fingerprint(row: dict[str, Any]) -> dict[str, Any]:
    """Size and modification time of the subject's image and mask (a changed file is prepared again)."""
    out: dict[str, Any] = {}
    for key in ("image", "mask"):
        path = str(row.get(key) or "")
        if not path:
            out[key] = None
            continue
        p = Path(path)
        try:
            files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
            stats = [f.stat() for f in files]
            out[key] = {
                "path": str(p),
                "bytes": sum(s.st_size for s in stats),
                "mtime_ns": max((s.st_mtime_ns for s in stats), default=0),
            }
        except OSError:
            out[key] = {"path": str(p), "missing": True}
    return out


def read_done(root: str | Path, subject: str) -> dict[str, Any] | None:
    """The subject's ``done`` marker, or None when the subject is not finished."""
    path = subject_dir(root, subject) / "done"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_done(root: str | Path, subject: str, config_hash: str, fingerprint: dict[str, Any]) -> bool:
    """True when the subject was finished with this config from these same input files."""
    done = read_done(root, subject)
    return done is not None and done.get("config_hash") == config_hash and done.get("inputs") == fingerprint


def prepare_subject(
    row: dict[str, Any], root: str, config: dict[str, Any], config_hash: str
) -> dict[str, Any]:
    """Prepare one manifest row into ``root/subjects/<subject>/``; never raises.

    Returns:
        ``{"subject", "status": "done" | "failed", "error", "seconds", "n_lesion_patches", "n_brain_patches",
        "seconds_by_step"}`` (``seconds_by_step``: read, brain, intensity, resample, pad, write).
    """
    subject = str(row.get("subject", ""))
    t0 = time.perf_counter()
    try:
        cfg = from_mapping(PrepConfig, config, "prep")
        summary = _prepare(row, Path(root), cfg, config_hash)
        return {
            "subject": subject,
            "status": "done",
            "error": "",
            "seconds": time.perf_counter() - t0,
            **summary,
        }
    except Exception as exc:  # one subject's failure must not stop the others
        log.debug("subject %s failed:\n%s", subject, traceback.format_exc())
        return {
            "subject": subject,
            "status": "failed",
            "error": f"{type(exc).__name__}: {exc}",
            "seconds": time.perf_counter() - t0,
            "n_lesion_patches": 0,
            "n_brain_patches": 0,
            "seconds_by_step": {},
        }


def _prepare(row: dict[str, Any], root: Path, cfg: PrepConfig, config_hash: str) -> dict[str, Any]:
    subject = check_subject_id(str(row["subject"]))
    folder = subject_dir(root, subject)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "done").unlink(
        missing_ok=True
    )  # files are about to change: the subject is unfinished until the end

    inputs = input_fingerprint(row)  # taken before reading, so a file changed meanwhile is redone next time
    t0 = time.perf_counter()
    image_path = str(row.get("image") or "")
    if not image_path:
        raise ValueError(f"subject {subject} has no image path in the manifest")
    image = read_volume(image_path)
    mask_path = str(row.get("mask") or "")
    mask = read_mask(mask_path, labels=cfg.mask_labels, like=image) if mask_path else None
    read_s = time.perf_counter() - t0

    prepared = prepare_volume(image, cfg, mask=mask, dtype=np.float16)
    t0 = time.perf_counter()
    size = cfg.patch_size
    lesion = patch_counts(prepared.mask, size).ravel()
    brain = patch_counts(prepared.brain, size).ravel()
    origins = patch_origins(prepared.image.shape, size)
    keep = (lesion > 0) | (brain > 0)
    patches = pd.DataFrame(
        {
            "ox": origins[keep, 0],
            "oy": origins[keep, 1],
            "oz": origins[keep, 2],
            "lesion_voxels": lesion[keep],
            "brain_voxels": brain[keep],
        }
    )
    atomic_save_npy(folder / "image.npy", prepared.image)
    atomic_save_npy(folder / "mask.npy", prepared.mask)
    atomic_save_npy(folder / "brain.npy", prepared.brain)
    atomic_write_json(folder / "meta.json", prepared.meta.to_dict())
    atomic_write_text(folder / "patches.csv", patches.to_csv(index=False))
    write_s = time.perf_counter() - t0

    spacing = image.spacing
    ref_ml = float(np.count_nonzero(mask.array)) * image.voxel_volume_ml if mask is not None else 0.0
    derived = {
        "shape_x": image.shape[0],
        "shape_y": image.shape[1],
        "shape_z": image.shape[2],
        "spacing_x": spacing[0],
        "spacing_y": spacing[1],
        "spacing_z": spacing[2],
        "ref_ml": ref_ml,
        "n_lesion_patches": int((lesion > 0).sum()),
        "n_brain_patches": int((brain > 0).sum()),
    }
    summary = {
        "manifest_columns": [str(k) for k in row],
        "manifest": {str(k): _plain(v) for k, v in row.items()},
        "derived": derived,
        "seconds": {"read": read_s, **prepared.seconds, "write": write_s},
    }
    atomic_write_json(folder / "summary.json", summary)
    atomic_write_json(
        folder / "done",
        {"config_hash": config_hash, "inputs": inputs, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")},
    )
    return {
        "n_lesion_patches": derived["n_lesion_patches"],
        "n_brain_patches": derived["n_brain_patches"],
        "seconds_by_step": summary["seconds"],
    }


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
