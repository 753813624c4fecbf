"""Helpers shared by the robustness tests: bad files, DICOM series, a tiny study YAML."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from typer.testing import CliRunner

from iphbench.cli import app

ODD_ROOT = "Ünïcødé data/säo paulo 1"  # spaces and non-ASCII letters in every path: these must work
LESION_FREE, ONE_VOXEL = "synth006", "synth005"  # in the odd cohort: no hemorrhage; a one-voxel lesion
BAD = "synth001"  # the subject whose files each bad-input case replaces


RUNNER = CliRunner(env={"COLUMNS": "400", "NO_COLOR": "1"})  # wide: messages stay on one line


def invoke(*args: str) -> tuple[int, str]:
    """Exit code and output (line breaks and runs of spaces folded) of ``iphbench ARGS``.

    An exception that escapes the CLI (a traceback a user would see) fails the calling test.
    """
    result = RUNNER.invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(
            f"{args[0]} raised {result.exception!r} instead of a clear error:\n{result.output}"
        )
    return result.exit_code, " ".join(result.output.split())


def digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder``, by relative path (a test can say: no byte changed)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return str(path)


def tiny_study(folder: Path, cohort: Path, **over: Any) -> Path:
    """A tiny study YAML: one style, given views, width 4, 1 epoch, 2 folds, CPU."""
    import yaml

    cfg: dict = {
        "cohort": str(cohort),
        "out": str(folder / "study"),
        "views": ["2DAxi"],
        "prep": {"patch_size": 32},
        "models": {"names": ["unet"], "width": 4},
        "folds": {"k": 2, "seed": 0},
        "train": {"epochs": 1, "batch_size": 16, "early_stopping_patience": 0, "device": "cpu"},
        "eval": {"protocols": ["paper", "full"], "threshold": 0.4},
    }
    for key, value in over.items():
        if isinstance(value, dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path
