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
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from iphbench._files import atomic_write_json
from iphbench.config import StudyConfig
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

log = logging.getLogger(__name__)


def settings_of(config: StudyConfig) -> dict[str, Any]:
    """Epochs and iterations a fold trains with: the study's, or nnU-Net's defaults."""
    n = config.nnunet
    return {
        "epochs": n.epochs or DEFAULT_EPOCHS,
        "iterations_per_epoch": n.iterations_per_epoch or DEFAULT_ITERATIONS,
        "val_iterations_per_epoch": n.val_iterations_per_epoch or DEFAULT_VAL_ITERATIONS,
    }


def run_nnunet_fold(config: StudyConfig, style: str, fold: int, run_dir: Path, device: str) -> dict[str, Any]:
    """Train fold ``fold`` of ``style`` (unless finished), predict its test subjects, write ``done.json``.

    The study's nnU-Net dataset must be prepared (:func:`iphbench.nnunet.prepare.prepare_nnunet`).

    Returns:
        The content of ``done.json``.
    """
    from iphbench.inference import resolve_device
    from iphbench.io import read_volume, write_mask_like
    from iphbench.nnunet._trainer import build_trainer, trained_weights, write_status
    from iphbench.training.checkpoint import load_checkpoint, save_checkpoint, seal_checkpoint
    from iphbench.training.folds import fold_subjects, read_folds

    version = require_nnunet()
    study = Path(config.out)
    where = folders(study)
    configuration = configuration_of(style)
    settings = settings_of(config)
    dev = resolve_device(device)
    status = run_dir / "status.json"
    plans_file = where.dataset_preprocessed / f"{PLANS}.json"
    if not (where.dataset_preprocessed / "splits_final.json").is_file() or not plans_file.is_file():
        raise FileNotFoundError(
            f"{where.dataset_preprocessed} holds no nnU-Net plans or split file; run 'iphbench study run' "
            "(it prepares nnU-Net before training the folds)"
        )
    plans = json.loads(plans_file.read_text(encoding="utf-8"))
    dataset_json = json.loads((where.dataset_preprocessed / "dataset.json").read_text(encoding="utf-8"))
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    with nnunet_environment(study, config.nnunet.augmentation_workers, run_dir / "nnunet.log"):
        fold_dir = (
            where.results
            / plans["dataset_name"]
            / f"IphbenchTrainer__{PLANS}__{configuration}"
            / f"fold_{fold}"
        )
        final, latest = fold_dir / "checkpoint_final.pth", fold_dir / "checkpoint_latest.pth"
        model_path = run_dir / MODEL_FILE
        if not model_path.is_file():
            if (
                final.is_file()
            ):  # trained before an interruption; nnU-Net's own checkpoint, written by this study
                checkpoint = torch.load(final, map_location="cpu", weights_only=False)
                weights, mirror_axes = (
                    checkpoint["network_weights"],
                    checkpoint["inference_allowed_mirroring_axes"],
                )
                epochs_run = int(checkpoint["current_epoch"])
            else:
                trainer = build_trainer(
                    plans, configuration, fold, dataset_json, dev, settings["epochs"],
                    settings["iterations_per_epoch"], settings["val_iterations_per_epoch"],
                    continue_training=latest.is_file(), status_path=status,
                )  # fmt: skip
                if latest.is_file():
                    trainer.load_checkpoint(str(latest))
                    log.info("%s fold %d: resuming nnU-Net at epoch %d", style, fold, trainer.current_epoch)
                write_status(status, "running", "train", int(trainer.current_epoch), settings["epochs"])
                trainer.run_training()
                weights, mirror_axes = trained_weights(trainer), trainer.inference_allowed_mirroring_axes
                epochs_run = int(trainer.current_epoch)
                del trainer
            save_checkpoint(
                model_path,
                {
                    "network_weights": weights,
                    "configuration": configuration,
                    "mirror_axes": None if mirror_axes is None else [int(a) for a in mirror_axes],
                    "epochs": epochs_run,
                },
            )
            shutil.copyfile(plans_file, run_dir / "plans.json")
            shutil.copyfile(where.dataset_preprocessed / "dataset.json", run_dir / "dataset.json")
        seconds["train"] = round(time.perf_counter() - t0, 2)

        t0 = time.perf_counter()
        folds = read_folds(study / "folds.csv")
        test = fold_subjects(folds, fold, "test")
        subjects = _subjects(study)
        (run_dir / "test").mkdir(exist_ok=True)
        todo = [s for s in test if not (run_dir / "test" / f"{s}.nii.gz").is_file()]
        write_status(status, "running", "predict", settings["epochs"], settings["epochs"])
        if todo:
            model = load_nnunet([run_dir], dev, config.nnunet.test_time_mirroring)
            for subject in todo:
                image = read_volume(str(subjects.loc[subject, "image"]))
                mask, _ = predict_volume(model, image)
                write_mask_like(mask, image, run_dir / "test" / f"{subject}.nii.gz")
        seconds["predict"] = round(time.perf_counter() - t0, 2)

    seal_checkpoint(model_path)  # final: model.pt.sha256 lists exactly its digest (checked by every load)
    epochs_done = int(load_checkpoint(model_path).get("epochs", -1))
    done = {
        "style": style,
        "configuration": configuration,
        "fold": int(fold),
        "nnunetv2": version,
        "nnunetv2_trainer": "IphbenchTrainer (nnUNetTrainer; status.json, no checkpoint_best)",
        "plans": PLANS,
        "checkpoint": "final",
        **settings,
        "epochs_run": epochs_done,
        "train_on_val": config.nnunet.train_on_val,
        "test_time_mirroring": config.nnunet.test_time_mirroring,
        "patch_size": plans["configurations"][configuration].get("patch_size"),
        "batch_size": plans["configurations"][configuration].get("batch_size"),
        "spacing": plans["configurations"][configuration].get("spacing"),
        "test_subjects": test,
        "device": str(dev),
        "seconds": seconds,
        "nnunet_fold_dir": str(fold_dir),
    }
    write_status(status, "done", "done", settings["epochs"], settings["epochs"])
    atomic_write_json(run_dir / "done.json", done)
    return done


def _subjects(study: Path) -> pd.DataFrame:
    from iphbench.preprocessing.store import PatchStore

    return PatchStore(study / "prep").subjects_table.set_index("subject")


def read_test_prediction(run_dir: Path, subject: str, like: Any) -> np.ndarray:
    """The fold's saved prediction of ``subject`` as a canonical bool array on ``like``'s grid."""
    from iphbench.io import read_mask

    path = Path(run_dir) / "test" / f"{subject}.nii.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the nnU-Net run {run_dir} did not predict {subject}")
    pred = read_mask(path, like=like)
    return np.asarray(pred.array, dtype=bool)


__all__ = ["read_test_prediction", "run_nnunet_fold", "settings_of"]
