"""Hyperdense mimics of the hard preset: calcifications, the dense falx and the skull base.

None of these is hemorrhage and none is ever in the mask; a threshold on HU or a model that
learnt "bright = blood" marks them. Positions follow the phantom's own anatomy (head frame, mm):
choroid plexus calcifications sit in the atria of the lateral ventricles, the pineal behind the
third ventricle, the falx in the interhemispheric fissure, and petrous and sphenoid ridges cross
the lowest brain slices. HU values, sizes and frequencies and their sources: ``docs/synthetic.md``.

A thin structure (the falx, ~1 mm, thinner than a voxel in plane) is drawn with its partial
volume: each voxel gets the share of its width the sheet covers (``SoftLayer``), and the label
only where that share is at least one half.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iphbench.synth.phantom import HeadAnatomy, HeadGeometry, Tissue
from iphbench.synth.preset import HardLabel, HardPreset

BRAIN_LABELS: tuple[int, ...] = tuple(
    int(t) for t in (Tissue.CSF, Tissue.VENTRICLE, Tissue.GREY, Tissue.WHITE, Tissue.DEEP_GREY)
)


@dataclass(frozen=True)
class Blob:
    """An ellipsoidal calcification in the head frame."""

    centre: tuple[float, float, float]  # mm, head frame
    semi: tuple[float, float, float]  # semi-axes in mm
    hu: float  # clean HU


@dataclass(frozen=True)
class Plaque:
    """A calcified plaque on the falx: a patch of the midline sheet."""

    v_mm: float  # antero-posterior centre (head frame)
    depth_mm: float  # centre's depth below the inner table
    semi_v_mm: float  # half-length along the falx
    semi_depth_mm: float  # half-height
    thickness_mm: float  # across the midline
    hu: float


@dataclass(frozen=True)
class Ridge:
    """A bony bar (capsule) from ``start`` to ``end`` in the head frame: a petrous or sphenoid ridge."""

    start: tuple[float, float, float]
    end: tuple[float, float, float]
    radius_mm: float


@dataclass(frozen=True)
class SkullBase:
    """Where the skull base lies in this head; the ridges and the streaks both start from it."""

    petrous: tuple[Ridge, Ridge]  # left and right petrous ridges
    sphenoid: tuple[Ridge, Ridge]  # left and right lesser sphenoid wings


@dataclass(frozen=True)
class MimicDraw:
    """One subject's mimics (empty tuples / zeros when absent or switched off)."""

    choroid: tuple[Blob, ...]  # 0, 1 or 2 glomus calcifications
    pineal: Blob | None
    falx_mm: float  # thickness of the dense falx; 0 = not drawn
    falx_hu: float
    plaques: tuple[Plaque, ...]  # calcified plaques on the falx
    roughness_mm: float  # amplitude of inner-table bumps; 0 = smooth
    ridges: tuple[Ridge, ...]  # skull-base ridges painted as bone


@dataclass
class SoftLayer:
    """A thin structure's partial volume on a piece of the grid: voxel ``index`` is ``share`` covered."""

    index: np.ndarray  # flat indices into the piece
    share: np.ndarray  # float32 in (0, 1]
    hu: float


def draw_skull_base(rng: np.random.Generator) -> SkullBase:
    """Petrous ridges ~32-42 mm below the head centre, sphenoid wings 8-14 mm above them (head frame).

    Lateral ends reach beyond the inner table; only the part inside the cranial cavity is painted.
    """
    w_p = rng.uniform(-42.0, -32.0)
    w_s = w_p + rng.uniform(8.0, 14.0)
    petrous, sphenoid = [], []
    for side in (-1.0, 1.0):
        petrous.append(
            Ridge(
                start=(side * 75.0, rng.uniform(-34.0, -24.0), w_p - rng.uniform(0.0, 4.0)),
                end=(side * rng.uniform(12.0, 18.0), rng.uniform(-2.0, 6.0), w_p + rng.uniform(2.0, 6.0)),
                radius_mm=rng.uniform(4.0, 6.0),
            )
        )
        sphenoid.append(
            Ridge(
                start=(side * 75.0, rng.uniform(18.0, 26.0), w_s),
                end=(side * rng.uniform(10.0, 16.0), rng.uniform(14.0, 20.0), w_s - rng.uniform(0.0, 4.0)),
                radius_mm=rng.uniform(2.5, 4.0),
            )
        )
    return SkullBase(petrous=(petrous[0], petrous[1]), sphenoid=(sphenoid[0], sphenoid[1]))


