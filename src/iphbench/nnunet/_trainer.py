"""nnU-Net's default trainer as a study runs it (imports nnunetv2: load this module lazily).

:class:`IphbenchTrainer` is ``nnUNetTrainer`` with three differences, none of which touches
what it learns:

* it writes the run's ``status.json`` after every epoch, so the study's progress table
  shows nnU-Net folds like any other run;
* it never writes ``checkpoint_best.pth``: nnU-Net would pick that checkpoint on its pseudo
  Dice of the held-out subjects, which are the study's test subjects; iphbench always
  scores ``checkpoint_final``;
* it is built by :func:`build_trainer` with the study's epochs and iterations (nnU-Net's
  defaults when the study leaves them unset) and on the study's device.

It is instantiated directly, never looked up by name, so nnU-Net need not find it among its
own trainer classes; prediction rebuilds the network through ``nnUNetTrainer``'s
``build_network_architecture``, which this class does not change.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from iphbench.nnunet.run import write_status


class IphbenchTrainer(nnUNetTrainer):
    """``nnUNetTrainer`` reporting to the study's run folder; see the module docstring."""

    status_path: Path | None = None

    def save_checkpoint(self, filename: str) -> None:
        if os.path.basename(filename) == "checkpoint_best.pth":
            return  # chosen on the held-out (test) subjects: never kept
        super().save_checkpoint(filename)

    def on_epoch_end(self) -> None:
        super().on_epoch_end()  # increments current_epoch
        if self.status_path is not None:
            write_status(self.status_path, "running", "train", int(self.current_epoch), int(self.num_epochs))


def build_trainer(
    plans: dict[str, Any],
    configuration: str,
    fold: int,
    dataset_json: dict[str, Any],
    device: torch.device,
    epochs: int,
    iterations_per_epoch: int,
    val_iterations_per_epoch: int,
    continue_training: bool,
    status_path: Path | None = None,
) -> IphbenchTrainer:
    """An :class:`IphbenchTrainer` for one fold (nnU-Net's folders must already point at the study)."""
    trainer = IphbenchTrainer(
        plans={**plans, "continue_training": continue_training},
        configuration=configuration,
        fold=fold,
        dataset_json=dataset_json,
        device=device,
    )
    # nnU-Net moves any CUDA device to index 0 (it expects CUDA_VISIBLE_DEVICES); the study's
    # local executor gives each worker its own cuda:N, so put the device back before the
    # network is built (initialize()).
    trainer.device = device
    if device.type == "cuda":
        torch.cuda.set_device(device)
    trainer.num_epochs = epochs
    trainer.num_iterations_per_epoch = iterations_per_epoch
    trainer.num_val_iterations_per_epoch = val_iterations_per_epoch
    trainer.status_path = status_path
    return trainer


def trained_weights(trainer: IphbenchTrainer) -> dict[str, torch.Tensor]:
    """The trained network's weights on the CPU (without a torch.compile wrapper)."""
    net: Any = trainer.network
    net = getattr(net, "_orig_mod", net)
    return {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}


__all__ = ["IphbenchTrainer", "build_trainer", "trained_weights"]
