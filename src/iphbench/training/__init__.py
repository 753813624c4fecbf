"""Training (paper section 3.4-3.5): loss, subject-level folds, one run's trainer and its checkpoints (the grid: ``iphbench.study``).

Public API:
    - :class:`DiceFocalLoss` (eq. 1 + eq. 2), :func:`make_folds`,
    - :func:`train_run` (one model × view × fold), :func:`load_model` (a run's best checkpoint),
"""

from __future__ import annotations

from iphbench.training.checkpoint import load_model
from iphbench.training.folds import make_folds, read_folds, write_folds
from iphbench.training.loss import DiceFocalLoss, binary_focal_loss, dice_fbeta_loss
from iphbench.training.trainer import EpochReport, RunResult, StopRun, train_run

__all__ = [
    "DiceFocalLoss",
    "EpochReport",
    "RunResult",
    "StopRun",
    "binary_focal_loss",
    "dice_fbeta_loss",
    "load_model",
    "make_folds",
    "read_folds",
    "train_run",
    "write_folds",
]
