"""Safe files: no pickles, checkpoints as plain tensors, studies of another config or version refused,
disk-full and permission errors reported with the path as a clear CLI error."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from robustness_helpers import invoke, tiny_study

import iphbench


def test_checkpoints_load_with_weights_only(trained_study: Path) -> None:
    paths = sorted((trained_study / "runs").rglob("*.pt"))
    assert {p.name for p in paths} == {"best.pt", "last.pt"}
    for path in paths:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        assert isinstance(payload, dict) and payload["model"]


class Payload:
    """A pickled object: ``weights_only`` loading must refuse it instead of running its code."""

    def __reduce__(self):
        return (print, ("unsafe code ran",))


@pytest.mark.parametrize("kind", ["pickled object", "pickled object with its SHA-256", "truncated"])
def test_damaged_or_unsafe_checkpoint_is_refused(study_copy: Path, kind: str, capfd) -> None:
    from iphbench.training.checkpoint import digest_path, file_sha256

    best = study_copy / "runs" / "unet" / "2DAxi" / "fold0" / "best.pt"
    if kind.startswith("pickled object"):
        torch.save({"model": Payload()}, best)
    else:
        best.write_bytes(best.read_bytes()[:500])
    if kind.endswith("SHA-256"):  # the digest matches: weights_only loading is what refuses it
        digest_path(best).write_text(f"{file_sha256(best)}  best.pt\n", encoding="utf-8")
    shutil.rmtree(study_copy / "eval")
    code, out = invoke("evaluate", str(study_copy), "--device", "cpu")
    assert code == 1 and "best.pt" in out and "fold0" in out and "train the run again" in out
    reason = "cannot be loaded as plain tensors" if kind.endswith("SHA-256") else "SHA-256"
    assert reason in out, out
    assert "unsafe code ran" not in out + capfd.readouterr().out


def test_patch_store_holds_no_pickles(trained_study: Path) -> None:
    npys = sorted((trained_study / "prep").rglob("*.npy"))
    assert len(npys) == 3 * 6  # image, mask, brain for each subject
    for path in npys:
        array = np.load(path, allow_pickle=False)
        assert array.dtype != object
    pickles = [p for p in trained_study.rglob("*") if p.suffix in (".pkl", ".pickle", ".joblib")]
    assert not pickles


def test_study_with_another_config_is_refused(tmp_path: Path, trained_study: Path, odd_cohort: Path) -> None:
    yaml_path = tiny_study(tmp_path, odd_cohort, out=str(trained_study), train={"epochs": 2})
    code, out = invoke("study", "run", str(yaml_path), "--no-progress")
    assert code == 1 and "different config" in out and "config.yaml" in out and str(trained_study) in out


def test_study_of_another_version_is_refused(
    tmp_path: Path, trained_study: Path, odd_cohort: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    yaml_path = tiny_study(tmp_path, odd_cohort, out=str(trained_study))
    monkeypatch.setattr(iphbench, "__version__", "99.0.0")
    code, out = invoke("study", "run", str(yaml_path), "--no-progress")
    assert code == 1 and "99.0.0" in out and "made with iphbench" in out


def test_patch_store_of_another_config_is_refused(
    tmp_path: Path, trained_study: Path, odd_cohort: Path
) -> None:
    store = tmp_path / "prep"
    shutil.copytree(trained_study / "prep", store)
    code, out = invoke("prepare", str(odd_cohort), "--out", str(store), "--workers", "1", "--no-progress")
    assert code == 1 and "another preprocessing config" in out and "patch_size" in out


# --- disk full and permission denied ----------------------------------------------------------------
def _disk_full(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _read_only(prefix: str = "", suffix: str = "", dir: str | None = None) -> tuple[int, str]:
    raise PermissionError(errno.EACCES, "Permission denied", str(dir))


@pytest.fixture(params=["disk full", "permission denied"])
def broken_writer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every atomic write fails: at the rename (disk full) or when creating the temporary file (read-only
    folder; tests run as root, for whom chmod does not block writes, so the error is simulated)."""
    import iphbench._files as files

    if request.param == "disk full":
        monkeypatch.setattr(files.os, "replace", _disk_full)
        return "No space left on device"
    monkeypatch.setattr(files.tempfile, "mkstemp", _read_only)
    return "Permission denied"


def test_prepare_reports_write_errors_with_the_path(
    broken_writer: str, tmp_path: Path, odd_cohort: Path
) -> None:
    code, out = invoke("prepare", str(odd_cohort), "--out", str(tmp_path / "prep"), "--workers", "1")
    assert code == 1 and broken_writer in out and str(tmp_path / "prep") in out


def test_evaluate_reports_write_errors_with_the_path(broken_writer: str, study_copy: Path) -> None:
    shutil.rmtree(study_copy / "eval")
    code, out = invoke("evaluate", str(study_copy), "--device", "cpu")
    assert code == 1 and broken_writer in out and str(study_copy / "eval") in out


def test_predict_reports_write_errors_with_the_path(
    broken_writer: str, tmp_path: Path, trained_study: Path, odd_cohort: Path
) -> None:
    scan = odd_cohort.parent / pd.read_csv(odd_cohort)["image"][0]
    out_path = tmp_path / "mask.nii.gz"
    args = ["--study", str(trained_study), "-o", str(out_path), "--model", "unet", "--views", "2DAxi"]
    code, out = invoke("predict", str(scan), *args, "--device", "cpu")
    assert code == 1 and broken_writer in out and str(tmp_path) in out
    assert not out_path.exists() and not list(tmp_path.glob(".*tmp*"))  # no half-written file left


def test_report_reports_write_errors_with_the_path(
    broken_writer: str, tmp_path: Path, trained_study: Path
) -> None:
    shutil.copy(trained_study / "metrics.csv", tmp_path / "metrics.csv")
    code, out = invoke("report", str(tmp_path), "--no-pdf", "--orientation", "2DAxi")
    assert code == 1 and broken_writer in out and str(tmp_path) in out