def draw_mimics(
    rngs: dict[str, np.random.Generator], preset: HardPreset, head: HeadAnatomy, base: SkullBase
) -> MimicDraw:
    """Draw which mimics subject has and their size, place and HU; one generator per item."""
    s = head.ventricle_scale
    choroid: list[Blob] = []
    rng = rngs["choroid"]
    if rng.random() < preset.choroid_calc_p:
        sides = (-1.0, 1.0) if rng.random() < 0.8 else (float(rng.choice([-1.0, 1.0])),)
        half_width, length = 3.0 * s, 26.0 + 4.0 * s
        hu = rng.uniform(150.0, 600.0)  # one density for both sides (one label value in the map)
        for side in sides:
            a = min(rng.uniform(2.0, 4.5), 0.9 * half_width)
            v = -0.6 * length * rng.uniform(0.9, 1.1)  # the atrium: posterior part of the ventricle body
            w = 20.0 - 0.012 * v**2  # on the ventricle's bent axis (phantom._paint_deep_structures)
            choroid.append(Blob((side * (half_width + 1.5), v, w), (a, 1.3 * a, 0.9 * a), hu))
    pineal = None
    rng = rngs["pineal"]
    if rng.random() < preset.pineal_calc_p:
        a = rng.uniform(1.5, 4.0)
        pineal = Blob(
            (0.0, -16.0 - 0.8 * a, 6.0 + rng.uniform(-1.0, 1.0)), (a, 1.2 * a, a), rng.uniform(120.0, 500.0)
        )
    rng = rngs["falx"]
    falx_mm = rng.uniform(0.8, 1.6) if preset.dense_falx else 0.0
    falx_hu = rng.uniform(50.0, 80.0)
    plaques: list[Plaque] = []
    rng = rngs["falx_calc"]
    if rng.random() < preset.falx_calc_p:
        for _ in range(int(rng.integers(1, 4))):
            plaques.append(
                Plaque(
                    v_mm=rng.uniform(-30.0, 55.0),
                    depth_mm=rng.uniform(2.0, 20.0),
                    semi_v_mm=rng.uniform(4.0, 12.0),
                    semi_depth_mm=rng.uniform(2.0, 6.0),
                    thickness_mm=rng.uniform(1.2, 3.0),
                    hu=rng.uniform(200.0, 800.0),
                )
            )
    rng = rngs["bone"]
    roughness = rng.uniform(0.6, 1.2) if preset.bone_edges else 0.0
    ridges = (*base.petrous, *base.sphenoid) if preset.bone_edges else ()
    return MimicDraw(tuple(choroid), pineal, falx_mm, falx_hu, tuple(plaques), roughness, ridges)


def paint_mimics(
    labels: np.ndarray, geo: HeadGeometry, draw: MimicDraw, in_plane_mm: float
) -> list[SoftLayer]:
    """Paint the mimics of ``draw`` into ``labels`` (a piece of the fine grid) in place.

    Returns:
        The falx and its plaques as partial-volume layers, to blend into the HU map.
    """
    u, v, w = geo.u, geo.v, geo.w
    w_lo, w_hi = float(w.min()), float(w.max())  # skip shapes that miss this piece of the grid
    for ridge in draw.ridges:
        if (
            min(ridge.start[2], ridge.end[2]) - ridge.radius_mm <= w_hi
            and max(ridge.start[2], ridge.end[2]) + ridge.radius_mm >= w_lo
        ):
            labels[_capsule(u, v, w, ridge) & (geo.inner >= -0.5)] = Tissue.BONE
    brain = np.isin(labels, BRAIN_LABELS)
    for blob, label in [(b, HardLabel.CHOROID_CALC) for b in draw.choroid] + (
        [(draw.pineal, HardLabel.PINEAL_CALC)] if draw.pineal is not None else []
    ):
        if blob.centre[2] - blob.semi[2] <= w_hi and blob.centre[2] + blob.semi[2] >= w_lo:
            labels[_blob(u, v, w, blob) & brain] = label

    layers: list[SoftLayer] = []
    if draw.falx_mm <= 0 and not draw.plaques:
        return layers
    # The falx runs where the fissure does, from the inner table down to just above the callosum.
    region = (
        (geo.inner >= 0)
        & (w > -10)
        & (geo.inner < 0.45 * geo.brain_radius - 1.0)
        & np.isin(labels, BRAIN_LABELS)
    )
    au = np.abs(u)
    if draw.falx_mm > 0:
        share = np.clip((draw.falx_mm / 2 + in_plane_mm / 2 - au) / in_plane_mm, 0.0, 1.0) * region
        layers.append(_layer(share, draw.falx_hu))
        labels[share >= 0.5] = HardLabel.FALX
    for plaque in draw.plaques:
        patch = ((v - plaque.v_mm) / plaque.semi_v_mm) ** 2 + (
            (geo.inner - plaque.depth_mm) / plaque.semi_depth_mm
        ) ** 2 < 1
        share = np.clip((plaque.thickness_mm / 2 + in_plane_mm / 2 - au) / in_plane_mm, 0.0, 1.0)
        share = share * (patch & (region | (labels == HardLabel.FALX)))
        layers.append(_layer(share, plaque.hu))
        labels[share >= 0.5] = HardLabel.FALX_CALC
    return layers


def _layer(share: np.ndarray, hu: float) -> SoftLayer:
    flat = share.ravel()
    index = np.flatnonzero(flat > 0)
    return SoftLayer(index=index, share=flat[index].astype(np.float32), hu=float(hu))


def _blob(u: np.ndarray, v: np.ndarray, w: np.ndarray, blob: Blob) -> np.ndarray:
    (cu, cv, cw), (a, b, c) = blob.centre, blob.semi
    return ((u - cu) / a) ** 2 + ((v - cv) / b) ** 2 + ((w - cw) / c) ** 2 < 1.0


def _capsule(u: np.ndarray, v: np.ndarray, w: np.ndarray, ridge: Ridge) -> np.ndarray:
    """Voxels within ``ridge.radius_mm`` of the segment ``start``-``end``."""
    p0 = np.asarray(ridge.start, dtype=np.float32)
    d = np.asarray(ridge.end, dtype=np.float32) - p0
    length2 = float(d @ d)
    t = ((u - p0[0]) * d[0] + (v - p0[1]) * d[1] + (w - p0[2]) * d[2]) / np.float32(length2)
    t = np.clip(t, 0.0, 1.0)
    dist2 = (u - p0[0] - t * d[0]) ** 2 + (v - p0[1] - t * d[1]) ** 2 + (w - p0[2] - t * d[2]) ** 2
    return dist2 < np.float32(ridge.radius_mm**2)
