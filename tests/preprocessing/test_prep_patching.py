"""Zero-padding to multiples of the patch size, the patch grid and patch selection (paper section 3.2)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iphbench.preprocessing.patching import (
    extract_patches,
    pad_to_multiple,
    padded_shape,
    patch_counts,
    patch_origins,
    scatter_patches,
    select_patches,
    unpad,
)


def test_padded_shape_and_pad_widths() -> None:
    assert padded_shape((512, 512, 38), 64) == (512, 512, 64)
    assert padded_shape((65, 1, 128), 64) == (128, 64, 128)
    a = np.ones((70, 64, 10), np.uint8)
    padded, pad = pad_to_multiple(a, 64)
    assert padded.shape == (128, 64, 64)
    assert pad == ((0, 58), (0, 0), (0, 54))
    assert padded[:70, :, :10].all() and padded.sum() == a.sum()  # data first, zeros after


@settings(max_examples=25, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 20), st.integers(1, 20), st.integers(1, 20)),
    size=st.integers(1, 8),
    seed=st.integers(0, 1000),
)
def test_pad_patch_unpatch_unpad_round_trip_is_exact(
    shape: tuple[int, int, int], size: int, seed: int
) -> None:
    a = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    padded, pad = pad_to_multiple(a, size)
    assert all(n % size == 0 for n in padded.shape)
    origins = patch_origins(padded.shape, size)
    patches = extract_patches(padded, origins, size)
    back = scatter_patches(patches, origins, padded.shape)
    assert np.array_equal(back, padded)
    assert np.array_equal(unpad(back, pad), a)


def test_patch_origins_grid() -> None:
    origins = patch_origins((128, 64, 192), 64)
    assert origins.shape == (6, 3)
    assert origins.dtype == np.int64
    assert {tuple(o) for o in origins} == {(x, 0, z) for x in (0, 64) for z in (0, 64, 128)}
    with pytest.raises(ValueError, match="pad_to_multiple"):
        patch_origins((100, 64, 64), 64)


def test_selection_counts_on_constructed_volumes() -> None:
    size = 8
    shape = (32, 24, 16)  # 4 x 3 x 2 = 24 patches
    mask = np.zeros(shape, np.uint8)
    brain = np.zeros(shape, np.uint8)
    mask[3, 3, 3] = 1  # patch (0, 0, 0)
    mask[15, 15, 15] = 1  # patch (8, 8, 8)
    mask[16, 16, 8] = 1  # patch (16, 16, 8): touches the corner of its patch only
    brain[4:20, 4:12, 2:10] = 1  # x patches 0,8,16 × y patches 0,8 × z patches 0,8 = 12 patches
    lesion = select_patches(mask, brain, size, "lesion")
    assert {tuple(o) for o in lesion} == {(0, 0, 0), (8, 8, 8), (16, 16, 8)}
    in_brain = select_patches(mask, brain, size, "brain")
    assert len(in_brain) == 12
    assert {tuple(o) for o in in_brain} == {(x, y, z) for x in (0, 8, 16) for y in (0, 8) for z in (0, 8)}
    counts = patch_counts(brain, size)
    assert counts.shape == (4, 3, 2)
    assert counts.sum() == brain.sum()
    assert counts[0, 0, 0] == 4 * 4 * 6


def test_selection_errors() -> None:
    with pytest.raises(ValueError, match="valid modes"):
        select_patches(np.zeros((8, 8, 8)), None, 8, "all")
    with pytest.raises(ValueError, match="needs the brain"):
        select_patches(np.zeros((8, 8, 8)), None, 8, "brain")


def test_scatter_subset_fills_the_rest() -> None:
    a = np.arange(16**3, dtype=np.float32).reshape(16, 16, 16)
    origins = np.array([[0, 8, 0], [8, 0, 8]])
    back = scatter_patches(extract_patches(a, origins, 8), origins, a.shape, fill=-1)
    assert np.array_equal(back[0:8, 8:16, 0:8], a[0:8, 8:16, 0:8])
    assert np.array_equal(back[8:16, 0:8, 8:16], a[8:16, 0:8, 8:16])
    assert (back == -1).sum() == 16**3 - 2 * 8**3
