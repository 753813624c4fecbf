"""Sampling grids and smooth random fields in world millimetres for the synthetic cohort.

A field is defined on a fixed world lattice (nodes every ``0.75 * scale_mm`` over a box of
±``_BOX_MM``) and sampled on any axis-aligned grid by separable Gaussian interpolation, so
the same random draws give the same anatomy whatever a site's matrix and spacing are.
Values have zero mean and unit standard deviation at every voxel (the separable weights
are normalised exactly), which lets callers state amplitudes in HU or mm directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_BOX_MM = 160.0  # the lattice covers [-160, 160] mm on each axis: any head fits inside


@dataclass(frozen=True)
class Grid:
    """An axis-aligned voxel grid in canonical RAS+ order (index i → world ``origin + i * spacing``)."""

    shape: tuple[int, int, int]  # voxels along x (→Right), y (→Anterior), z (→Superior)
    spacing: tuple[float, float, float]  # voxel size in mm
    origin: tuple[float, float, float]  # world position (mm) of voxel (0, 0, 0)

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World coordinates (mm, float64) of the voxel centres along each axis."""
        return tuple(  # type: ignore[return-value]
            o + s * np.arange(n, dtype=np.float64)
            for n, s, o in zip(self.shape, self.spacing, self.origin, strict=True)
        )

    @property
    def affine(self) -> np.ndarray:
        """4×4 voxel→world (RAS, mm) affine."""
        aff = np.diag([*self.spacing, 1.0])
        aff[:3, 3] = self.origin
        return aff

    @property
    def voxel_ml(self) -> float:
        """Volume of one voxel in mL."""
        return float(np.prod(self.spacing)) / 1000.0

    def world(self, index: tuple[int, int, int]) -> np.ndarray:
        """World position (mm) of voxel ``index``."""
        return np.asarray(self.origin) + np.asarray(self.spacing) * np.asarray(index, dtype=np.float64)

    def crop(self, lo: tuple[int, int, int], hi: tuple[int, int, int]) -> Grid:
        """The sub-grid of voxels ``lo[d] <= i < hi[d]``."""
        shape = tuple(int(h - lo_) for lo_, h in zip(lo, hi, strict=True))
        origin = tuple(o + s * lo_ for o, s, lo_ in zip(self.origin, self.spacing, lo, strict=True))
        return Grid(shape=shape, spacing=self.spacing, origin=origin)  # type: ignore[arg-type]


def smooth_field(
    grid: Grid | tuple[np.ndarray, np.ndarray, np.ndarray], scale_mm: float, rng: np.random.Generator
) -> np.ndarray:
    """A smooth Gaussian random field (zero mean, unit SD) sampled on ``grid``.

    Args:
        grid: a ``Grid`` or the world coordinates (mm) along x, y and z.
        scale_mm: correlation length: the Gaussian interpolation kernel's sigma in mm.
        rng: source of the lattice's white noise (always draws the same number of values
            for a given ``scale_mm``, whatever the grid).

    Returns:
        float32 array of shape ``(len(x), len(y), len(z))``.

    Example:
        >>> g = Grid((8, 8, 4), (2.0, 2.0, 3.0), (-8.0, -8.0, 0.0))
        >>> smooth_field(g, 10.0, np.random.default_rng(0)).shape
        (8, 8, 4)
    """
    axes = grid.axes() if isinstance(grid, Grid) else grid
    step = 0.75 * scale_mm
    nodes = np.arange(-_BOX_MM, _BOX_MM + step / 2, step)
    noise = rng.standard_normal((nodes.size,) * 3)
    weights = []
    keep = []
    for coords in axes:
        lo, hi = coords.min() - 4 * scale_mm, coords.max() + 4 * scale_mm
        sel = np.flatnonzero((nodes >= lo) & (nodes <= hi))
        w = np.exp(-0.5 * ((coords[:, None] - nodes[None, sel]) / scale_mm) ** 2)
        w /= np.sqrt((w**2).sum(axis=1, keepdims=True))  # unit variance along this axis
        weights.append(w)
        keep.append(sel)
    sub = noise[np.ix_(*keep)]
    out = np.tensordot(weights[0], sub, axes=(1, 0))  # (nx, ky, kz)
    out = np.tensordot(out, weights[1], axes=(1, 1))  # (nx, kz, ny)
    out = np.tensordot(out, weights[2], axes=(1, 1))  # (nx, ny, nz)
    return out.astype(np.float32)


def rotation_matrix(pitch_deg: float, roll_deg: float, yaw_deg: float) -> np.ndarray:
    """Rotation about x (pitch, nodding), then y (roll), then z (yaw), as a 3×3 matrix."""
    a, b, c = np.deg2rad([pitch_deg, roll_deg, yaw_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def local_coords(
    axes: tuple[np.ndarray, np.ndarray, np.ndarray], centre: np.ndarray, rotation: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates (mm, float32) of every voxel in a frame centred at ``centre`` and rotated by ``rotation``.

    ``rotation`` maps local axes to world axes, so local = rotationᵀ (world − centre).
    """
    dx = (axes[0] - centre[0]).astype(np.float32)[:, None, None]
    dy = (axes[1] - centre[1]).astype(np.float32)[None, :, None]
    dz = (axes[2] - centre[2]).astype(np.float32)[None, None, :]
    r = rotation.astype(np.float32)
    u = r[0, 0] * dx + r[1, 0] * dy + r[2, 0] * dz
    v = r[0, 1] * dx + r[1, 1] * dy + r[2, 1] * dz
    w = r[0, 2] * dx + r[1, 2] * dy + r[2, 2] * dz
    return u, v, w
