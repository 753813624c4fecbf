"""Study-level evaluation: every test subject of every fold, every style, orientation and protocol.

Each subject is predicted only by the models of the fold that held it out (``folds.csv``,
role ``test``). Two protocols, labelled in every row (DESIGN.md, "Beyond the paper"):

* ``paper``: only the lesion patches are predicted and scored, as published (section 3.2).
  Hemorrhage-free subjects have no lesion patch and are not part of this protocol.
* ``full``: every patch touching the brain mask is predicted; predictions outside the brain
  are 0, so false positives anywhere in the brain count. Hemorrhage-free subjects are scored
  by their false-positive volume (``pred_ml``).

Metrics are computed in each scan's own voxel grid (padding and any resampling undone) with
its spacing in mm, against the reference mask file itself. One CSV per subject is written
atomically under ``<study>/eval/`` so an interrupted evaluation resumes where it stopped;
``metrics.csv`` is assembled from them at the end. A cache file is trusted only when it is whole
and holds exactly its subject's rows (:mod:`iphbench.study.completeness`): one cut short by a
copy or a sync tool is scored again, with a warning naming it.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from iphbench._device import resolve_device
from iphbench._files import atomic_path, atomic_write_json
from iphbench.config import StudyConfig, config_hash, plain
from iphbench.evaluation.scoring import SCORE_COLUMNS, score_prediction
from iphbench.io import write_mask_like
from iphbench.layout import RunLayout, StudyFolderError, StudyLayout
from iphbench.preprocessing.store import PatchStore
from iphbench.study.backends import EvalStudy, FoldModels, SubjectCase, backend_for, load_case
from iphbench.study.completeness import (
    Key,
    ResultsTableError,
    check_complete,
    has_lesion_patch,
    read_results_table,
    subject_rows,
)
from iphbench.study.grid import StudyError, check_study, grid_styles
from iphbench.study.postprocess import PostprocessTable
from iphbench.styles import parse_style
from iphbench.training.checkpoint import verify_checkpoint
from iphbench.views import VIEWS

log = logging.getLogger(__name__)

METRIC_COLUMNS = [
    "subject", "site", "age", "sex", "fold", "style", "orientation", "protocol", *SCORE_COLUMNS,
]  # fmt: skip


class EvaluationError(RuntimeError):
    """The study cannot be evaluated (missing runs, missing folds, ...)."""


def _eval_key(layout: StudyLayout, cfg: StudyConfig) -> str:
    """Changes whenever a checkpoint or an evaluation setting changes, so stale results are redone.

    A run counts as changed when its ``done.json`` content or modification time, or its
    ``best.pt`` size or modification time, differ (hashing every checkpoint's bytes would
    cost seconds per call on a full grid). Copying a study without keeping modification
    times (``cp -r`` rather than ``cp -a``) therefore re-evaluates it once.
    """
    done = []
    for run in sorted(layout.finished_runs(), key=lambda r: str(r.done)):
        stat = run.best.stat() if run.best.exists() else None
        done.append(
            [
                str(run.done.relative_to(layout.root)),
                run.done.read_text(encoding="utf-8"),
                run.done.stat().st_mtime_ns,
                None if stat is None else [stat.st_size, stat.st_mtime_ns],
            ]
        )
    settings = plain(cfg.eval)
    settings.pop("learning_check", None)  # thresholds of a report banner: they change no metric
    settings["min_component_ml"] = cfg.train.iphbench.min_component_ml  # post-processing: applied here
    return config_hash({"eval": settings, "prep": plain(cfg.prep), "runs": done})


def evaluate_study(
    study_dir: str | Path,
    device: str = "auto",
    progress: Callable[[str, int, int], None] | None = None,
) -> Path:
    """Evaluate a trained study and write ``<study>/metrics.csv``.

    Args:
        study_dir: the study folder (holds config.yaml, folds.csv, prep/, runs/).
        device: "auto", "cpu" or a CUDA device.
        progress: called as ``progress(subject, done, total)`` after each subject.

    Returns:
        Path of metrics.csv.
    """
    layout = StudyLayout(study_dir)
    cfg = _load_config(layout)
    try:
        folds = layout.folds()
    except StudyFolderError as exc:
        raise EvaluationError(str(exc)) from None
    store = PatchStore(layout.prep)
    styles, views = grid_styles(cfg), [v for v in VIEWS if v in cfg.views]
    test = folds[folds["role"] == "test"]
    test_folds = [int(f) for f in sorted(test["fold"].unique())]
    # every run each style needs: its views' runs (an nnU-Net style: its one 3D / 2D run) per fold
    needed = [
        layout.run(s, v, f) for s in styles for v in parse_style(s).run_views(views) for f in test_folds
    ]
    _check_runs(needed)

    eval_dir = layout.eval_dir
    key = _eval_key(layout, cfg)
    if damaged := _damaged_json(layout):
        log.warning("%s; the evaluation cache cannot be trusted: every subject is evaluated again", damaged)
        shutil.rmtree(eval_dir)
    elif (
        layout.eval_key.exists() and json.loads(layout.eval_key.read_text(encoding="utf-8")).get("key") != key
    ):
        # a damaged checkpoint changes the key too: refuse it before the cached results are discarded
        for run in needed:
            if run.best.is_file():
                verify_checkpoint(run.best)
        log.info("checkpoints or evaluation settings changed since the last evaluation: starting it again")
        shutil.rmtree(eval_dir)
    eval_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(layout.eval_key, {"key": key})

    dev = resolve_device(device)
    opened = EvalStudy(layout, cfg, views, store, folds, dev, PostprocessTable(layout.postprocess_json))
    subjects_table = store.subjects_table.set_index("subject")
    try:  # the rows each test subject's cache must hold
        expected: dict[str, list[Key]] = {
            s: [(s, *row) for row in subject_rows(cfg, has_lesion_patch(store, s))] for s in test["subject"]
        }
    except KeyError as exc:  # a test subject missing from the patch store: the message says what to do
        raise EvaluationError(str(exc.args[0])) from None
    total, done = len(test), 0
    for fold in test_folds:
        fold_subjects = [
            s for s in test.loc[test["fold"] == fold, "subject"] if not _trusted_cache(layout, s, expected[s])
        ]
        done += int((test["fold"] == fold).sum()) - len(fold_subjects)
        if not fold_subjects:
            continue
        models: dict[str, FoldModels] = {
            style: backend_for(style).load_fold(opened, style, fold) for style in styles
        }
        for subject in fold_subjects:
            info = subjects_table.loc[subject]
            case = load_case(layout, cfg, store, info, subject, fold)
            with torch.inference_mode():
                rows = _evaluate_subject(layout, cfg, info, case, models)
            frame = pd.DataFrame(rows, columns=METRIC_COLUMNS)
            with atomic_path(layout.eval_subject(subject), suffix=".csv") as tmp:
                frame.to_csv(tmp, index=False)
            done += 1
            if progress is not None:
                progress(subject, done, total)

    hint = f"please report this (delete {eval_dir} to evaluate again)"
    try:  # each file was checked or has just been written: a failure here is a bug, not a damaged file
        parts = [_read_cache(layout.eval_subject(s), expected[s], hint) for s in test["subject"]]
    except ResultsTableError as exc:
        raise EvaluationError(str(exc)) from None
    metrics = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=METRIC_COLUMNS)
    with atomic_path(layout.metrics_csv, suffix=".csv") as tmp:
        metrics.to_csv(tmp, index=False)
    return layout.metrics_csv


def _evaluate_subject(
    layout: StudyLayout, cfg: StudyConfig, info: pd.Series, case: SubjectCase, models: dict[str, FoldModels]
) -> list[list[object]]:
    """The metrics.csv rows of one test subject: every style's test prediction, scored per orientation
    and protocol in the scan's own grid against the reference mask file."""
    ref = case.reference.array.astype(bool)
    rows: list[list[object]] = []
    for style, fold_models in models.items():
        for (orientation, protocol), pred in fold_models.test_prediction(case).items():
            scores = score_prediction(pred, ref, case.reference.spacing, cfg.eval)
            rows.append([
                case.subject, info["site"], info.get("age"), info.get("sex"), case.fold, style, orientation,
                protocol, *(scores[c] for c in SCORE_COLUMNS),
            ])  # fmt: skip
            if cfg.eval.save_predictions:
                path = layout.prediction(protocol, style, case.subject, orientation)
                write_mask_like(pred.astype(np.uint8), case.reference, path)
    return rows


