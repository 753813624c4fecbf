"""Validation of a run after each epoch: loss, pooled Dice and IoU, and the mean per-subject Dice.

* ``val_loss``: the training loss of all validation slices taken as one set (soft counts summed
  over batches, so it equals the loss of one big batch).
* ``val_dice``, ``val_iou``: at threshold 0.5, over all validation voxels pooled — the paper
  keeps the model with the best validation IoU (section 3.5; never training IoU).
* ``val_subject_dice``: Dice per validation subject over that subject's validation slices, then
  the mean over subjects that hold lesion there. A pooled score is dominated by the largest
  hematomas; the mean over subjects weighs a 1 mL bleed like a 60 mL one, as the benchmark's
  per-subject tables do, so the ``iphbench`` recipe selects on it.

Everything accumulates on the device; the host reads the result once.
"""

from __future__ import annotations

import torch
from torch import Tensor

from iphbench.training.data import SliceSet
from iphbench.training.engine import Engine
from iphbench.training.loss import SoftCounts

#: Largest validation batch on CUDA or when compiled (no gradients are kept, so it can be large).
EVAL_BATCH = 2048
#: Validation batch of an eager CPU run (the CPU results stay those of earlier versions).
CPU_EVAL_BATCH = 256


def eval_batch_size(train_batch: int, n: int, engine: Engine) -> int:
    """Slices per validation batch.

    Eager on the CPU: ``max(train_batch, 256)``, as before. On CUDA or compiled: the power of two
    at or above ``n``, at most :data:`EVAL_BATCH`, so a whole small validation set is one batch
    and the compiled graph's few possible shapes are shared by every run of a grid.
    """
    if engine.device.type != "cuda" and engine.compile_mode is None:
        return max(train_batch, CPU_EVAL_BATCH)
    return max(1, min(EVAL_BATCH, 1 << max(0, n - 1).bit_length()))


@torch.no_grad()
def validate(engine: Engine, data: SliceSet, batch_size: int) -> dict[str, float]:
    """Validation metrics of ``engine``'s model on ``data`` (see the module docstring).

    With a compiled engine every batch has ``batch_size`` slices (the last one padded, its padding
    weighted 0), so one graph serves the whole validation.
    """
    engine.model.eval()
    pad = engine.compile_mode is not None
    ones = torch.ones(batch_size, device=engine.device) if pad else None
    soft: Tensor | None = None
    per_subject = torch.zeros(data.n_subjects, 3, device=engine.device, dtype=torch.float64)  # tp, fp, fn
    for start in range(0, data.n, batch_size):
        stop = min(start + batch_size, data.n)
        x, y = data.chunk(start, stop)
        weight = ones
        if pad and stop - start < batch_size:
            x, y, weight = _padded(x, y, batch_size)
        engine.mark_step()
        s, hard = engine.eval_fn(x, y, weight)
        soft = s if soft is None else soft + s
        subject = data.subject[start:stop] if data.subject is not None else torch.zeros(stop - start)
        per_subject.index_add_(
            0, subject.to(engine.device, torch.long, non_blocking=True), hard[: stop - start].double()
        )
    assert soft is not None
    loss = engine.loss_fn.from_counts(SoftCounts(*soft.unbind()))
    tp, fp, fn = per_subject.sum(0)
    has_lesion = ((per_subject[:, 0] + per_subject[:, 2]) > 0).double()
    dice_s = (
        2 * per_subject[:, 0] / (2 * per_subject[:, 0] + per_subject[:, 1] + per_subject[:, 2]).clamp_min(1)
    )
    n_lesion = has_lesion.sum()
    subject_dice = torch.where(n_lesion > 0, (dice_s * has_lesion).sum() / n_lesion.clamp_min(1), 1.0)
    tp_, fp_, fn_, sd, vl = torch.stack([tp, fp, fn, subject_dice, loss.double()]).tolist()  # one sync
    denom = tp_ + fp_ + fn_
    return {
        "val_loss": vl,
        "val_dice": 2 * tp_ / (2 * tp_ + fp_ + fn_) if denom > 0 else 1.0,
        "val_iou": tp_ / denom if denom > 0 else 1.0,
        "val_subject_dice": sd,
    }


def _padded(x: Tensor, y: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor]:
    """``x`` and ``y`` padded with zero slices to ``size``, and the weights (1 real, 0 padding)."""
    n = x.shape[0]
    extra = (size - n, *x.shape[1:])
    xp = torch.cat([x, x.new_zeros(extra)]).contiguous(memory_format=_format(x))
    yp = torch.cat([y, y.new_zeros(extra)])
    weight = torch.cat([x.new_ones(n, dtype=torch.float32), x.new_zeros(size - n, dtype=torch.float32)])
    return xp, yp, weight


def _format(x: Tensor) -> torch.memory_format:
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


__all__ = ["EVAL_BATCH", "eval_batch_size", "validate"]
