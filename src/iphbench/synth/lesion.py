"""Intraparenchymal hemorrhages for the synthetic cohort: lobulated shape, exact volume, oedema rim.

A hemorrhage is the sub-level set of a "lobulated distance" function: the smallest
normalised ellipsoid radius over a few lobes (one main lobe and one to three daughters),
multiplied by ``1 + amp * smooth_field`` for an irregular margin. The threshold is chosen
on the rendering grid so that the hemorrhage holds exactly ``round(volume / voxel)``
parenchymal voxels (restricted to brain parenchyma, so it never enters a ventricle, the
CSF or the skull), and the connected piece holding the seed is kept. Oedema is a rim of
smoothly varying width (1.5-4 mm) around it, inside parenchyma.

Locations follow the clinical mix loosely: about half deep (basal ganglia, thalamus),
the rest lobar (anywhere in grey or white matter far enough from CSF). A juxtacortical
hemorrhage (``LesionSpec.juxtacortical``, the hard preset) is centred just below the cortical
surface, away from the deep nuclei and ventricles, so it reaches the cortex.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from iphbench.synth._field import Grid, rotation_matrix, smooth_field
from iphbench.synth.phantom import PARENCHYMA, Tissue

_PLACEMENT_TRIES = 8  # candidate positions tried per hemorrhage


@dataclass(frozen=True)
class LesionSpec:
    """Shape parameters of one hemorrhage (position is chosen on the grid by ``paint_lesion``)."""

    volume_ml: float  # target volume; the rendered volume matches it to within a few voxels
    deep: bool  # prefer a deep (basal ganglia / thalamus) location over a lobar one
    ratios: tuple[float, float, float]  # main lobe's relative semi-axes
    angles_deg: tuple[float, float, float]  # main lobe's orientation
    lobes: tuple[
        tuple[float, float, float, float], ...
    ]  # daughters: offset direction (x, y, z) × distance, size
    margin_amp: float  # irregularity of the margin (relative)
    edema_mm: float  # mean oedema rim width
    seed: int  # seed of the lesion's smooth fields and placement
    juxtacortical: bool = False  # place it against the cortex (lobar; the hard preset's small bleeds)


def draw_lesion(rng: np.random.Generator, volume_ml: float) -> LesionSpec:
    """Draw a hemorrhage shape of ``volume_ml`` mL (irregular, one to four lobes)."""
    ratios = (1.0, float(rng.uniform(0.6, 1.0)), float(rng.uniform(0.5, 0.9)))
    lobes = []
    for _ in range(int(rng.integers(1, 4))):
        d = rng.standard_normal(3)
        d /= np.linalg.norm(d)
        dist = rng.uniform(0.4, 0.85)
        lobes.append(
            (float(d[0] * dist), float(d[1] * dist), float(d[2] * dist), float(rng.uniform(0.4, 0.75)))
        )
    return LesionSpec(
        volume_ml=float(volume_ml),
        deep=bool(rng.random() < 0.5),
        ratios=ratios,
        angles_deg=tuple(float(x) for x in rng.uniform(-180, 180, 3)),  # type: ignore[arg-type]
        lobes=tuple(lobes),
        margin_amp=float(rng.uniform(0.12, 0.3)),
        edema_mm=float(rng.uniform(1.5, 4.0)),
        seed=int(rng.integers(2**31)),
    )


def paint_lesion(labels: np.ndarray, grid: Grid, spec: LesionSpec) -> np.ndarray:
    """Paint the hemorrhage (``Tissue.HEMORRHAGE``) and its oedema (``Tissue.EDEMA``) into ``labels`` in place.

    Args:
        labels: the head's label map on ``grid`` (``render_head``); modified in place.
        grid: the rendering grid.
        spec: the hemorrhage to paint.

    Returns:
        The hemorrhage mask (bool, shape of ``labels``).

    Raises:
        ValueError: if ``labels`` holds no brain parenchyma.
    """
    rng = np.random.default_rng(spec.seed)
    parenchyma = np.isin(labels, [int(t) for t in PARENCHYMA])
    if not parenchyma.any():
        raise ValueError("the label map holds no brain parenchyma to place a hemorrhage in")
    r_eq = (3.0 * spec.volume_ml * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
    n_target = max(1, round(spec.volume_ml / grid.voxel_ml))
    candidates = _centre_candidates(labels, parenchyma, grid, spec)
    best: tuple[float, np.ndarray, tuple[slice, ...], tuple[int, ...]] | None = None
    for _ in range(_PLACEMENT_TRIES):
        # Keep the placement whose natural (unconstrained) shape leaves the parenchyma least:
        # clipping a shape against ventricles or the cortex makes unrealistic tendrils.
        centre = tuple(int(c) for c in candidates[int(rng.integers(len(candidates)))])
        lo, hi = _crop_box(centre, 2.2 * r_eq + spec.edema_mm * 2 + 6.0, grid)  # type: ignore[arg-type]
        sub = grid.crop(lo, hi)
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        level = _lobulated_level(sub, grid.world(centre), r_eq, spec, rng)  # type: ignore[arg-type]
        k = min(n_target, level.size)
        natural = level <= np.partition(level.ravel(), k - 1)[k - 1]
        outside = float((natural & ~parenchyma[box]).sum()) / max(int(natural.sum()), 1)
        if best is None or outside < best[0]:
            best = (outside, level, box, tuple(c - b.start for c, b in zip(centre, box, strict=True)))
        if outside <= 0.02:
            break
    assert best is not None
    _, level, box, seed_voxel = best
    sub = grid.crop(tuple(b.start for b in box), tuple(b.stop for b in box))  # type: ignore[arg-type]
    level[~parenchyma[box]] = np.inf

    n_finite = int(np.isfinite(level).sum())
    n = min(n_target, n_finite)
    lesion = np.zeros(level.shape, dtype=bool)
    for _ in range(10):
        thr = np.partition(level.ravel(), n - 1)[n - 1]
        lesion = level <= thr
        parts, _count = ndimage.label(lesion)
        # keep the piece grown from the main lobe's centre (a daughter lobe may be cut off)
        lesion = parts == parts[seed_voxel]
        got = int(lesion.sum())
        if got >= 0.98 * n_target or n >= n_finite:
            break
        n = min(n_finite, n + (n_target - got))

    dist = ndimage.distance_transform_edt(~lesion, sampling=grid.spacing)
    width = spec.edema_mm * (1.0 + 0.4 * smooth_field(sub, 6.0, rng))
    edema = (dist > 0) & (dist <= width) & parenchyma[box]

    region = labels[box]
    region[edema] = Tissue.EDEMA
    region[lesion] = Tissue.HEMORRHAGE
    full = np.zeros(labels.shape, dtype=bool)
    full[box] = lesion
    return full


def _centre_candidates(
    labels: np.ndarray, parenchyma: np.ndarray, grid: Grid, spec: LesionSpec
) -> np.ndarray:
    """Parenchymal voxels deep enough for the lesion, as (n, 3) indices (found on a ~3 mm decimated grid)."""
    step = tuple(max(1, round(3.0 / s)) for s in grid.spacing)
    dec = tuple(slice(None, None, k) for k in step)
    par = parenchyma[dec]
    depth = ndimage.distance_transform_edt(
        par, sampling=[s * k for s, k in zip(grid.spacing, step, strict=True)]
    )
    r_eq = (3.0 * spec.volume_ml * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
    if spec.juxtacortical:
        # centre 0.5-0.8 radii (+1-2 mm) below the cortical surface (the subarachnoid CSF), so the
        # clot reaches the cortex; where bone is nearer than CSF (a skull-base ridge) is no cortex
        dec_lab = labels[dec]
        dec_sp = [s * k for s, k in zip(grid.spacing, step, strict=True)]
        from_csf = ndimage.distance_transform_edt(dec_lab != Tissue.CSF, sampling=dec_sp)
        from_bone = ndimage.distance_transform_edt(
            ~np.isin(dec_lab, [int(Tissue.BONE), int(Tissue.DIPLOE)]), sampling=dec_sp
        )
        from_ventricle = ndimage.distance_transform_edt(dec_lab != Tissue.VENTRICLE, sampling=dec_sp)
        band = (from_csf >= 0.5 * r_eq + 1.0) & (from_csf <= 0.8 * r_eq + 2.0) & (depth >= 0.5 * r_eq)
        band &= (from_bone > from_csf) & (dec_lab != Tissue.DEEP_GREY) & (from_ventricle > r_eq + 4.0)
        z_mm = np.arange(band.shape[2]) * dec_sp[2]
        band &= ((z_mm >= r_eq + 2.0) & (z_mm <= z_mm[-1] - r_eq - 2.0))[
            None, None, :
        ]  # not cut by the scan's ends
        if band.any():
            return np.argwhere(band) * np.asarray(step)
    need = min(0.8 * r_eq + 3.0, 0.9 * float(depth.max()))
    ok = depth >= need
    if spec.deep:
        deep = ok & (labels[dec] == Tissue.DEEP_GREY)
        ok = deep if deep.any() else ok
    return np.argwhere(ok) * np.asarray(step)


def _crop_box(
    centre: tuple[int, int, int], radius_mm: float, grid: Grid
) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    lo = tuple(max(0, int(c - radius_mm / s)) for c, s in zip(centre, grid.spacing, strict=True))
    hi = tuple(
        min(n, int(c + radius_mm / s) + 1) for c, s, n in zip(centre, grid.spacing, grid.shape, strict=True)
    )
    return lo, hi  # type: ignore[return-value]


def _lobulated_level(
    sub: Grid, centre_mm: np.ndarray, r_eq: float, spec: LesionSpec, rng: np.random.Generator
) -> np.ndarray:
    """Smallest normalised ellipsoid radius over the lobes, with an irregular margin, on ``sub``."""
    axes = sub.axes()
    rot = rotation_matrix(*spec.angles_deg).astype(np.float32)
    semi = np.asarray(spec.ratios) / np.prod(spec.ratios) ** (1.0 / 3.0) * r_eq
    d = [(a - c).astype(np.float32) for a, c in zip(axes, centre_mm, strict=True)]
    dx, dy, dz = d[0][:, None, None], d[1][None, :, None], d[2][None, None, :]
    level = None
    for ox, oy, oz, size in ((0.0, 0.0, 0.0, 1.0), *spec.lobes):
        off = semi * np.array([ox, oy, oz])
        scaled = semi * size
        acc = np.zeros(sub.shape, dtype=np.float32)
        for k in range(3):
            comp = rot[0, k] * dx + rot[1, k] * dy + rot[2, k] * dz - np.float32(off[k])
            acc += (comp / np.float32(scaled[k])) ** 2
        lobe = np.sqrt(acc)
        level = lobe if level is None else np.minimum(level, lobe)
    assert level is not None
    scale = float(np.clip(0.5 * r_eq, 4.0, 15.0))
    return level * (1.0 + spec.margin_amp * smooth_field(sub, scale, rng))
