"""One fold of an nnU-Net reference style: a run of the study grid like any other.

The executors (``local``, ``ray``) hand a run of ``nnunet_3d_fullres`` or ``nnunet_2d`` to
:func:`run_nnunet_fold` instead of the 2D trainer. Its folder is
``runs/<style>/<3D|2D>/fold<k>/``, with the files the grid, the progress table and
evaluation rely on:

``status.json``  epoch / epochs while training, then the prediction stage (progress table)
``nnunet.log``   what nnU-Net printed
``model.pt``     the final weights as plain tensors + configuration and mirror axes
``model.pt.sha256``   its SHA-256, checked whenever it is loaded (iphbench.training.checkpoint)
``plans.json``, ``dataset.json``   what the network was built and trained with
``test/<subject>.nii.gz``   the fold's test subjects, predicted, in each scan's own grid
``done.json``    written last: settings, nnunetv2 version, seconds per stage
``error.txt``    a failed run's traceback (written by the executor)

nnU-Net's own training folder (``<study>/nnunet/results/Dataset501_iphbench/
IphbenchTrainer__nnUNetPlans__<configuration>/fold_<k>``) holds its checkpoints and logs. A run
resumes like ours: with ``checkpoint_final.pth`` there, training is not repeated; with
``checkpoint_latest.pth`` (nnU-Net writes it every 50 epochs) it continues from that epoch;
test subjects already predicted are kept.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iphbench._device import resolve_device
from iphbench._files import atomic_write_json
from iphbench.config import StudyConfig
from iphbench.io import read_mask, read_volume, write_mask_like
from iphbench.layout import RunLayout, StudyLayout
from iphbench.nnunet import (
    DEFAULT_EPOCHS,
    DEFAULT_ITERATIONS,
    DEFAULT_VAL_ITERATIONS,
    PLANS,
    configuration_of,
    require_nnunet,
)
from iphbench.nnunet._env import folders, nnunet_environment
from iphbench.nnunet.predict import MODEL_FILE, load_nnunet, predict_volume
from iphbench.preprocessing.store import PatchStore
from iphbench.training.checkpoint import load_checkpoint, save_checkpoint, seal_checkpoint
from iphbench.training.folds import fold_subjects, read_folds

log = logging.getLogger(__name__)


def settings_of(config: StudyConfig) -> dict[str, Any]:
    """Epochs and iterations a fold trains with: the study's, or nnU-Net's defaults."""
    n = config.nnunet
    return {
        "epochs": n.epochs or DEFAULT_EPOCHS,
        "iterations_per_epoch": n.iterations_per_epoch or DEFAULT_ITERATIONS,
        "val_iterations_per_epoch": n.val_iterations_per_epoch or DEFAULT_VAL_ITERATIONS,
    }


def write_status(path: Path, state: str, stage: str, epoch: int, epochs: int) -> None:
    """``status.json`` in the fields the progress table reads (no validation IoU: nnU-Net selects none)."""
    atomic_write_json(
        path, {"state": state, "stage": stage, "epoch": epoch, "epochs": epochs, "time": time.time()}
    )


@dataclass(frozen=True)
class _Fold:
    """What one fold of a reference style trains and predicts with."""

    config: StudyConfig
    style: str
    fold: int
    run: RunLayout
    configuration: str  # nnU-Net's configuration (3d_fullres, 2d)
    settings: dict[str, Any]  # epochs and iterations (:func:`settings_of`)
    device: torch.device
    plans_file: Path  # the study's nnU-Net plans
    plans: dict[str, Any]
    dataset_json: dict[str, Any]
    fold_dir: Path  # nnU-Net's own training folder of this fold

    @property
    def model_path(self) -> Path:
        return self.run.dir / MODEL_FILE


def run_nnunet_fold(config: StudyConfig, style: str, fold: int, run_dir: Path, device: str) -> dict[str, Any]:
    """Train fold ``fold`` of ``style`` (unless finished), predict its test subjects, write ``done.json``.

    The study's nnU-Net dataset must be prepared (:func:`iphbench.nnunet.prepare.prepare_nnunet`).

    Returns:
        The content of ``done.json``.
    """
    version = require_nnunet()
    f = _open_fold(config, style, fold, run_dir, device)
    seconds: dict[str, float] = {}
    with nnunet_environment(Path(config.out), config.nnunet.augmentation_workers, f.run.dir / "nnunet.log"):
        t0 = time.perf_counter()
        if not f.model_path.is_file():
            _train(f)
        seconds["train"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        test = _predict_test_subjects(f)
        seconds["predict"] = round(time.perf_counter() - t0, 2)
    seal_checkpoint(f.model_path)  # final: model.pt.sha256 lists exactly its digest (checked by every load)
    done = _done_record(f, version, test, seconds)
    write_status(f.run.status, "done", "done", f.settings["epochs"], f.settings["epochs"])
    atomic_write_json(f.run.done, done)
    return done


def _open_fold(config: StudyConfig, style: str, fold: int, run_dir: Path, device: str) -> _Fold:
    """The fold's settings, plans and folders; refuses a study whose nnU-Net dataset is not prepared."""
    where = folders(Path(config.out))
    configuration = configuration_of(style)
    plans_file = where.dataset_preprocessed / f"{PLANS}.json"
    if not (where.dataset_preprocessed / "splits_final.json").is_file() or not plans_file.is_file():
        raise FileNotFoundError(
            f"{where.dataset_preprocessed} holds no nnU-Net plans or split file; run 'iphbench study run' "
            "(it prepares nnU-Net before training the folds)"
        )
    plans = json.loads(plans_file.read_text(encoding="utf-8"))
    dataset_json = json.loads((where.dataset_preprocessed / "dataset.json").read_text(encoding="utf-8"))
    fold_dir = (
        where.results / plans["dataset_name"] / f"IphbenchTrainer__{PLANS}__{configuration}" / f"fold_{fold}"
    )
    run = RunLayout(Path(run_dir), style, Path(run_dir).parent.name, int(fold))
    return _Fold(config, style, int(fold), run, configuration, settings_of(config), resolve_device(device),
                 plans_file, plans, dataset_json, fold_dir)  # fmt: skip


