"""Truncated result tables (issue 20, item 4): never reported on silently.

A ``metrics.csv`` or an ``eval/<subject>.csv`` cache cut short (a copy that ran out of disk, a sync
tool stopped half-way) is read by pandas without complaint. ``stats`` and ``report`` must refuse it
naming the file and what to do, touching nothing; ``evaluate`` must score the subject of a cut cache
again and rebuild a cut ``metrics.csv``, ending with exactly the table a clean study gives.
Every case starts from the tiny trained and evaluated study of conftest.py (6 subjects, one of them
hemorrhage-free, so a complete table has no ``paper`` row for it: 11 rows).
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from robustness_helpers import LESION_FREE, digests, invoke

from iphbench.config import StudyConfig
from iphbench.stats import load_metrics
from iphbench.study.completeness import subject_rows


def read(path: Path | io.BytesIO) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"subject": str, "site": str})


def cut_mid_row(path: Path, where: str) -> None:
    """Cut ``path`` inside a row, as a copy that ran out of disk does (or zero its tail, as a stopped
    preallocating copy does)."""
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    if where == "last row":  # half of the last row
        keep = len(data) - len(lines[-1]) // 2
    elif where == "line end":  # only the final line end lost: the last value may be cut
        keep = len(data) - 1
    else:  # half-way through the file
        keep = len(data) // 2
    if where == "zero-filled":  # a preallocating copy that stopped: full size, zeros at the end
        path.write_bytes(data[:keep] + bytes(len(data) - keep))
    else:
        path.write_bytes(data[:keep])


STATS = ("stats", "--no-mixed")
REPORT = ("report", "--no-pdf", "--no-mixed")


def test_a_complete_study_passes_the_checks(study_copy: Path) -> None:
    """The checks can pass: the study-level expectation matches what evaluate wrote (11 rows, no paper
    row for the hemorrhage-free subject)."""
    metrics = load_metrics(study_copy)
    assert (
        len(metrics) == 11
        and not ((metrics["subject"] == LESION_FREE) & (metrics["protocol"] == "paper")).any()
    )
    code, out = invoke(*STATS[:1], str(study_copy), *STATS[1:])
    assert code == 0, out
    assert "only the file itself was checked" not in out and "Traceback" not in out


CUTS = {
    "last row": "ends mid-row (line 12 has ",
    "line end": "ends mid-row (line 12 has no line end, so its last value",
    "half-way": "ends mid-row (line ",
    "zero-filled": "holds zero bytes from line ",
}


@pytest.mark.parametrize("where", list(CUTS))
@pytest.mark.parametrize("verb", [STATS, REPORT], ids=["stats", "report"])
def test_metrics_cut_mid_row_is_refused(study_copy: Path, verb: tuple[str, ...], where: str) -> None:
    path = study_copy / "metrics.csv"
    cut_mid_row(path, where)
    before = digests(study_copy)
    code, out = invoke(verb[0], str(study_copy), *verb[1:])
    assert code == 1, out
    assert f"{path} {CUTS[where]}" in out and ("it was truncated" in out or "cut short" in out), out
    assert f"run 'iphbench evaluate {study_copy}' to rebuild it" in out
    assert "Traceback" not in out
    assert digests(study_copy) == before  # nothing written, nothing changed (no stats/, no report.html)


@pytest.mark.parametrize("verb", [STATS, REPORT], ids=["stats", "report"])
def test_metrics_cut_at_a_row_boundary_is_refused_naming_the_missing_rows(
    study_copy: Path, verb: tuple[str, ...]
) -> None:
    """A cut between rows leaves a well-formed CSV: only the rows the study must have reveal it."""
    path = study_copy / "metrics.csv"
    clean = read(path)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-3]))  # three whole rows lost
    first = clean.iloc[-3]
    before = digests(study_copy)
    code, out = invoke(verb[0], str(study_copy), *verb[1:])
    assert code == 1, out
    assert f"{path} lacks 3 of the {len(clean)} rows its study must have" in out, out
    assert f"{first['subject']}/{first['style']}/{first['orientation']}/{first['protocol']}" in out
    assert f"run 'iphbench evaluate {study_copy}' to rebuild it" in out and "Traceback" not in out
    assert digests(study_copy) == before


def test_a_bare_metrics_file_gets_the_file_checks_and_says_so(study_copy: Path, tmp_path: Path) -> None:
    """A metrics.csv without its study around it: the cut row is still caught; a cut between rows cannot
    be, and the output says that only the file was checked."""
    bare = tmp_path / "bare"
    bare.mkdir()
    lines = (study_copy / "metrics.csv").read_bytes().splitlines(keepends=True)
    (bare / "metrics.csv").write_bytes(b"".join(lines[:-1]))
    code, out = invoke("stats", str(bare), "--no-mixed")
    assert code == 0, out
    assert "only the file itself was checked" in out and "no config.yaml beside it" in out

    cut_mid_row(bare / "metrics.csv", "last row")
    before = digests(bare)
    code, out = invoke("stats", str(bare), "--no-mixed")
    assert code == 1 and f"{bare / 'metrics.csv'} ends mid-row" in out and "Traceback" not in out, out
    assert "rebuild it with 'iphbench evaluate' on its study folder" in out
    assert digests(bare) == before


def subject_with_rows(study: Path) -> str:
    """A test subject with a hemorrhage (paper and full rows), scored in the second fold."""
    folds = read(study / "folds.csv")
    test = folds[(folds["role"] == "test") & (folds["subject"] != LESION_FREE)]
    return str(test.sort_values("fold")["subject"].iloc[-1])


@pytest.mark.parametrize("cut", ["mid-row", "row boundary"])
def test_evaluate_scores_a_subject_with_a_truncated_cache_again(study_copy: Path, cut: str) -> None:
    """The cut cache is not trusted: the subject is scored again (warning naming the file) and metrics.csv,
    itself cut too, is rebuilt to exactly the clean table."""
    subject = subject_with_rows(study_copy)
    cache, metrics = study_copy / "eval" / f"{subject}.csv", study_copy / "metrics.csv"
    clean_cache, clean = cache.read_bytes(), metrics.read_bytes()
    if cut == "mid-row":
        cut_mid_row(cache, "last row")
    else:
        cache.write_bytes(b"".join(clean_cache.splitlines(keepends=True)[:-1]))
    cut_mid_row(metrics, "half-way")
    before = digests(study_copy)
    code, out = invoke("evaluate", str(study_copy), "--device", "cpu")
    assert code == 0, out
    assert str(cache) in out and f"it is not trusted: {subject} is scored again" in out, out
    assert ("ends mid-row" if cut == "mid-row" else "lacks 1 of the") in out
    assert "Traceback" not in out
    pd.testing.assert_frame_equal(read(metrics), read(io.BytesIO(clean)), check_exact=True)
    assert metrics.read_bytes() == clean and cache.read_bytes() == clean_cache
    after = digests(study_copy)
    rewritten = {"metrics.csv", f"eval/{subject}.csv", "eval/key.json"} | {
        k for k in after if k.startswith("predictions/") and Path(k).name.startswith(f"{subject}_")
    }
    assert {k: v for k, v in after.items() if k not in rewritten} == {
        k: v for k, v in before.items() if k not in rewritten
    }


def test_evaluate_rebuilds_a_truncated_metrics_csv_from_the_cache(study_copy: Path) -> None:
    metrics = study_copy / "metrics.csv"
    clean = metrics.read_bytes()
    cut_mid_row(metrics, "last row")
    before = digests(study_copy)
    code, out = invoke("evaluate", str(study_copy), "--device", "cpu")
    assert code == 0 and "not trusted" not in out and "Traceback" not in out, out
    assert metrics.read_bytes() == clean
    after = digests(study_copy)
    assert {k: v for k, v in after.items() if k != "metrics.csv"} == {
        k: v for k, v in before.items() if k != "metrics.csv"
    }


def test_evaluate_starts_again_when_its_cache_key_is_cut(study_copy: Path) -> None:
    """eval/key.json cut short: the caches cannot be matched with the checkpoints, so every subject is
    scored again (was: a JSONDecodeError message naming no file)."""
    key = study_copy / "eval" / "key.json"
    clean = (study_copy / "metrics.csv").read_bytes()
    key.write_bytes(key.read_bytes()[:10])
    code, out = invoke("evaluate", str(study_copy), "--device", "cpu")
    assert code == 0, out
    assert (
        f"{key} cannot be read" in out
        and "every subject is evaluated again" in out
        and "Traceback" not in out
    )
    assert (study_copy / "metrics.csv").read_bytes() == clean


def test_the_expected_rows_follow_evaluate_s_rules() -> None:
    """2D styles in every trained view and 2.5D, nnU-Net styles in their own orientation, and no paper
    rows for a subject without a lesion patch: the legitimate exceptions are not counted as missing."""
    cfg = StudyConfig(name="s", cohort="c.csv", out="o")
    cfg.models.names = ["unet", "nnunet_3d_fullres"]
    cfg.views = ["2DAxi", "2DCor", "2DSag"]
    cfg.eval.protocols = ["paper", "full"]
    with_lesion = subject_rows(cfg, lesion_patch=True)
    assert ("nnunet_3d_fullres", "3D", "paper") in with_lesion and ("unet", "2.5D", "full") in with_lesion
    assert len(with_lesion) == 2 * 4 + 2  # unet: 2 protocols × 4 orientations; nnU-Net: 2 protocols × 3D
    assert subject_rows(cfg, lesion_patch=False) == [r for r in with_lesion if r[2] == "full"]


def test_a_repeated_row_is_refused(study_copy: Path) -> None:
    """A table put together from overlapping pieces (a resumed sync appending what it had already copied)."""
    path = study_copy / "metrics.csv"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([*lines, lines[1]]))
    before = digests(study_copy)
    code, out = invoke("stats", str(study_copy), "--no-mixed")
    assert code == 1 and f"{path}: line {len(lines) + 1} repeats the row" in out and "Traceback" not in out, (
        out
    )
    assert digests(study_copy) == before
