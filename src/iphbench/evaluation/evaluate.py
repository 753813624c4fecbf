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
and holds exactly its subject's rows (:mod:`iphbench.evaluation.completeness`): one cut short by a
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

from iphbench._files import atomic_path, atomic_write_json
from iphbench.config import StudyConfig, config_hash, plain
from iphbench.evaluation.completeness import (
    Key,
    ResultsTableError,
    check_complete,
    has_lesion_patch,
    orientations_for,
    read_results_table,
    scored_protocols,
    subject_rows,
)
from iphbench.evaluation.postprocess import PostprocessTable, postprocess_volumes, remove_small_components
from iphbench.evaluation.scoring import SCORE_COLUMNS
from iphbench.styles import parse_style
from iphbench.views import FUSED, VIEWS

log = logging.getLogger(__name__)

METRIC_COLUMNS = [
    "subject", "site", "age", "sex", "fold", "style", "orientation", "protocol", *SCORE_COLUMNS,
]  # fmt: skip


class EvaluationError(RuntimeError):
    """The study cannot be evaluated (missing runs, missing folds, ...)."""


def run_dir(study_dir: Path, style: str, view: str, fold: int) -> Path:
    """Folder of one training run (docs/formats.md)."""
    return Path(study_dir) / "runs" / style / view / f"fold{fold}"


