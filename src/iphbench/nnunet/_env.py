"""nnU-Net's folders pointed at the study, for the duration of one step.

nnU-Net v2 reads its three folders from the environment variables ``nnUNet_raw``,
``nnUNet_preprocessed`` and ``nnUNet_results`` (``nnunetv2.paths``; since v2.8 each time a
path is used). A study never relies on the user's environment: :func:`nnunet_environment`
sets them to ``<study>/nnunet/{raw,preprocessed,results}`` in this process while a step runs
and restores the previous values afterwards. Processes nnU-Net starts inside the step
(preprocessing pools, data-augmentation workers) inherit them; a Ray task or a spawned
worker runs the step in its own process and sets them there the same way.

nnU-Net also sets torch's thread count while planning, restyles matplotlib when it plots its
progress, and prints; all three are contained here (threads and matplotlib settings restored,
prints sent to a log file).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import torch

from iphbench.nnunet import DATASET_NAME, nnunet_root


@dataclass(frozen=True)
class NnunetFolders:
    """The study's nnU-Net folders (docs/nnunet.md, "Study folder")."""

    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def preprocessed(self) -> Path:
        return self.root / "preprocessed"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def dataset_raw(self) -> Path:
        """``raw/Dataset501_iphbench``: dataset.json, imagesTr, labelsTr, cases.csv."""
        return self.raw / DATASET_NAME

    @property
    def dataset_preprocessed(self) -> Path:
        """``preprocessed/Dataset501_iphbench``: plans, splits_final.json, preprocessed cases."""
        return self.preprocessed / DATASET_NAME


def folders(study_dir: str | Path) -> NnunetFolders:
    return NnunetFolders(nnunet_root(Path(study_dir).resolve()))


@contextlib.contextmanager
def nnunet_environment(
    study_dir: str | Path, augmentation_workers: int | None = None, log_path: Path | None = None
) -> Iterator[NnunetFolders]:
    """Point nnU-Net at the study's folders while the block runs.

    Args:
        study_dir: the study folder.
        augmentation_workers: ``nnUNet_n_proc_DA`` (data-augmentation processes); None leaves
            nnU-Net's default.
        log_path: append nnU-Net's printed output to this file instead of the console.
    """
    where = folders(study_dir)
    values = {
        "nnUNet_raw": str(where.raw),
        "nnUNet_preprocessed": str(where.preprocessed),
        "nnUNet_results": str(where.results),
    }
    if augmentation_workers is not None:
        values["nnUNet_n_proc_DA"] = str(augmentation_workers)
    old = {k: os.environ.get(k) for k in values}
    threads = torch.get_num_threads()
    for path in (where.raw, where.preprocessed, where.results):
        path.mkdir(parents=True, exist_ok=True)
    os.environ.update(values)
    try:
        with contextlib.ExitStack() as stack:
            # nnU-Net's progress plot restyles matplotlib for the whole process (seaborn, font_scale 2.5):
            # keep that out of the report's figures when both run in one process
            stack.enter_context(matplotlib.rc_context())
            if log_path is not None:
                log_path.parent.mkdir(parents=True, exist_ok=True)
                log = stack.enter_context(open(log_path, "a", encoding="utf-8", buffering=1))  # live
                stack.enter_context(contextlib.redirect_stdout(log))
            yield where
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        torch.set_num_threads(threads)  # nnU-Net's planner sets its own count


__all__ = ["NnunetFolders", "folders", "nnunet_environment"]