def _read_cache(path: Path, expected: list[Key], hint: str) -> pd.DataFrame:
    """One subject's cached rows, refused unless the file is whole and holds exactly ``expected``."""
    df = read_results_table(path, hint, METRIC_COLUMNS, columns=METRIC_COLUMNS)
    check_complete(df, path, expected, hint)
    return df


def _trusted_cache(layout: StudyLayout, subject: str, expected: list[Key]) -> bool:
    """Whether ``eval/<subject>.csv`` can be used as it is; a damaged one is deleted so the subject is scored again.

    A cache cut by a copy or a sync tool would otherwise end up in metrics.csv as a subject with
    fewer rows, or with a half row, and the statistics would run on it.
    """
    path = layout.eval_subject(subject)
    if not path.exists():
        return False
    try:
        _read_cache(path, expected, f"it is not trusted: {subject} is scored again")
    except ResultsTableError as exc:
        log.warning("%s", exc)
        path.unlink()
        return False
    return True


def _damaged_json(layout: StudyLayout) -> str:
    """The problem with ``eval/key.json`` or ``eval/postprocess.json`` when one exists but does not parse, else "".

    Without a readable key the caches cannot be matched with the checkpoints; without the chosen
    post-processing volumes the cached scores cannot be tied to the ones applied.
    """
    for path in (layout.eval_key, layout.postprocess_json):
        if not path.exists():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return f"{path} cannot be read ({exc})"
        if not isinstance(data, dict):
            return f"{path} holds {type(data).__name__}, not an object"
    return ""


def _load_config(layout: StudyLayout) -> StudyConfig:
    try:
        cfg = layout.config()
        check_study(layout.root, cfg)  # an edited config.yaml must not be evaluated as if it had been trained
    except (StudyFolderError, StudyError) as exc:
        raise EvaluationError(str(exc)) from None
    return cfg


def _check_runs(runs: list[RunLayout]) -> None:
    missing = [str(r) for r in runs if not r.finished]
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise EvaluationError(
            f"{len(missing)} training run(s) are not finished: {shown}. Run 'iphbench study run' to finish them."
        )


__all__ = ["METRIC_COLUMNS", "EvaluationError", "evaluate_study"]
