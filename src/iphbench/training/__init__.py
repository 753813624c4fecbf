"""Training (paper section 3.4-3.5): loss, subject-level folds, the trainer, and the study grid.

Public API:
    - :class:`DiceFocalLoss` (eq. 1 + eq. 2), :func:`make_folds`,
    - :func:`train_run` (one model × view × fold), :func:`load_model` (a run's best checkpoint),
    - :func:`run_study` (the whole grid, local or on Ray).
"""

from __future__ import annotations

from iphbench.training.checkpoint import load_model
from iphbench.training.folds import make_folds, read_folds, write_folds
from iphbench.training.grid import GridResult, RunSpec, StudyError, run_study
from iphbench.training.loss import DiceFocalLoss, binary_focal_loss, dice_fbeta_loss
from iphbench.training.trainer import EpochReport, RunResult, StopRun, train_run

__all__ = [
    "DiceFocalLoss",
    "EpochReport",
    "GridResult",
    "RunResult",
    "RunSpec",
    "StopRun",
    "StudyError",
    "binary_focal_loss",
    "dice_fbeta_loss",
    "load_model",
    "make_folds",
    "read_folds",
    "run_study",
    "train_run",
    "write_folds",
]