def _train(f: _Fold) -> None:
    """Train the fold with nnU-Net (or take its final checkpoint from before an interruption) and
    keep the weights as ``model.pt`` beside the plans and dataset description they need."""
    final, latest = f.fold_dir / "checkpoint_final.pth", f.fold_dir / "checkpoint_latest.pth"
    if final.is_file():  # trained before an interruption; nnU-Net's own checkpoint, written by this study
        checkpoint = torch.load(final, map_location="cpu", weights_only=False)
        weights, mirror_axes = checkpoint["network_weights"], checkpoint["inference_allowed_mirroring_axes"]
        epochs_run = int(checkpoint["current_epoch"])
    else:
        from iphbench.nnunet._trainer import build_trainer, trained_weights  # imports nnunetv2

        s = f.settings
        trainer = build_trainer(
            f.plans, f.configuration, f.fold, f.dataset_json, f.device, s["epochs"], s["iterations_per_epoch"],
            s["val_iterations_per_epoch"], continue_training=latest.is_file(), status_path=f.run.status,
        )  # fmt: skip
        if latest.is_file():
            trainer.load_checkpoint(str(latest))
            log.info("%s fold %d: resuming nnU-Net at epoch %d", f.style, f.fold, trainer.current_epoch)
        write_status(f.run.status, "running", "train", int(trainer.current_epoch), s["epochs"])
        trainer.run_training()
        weights, mirror_axes = trained_weights(trainer), trainer.inference_allowed_mirroring_axes
        epochs_run = int(trainer.current_epoch)
        del trainer
    save_checkpoint(
        f.model_path,
        {
            "network_weights": weights,
            "configuration": f.configuration,
            "mirror_axes": None if mirror_axes is None else [int(a) for a in mirror_axes],
            "epochs": epochs_run,
        },
    )
    shutil.copyfile(f.plans_file, f.run.dir / "plans.json")
    shutil.copyfile(f.plans_file.parent / "dataset.json", f.run.dir / "dataset.json")


def _predict_test_subjects(f: _Fold) -> list[str]:
    """Predict the fold's test subjects not predicted yet into ``test/<subject>.nii.gz``; all of them."""
    layout = StudyLayout(f.config.out)
    test = fold_subjects(read_folds(layout.folds_csv), f.fold, "test")
    subjects = PatchStore(layout.prep).subjects_table.set_index("subject")
    (f.run.dir / "test").mkdir(exist_ok=True)
    todo = [s for s in test if not _test_path(f.run.dir, s).is_file()]
    write_status(f.run.status, "running", "predict", f.settings["epochs"], f.settings["epochs"])
    if todo:
        model = load_nnunet([f.run.dir], f.device, f.config.nnunet.test_time_mirroring)
        for subject in todo:
            image = read_volume(str(subjects.loc[subject, "image"]))
            mask, _ = predict_volume(model, image)
            write_mask_like(mask, image, _test_path(f.run.dir, subject))
    return test


def _done_record(f: _Fold, version: str, test: list[str], seconds: dict[str, float]) -> dict[str, Any]:
    """``done.json``: what the fold was trained and scored with, for the report (``report.references``)."""
    config = f.plans["configurations"][f.configuration]
    return {
        "style": f.style,
        "configuration": f.configuration,
        "fold": f.fold,
        "nnunetv2": version,
        "nnunetv2_trainer": "IphbenchTrainer (nnUNetTrainer; status.json, no checkpoint_best)",
        "plans": PLANS,
        "checkpoint": "final",
        **f.settings,
        "epochs_run": int(load_checkpoint(f.model_path).get("epochs", -1)),
        "train_on_val": f.config.nnunet.train_on_val,
        "test_time_mirroring": f.config.nnunet.test_time_mirroring,
        "patch_size": config.get("patch_size"),
        "batch_size": config.get("batch_size"),
        "spacing": config.get("spacing"),
        "test_subjects": test,
        "device": str(f.device),
        "seconds": seconds,
        "nnunet_fold_dir": str(f.fold_dir),
    }


def _test_path(run_dir: Path, subject: str) -> Path:
    return Path(run_dir) / "test" / f"{subject}.nii.gz"


def read_test_prediction(run_dir: Path, subject: str, like: Any) -> np.ndarray:
    """The fold's saved prediction of ``subject`` as a canonical bool array on ``like``'s grid."""
    path = _test_path(run_dir, subject)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the nnU-Net run {run_dir} did not predict {subject}")
    pred = read_mask(path, like=like)
    return np.asarray(pred.array, dtype=bool)


__all__ = ["read_test_prediction", "run_nnunet_fold", "settings_of", "write_status"]
