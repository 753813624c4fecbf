"""Acquisition effects of the hard preset: thick slices with partial volume, beam-hardening streaks.

*Partial volume.* A slice of a routine head CT integrates the object over its whole thickness
(4.5-5 mm; the slice sensitivity profile). The hard preset renders every slice as ``k`` thin
sub-slices (at most 1 mm apart; ``k`` odd so the middle one is where the standard cohort samples)
and averages them: an oblique inner table, the top of a ventricle or a lesion's upper pole then
give intermediate values, as in real scans. A voxel's label is the tissue most of its sub-slices
hold (ties to the lower label value), so the mask is where the hemorrhage is the plurality tissue
of the slice thickness, which is what a reader outlines on a thick slice.

*Streaks.* Beam hardening between the dense petrous bones makes dark bands (the "Hounsfield bar")
and dark and bright streaks through the posterior and middle fossae; they are straight lines in
the axial plane, strongest in the lowest slices and gone a few centimetres higher.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iphbench.synth._field import Grid, rotation_matrix
from iphbench.synth.mimics import Ridge, SkullBase
from iphbench.synth.phantom import HeadAnatomy, Tissue


def fine_grid(grid: Grid, k: int) -> Grid:
    """``grid`` with every slice split into ``k`` sub-slices across its thickness."""
    dz = grid.spacing[2]
    return Grid(
        shape=(grid.shape[0], grid.shape[1], grid.shape[2] * k),
        spacing=(grid.spacing[0], grid.spacing[1], dz / k),
        origin=(grid.origin[0], grid.origin[1], grid.origin[2] - dz / 2 + dz / (2 * k)),
    )


def average_subslices(fine: np.ndarray, k: int) -> np.ndarray:
    """Mean over each run of ``k`` sub-slices along the last axis (float32)."""
    nx, ny, nz = fine.shape
    return fine.reshape(nx, ny, nz // k, k).mean(axis=3, dtype=np.float32)


def plurality_labels(fine: np.ndarray, k: int, n_labels: int) -> np.ndarray:
    """The label most of each voxel's ``k`` sub-slices hold (ties: the lower label value)."""
    if k == 1:
        return fine.copy()
    nx, ny, nz = fine.shape
    runs = fine.reshape(-1, k)
    out = runs[:, 0].copy()
    mixed = np.flatnonzero((runs != out[:, None]).any(axis=1))  # most voxels hold one tissue only
    if mixed.size:
        sub = runs[mixed].astype(np.int64)
        voxel = np.repeat(np.arange(mixed.size, dtype=np.int64), k)
        counts = np.bincount(voxel * n_labels + sub.ravel(), minlength=mixed.size * n_labels)
        out[mixed] = counts.reshape(-1, n_labels).argmax(axis=1).astype(np.uint8)
    return out.reshape(nx, ny, nz // k)


@dataclass(frozen=True)
class Streak:
    """A straight streak in the axial plane, full strength along a segment and fading beyond it."""

    point: tuple[float, float]  # one end of its full-strength segment (world x, y in mm)
    angle_rad: float  # its direction in the axial plane
    length_mm: float  # length of the full-strength segment (0: a streak through a point, fading both ways)
    fade_mm: float  # past either end the amplitude falls as exp(-distance / fade_mm)
    sigma_mm: float  # Gaussian half-width across it
    hu: float  # signed amplitude (negative: dark)


@dataclass(frozen=True)
class StreakDraw:
    streaks: tuple[Streak, ...]
    z_full_mm: float  # world z at or below which the streaks are at full strength
    z_none_mm: float  # world z at or above which there are none


def draw_streaks(rng: np.random.Generator, head: HeadAnatomy, base: SkullBase) -> StreakDraw:
    """A dark Hounsfield bar between the petrous ridges and 2-6 dark or bright streaks radiating from the skull base."""
    rot = rotation_matrix(*head.angles_deg)
    centre = np.asarray(head.centre_mm)

    def world(p: np.ndarray) -> np.ndarray:
        return centre + rot @ p

    def on_ridge(ridge: Ridge, t: float) -> np.ndarray:
        start, end = np.asarray(ridge.start), np.asarray(ridge.end)
        lateral = end + (start - end) * (40.0 - abs(end[0])) / (abs(start[0]) - abs(end[0]))  # x = ±40 mm
        return world(end + t * (lateral - end))

    left, right = on_ridge(base.petrous[0], 0.6), on_ridge(base.petrous[1], 0.6)
    bar = Streak(
        point=(float(left[0]), float(left[1])),
        angle_rad=float(np.arctan2(right[1] - left[1], right[0] - left[0])),
        length_mm=float(np.hypot(*(right - left)[:2])),
        fade_mm=rng.uniform(10.0, 25.0),
        sigma_mm=rng.uniform(2.0, 4.0),
        hu=-rng.uniform(20.0, 45.0),
    )
    streaks = [bar]
    ridges = (*base.petrous, *base.sphenoid)
    for _ in range(int(rng.integers(2, 7))):
        p = on_ridge(ridges[int(rng.integers(len(ridges)))], rng.uniform(0.0, 1.0))
        dark = rng.random() < 0.6
        streaks.append(
            Streak(
                point=(float(p[0]), float(p[1])),
                angle_rad=rng.uniform(-np.pi, np.pi),
                length_mm=0.0,
                fade_mm=rng.uniform(25.0, 60.0),
                sigma_mm=rng.uniform(0.8, 2.0),
                hu=-rng.uniform(15.0, 40.0) if dark else rng.uniform(10.0, 30.0),
            )
        )
    z_full = float(np.mean([world(np.asarray(r.end))[2] for r in base.petrous]))
    return StreakDraw(tuple(streaks), z_full_mm=z_full, z_none_mm=z_full + rng.uniform(15.0, 25.0))


def streak_image(grid: Grid, labels: np.ndarray, draw: StreakDraw) -> np.ndarray:
    """The streaks' HU on ``grid`` (float32), inside the head only (air stays air, its noise untouched)."""
    x, y, z = grid.axes()
    out = np.zeros(grid.shape, dtype=np.float32)
    strength = np.clip((draw.z_none_mm - z) / max(draw.z_none_mm - draw.z_full_mm, 1e-6), 0.0, 1.0)
    if not strength.any():
        return out
    plane = np.zeros(grid.shape[:2], dtype=np.float32)
    gx, gy = x[:, None], y[None, :]
    for s in draw.streaks:
        dx, dy = gx - s.point[0], gy - s.point[1]
        across = -dx * np.sin(s.angle_rad) + dy * np.cos(s.angle_rad)
        along = dx * np.cos(s.angle_rad) + dy * np.sin(s.angle_rad)
        beyond = np.maximum(along - s.length_mm, 0.0) + np.maximum(-along, 0.0)  # distance past either end
        fade = np.exp(-beyond / s.fade_mm)
        plane += (s.hu * np.exp(-0.5 * (across / s.sigma_mm) ** 2) * fade).astype(np.float32)
    head = labels != Tissue.AIR
    for j in np.flatnonzero(strength > 0):
        out[:, :, j] = np.where(head[:, :, j], plane * np.float32(strength[j]), 0.0)
    return out