def _eval_key(study_dir: Path, cfg: StudyConfig) -> str:
    """Changes whenever a checkpoint or an evaluation setting changes, so stale results are redone.

    A run counts as changed when its ``done.json`` content or modification time, or its
    ``best.pt`` size or modification time, differ (hashing every checkpoint's bytes would
    cost seconds per call on a full grid). Copying a study without keeping modification
    times (``cp -r`` rather than ``cp -a``) therefore re-evaluates it once.
    """
    done = []
    for p in sorted((study_dir / "runs").glob("*/*/*/done.json")):
        best = p.parent / "best.pt"
        stat = best.stat() if best.exists() else None
        done.append(
            [
                str(p.relative_to(study_dir)),
                p.read_text(encoding="utf-8"),
                p.stat().st_mtime_ns,
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
    import torch

    from iphbench.inference import predict_subject_views, resolve_device
    from iphbench.preprocessing.store import PatchStore
    from iphbench.training.checkpoint import load_model, verify_checkpoint

    study_dir = Path(study_dir)
    cfg = _load_config(study_dir)
    folds = _load_folds(study_dir)
    store = PatchStore(study_dir / "prep")
    from iphbench.training.grid import grid_styles

    styles, views = grid_styles(cfg), [v for v in VIEWS if v in cfg.views]
    # nnU-Net reference styles are scored from the whole-scan predictions their runs saved
    reference = [s for s in styles if parse_style(s).is_nnunet]
    styles = [s for s in styles if s not in reference]
    test = folds[folds["role"] == "test"]
    _check_runs(study_dir, styles, views, sorted(test["fold"].unique()))
    for style in reference:
        _check_runs(study_dir, [style], [_nnunet_orientation(style)], sorted(test["fold"].unique()))

    eval_dir = study_dir / "eval"
    key = _eval_key(study_dir, cfg)
    key_file = eval_dir / "key.json"
    if damaged := _damaged_json(eval_dir):
        log.warning("%s; the evaluation cache cannot be trusted: every subject is evaluated again", damaged)
        shutil.rmtree(eval_dir)
    elif key_file.exists() and json.loads(key_file.read_text(encoding="utf-8")).get("key") != key:
        # a damaged checkpoint changes the key too: refuse it before the cached results are discarded
        for style in styles:
            for view in views:
                for fold in sorted(test["fold"].unique()):
                    verify_checkpoint(run_dir(study_dir, style, view, int(fold)) / "best.pt")
        log.info("checkpoints or evaluation settings changed since the last evaluation: starting it again")
        shutil.rmtree(eval_dir)
    eval_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(key_file, {"key": key})

    dev = resolve_device(device)
    postprocess = PostprocessTable(eval_dir / "postprocess.json")
    subjects_table = store.subjects_table.set_index("subject")
    try:  # the rows each test subject's cache must hold
        expected: dict[str, list[Key]] = {
            s: [(s, *row) for row in subject_rows(cfg, has_lesion_patch(store, s))] for s in test["subject"]
        }
    except KeyError as exc:  # a test subject missing from the patch store: the message says what to do
        raise EvaluationError(str(exc.args[0])) from None
    total, done = len(test), 0
    for fold in sorted(test["fold"].unique()):
        fold_subjects = [
            s
            for s in test.loc[test["fold"] == fold, "subject"]
            if not _trusted_cache(eval_dir, s, expected[s])
        ]
        done += int((test["fold"] == fold).sum()) - len(fold_subjects)
        if not fold_subjects:
            continue
        models = {
            style: {view: [load_model(run_dir(study_dir, style, view, int(fold)), dev)] for view in views}
            for style in styles
        }
        with torch.inference_mode():
            min_ml = postprocess_volumes(cfg, store, folds, int(fold), models, dev, postprocess)
        for subject in fold_subjects:
            with torch.inference_mode():
                rows = _evaluate_subject(
                    study_dir, cfg, store, subjects_table.loc[subject], subject, int(fold), models, dev,
                    predict_subject_views, min_ml, reference,
                )  # fmt: skip
            frame = pd.DataFrame(rows, columns=METRIC_COLUMNS)
            with atomic_path(eval_dir / f"{subject}.csv", suffix=".csv") as tmp:
                frame.to_csv(tmp, index=False)
            done += 1
            if progress is not None:
                progress(subject, done, total)

    hint = f"please report this (delete {eval_dir} to evaluate again)"
    try:  # each file was checked or has just been written: a failure here is a bug, not a damaged file
        parts = [_read_cache(eval_dir / f"{s}.csv", expected[s], hint) for s in test["subject"]]
    except ResultsTableError as exc:
        raise EvaluationError(str(exc)) from None
    metrics = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=METRIC_COLUMNS)
    out = study_dir / "metrics.csv"
    with atomic_path(out, suffix=".csv") as tmp:
        metrics.to_csv(tmp, index=False)
    return out


def _read_cache(path: Path, expected: list[Key], hint: str) -> pd.DataFrame:
    """One subject's cached rows, refused unless the file is whole and holds exactly ``expected``."""
    df = read_results_table(path, hint, METRIC_COLUMNS, columns=METRIC_COLUMNS)
    check_complete(df, path, expected, hint)
    return df


def _trusted_cache(eval_dir: Path, subject: str, expected: list[Key]) -> bool:
    """Whether ``eval/<subject>.csv`` can be used as it is; a damaged one is deleted so the subject is scored again.

    A cache cut by a copy or a sync tool would otherwise end up in metrics.csv as a subject with
    fewer rows, or with a half row, and the statistics would run on it.
    """
    path = eval_dir / f"{subject}.csv"
    if not path.exists():
        return False
    try:
        _read_cache(path, expected, f"it is not trusted: {subject} is scored again")
    except ResultsTableError as exc:
        log.warning("%s", exc)
        path.unlink()
        return False
    return True


def _damaged_json(eval_dir: Path) -> str:
    """The problem with ``eval/key.json`` or ``eval/postprocess.json`` when one exists but does not parse, else "".

    Without a readable key the caches cannot be matched with the checkpoints; without the chosen
    post-processing volumes the cached scores cannot be tied to the ones applied.
    """
    for name in ("key.json", "postprocess.json"):
        path = eval_dir / name
        if not path.exists():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return f"{path} cannot be read ({exc})"
        if not isinstance(data, dict):
            return f"{path} holds {type(data).__name__}, not an object"
    return ""


def _evaluate_subject(
    study_dir, cfg, store, info, subject, fold, models, dev, predict_subject_views, min_ml, reference=()
):
    from iphbench.evaluation.scoring import score_prediction
    from iphbench.inference import fuse_views, threshold
    from iphbench.io import read_mask, read_volume, write_mask_like
    from iphbench.preprocessing import restore

    prepared = store.load(subject)
    size = store.config.patch_size
    lesion_origins = store.patch_origins(subject, "lesion")
    brain_origins = store.patch_origins(subject, "brain")
    union = np.unique(np.concatenate([lesion_origins, brain_origins]).reshape(-1, 3), axis=0)

    image_path, mask_path = str(info["image"]), info.get("mask")
    has_mask = isinstance(mask_path, str) and mask_path != ""
    if has_mask:
        ref_vol = read_mask(mask_path, labels=cfg.prep.mask_labels)
        like = ref_vol
    else:
        like = read_volume(image_path)
        ref_vol = like.with_array(np.zeros(like.shape, dtype=np.uint8))
    ref = ref_vol.array.astype(bool)
    spacing = ref_vol.spacing

    padded = prepared.image.shape
    regions = {
        "paper": _region_of(lesion_origins, padded, size),
        "full": np.asarray(prepared.brain, dtype=bool),
    }
    protocols = scored_protocols(cfg.eval.protocols, len(lesion_origins) > 0)
    orientations = orientations_for(list(models[next(iter(models))])) if models else []
    voxel_ml = float(np.prod(prepared.meta.spacing)) / 1000.0
    rows: list[list[object]] = []

    def score(pred: np.ndarray, style: str, orientation: str, protocol: str) -> None:
        scores = score_prediction(pred, ref, spacing, cfg.eval)
        rows.append([
            subject, info["site"], info.get("age"), info.get("sex"), fold, style, orientation, protocol,
            *(scores[c] for c in SCORE_COLUMNS),
        ])  # fmt: skip
        if cfg.eval.save_predictions:
            out = study_dir / "predictions" / protocol / style / f"{subject}_{orientation}.nii.gz"
            write_mask_like(pred.astype(np.uint8), like, out)

    for style, by_view in models.items():
        probs = predict_subject_views(
            prepared.image, union, size, by_view, dev, batch_size=cfg.eval.batch_size
        )
        # threshold (and fuse) once per orientation; each protocol then only masks its region
        binaries = {
            o: threshold(fuse_views(probs) if o == FUSED else probs[o], cfg.eval.threshold)
            for o in orientations
        }
        for protocol in protocols:
            region = regions[protocol]
            for orientation in orientations:
                binary = remove_small_components(
                    binaries[orientation] & region, voxel_ml, min_ml.get(style, 0.0)
                )
                score(restore(binary.astype(np.uint8), prepared.meta, order=0).astype(bool), style, orientation,
                      protocol)  # fmt: skip
    if reference:  # nnU-Net: its whole-scan prediction, kept inside the same region as ours
        from iphbench.nnunet.run import read_test_prediction

        canonical = {
            p: restore(regions[p].astype(np.uint8), prepared.meta, order=0).astype(bool) for p in protocols
        }
        for style in reference:
            orientation = _nnunet_orientation(style)
            whole = read_test_prediction(run_dir(study_dir, style, orientation, fold), subject, ref_vol)
            for protocol in protocols:
                score(whole & canonical[protocol], style, orientation, protocol)
    return rows


def _nnunet_orientation(style: str) -> str:
    from iphbench.nnunet import orientation_of

    return orientation_of(style)


def _region_of(origins: np.ndarray, shape: tuple[int, ...], size: int) -> np.ndarray:
    region = np.zeros(shape, dtype=bool)
    for x, y, z in origins:
        region[x : x + size, y : y + size, z : z + size] = True
    return region


def _load_config(study_dir: Path) -> StudyConfig:
    path = study_dir / "config.yaml"
    if not path.exists():
        raise EvaluationError(
            f"{study_dir} is not a study folder: config.yaml is missing (run 'iphbench study run' first)"
        )
    cfg = StudyConfig.load(path)
    from iphbench.training.grid import StudyError, check_study

    try:
        check_study(study_dir, cfg)  # an edited config.yaml must not be evaluated as if it had been trained
    except StudyError as exc:
        raise EvaluationError(str(exc)) from None
    return cfg


def _load_folds(study_dir: Path) -> pd.DataFrame:
    path = study_dir / "folds.csv"
    if not path.exists():
        raise EvaluationError(
            f"{path} is missing: the study has not been split into folds yet (run 'iphbench study run')"
        )
    return pd.read_csv(path, dtype={"subject": str, "site": str})


def _check_runs(study_dir: Path, styles: list[str], views: list[str], folds: list[int]) -> None:
    missing = [
        f"{style}/{view}/fold{fold}"
        for style in styles
        for view in views
        for fold in folds
        if not (run_dir(study_dir, style, view, int(fold)) / "done.json").exists()
    ]
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise EvaluationError(
            f"{len(missing)} training run(s) are not finished: {shown}. Run 'iphbench study run' to finish them."
        )
