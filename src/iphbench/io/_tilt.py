"""Gantry-tilted DICOM series: resampling onto a regular grid (shear correction) and back.

A series acquired with a tilted gantry has parallel slices whose origins drift in-plane from one
slice to the next: slice ``k``'s pixel ``(i, j)`` lies at ``p0 + i·sx·row + j·sy·col + k·d`` with a
slice step ``d`` that is not along the slice normal. That grid is sheared; iphbench's pipeline (and
NRRD/MHA, and most viewers' NIfTI qform) need an orthogonal one. As dcm2niix and SimpleITK's tilt
correction do, each slice is shifted in-plane by its own offset (linear interpolation) onto the
regular grid ``p0' + i'·sx·row + j'·sy·col + k·dz·normal``: same slice planes, same pixel spacing,
``dz`` the spacing along the normal. The regular grid is widened in-plane so that no acquired
voxel falls outside it (the new corners hold the series' minimum, air or padding).

The way back (``to_acquired``) shifts each slice back, nearest neighbour, so a mask predicted on
the regular grid lands on the acquired slices (what a DICOM SEG references).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class TiltGrid:
    """How the acquired (sheared) slices sit on the regular grid, in voxels of the in-plane axes."""

    acquired_shape: tuple[int, int, int]  # (columns i, rows j, slices k) as acquired
    shifts: tuple[tuple[float, float], ...]  # per slice k: in-plane offset (i, j) of its origin from slice 0
    offset: tuple[int, int]  # regular index (0, 0) is acquired-slice-0 index ``offset`` (<= 0)
    angle_deg: float  # the gantry tilt: angle between the slice step and the slice normal

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of the regular grid."""
        u = [s[0] for s in self.shifts]
        v = [s[1] for s in self.shifts]
        nx, ny, nz = self.acquired_shape
        return (
            nx + math.ceil(max(u)) - self.offset[0],
            ny + math.ceil(max(v)) - self.offset[1],
            nz,
        )

    def to_meta(self) -> dict[str, Any]:
        """JSON-able form kept in ``SourceGrid.meta["gantry_tilt"]``."""
        return {
            "acquired_shape": list(self.acquired_shape),
            "shifts": [list(s) for s in self.shifts],
            "offset": list(self.offset),
            "angle_deg": self.angle_deg,
        }

    @classmethod
    def from_meta(cls, data: dict[str, Any]) -> TiltGrid:
        return cls(
            acquired_shape=tuple(int(v) for v in data["acquired_shape"]),  # type: ignore[arg-type]
            shifts=tuple((float(a), float(b)) for a, b in data["shifts"]),
            offset=(int(data["offset"][0]), int(data["offset"][1])),
            angle_deg=float(data["angle_deg"]),
        )


def tilt_grid(
    shifts_mm: np.ndarray, spacing: tuple[float, float], dz: float, shape: tuple[int, ...]
) -> TiltGrid:
    """The ``TiltGrid`` of a series whose slice ``k`` starts ``shifts_mm[k]`` (mm along row, col) from slice 0.

    Args:
        shifts_mm: (n_slices, 2) in-plane offsets in mm, slice 0 first (0, 0).
        spacing: pixel spacing (along row, along column) in mm.
        dz: spacing between slices along the normal, mm.
        shape: acquired array shape (i, j, k).
    """
    shifts = np.asarray(shifts_mm, dtype=np.float64) / np.asarray(spacing, dtype=np.float64)
    n = len(shifts)
    step = np.linalg.norm((shifts_mm[-1] - shifts_mm[0]) / max(n - 1, 1))
    return TiltGrid(
        acquired_shape=(int(shape[0]), int(shape[1]), int(shape[2])),
        shifts=tuple((float(a), float(b)) for a, b in shifts),
        offset=(math.floor(float(shifts[:, 0].min())), math.floor(float(shifts[:, 1].min()))),
        angle_deg=float(np.degrees(np.arctan2(step, dz))),
    )


def to_regular(data: np.ndarray, grid: TiltGrid, fill: float) -> np.ndarray:
    """Resample acquired slices (i, j, k) onto the regular grid: per-slice in-plane shift, linear."""
    out = np.full(grid.shape, fill, dtype=np.float32)
    nx, ny, _ = grid.acquired_shape
    for k, (u, v) in enumerate(grid.shifts):
        plane = np.full(grid.shape[:2], fill, dtype=np.float32)
        plane[:nx, :ny] = data[:, :, k]
        out[:, :, k] = ndimage.shift(plane, (u - grid.offset[0], v - grid.offset[1]), order=1, cval=fill)
    return out


def to_acquired(array: np.ndarray, grid: TiltGrid) -> np.ndarray:
    """Map an array on the regular grid back onto the acquired slices (nearest neighbour; 0 outside)."""
    if tuple(array.shape) != grid.shape:
        raise ValueError(f"array shape {array.shape} is not the regular grid's {grid.shape}")
    nx, ny, nz = grid.acquired_shape
    out = np.zeros((nx, ny, nz), dtype=array.dtype)
    for k, (u, v) in enumerate(grid.shifts):
        back = ndimage.shift(array[:, :, k], (grid.offset[0] - u, grid.offset[1] - v), order=0, cval=0)
        out[:, :, k] = back[:nx, :ny]
    return out
