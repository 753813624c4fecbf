"""SIGKILL at seeded random moments in prepare, training and evaluation, then resume.

A tiny study (6 subjects, unet width 4, three views, 2 epochs, 2 folds) runs as subprocesses
(``iphbench study run`` then ``iphbench evaluate``) twice: once never stopped, once killed
(the whole process group, workers included) at random moments and resumed. After each kill
the tree is scanned: every file under its final name must be complete (parses or loads) and
every finished marker must point to complete files. The resumed study must end with exactly
the same metrics.csv and bit-identical checkpoints (CPU).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from robustness_helpers import tiny_study

SEED = 8  # the kill moments; the suite's result does not depend on it
CLI = str(Path(sys.executable).with_name("iphbench"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "200"}


def is_temp(path: Path) -> bool:
    """A temporary file of ``iphbench._files.atomic_path`` (``.<name>.<random>.tmp<suffix>``)."""
    return path.name.startswith(".") and ".tmp" in path.name


def check_complete(path: Path) -> None:
    """Load a file by its kind; raises when it is truncated or half-written."""
    name = path.name
    if name.endswith(".json") or name == "done":
        json.loads(path.read_text(encoding="utf-8"))
    elif name.endswith(".csv"):
        pd.read_csv(path)
    elif name.endswith(".npy"):
        np.load(path, allow_pickle=False)
    elif name.endswith(".pt"):
        torch.load(path, map_location="cpu", weights_only=True)
    elif name.endswith(".nii.gz"):
        np.asarray(nib.load(path).dataobj)
    elif name.endswith(".yaml"):
        yaml.safe_load(path.read_text(encoding="utf-8"))


PREP_FILES = ("image.npy", "mask.npy", "brain.npy", "meta.json", "patches.csv", "summary.json")
RUN_FILES = ("best.pt", "last.pt", "history.csv", "config.json")


def scan_tree(out: Path) -> dict[str, int]:
    """Check every final-named file and every finished marker; count leftover temporary files."""
    temps = 0
    for path in out.rglob("*"):
        if not path.is_file():
            continue
        if is_temp(path):
            temps += 1
            continue
        try:
            check_complete(path)
        except Exception as exc:
            raise AssertionError(f"{path} is under its final name but incomplete: {exc!r}") from None
    for done in (out / "prep" / "subjects").glob("*/done"):
        missing = [f for f in PREP_FILES if not (done.parent / f).is_file()]
        assert not missing, f"{done} marks a subject prepared but {missing} are missing"
    for done in (out / "runs").glob("*/*/*/done.json"):
        missing = [f for f in RUN_FILES if not (done.parent / f).is_file()]
        assert not missing, f"{done} marks a run finished but {missing} are missing"
    return {
        "temps": temps,
        "prepared": len(list((out / "prep" / "subjects").glob("*/done"))),
        "runs_done": len(list((out / "runs").glob("*/*/*/done.json"))),
        "evaluated": len(list((out / "eval").glob("*.csv"))),
    }


def run(args: list[str], cwd: Path, ready: Callable[[], bool] | None = None, delay: float = 0.0) -> str:
    """Run the CLI; with ``ready``, SIGKILL its process group ``delay`` s after ``ready()`` turns true.

    Returns "killed", or "finished" (exit code 0; anything else fails the test with the log).
    """
    log = cwd / "log.txt"
    with open(log, "ab") as fh:
        proc = subprocess.Popen([CLI, *args], cwd=cwd, env=ENV, stdout=fh, stderr=fh, start_new_session=True)
        deadline = time.monotonic() + 240
        while ready is not None and proc.poll() is None and not ready():
            assert time.monotonic() < deadline, "the phase to interrupt never started"
            time.sleep(0.01)
        if ready is not None and proc.poll() is None:
            time.sleep(delay)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its spawned prepare workers
                proc.wait()
                return "killed"
        code = proc.wait(timeout=240)
    assert code == 0, f"iphbench {' '.join(args)} exited {code}:\n{log.read_text(errors='replace')[-3000:]}"
    return "finished"


def study_yaml(folder: Path, cohort: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return tiny_study(folder, cohort, views=["2DAxi", "2DCor", "2DSag"], train={"epochs": 2})


def checkpoints(out: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {
        str(p.relative_to(out)): torch.load(p, map_location="cpu", weights_only=True)["model"]
        for p in sorted((out / "runs").glob("*/*/*/best.pt"))
    }


@pytest.mark.slow
def test_sigkill_then_resume_gives_identical_metrics(tmp_path: Path, base_cohort: Path) -> None:
    ref_dir, cut_dir = tmp_path / "never_stopped", tmp_path / "killed"
    run(["study", "run", str(study_yaml(ref_dir, base_cohort)), "--no-progress"], ref_dir)
    run(["evaluate", str(ref_dir / "study"), "--device", "cpu"], ref_dir)

    rng = random.Random(SEED)
    out = cut_dir / "study"
    study = str(study_yaml(cut_dir, base_cohort))
    train = ["study", "run", study, "--no-progress"]
    evaluate = ["evaluate", str(out), "--device", "cpu"]

    def n_done(pattern: str) -> int:
        return len(list(out.glob(pattern)))

    schedule: list[tuple[str, list[str], Callable[[], bool], float]] = [
        ("prepare", train, lambda: n_done("prep/subjects/*") >= 1, rng.uniform(0.0, 0.4)),
        ("training", train, lambda: n_done("runs/*/*/*/status.json") >= 1, rng.uniform(0.0, 1.5)),
        ("training", train, lambda: n_done("runs/*/*/*/done.json") >= 3, rng.uniform(0.0, 1.0)),
        ("evaluation", evaluate, lambda: (out / "eval" / "key.json").exists(), rng.uniform(0.0, 1.5)),
        ("evaluation", evaluate, lambda: n_done("eval/*.csv") >= 2, rng.uniform(0.0, 0.5)),
    ]
    record = []
    for phase, args, ready, delay in schedule:
        if args is evaluate and not record[-1][0] == "evaluation":
            run(train, cut_dir)  # training resumed to the end before evaluation starts
        outcome = run(args, cut_dir, ready, delay)
        state = scan_tree(out)  # raises if a half-written file sits under a final name
        record.append((phase, round(delay, 3), outcome, state))
    print("\nkill schedule (phase, delay s, outcome, tree):", *record, sep="\n  ")
    assert sum(r[2] == "killed" for r in record) >= 3, record
    # every stage was interrupted at least once
    assert record[0][2] == "killed" and record[0][3]["prepared"] < 6, record[0]
    assert any(r[0] == "training" and r[2] == "killed" and r[3]["runs_done"] < 6 for r in record), record
    assert any(r[0] == "evaluation" and r[2] == "killed" and r[3]["evaluated"] < 6 for r in record), record

    run(train, cut_dir)  # nothing left to train: every run is skipped
    run(evaluate, cut_dir)  # resume evaluation to the end
    final = scan_tree(out)
    assert final["prepared"] == 6 and final["runs_done"] == 6 and final["evaluated"] == 6

    ref = pd.read_csv(ref_dir / "study" / "metrics.csv")
    got = pd.read_csv(out / "metrics.csv")
    pd.testing.assert_frame_equal(got, ref, check_exact=True)  # CPU: exactly the same numbers
    assert (ref["pred_ml"] > 0).any(), "the tiny models predict nothing: the comparison would be vacuous"
    ref_w, got_w = checkpoints(ref_dir / "study"), checkpoints(out)
    assert ref_w.keys() == got_w.keys() and len(ref_w) == 6
    for key in ref_w:
        for name, tensor in ref_w[key].items():
            assert torch.equal(tensor, got_w[key][name]), f"{key}: {name} differs after kill and resume"
