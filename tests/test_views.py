"""The three orientations as fixed axis permutations (paper section 3.3, DESIGN.md "views")."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iphbench import views

SHAPE = (3, 4, 5)  # distinct extents so a wrong permutation cannot pass


def _volume(shape: tuple[int, ...]) -> np.ndarray:
    return np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)


@pytest.mark.parametrize("view", views.VIEWS)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_round_trip_3d(view: str, backend: str) -> None:
    vol = _volume(SHAPE)
    arr = torch.from_numpy(vol) if backend == "torch" else vol
    slices = views.to_slices(arr, view)
    back = views.from_slices(slices, view, SHAPE)
    assert tuple(back.shape) == SHAPE
    assert np.array_equal(np.asarray(back), vol)


@pytest.mark.parametrize("view", views.VIEWS)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_round_trip_batched_4d(view: str, backend: str) -> None:
    shape = (2, *SHAPE)
    vol = _volume(shape)
    arr = torch.from_numpy(vol) if backend == "torch" else vol
    slices = views.to_slices(arr, view)
    axis = {"2DAxi": 2, "2DCor": 1, "2DSag": 0}[view]
    assert slices.shape[0] == 2 * SHAPE[axis]
    back = views.from_slices(slices, view, shape)
    assert np.array_equal(np.asarray(back), vol)


@pytest.mark.parametrize(
    ("view", "axis", "slice_shape"),
    [("2DAxi", 2, (3, 4)), ("2DCor", 1, (3, 5)), ("2DSag", 0, (4, 5))],
)
def test_slices_are_planes_of_the_documented_axis(view: str, axis: int, slice_shape: tuple[int, int]) -> None:
    vol = _volume(SHAPE)
    slices = views.to_slices(vol, view)
    assert slices.shape == (SHAPE[axis], *slice_shape)
    for k in range(SHAPE[axis]):
        assert np.array_equal(slices[k], np.take(vol, k, axis=axis))


@pytest.mark.parametrize("view", views.VIEWS)
def test_batched_slices_follow_patch_order(view: str) -> None:
    batch = _volume((2, *SHAPE))
    slices = views.to_slices(batch, view)
    per_patch = [views.to_slices(batch[b], view) for b in range(2)]
    assert np.array_equal(slices, np.concatenate(per_patch))


@pytest.mark.parametrize("view", views.VIEWS)
def test_inverse_permutation_undoes_permutation(view: str) -> None:
    perm = views.permutation(view)
    inv = views.inverse_permutation(view)
    assert tuple(perm[i] for i in inv) == (0, 1, 2)


def test_slice_spacing() -> None:
    sp = (0.5, 0.6, 5.0)
    assert views.slice_spacing(sp, "2DAxi") == (0.5, 0.6)
    assert views.slice_spacing(sp, "2DCor") == (0.5, 5.0)
    assert views.slice_spacing(sp, "2DSag") == (0.6, 5.0)


def test_unknown_view_and_bad_dims_raise() -> None:
    with pytest.raises(ValueError, match="valid views"):
        views.check_view("2DObl")
    with pytest.raises(ValueError, match="3D volume or a 4D batch"):
        views.to_slices(np.zeros((2, 2)), "2DAxi")
    with pytest.raises(ValueError, match="3D or 4D"):
        views.from_slices(np.zeros((2, 2, 2)), "2DAxi", (2, 2))


def test_constants() -> None:
    assert views.VIEWS == ("2DAxi", "2DCor", "2DSag")
    assert views.ORIENTATIONS == (*views.VIEWS, "2.5D")
