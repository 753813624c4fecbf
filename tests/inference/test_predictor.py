from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from iphbench.inference import fuse_views, predict_patches, threshold
from iphbench.inference.predictor import predict_subject_views
from iphbench.views import VIEWS


class Identity(nn.Module):
    """Returns its input as the logit, so the prediction is sigmoid(input) voxel by voxel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class ShiftRows(nn.Module):
    """Not pointwise: rolls each slice by one row, so a wrong slice order would show."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.roll(x, shifts=1, dims=2)


@pytest.mark.parametrize("view", VIEWS)
def test_identity_model_reproduces_input_in_every_view(view: str) -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(16, 24, 8)).astype(np.float32)
    origins = np.array([[0, 0, 0], [8, 8, 0], [0, 16, 0]])
    probs = predict_subject_views(image, origins, 8, {view: [Identity()]}, torch.device("cpu"), batch_size=5)[
        view
    ]
    expected = np.zeros_like(image)
    for x, y, z in origins:
        block = image[x : x + 8, y : y + 8, z : z + 8]
        expected[x : x + 8, y : y + 8, z : z + 8] = torch.sigmoid(torch.from_numpy(block)).numpy()
    np.testing.assert_array_equal(probs, expected)


@pytest.mark.parametrize("view", VIEWS)
def test_slices_go_back_to_their_own_place(view: str) -> None:
    """A non-pointwise model: the result must equal the model applied to each slice of that view."""
    rng = np.random.default_rng(1)
    patches = rng.normal(size=(2, 8, 8, 8)).astype(np.float32)
    got = predict_patches([ShiftRows()], patches, view, torch.device("cpu"), batch_size=3)
    axis = {"2DAxi": 3, "2DCor": 2, "2DSag": 1}[view]
    # rows of a slice are its first in-plane axis: the smallest remaining spatial axis
    row_axis = {"2DAxi": 1, "2DCor": 1, "2DSag": 2}[view]
    expected = 1 / (1 + np.exp(-np.roll(patches, 1, axis=row_axis)))
    assert axis != row_axis
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_fold_ensemble_averages_probabilities() -> None:
    class Const(nn.Module):
        def __init__(self, value: float) -> None:
            super().__init__()
            self.value = value

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.full_like(x, self.value)

    patches = np.zeros((1, 4, 4, 4), dtype=np.float32)
    got = predict_patches([Const(0.0), Const(np.log(3.0))], patches, "2DAxi", torch.device("cpu"))
    np.testing.assert_allclose(got, (0.5 + 0.75) / 2, rtol=1e-6)


def test_fusion_is_the_mean_of_the_three_views_and_threshold_is_inclusive() -> None:
    p = {
        "2DAxi": np.array([0.9, 0.1, 0.6]),
        "2DCor": np.array([0.3, 0.2, 0.6]),
        "2DSag": np.array([0.3, 0.0, 0.3]),
    }
    fused = fuse_views(p)
    np.testing.assert_allclose(fused, [0.5, 0.1, 0.5], rtol=1e-6)
    assert threshold(fused, 0.5).tolist() == [1, 0, 1]
    with pytest.raises(KeyError, match="2DSag"):
        fuse_views({"2DAxi": p["2DAxi"], "2DCor": p["2DCor"]})
    with pytest.raises(ValueError):
        threshold(fused, 1.0)
