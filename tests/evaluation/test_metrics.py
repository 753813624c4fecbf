"""Segmentation metrics on hand-computed and analytic cases, the empty-mask policy and input handling."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.ndimage import binary_erosion, gaussian_filter, generate_binary_structure
from scipy.spatial.distance import cdist

from iphbench.evaluation import (
    MetricAccumulator,
    bounding_box,
    dice,
    hd95,
    iou,
    precision,
    recall,
    segmentation_metrics,
    surface_distances,
    volume_ml,
)
from iphbench.evaluation._surface import _distances_ft, _distances_kdtree, _distances_slices, surface_voxels


def brute_directed(a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Reference: surfaces by scipy erosion (outside = background), all pairwise distances."""
    st = generate_binary_structure(a.ndim, 1)
    sa = a & ~binary_erosion(a, structure=st, border_value=0)
    sb = b & ~binary_erosion(b, structure=st, border_value=0)
    d = cdist(np.argwhere(sa) * np.asarray(spacing), np.argwhere(sb) * np.asarray(spacing))
    return d.min(axis=1), d.min(axis=0)


def brute_hd(a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...], q: float = 95.0) -> float:
    dab, dba = brute_directed(a, b, spacing)
    return float(max(np.percentile(dab, q), np.percentile(dba, q)))


