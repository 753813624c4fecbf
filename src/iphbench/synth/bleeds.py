"""Other hemorrhage types of the hard preset, hyperdense in the image and absent from the mask.

The benchmark's label is the intraparenchymal hemorrhage only; blood elsewhere is a false
positive for an IPH model. Three kinds, each in the phantom's own anatomy (head frame, mm):

* subdural: an extra-axial crescent just inside the inner table over one convexity,
  thickest at its centre and tapering to nothing at its edge;
* subarachnoid: blood in the convexity CSF of a cap, in thin sulcal clefts reaching into the
  cortex (level sets of a random field: serpiginous in a slice) and, in some subjects, in a
  segment of the interhemispheric fissure;
* intraventricular: blood layering in the dependent (posterior, the patient lies supine) part of
  one or both lateral ventricles, with a flat level in the scanner's coronal plane.

HU values, sizes and frequencies and their sources: ``docs/synthetic.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iphbench.synth._field import Grid, smooth_field
from iphbench.synth.phantom import HeadAnatomy, HeadGeometry, Tissue
from iphbench.synth.preset import HardLabel, HardPreset

_CLEFT_HALF_WIDTH = 0.12  # |field| below this is a sulcal cleft (field SD 1, scale 5 mm: ~1-2 mm wide)


@dataclass(frozen=True)
class Cap:
    """A region of the convexity: directions within ``extent_deg`` of ``direction`` (head frame)."""

    direction: tuple[float, float, float]  # unit vector from the head centre
    extent_deg: float  # angular radius


@dataclass(frozen=True)
class Subdural:
    cap: Cap
    thickness_mm: float  # at the centre of the crescent
    hu: float


@dataclass(frozen=True)
class Subarachnoid:
    cap: Cap
    cleft_depth_mm: float  # how far sulcal clefts reach below the cortical surface
    fissure_v_mm: tuple[float, float] | None  # segment of the interhemispheric fissure filled (v range)
    seed: int  # seed of the cleft field
    hu: float


@dataclass(frozen=True)
class Intraventricular:
    sides: tuple[float, ...]  # -1 left, +1 right
    level_y_mm: float  # world y (anterior) below which the ventricle holds blood
    hu: float


@dataclass(frozen=True)
class BleedDraw:
    """One subject's unlabelled bleeds (``None`` when absent)."""

    subdural: Subdural | None
    subarachnoid: Subarachnoid | None
    intraventricular: Intraventricular | None


NO_BLEEDS = BleedDraw(None, None, None)


def draw_bleeds(rngs: dict[str, np.random.Generator], preset: HardPreset, head: HeadAnatomy) -> BleedDraw:
    """Draw the subject's unlabelled bleeds; one generator per kind, so switching one off keeps the others."""
    sdh = sah = ivh = None
    rng = rngs["subdural"]
    if rng.random() < preset.subdural_p:
        side = float(rng.choice([-1.0, 1.0]))
        cap = Cap(
            _unit(side * rng.uniform(0.7, 1.0), rng.uniform(-0.6, 0.6), rng.uniform(-0.1, 0.6)),
            rng.uniform(30.0, 55.0),
        )
        sdh = Subdural(cap, thickness_mm=rng.uniform(3.0, 12.0), hu=rng.uniform(50.0, 75.0))
    rng = rngs["subarachnoid"]
    if rng.random() < preset.subarachnoid_p:
        cap = Cap(
            _unit(rng.uniform(-1.0, 1.0), rng.uniform(-0.8, 0.8), rng.uniform(0.0, 1.0)),
            rng.uniform(20.0, 40.0),
        )
        fissure = None
        if rng.random() < 0.5:
            v0 = rng.uniform(-40.0, 30.0)
            fissure = (v0, v0 + rng.uniform(15.0, 40.0))
        sah = Subarachnoid(
            cap,
            cleft_depth_mm=rng.uniform(6.0, 14.0),
            fissure_v_mm=fissure,
            seed=int(rng.integers(2**31)),
            hu=rng.uniform(50.0, 70.0),
        )
    rng = rngs["intraventricular"]
    if rng.random() < preset.intraventricular_p:
        sides = (-1.0, 1.0) if rng.random() < 0.5 else (float(rng.choice([-1.0, 1.0])),)
        length = 26.0 + 4.0 * head.ventricle_scale
        level = head.centre_mm[1] - length + 2.0 * length * rng.uniform(0.2, 0.55)
        ivh = Intraventricular(sides, level_y_mm=float(level), hu=rng.uniform(50.0, 75.0))
    return BleedDraw(sdh, sah, ivh)


