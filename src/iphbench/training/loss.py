"""The paper's training loss: soft F-beta Dice (eq. 1) plus binary focal loss (eq. 2).

Both terms are computed from logits in float32, so they stay exact under bf16 autocast
(paper section 3.4, "Loss Function").

Note on eq. 2. The paper prints the focal loss as
``FL = -GT·α·(1-PT)^γ·log(PT) - (1-GT)·α·PT^γ·log(1-PT)``, with the same α on both terms.
With a single α on both terms α is only a global scale and balances nothing. The usual form
(Lin et al. 2017; Keras ``segmentation_models.losses.BinaryFocalLoss``, which the authors'
Keras code uses) puts α on the positives and (1-α) on the negatives:
``FL = -GT·α·(1-PT)^γ·log(PT) - (1-GT)·(1-α)·PT^γ·log(1-PT)``.
We implement the usual form by default (``alpha_on_negatives="one_minus"``); set
``alpha_on_negatives="same"`` to get eq. 2 exactly as printed.

Example:
    >>> import torch
    >>> logits = torch.tensor([[[[4.0, -4.0]]]])
    >>> target = torch.tensor([[[[1.0, 0.0]]]])
    >>> round(float(dice_fbeta_loss(logits, target)), 3)
    0.018
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class SoftCounts:
    """Sums over all elements of a batch, in float32: the pieces of both loss terms.

    Adding two ``SoftCounts`` gives the counts of the union, so a loss over a whole validation
    set can be accumulated batch by batch and still equal the loss of one big batch.
    """

    tp: Tensor  # sum of p·g (soft true positives)
    fp: Tensor  # sum of p·(1-g)
    fn: Tensor  # sum of (1-p)·g
    focal_sum: Tensor  # sum of the per-element focal loss
    n: Tensor  # number of elements

    def __add__(self, other: SoftCounts) -> SoftCounts:
        return SoftCounts(
            self.tp + other.tp,
            self.fp + other.fp,
            self.fn + other.fn,
            self.focal_sum + other.focal_sum,
            self.n + other.n,
        )


def _check(logits: Tensor, target: Tensor) -> None:
    if logits.shape != target.shape:
        raise ValueError(
            f"loss: logits have shape {tuple(logits.shape)} but target has {tuple(target.shape)}"
        )


def focal_elementwise(
    logits: Tensor,
    target: Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    alpha_on_negatives: str = "one_minus",
) -> Tensor:
    """Per-element binary focal loss (paper eq. 2, usual α/(1-α) form) from logits, in float32.

    ``log p`` and ``log(1-p)`` come from ``logsigmoid`` so large logits never give ``log(0)``.

    Args:
        logits: raw model outputs, any shape.
        target: ground truth in {0, 1} (or soft labels in [0, 1]), same shape.
        alpha: weight of the positive term (paper: 0.25).
        gamma: focusing exponent (paper: 2.0).
        alpha_on_negatives: ``"one_minus"`` weights negatives by 1-α (Lin 2017, Keras
            segmentation_models); ``"same"`` weights them by α, as eq. 2 is printed.
    """
    _check(logits, target)
    if alpha_on_negatives not in ("one_minus", "same"):
        raise ValueError(f"alpha_on_negatives must be 'one_minus' or 'same', got {alpha_on_negatives!r}")
    x = logits.float()
    g = target.float()
    log_p = F.logsigmoid(x)
    log_1mp = F.logsigmoid(-x)
    # (1-p)^γ and p^γ through exp(γ·log) keep the gradient finite at saturation.
    pos = -alpha * torch.exp(gamma * log_1mp) * log_p
    neg_alpha = (1.0 - alpha) if alpha_on_negatives == "one_minus" else alpha
    neg = -neg_alpha * torch.exp(gamma * log_p) * log_1mp
    return g * pos + (1.0 - g) * neg


def soft_counts(
    logits: Tensor,
    target: Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    alpha_on_negatives: str = "one_minus",
    weight: Tensor | None = None,
) -> SoftCounts:
    """Soft TP/FP/FN and the focal sum of a batch, reduced in float32.

    ``weight`` (one value per sample, 0 or 1) leaves samples out of every count: a batch padded
    to a fixed size (for a compiled validation) counts only its real samples. Nothing here reads
    a value back to the host, so a training step never waits for the GPU.
    """
    _check(logits, target)
    p = torch.sigmoid(logits.float())
    g = target.float()
    focal = focal_elementwise(logits, target, alpha, gamma, alpha_on_negatives)
    if weight is None:
        pg = (p * g).sum()
        # torch.full, not torch.tensor: a tensor made from a host value is a blocking copy on CUDA
        n = torch.full((), float(g.numel()), device=g.device, dtype=torch.float32)
        return SoftCounts(tp=pg, fp=p.sum() - pg, fn=g.sum() - pg, focal_sum=focal.sum(), n=n)
    w = weight.float().reshape(-1, *([1] * (p.dim() - 1)))
    pg = (p * g * w).sum()
    per_sample = float(g[0].numel()) if len(g) else 0.0
    return SoftCounts(
        tp=pg,
        fp=(p * w).sum() - pg,
        fn=(g * w).sum() - pg,
        focal_sum=(focal * w).sum(),
        n=w.sum() * per_sample,
    )


def fbeta_from_counts(counts: SoftCounts, beta: float = 1.0, smooth: float = 1e-5) -> Tensor:
    """Soft F-beta score (paper eq. 1) from soft counts; ``smooth`` keeps an empty batch finite."""
    b2 = beta * beta
    num = (1.0 + b2) * counts.tp + smooth
    return num / ((1.0 + b2) * counts.tp + b2 * counts.fn + counts.fp + smooth)


def loss_from_counts(counts: SoftCounts, beta: float = 1.0, smooth: float = 1e-5) -> Tensor:
    """Dice loss (1 − F_beta over the whole batch) plus the mean focal loss."""
    return (1.0 - fbeta_from_counts(counts, beta, smooth)) + counts.focal_sum / counts.n


def dice_fbeta_loss(logits: Tensor, target: Tensor, beta: float = 1.0, smooth: float = 1e-5) -> Tensor:
    """Soft Dice loss in F-beta form (paper eq. 1): ``1 − F_beta`` over all elements of the batch.

    ``F_beta = ((1+β²)·TP + s) / ((1+β²)·TP + β²·FN + FP + s)`` with soft counts
    ``TP = Σ p·g``, ``FP = Σ p·(1−g)``, ``FN = Σ (1−p)·g`` and ``p = sigmoid(logits)``; the
    whole batch is one set (as Keras segmentation_models' ``DiceLoss(per_image=False)``).
    """
    return 1.0 - fbeta_from_counts(soft_counts(logits, target), beta, smooth)


def binary_focal_loss(
    logits: Tensor,
    target: Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    alpha_on_negatives: str = "one_minus",
) -> Tensor:
    """Mean binary focal loss over all elements (paper eq. 2; see the module note on α)."""
    return focal_elementwise(logits, target, alpha, gamma, alpha_on_negatives).mean()


class DiceFocalLoss(nn.Module):
    """The paper's composite loss ``DL + FL`` (section 3.4), always reduced in float32.

    Args:
        beta: F-beta balance coefficient of the Dice term (paper: 1).
        alpha: focal weight of positives (paper: 0.25).
        gamma: focal exponent (paper: 2.0).
        smooth: small term added to numerator and denominator of F-beta.
        alpha_on_negatives: ``"one_minus"`` (default, usual form) or ``"same"`` (eq. 2 as printed).

    Example:
        >>> import torch
        >>> loss = DiceFocalLoss()
        >>> float(loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))) > 0
        True
    """

    def __init__(
        self,
        beta: float = 1.0,
        alpha: float = 0.25,
        gamma: float = 2.0,
        smooth: float = 1e-5,
        alpha_on_negatives: str = "one_minus",
    ) -> None:
        super().__init__()
        self.beta = beta
        self.alpha = alpha
        self.gamma = gamma
        self.smooth = smooth
        self.alpha_on_negatives = alpha_on_negatives

    def counts(self, logits: Tensor, target: Tensor, weight: Tensor | None = None) -> SoftCounts:
        """Soft counts of a batch, to accumulate a loss over many batches (``weight``: see :func:`soft_counts`)."""
        return soft_counts(logits, target, self.alpha, self.gamma, self.alpha_on_negatives, weight)

    def from_counts(self, counts: SoftCounts) -> Tensor:
        """The loss of the union of the batches whose counts were summed."""
        return loss_from_counts(counts, self.beta, self.smooth)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.from_counts(self.counts(logits, target))


__all__ = [
    "DiceFocalLoss",
    "SoftCounts",
    "binary_focal_loss",
    "dice_fbeta_loss",
    "fbeta_from_counts",
    "focal_elementwise",
    "loss_from_counts",
    "soft_counts",
]
