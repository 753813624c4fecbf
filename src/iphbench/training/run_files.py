"""A run's folder and what it records (docs/training.md, "Run folder and resume").

``runs/<style>/<view>/fold<k>/``: ``config.json`` (the run's resolved settings and their
hash; a folder trained with other settings is refused), ``history.csv`` (one row per epoch),
``status.json`` (read by the progress table), ``last.pt`` (everything a resumed run needs),
``best.pt``, their SHA-256 in ``last.pt.sha256`` and ``best.pt.sha256`` (checked on every load,
:mod:`iphbench.training.checkpoint`) and ``done.json`` (the :class:`RunResult`, written last).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

import iphbench
from iphbench._files import atomic_write_json, atomic_write_text
from iphbench.config import EXECUTION_SETTINGS, ModelConfig, TrainConfig, plain
from iphbench.training import checkpoint as ckpt

HISTORY_COLUMNS = (
    "epoch",
    "step",
    "slices",
    "train_loss",
    "val_loss",
    "val_dice",
    "val_iou",
    "val_subject_dice",
    "lr",
    "seconds",
    "val_seconds",
)


class RunConfigError(RuntimeError):
    """A run folder holds state made with different settings."""


@dataclass
class EpochReport:
    """What a run's ``progress_cb`` receives after each epoch."""

    model: str
    view: str
    fold: int
    epoch: int  # finished epochs, 1-based
    epochs: int  # maximum epochs
    train_loss: float
    val_loss: float
    val_dice: float
    val_iou: float
    best_val_iou: float
    best_epoch: int
    lr: float
    seconds: float
    val_subject_dice: float = float("nan")
    best_score: float = float("nan")  # best selection score so far (the recipe's metric)

    @classmethod
    def of(cls, model: str, view: str, fold: int, epochs: int, progress: RunProgress) -> EpochReport:
        """The report of the last epoch in ``progress``."""
        h = progress.history[-1]
        return cls(
            model, view, fold, int(h["epoch"]), epochs, h["train_loss"], h["val_loss"], h["val_dice"], h["val_iou"],
            progress.best_iou, progress.best_epoch, h["lr"], h["seconds"], h["val_subject_dice"], progress.best_score,
        )  # fmt: skip


@dataclass
class RunResult:
    """Outcome of one run (also stored as ``done.json``)."""

    model: str
    view: str
    fold: int
    run_dir: str
    best_epoch: int
    best_val_iou: float
    best_val_dice: float
    epochs_run: int
    stopped_early: bool
    resumed_from: int  # finished epochs found in last.pt at start (0 = fresh)
    seconds: float  # wall time of this call
    device: str
    history: list[dict[str, float]] = field(default_factory=list)
    recipe: str = "paper"
    select_on: str = "iou"  # the validation score best.pt was chosen on
    best_score: float = float("nan")
    steps: int = 0  # optimiser steps taken
    slices: int = 0  # training slices seen (steps × batch size)
    compile: str = "off"  # "off", the torch.compile mode, or "failed, eager: <error>"


@dataclass
class RunProgress:
    """What the loop carries from epoch to epoch (and ``last.pt`` stores)."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_score: float = -1.0
    best_iou: float = -1.0
    best_dice: float = 0.0
    best_epoch: int = 0
    resumed_from: int = 0

    @property
    def steps(self) -> int:
        return int(self.history[-1]["step"]) if self.history else 0

    @property
    def slices(self) -> int:
        return int(self.history[-1]["slices"]) if self.history else 0


def run_settings(
    model_name: str,
    view: str,
    fold: int,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    train: list[str],
    val: list[str],
    recipe: str,
) -> dict[str, Any]:
    tc = plain(train_cfg)
    for key in EXECUTION_SETTINGS:  # where, how fast and how often it saves do not change what a run trains
        tc.pop(key)
    tc["recipe"] = recipe  # this run's recipe (the study may list several)
    if recipe != "iphbench":
        tc.pop("iphbench")  # settings of another recipe do not change this run
    else:
        tc["iphbench"].pop("min_component_ml")  # post-processing, applied at evaluation
    return {
        "model": model_name,
        "view": view,
        "fold": fold,
        "width": model_cfg.width,
        "model_kwargs": ckpt.model_kwargs(model_cfg, model_name),
        "pretrained": model_cfg.pretrained,
        "train": tc,
        "train_subjects": train,
        "val_subjects": val,
    }


def last_state(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule_state: dict[str, Any],
    progress: RunProgress,
    epoch: int,
    settings_hash: str,
) -> dict[str, Any]:
    """``last.pt``: everything a resumed run needs, as CPU copies (written in the background)."""
    return ckpt.to_cpu(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": schedule_state,
            "epoch": epoch,
            "best_score": progress.best_score,
            "best_val_iou": progress.best_iou,
            "best_val_dice": progress.best_dice,
            "best_epoch": progress.best_epoch,
            "history": [dict(h) for h in progress.history],
            "rng": rng_state(),
            "settings_hash": settings_hash,
        }
    )


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def check_run_config(run_dir: Path, settings: dict[str, Any], settings_hash: str) -> None:
    path = run_dir / "config.json"
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old.get("settings_hash") != settings_hash and (run_dir / ckpt.LAST_NAME).exists():
            raise RunConfigError(
                f"{run_dir} holds a run made with other settings (see {path}); delete the folder to retrain it"
            )
    atomic_write_json(path, {**settings, "settings_hash": settings_hash, "iphbench": iphbench.__version__})


def write_status(run_dir: Path, state: str, progress: RunProgress, epochs: int) -> None:
    atomic_write_json(
        run_dir / "status.json",
        {
            "state": state,
            "epoch": len(progress.history),
            "epochs": epochs,
            "best_val_iou": progress.best_iou if progress.best_iou >= 0 else None,
            "time": time.time(),
        },
    )


def write_history(run_dir: Path, progress: RunProgress) -> None:
    atomic_write_text(
        run_dir / "history.csv",
        pd.DataFrame(progress.history, columns=list(HISTORY_COLUMNS)).to_csv(index=False),
    )


def finished_result(run_dir: Path) -> RunResult | None:
    """The stored :class:`RunResult` of a finished run (``done.json``), else None."""
    path = run_dir / "done.json"
    if not path.exists():
        return None
    return RunResult(**json.loads(path.read_text(encoding="utf-8")))


__all__ = [
    "HISTORY_COLUMNS",
    "EpochReport",
    "RunConfigError",
    "RunProgress",
    "RunResult",
    "check_run_config",
    "finished_result",
    "last_state",
    "rng_state",
    "run_settings",
    "set_rng_state",
    "write_history",
    "write_status",
]
