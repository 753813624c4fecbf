"""d_H95 against MONAI (same definition: equal up to float32) and DeepMind surface-distance (approximate)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from scipy.ndimage import binary_dilation, binary_erosion, gaussian_filter

from iphbench.evaluation import hd95
from iphbench.evaluation._surface import surface_voxels

torch = pytest.importorskip("torch")
monai_metrics = pytest.importorskip("monai.metrics")
sd = pytest.importorskip("surface_distance")

pytestmark = pytest.mark.filterwarnings(
    "ignore::FutureWarning", "ignore::UserWarning", "ignore::DeprecationWarning"
)

SPACINGS = [(1.0, 1.0, 1.0), (0.45, 0.45, 5.0), (0.8, 0.8, 2.5), (0.5, 0.7, 3.0)]


def monai_hd(
    pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...], percentile: float = 95.0
) -> float:
    t = monai_metrics.compute_hausdorff_distance(
        torch.from_numpy(pred)[None, None],
        torch.from_numpy(ref)[None, None],
        include_background=True,
        percentile=percentile,
        spacing=spacing,
    )
    return float(t[0, 0])


def deepmind_hd(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> float:
    return float(sd.compute_robust_hausdorff(sd.compute_surface_distances(ref, pred, spacing), 95))


def noise_blob(rng: np.random.Generator, shape: tuple[int, ...], fraction: float = 0.1) -> np.ndarray:
    """Irregular, possibly fragmented mask that may touch the array border."""
    f = gaussian_filter(rng.standard_normal(shape), 2.5)
    return f > np.quantile(f, 1.0 - fraction)


def lesion(
    rng: np.random.Generator, shape: tuple[int, ...], spacing: tuple[float, ...], centre_shift_mm: float = 0.0
):  # type: ignore[no-untyped-def]
    """A compact lesion-like blob (ellipsoid with a smoothly perturbed radius) inside the array."""
    ext = np.array(shape) * np.array(spacing)
    centre = ext / 2 + rng.uniform(-centre_shift_mm, centre_shift_mm, size=3)
    a = 0.2 * ext[0]
    axes = np.array([a, 0.9 * a, min(max(0.8 * a, 2.2 * spacing[2]), 0.4 * ext[2])]) * rng.uniform(
        0.85, 1.15, 3
    )
    grid = np.stack(
        np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing, strict=True)], indexing="ij")
    )
    r = np.sqrt(sum(((grid[i] - centre[i]) / axes[i]) ** 2 for i in range(3)))
    noise = gaussian_filter(rng.standard_normal(shape), 2.0)
    return r < 1.0 + 0.15 * noise / noise.std()


def perturb(rng: np.random.Generator, ref: np.ndarray, kind: str) -> np.ndarray:
    if kind == "shift":
        return np.roll(
            ref, int(rng.integers(1, 4)) * int(rng.choice([-1, 1])), axis=int(rng.integers(0, ref.ndim))
        )
    if kind == "dilate":
        return binary_dilation(ref, iterations=int(rng.integers(1, 3)))
    if kind == "erode":
        return binary_erosion(ref)
    if kind == "redraw":  # an independent blob of similar shape
        return noise_blob(rng, ref.shape, 0.1) | binary_erosion(ref)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["shift", "dilate", "erode", "redraw"])
@pytest.mark.parametrize("spacing", SPACINGS)
def test_equals_monai_on_random_and_perturbed_masks(kind: str, spacing: tuple[float, ...]) -> None:
    rng = np.random.default_rng(zlib.crc32(repr((kind, spacing)).encode()))
    for _ in range(2):
        ref = noise_blob(rng, (32, 28, 12))
        pred = perturb(rng, ref, kind)
        if not pred.any():
            continue
        ours = hd95(pred, ref, spacing)
        assert ours == pytest.approx(monai_hd(pred, ref, spacing), rel=1e-5, abs=1e-5)
        assert hd95(pred, ref, spacing, percentile=100) == pytest.approx(
            monai_hd(pred, ref, spacing, percentile=100), rel=1e-5, abs=1e-5
        )


def test_equals_monai_in_2d_and_at_the_border() -> None:
    rng = np.random.default_rng(5)
    for _ in range(4):
        ref = noise_blob(rng, (40, 36), 0.3)  # touches the array border
        pred = perturb(rng, ref, "shift")
        sp = (0.45, 0.8)
        assert hd95(pred, ref, sp) == pytest.approx(monai_hd(pred, ref, sp), rel=1e-5, abs=1e-5)
    full = np.ones((8, 9, 6), dtype=bool)
    part = full.copy()
    part[:, :3] = False
    assert hd95(part, full, (0.5, 0.5, 5.0)) == pytest.approx(monai_hd(part, full, (0.5, 0.5, 5.0)), rel=1e-5)


def test_surface_is_monai_edge_definition() -> None:
    from monai.metrics.utils import get_mask_edges

    rng = np.random.default_rng(9)
    for shape in [(20, 18, 9), (25, 31)]:
        pred, ref = noise_blob(rng, shape, 0.3), noise_blob(rng, shape, 0.2)
        edges_pred, edges_ref = get_mask_edges(pred, ref, crop=False)
        np.testing.assert_array_equal(surface_voxels(np.pad(pred, 1)), np.asarray(edges_pred))
        np.testing.assert_array_equal(surface_voxels(np.pad(ref, 1)), np.asarray(edges_ref))


def test_close_to_deepmind_on_lesion_like_masks() -> None:
    """DeepMind places surface elements between voxels and weights them by area, so its d_H95 differs:
    on compact lesions the difference stays within one voxel of the coarsest axis (one slice)."""
    rng = np.random.default_rng(2026)
    rel_diffs = []
    for i in range(12):
        spacing = SPACINGS[i % 4]
        shape = (64, 64, 12) if spacing[2] >= 2.5 else (32, 32, 32)
        ref = lesion(rng, shape, spacing)
        kind = ["shift", "dilate", "erode", "moved"][(i + i // 4) % 4]
        pred = (
            lesion(rng, shape, spacing, centre_shift_mm=2.0) if kind == "moved" else perturb(rng, ref, kind)
        )
        assert pred.any() and ref.any()
        ours, theirs = hd95(pred, ref, spacing), deepmind_hd(pred, ref, spacing)
        assert abs(ours - theirs) <= max(spacing), (kind, spacing, ours, theirs)
        rel_diffs.append(abs(ours - theirs) / max(spacing))
    assert float(np.mean(rel_diffs)) <= 0.25