def centred_cube(shape: tuple[int, ...], half: int) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[tuple(slice(n // 2 - half, n // 2 + half + 1) for n in shape)] = True
    return m


def random_blob(rng: np.random.Generator, shape: tuple[int, ...], fraction: float = 0.12) -> np.ndarray:
    f = gaussian_filter(rng.standard_normal(shape), 2.0)
    return f > np.quantile(f, 1.0 - fraction)


# ----------------------------------------------------------------------------- overlap metrics


def test_overlap_metrics_hand_computed() -> None:
    ref = np.zeros((6, 6), dtype=bool)
    ref[1:3, 1:3] = True  # 4 voxels
    pred = np.zeros((6, 6), dtype=bool)
    pred[1:3, 2:5] = True  # 6 voxels, 2 of them on ref
    # TP = 2, FP = 4, FN = 2
    assert dice(pred, ref) == pytest.approx(2 * 2 / (2 * 2 + 4 + 2))
    assert iou(pred, ref) == pytest.approx(2 / (2 + 4 + 2))
    assert precision(pred, ref) == pytest.approx(2 / 6)
    assert recall(pred, ref) == pytest.approx(2 / 4)
    f = 2 * precision(pred, ref) * recall(pred, ref) / (precision(pred, ref) + recall(pred, ref))
    assert dice(pred, ref) == pytest.approx(f)  # eq. 3: F-measure = Dice


def test_volume_ml_uses_spacing() -> None:
    m = np.zeros((20, 20, 20), dtype=np.uint8)
    m[:10, :10, :10] = 7  # 1000 voxels, any non-zero value is foreground
    assert volume_ml(m, (0.5, 0.5, 4.0)) == pytest.approx(1.0)
    assert volume_ml(m, (1.0, 1.0, 1.0)) == pytest.approx(1.0)
    assert volume_ml(np.zeros((3, 3)), (1.0, 2.0)) == 0.0


def test_segmentation_metrics_matches_single_functions() -> None:
    rng = np.random.default_rng(3)
    ref, pred = random_blob(rng, (30, 30, 8)), random_blob(rng, (30, 30, 8))
    sp = (0.45, 0.45, 5.0)
    m = segmentation_metrics(pred, ref, sp)
    assert m.status == "ok"
    assert m.dice == pytest.approx(dice(pred, ref))
    assert m.iou == pytest.approx(iou(pred, ref))
    assert m.precision == pytest.approx(precision(pred, ref))
    assert m.recall == pytest.approx(recall(pred, ref))
    assert m.hd95_mm == pytest.approx(hd95(pred, ref, sp))
    assert m.ref_ml == pytest.approx(volume_ml(ref, sp))
    assert m.pred_ml == pytest.approx(volume_ml(pred, sp))
    tp = np.count_nonzero(pred & ref)
    assert m.dice == pytest.approx(2 * tp / (pred.sum() + ref.sum()))
    assert set(m.as_dict()) == {
        "dice",
        "iou",
        "precision",
        "recall",
        "hd95_mm",
        "ref_ml",
        "pred_ml",
        "status",
    }


# ----------------------------------------------------------------------------- analytic d_H95


@pytest.mark.parametrize("spacing", [1.0, 0.7])
def test_concentric_cubes_directed_distances_are_known(spacing: float) -> None:
    """Cube half-widths a < b: every inner surface voxel is exactly (b - a) from the outer surface;
    an outer surface voxel q is sqrt(sum(max(|q_i| - a, 0)^2)) from the inner one."""
    a, b, shape = 3, 6, (17, 17, 17)
    inner, outer = centred_cube(shape, a), centred_cube(shape, b)
    sp = (spacing,) * 3
    d_in_out, d_out_in = surface_distances(inner, outer, sp)
    np.testing.assert_allclose(d_in_out, (b - a) * spacing)

    q = np.argwhere(surface_voxels(np.pad(outer, 1))) - 8  # outer surface voxels, centred coordinates
    expected = np.sqrt((np.maximum(np.abs(q) - a, 0) ** 2).sum(axis=1)) * spacing
    np.testing.assert_allclose(np.sort(d_out_in), np.sort(expected))

    want = max((b - a) * spacing, float(np.percentile(expected, 95)))
    assert hd95(inner, outer, sp) == pytest.approx(want)
    assert hd95(inner, outer, sp, percentile=100) == pytest.approx(math.sqrt(3) * (b - a) * spacing)


def test_concentric_spheres_radius_difference() -> None:
    """Balls of radius r1 < r2 (mm): every distance from the inner surface is r2 - r1 up to one voxel."""
    sp = (0.5, 0.5, 0.5)
    n = 41
    g = (np.indices((n, n, n)) - n // 2) * 0.5
    r = np.sqrt((g**2).sum(axis=0))
    r1, r2 = 4.0, 8.0
    inner, outer = r <= r1, r <= r2
    d_in_out, d_out_in = surface_distances(inner, outer, sp)
    assert np.all(np.abs(d_in_out - (r2 - r1)) <= 0.5 * math.sqrt(3))
    assert np.all(np.abs(d_out_in - (r2 - r1)) <= 0.5 * math.sqrt(3))
    assert abs(hd95(inner, outer, sp) - (r2 - r1)) <= 0.5
    assert hd95(inner, outer, sp) == pytest.approx(brute_hd(inner, outer, sp))


def test_box_shifted_across_thick_slices_in_mm() -> None:
    """A box moved by two 5 mm slices: the bottom face is 10 mm from the other box, the classical
    Hausdorff distance is 10 mm, and the 95th percentile follows the exact distance set."""
    sp = (0.5, 0.5, 5.0)
    ref = np.zeros((20, 20, 12), dtype=bool)
    ref[5:15, 5:15, 2:7] = True
    pred = np.roll(ref, 2, axis=2)
    assert hd95(pred, ref, sp, percentile=100) == pytest.approx(10.0)
    assert hd95(pred, ref, sp) == pytest.approx(brute_hd(pred, ref, sp))
    d_pr, _ = surface_distances(pred, ref, sp)
    assert np.isclose(d_pr, 10.0).sum() == 10 * 10  # the top face of pred: no ref surface within 2 slices


def test_box_shifted_in_plane_in_mm() -> None:
    sp = (0.45, 0.45, 5.0)
    ref = np.zeros((24, 24, 6), dtype=bool)
    ref[6:16, 6:16, 1:5] = True
    pred = np.roll(ref, 3, axis=0)
    assert hd95(pred, ref, sp, percentile=100) == pytest.approx(3 * 0.45)
    assert hd95(pred, ref, sp) == pytest.approx(brute_hd(pred, ref, sp))


def test_2d_squares() -> None:
    sp = (0.8, 0.6)
    inner, outer = centred_cube((21, 21), 3), centred_cube((21, 21), 5)
    d_in_out, _ = surface_distances(inner, outer, sp)
    # an inner edge voxel is 2 voxels from the outer edge along its own axis
    assert d_in_out.min() == pytest.approx(2 * 0.6)
    assert hd95(inner, outer, sp) == pytest.approx(brute_hd(inner, outer, sp))
    assert dice(inner, outer) == pytest.approx(2 * 49 / (49 + 121))


def test_voxels_on_the_array_border_are_surface() -> None:
    """Outside the array is background: a mask filling the whole array has its outer shell as surface."""
    full = np.ones((6, 7, 5), dtype=bool)
    smaller = full.copy()
    smaller[0] = False
    sp = (1.0, 1.0, 2.0)
    assert hd95(full, smaller, sp) == pytest.approx(brute_hd(full, smaller, sp))
    d_full, d_small = surface_distances(full, smaller, sp)
    assert d_full.size == full.size - 4 * 5 * 3  # shell of a 6x7x5 block
    assert d_small.size == smaller.sum() - 3 * 5 * 3


def test_all_methods_and_crop_give_the_brute_force_distances() -> None:
    rng = np.random.default_rng(7)
    for sp in [(0.45, 0.45, 5.0), (1.0, 1.0, 1.0), (5.0, 0.5, 0.7)]:
        a, b = random_blob(rng, (24, 20, 10)), random_blob(rng, (24, 20, 10))
        want_ab, want_ba = brute_directed(a, b, sp)
        for method in ("auto", "edt", "kdtree"):
            d_ab, d_ba = surface_distances(a, b, sp, method=method)  # type: ignore[arg-type]
            np.testing.assert_allclose(d_ab, want_ab, atol=1e-9)
            np.testing.assert_allclose(d_ba, want_ba, atol=1e-9)
        # the engines directly, on the padded crop of the whole array
        sa, sb = surface_voxels(np.pad(a, 1)), surface_voxels(np.pad(b, 1))
        for engine in (_distances_ft, _distances_slices, _distances_kdtree):
            np.testing.assert_allclose(engine(sb, sa, sp), want_ab, atol=1e-9)
        # the same masks inside a much larger array: the crop changes nothing
        big_a, big_b = np.zeros((90, 70, 30), bool), np.zeros((90, 70, 30), bool)
        big_a[40:64, 30:50, 11:21], big_b[40:64, 30:50, 11:21] = a, b
        assert hd95(big_a, big_b, sp) == pytest.approx(brute_hd(a, b, sp))


def test_input_types_and_memory_layouts() -> None:
    rng = np.random.default_rng(11)
    a, b = random_blob(rng, (19, 23, 7)), random_blob(rng, (19, 23, 7))
    sp = (0.5, 0.6, 3.0)
    want = hd95(a, b, sp)
    assert hd95(a.astype(np.uint8) * 255, b.astype(np.uint8), sp) == pytest.approx(want)
    assert hd95(a.astype(np.float32) * 0.5, b.astype(np.int16), sp) == pytest.approx(want)
    assert hd95(np.asfortranarray(a), np.asfortranarray(b), sp) == pytest.approx(want)
    # a non-contiguous view (every other voxel) against its own copy
    assert hd95(a[::2, ::2], np.ascontiguousarray(b[::2, ::2]), sp) == pytest.approx(
        brute_hd(a[::2, ::2], b[::2, ::2], sp)
    )
    assert dice(a.astype(np.uint8), b) == pytest.approx(dice(a, b))


@pytest.mark.parametrize("shape", [(13,), (9, 11), (8, 16, 5), (5, 7, 9), (64, 3, 24)])
def test_bounding_box_matches_nonzero(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(sum(shape))
    for density in (0.0, 0.002, 0.05):
        m = rng.random(shape) < density
        box = bounding_box(m)
        nz = np.nonzero(m)
        if not m.any():
            assert box is None
            continue
        assert box == tuple((int(ix.min()), int(ix.max())) for ix in nz)
        assert bounding_box(np.asfortranarray(m)) == box
        assert bounding_box(m.astype(np.float64)) == box


# ----------------------------------------------------------------------------- empty masks


def test_both_empty() -> None:
    z = np.zeros((10, 10, 4), dtype=bool)
    m = segmentation_metrics(z, z, (1.0, 1.0, 3.0))
    assert (m.dice, m.iou, m.hd95_mm, m.ref_ml, m.pred_ml, m.status) == (
        1.0,
        1.0,
        0.0,
        0.0,
        0.0,
        "both_empty",
    )
    assert math.isnan(m.precision) and math.isnan(m.recall)
    assert hd95(z, z, (1.0, 1.0, 3.0)) == 0.0 and dice(z, z) == 1.0 and iou(z, z) == 1.0


def test_missed_and_false_alarm() -> None:
    z = np.zeros((10, 10, 4), dtype=bool)
    lesion = z.copy()
    lesion[2:5, 2:5, 1:3] = True
    sp = (0.5, 0.5, 5.0)
    missed = segmentation_metrics(z, lesion, sp)
    assert missed.status == "missed"
    assert (missed.dice, missed.iou, missed.recall) == (0.0, 0.0, 0.0)
    assert math.isnan(missed.hd95_mm) and math.isnan(missed.precision)
    assert missed.ref_ml == pytest.approx(18 * 1.25 / 1000) and missed.pred_ml == 0.0

    alarm = segmentation_metrics(lesion, z, sp)
    assert alarm.status == "false_alarm"
    assert (alarm.dice, alarm.iou, alarm.precision) == (0.0, 0.0, 0.0)
    assert math.isnan(alarm.hd95_mm) and math.isnan(alarm.recall)
    assert math.isnan(hd95(lesion, z, sp))

    d_pred, d_ref = surface_distances(z, lesion, sp)
    assert d_pred.size == 0 and d_ref.size == 18 and np.all(np.isinf(d_ref))


# ----------------------------------------------------------------------------- validation


def test_errors_name_the_problem() -> None:
    a = np.zeros((4, 5, 6), dtype=bool)
    with pytest.raises(ValueError, match=r"\(4, 5, 6\).*\(4, 5, 7\)"):
        dice(a, np.zeros((4, 5, 7), dtype=bool))
    with pytest.raises(ValueError, match="one voxel size in mm per array axis"):
        hd95(a, a, (1.0, 1.0))
    with pytest.raises(ValueError, match="finite and positive"):
        segmentation_metrics(a, a, (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="2D or 3D"):
        iou(np.zeros((2, 2, 2, 2)), np.zeros((2, 2, 2, 2)))
    with pytest.raises(ValueError, match="percentile"):
        hd95(a, a, (1.0, 1.0, 1.0), percentile=101)
    b = a.copy()
    b[1, 1, 1] = True
    with pytest.raises(ValueError, match="method"):
        hd95(b, np.roll(b, 1, axis=0), (1.0, 1.0, 1.0), method="fast")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- accumulator


def test_accumulator_counts_and_aggregates() -> None:
    sp = (1.0, 1.0, 2.0)
    z = np.zeros((12, 12, 5), dtype=bool)
    lesion = z.copy()
    lesion[3:8, 3:8, 1:4] = True
    acc = MetricAccumulator()
    ok = acc.add(lesion, lesion, sp, subject="s1", site="A")
    shifted = acc.add(np.roll(lesion, 1, axis=0), lesion, sp, subject="s2", site="A")
    acc.add(z, lesion, sp, subject="s3", site="B")
    acc.add(lesion, z, sp, subject="s4", site="B")
    acc.add(z, z, sp, subject="s5", site="B")
    assert len(acc) == 5
    assert acc.counts == {"ok": 2, "both_empty": 1, "missed": 1, "false_alarm": 1}
    agg = acc.aggregate()
    assert agg["n"] == 5 and agg["missed"] == 1 and agg["false_alarm"] == 1
    dices = [1.0, shifted.dice, 0.0, 0.0, 1.0]
    assert agg["dice_mean"] == pytest.approx(np.mean(dices))
    assert agg["dice_sd"] == pytest.approx(np.std(dices, ddof=1))
    # d_H95 is NaN for the missed and false-alarm subjects: they are counted, not averaged
    assert agg["hd95_mm_n"] == 3
    assert agg["hd95_mm_mean"] == pytest.approx(np.mean([ok.hd95_mm, shifted.hd95_mm, 0.0]))
    records = acc.records()
    assert [r["subject"] for r in records] == ["s1", "s2", "s3", "s4", "s5"]
    assert records[2]["status"] == "missed" and records[2]["site"] == "B"
    frame = acc.to_frame()
    assert list(frame.columns[:2]) == ["subject", "site"] and len(frame) == 5
    with pytest.raises(ValueError, match="clash"):
        acc.add(lesion, lesion, sp, dice=1)
    acc.reset()
    assert len(acc) == 0 and acc.counts["ok"] == 0
