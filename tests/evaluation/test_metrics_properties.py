"""Property-based tests of the metrics (hypothesis): symmetry, bounds, identities, brute-force equality."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.ndimage import binary_erosion, generate_binary_structure
from scipy.spatial.distance import cdist

from iphbench.evaluation import dice, hd95, iou, precision, recall, segmentation_metrics

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def mask_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    ndim = draw(st.sampled_from([2, 3]))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim)))
    a = draw(arrays(np.bool_, shape))
    b = draw(arrays(np.bool_, shape))
    spacing = tuple(draw(st.lists(st.floats(0.3, 6.0), min_size=ndim, max_size=ndim)))
    return a, b, spacing


def brute_hd(a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...], q: float) -> float:
    st_ = generate_binary_structure(a.ndim, 1)
    sa = a & ~binary_erosion(a, structure=st_, border_value=0)
    sb = b & ~binary_erosion(b, structure=st_, border_value=0)
    d = cdist(np.argwhere(sa) * np.asarray(spacing), np.argwhere(sb) * np.asarray(spacing))
    return float(max(np.percentile(d.min(axis=1), q), np.percentile(d.min(axis=0), q)))


@SETTINGS
@given(mask_pairs())
def test_symmetry_and_bounds(case: tuple[np.ndarray, np.ndarray, tuple[float, ...]]) -> None:
    a, b, sp = case
    d = dice(a, b)
    assert d == dice(b, a)
    assert 0.0 <= d <= 1.0
    assert iou(a, b) == iou(b, a)
    assert math.isclose(iou(a, b), d / (2.0 - d), rel_tol=1e-12, abs_tol=1e-12)
    h_ab, h_ba = hd95(a, b, sp), hd95(b, a, sp)
    if a.any() != b.any():
        assert math.isnan(h_ab) and math.isnan(h_ba)
    else:
        assert h_ab == h_ba
        assert h_ab >= 0.0
    # precision and recall swap when the masks swap
    p, r = precision(a, b), recall(b, a)
    assert (math.isnan(p) and math.isnan(r)) or p == r


@SETTINGS
@given(mask_pairs(), st.sampled_from([50.0, 95.0, 100.0]))
def test_hd_equals_brute_force(case: tuple[np.ndarray, np.ndarray, tuple[float, ...]], q: float) -> None:
    a, b, sp = case
    if not (a.any() and b.any()):
        return
    want = brute_hd(a, b, sp, q)
    for method in ("edt", "kdtree"):
        assert math.isclose(hd95(a, b, sp, percentile=q, method=method), want, rel_tol=1e-9, abs_tol=1e-9)


@SETTINGS
@given(mask_pairs())
def test_identical_masks(case: tuple[np.ndarray, np.ndarray, tuple[float, ...]]) -> None:
    a, _, sp = case
    m = segmentation_metrics(a, a.copy(), sp)
    assert m.hd95_mm == 0.0
    assert m.dice == 1.0 and m.iou == 1.0
    assert m.status == ("ok" if a.any() else "both_empty")
    assert m.pred_ml == m.ref_ml
