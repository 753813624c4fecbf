"""The paper's loss (eq. 1-2) against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from iphbench.training.loss import (
    DiceFocalLoss,
    binary_focal_loss,
    dice_fbeta_loss,
    focal_elementwise,
)

P = [0.8, 0.3, 0.6, 0.1]
G = [1.0, 0.0, 1.0, 0.0]


def _logits(p: list[float]) -> torch.Tensor:
    return torch.tensor([math.log(x / (1 - x)) for x in p], dtype=torch.float64).reshape(1, 1, 2, 2)


def _target() -> torch.Tensor:
    return torch.tensor(G, dtype=torch.float64).reshape(1, 1, 2, 2)


def test_dice_f1_matches_hand_value() -> None:
    # TP = 0.8 + 0.6 = 1.4, FP = 0.3 + 0.1 = 0.4, FN = 0.2 + 0.4 = 0.6
    expected = 1 - (2 * 1.4) / (2 * 1.4 + 0.6 + 0.4)  # = 1 - 2.8/3.8
    got = float(dice_fbeta_loss(_logits(P), _target(), beta=1.0, smooth=0.0))
    assert got == pytest.approx(expected, abs=1e-6)
    assert got == pytest.approx(0.2631579, abs=1e-6)


def test_dice_beta2_weights_false_negatives() -> None:
    expected = 1 - (5 * 1.4) / (5 * 1.4 + 4 * 0.6 + 0.4)  # = 1 - 7/9.8
    got = float(dice_fbeta_loss(_logits(P), _target(), beta=2.0, smooth=0.0))
    assert got == pytest.approx(expected, abs=1e-6)


def test_dice_is_over_the_whole_batch_not_per_image() -> None:
    logits = _logits(P).reshape(2, 1, 1, 2)
    target = _target().reshape(2, 1, 1, 2)
    assert float(dice_fbeta_loss(logits, target, smooth=0.0)) == pytest.approx(1 - 2.8 / 3.8, abs=1e-6)


def test_focal_alpha_on_positives_one_minus_alpha_on_negatives() -> None:
    a, g = 0.25, 2.0
    terms = [
        -a * (1 - 0.8) ** g * math.log(0.8),  # positive, p = 0.8
        -(1 - a) * 0.3**g * math.log(1 - 0.3),  # negative, p = 0.3
        -a * (1 - 0.6) ** g * math.log(0.6),
        -(1 - a) * 0.1**g * math.log(1 - 0.1),
    ]
    got = float(binary_focal_loss(_logits(P), _target(), alpha=a, gamma=g))
    assert got == pytest.approx(sum(terms) / 4, rel=1e-5)
    assert got == pytest.approx(0.0118826, abs=1e-6)


def test_focal_as_printed_in_eq2_uses_alpha_on_both_terms() -> None:
    a = 0.25
    terms = [
        -a * 0.2**2 * math.log(0.8),
        -a * 0.3**2 * math.log(0.7),
        -a * 0.4**2 * math.log(0.6),
        -a * 0.1**2 * math.log(0.9),
    ]
    got = float(binary_focal_loss(_logits(P), _target(), alpha=a, alpha_on_negatives="same"))
    assert got == pytest.approx(sum(terms) / 4, rel=1e-5)


def test_focal_gamma0_alpha_half_is_half_bce() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 1, 4, 4)
    y = (torch.rand(3, 1, 4, 4) > 0.5).float()
    got = binary_focal_loss(x, y, alpha=0.5, gamma=0.0)
    assert float(got) == pytest.approx(0.5 * float(F.binary_cross_entropy_with_logits(x, y)), rel=1e-5)


def test_composite_is_sum_and_stable_for_saturated_logits() -> None:
    x = torch.tensor([[[[100.0, -100.0], [-100.0, 100.0]]]], requires_grad=True)
    y = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    loss = DiceFocalLoss()(x, y)
    loss.backward()
    assert torch.isfinite(loss) and x.grad is not None and torch.isfinite(x.grad).all()
    # half right with certainty: F1 = 2·1/(2·1 + 1 + 1) = 0.5; focal of the two wrong voxels ≈ α·100 and (1-α)·100
    assert float(loss.detach()) == pytest.approx(0.5 + (0.25 * 100 + 0.75 * 100) / 4, rel=1e-4)
    per = focal_elementwise(x.detach(), y)
    assert float(per[0, 0, 0, 0]) == pytest.approx(0.0, abs=1e-12)


def test_reduced_in_float32_under_bf16() -> None:
    x = _logits(P).to(torch.bfloat16)
    loss = DiceFocalLoss()(x, _target().to(torch.uint8))
    assert loss.dtype == torch.float32
    ref = DiceFocalLoss()(x.double(), _target())
    assert float(loss) == pytest.approx(float(ref), rel=1e-5)


def test_counts_accumulate_to_the_loss_of_one_batch() -> None:
    torch.manual_seed(1)
    x = torch.randn(6, 1, 8, 8)
    y = (torch.rand(6, 1, 8, 8) > 0.8).float()
    fn = DiceFocalLoss(beta=1.5)
    whole = fn(x, y)
    parts = fn.from_counts(fn.counts(x[:2], y[:2]) + fn.counts(x[2:], y[2:]))
    assert float(parts) == pytest.approx(float(whole), rel=1e-6)


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        dice_fbeta_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 3))
