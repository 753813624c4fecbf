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

from iphbench.training.data import SliceSet
from iphbench.training.engine import Engine, autocast


@torch.no_grad()
def validate(engine: Engine, data: SliceSet, batch_size: int) -> dict[str, float]:
    """Validation metrics of ``engine``'s model on ``data`` (see the module docstring)."""
    engine.model.eval()
    counts = None
    n_subjects = int(data.subject.max()) + 1 if data.subject is not None and data.n else 1
    per_subject = torch.zeros(n_subjects, 3, device=engine.device, dtype=torch.float64)  # tp, fp, fn
    for start in range(0, data.n, batch_size):
        stop = min(start + batch_size, data.n)
        x, y = data.chunk(start, stop)
        with autocast(engine.device, engine.dtype):
            logits = engine.forward(x)
        c = engine.loss_fn.counts(logits, y)
        counts = c if counts is None else counts + c
        pred = logits.float() > 0.0  # sigmoid(z) > 0.5
        ref = y.bool()
        hard = torch.stack(
            [
                (pred & ref).flatten(1).sum(1),
                (pred & ~ref).flatten(1).sum(1),
                (~pred & ref).flatten(1).sum(1),
            ],
            1,
        ).double()
        subject = data.subject[start:stop] if data.subject is not None else torch.zeros(stop - start)
        per_subject.index_add_(0, subject.to(engine.device, torch.long), hard)
    assert counts is not None
    loss = engine.loss_fn.from_counts(counts)
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


__all__ = ["validate"]