def paint_bleeds(
    labels: np.ndarray, geo: HeadGeometry, grid: Grid, head: HeadAnatomy, draw: BleedDraw
) -> None:
    """Paint the bleeds of ``draw`` into ``labels`` (a piece of the fine grid, ``grid``) in place.

    Bleeds take CSF, cortex, white matter or ventricle voxels; they never overwrite bone, the
    mimics, or each other.
    """
    if draw.subdural is not None:
        sdh = draw.subdural
        taper = _cap_taper(geo, sdh.cap)
        crescent = (
            (geo.inner >= 0)
            & (geo.inner < sdh.thickness_mm * np.sqrt(np.maximum(taper, 0.0)))
            & (taper > 0)
            & (geo.w > -40)
        )
        labels[crescent & np.isin(labels, _SOFT_BRAIN)] = HardLabel.SUBDURAL
    if draw.subarachnoid is not None:
        sah = draw.subarachnoid
        in_cap = _cap_taper(geo, sah.cap) > 0
        blood = in_cap & (labels == Tissue.CSF) & (geo.inner < geo.sulci)  # convexity CSF, not the fissure
        field = smooth_field(grid, 5.0, np.random.default_rng(sah.seed))
        clefts = (
            in_cap
            & (geo.inner >= 0)
            & (geo.inner < geo.sulci + sah.cleft_depth_mm)
            & (np.abs(field) < _CLEFT_HALF_WIDTH)
        )
        blood |= clefts & np.isin(labels, (int(Tissue.GREY), int(Tissue.WHITE)))
        if sah.fissure_v_mm is not None:
            v0, v1 = sah.fissure_v_mm
            blood |= (
                (labels == Tissue.CSF)
                & (np.abs(geo.u) < head.fissure_mm / 2 + 0.5)
                & (geo.v >= v0)
                & (geo.v <= v1)
            )
        labels[blood] = HardLabel.SUBARACHNOID
    if draw.intraventricular is not None:
        ivh = draw.intraventricular
        y = grid.axes()[1].astype(np.float32)[None, :, None]
        side_ok = np.zeros(labels.shape, dtype=bool)
        for side in ivh.sides:
            side_ok |= geo.u * np.float32(side) > 0
        labels[(labels == Tissue.VENTRICLE) & side_ok & (y < np.float32(ivh.level_y_mm)) & (geo.w > 0)] = (
            HardLabel.INTRAVENTRICULAR
        )


_SOFT_BRAIN = (int(Tissue.CSF), int(Tissue.GREY), int(Tissue.WHITE))


def _cap_taper(geo: HeadGeometry, cap: Cap) -> np.ndarray:
    """1 at the cap's centre direction, falling to 0 at its angular radius (and below 0 outside)."""
    r = np.sqrt(geo.u**2 + geo.v**2 + geo.w**2) + np.float32(1e-6)
    d = cap.direction
    cos_a = (geo.u * d[0] + geo.v * d[1] + geo.w * d[2]) / r
    cos_e = np.float32(np.cos(np.deg2rad(cap.extent_deg)))
    return np.clip((cos_a - cos_e) / (1 - cos_e), -1.0, 1.0)


def _unit(x: float, y: float, z: float) -> tuple[float, float, float]:
    n = float(np.sqrt(x * x + y * y + z * z))
    return (x / n, y / n, z / n)
