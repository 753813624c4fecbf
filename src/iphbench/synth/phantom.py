"""A parametric adult head phantom for non-contrast CT: tissues, their HU, and age-related atrophy.

The head is a set of nested, smoothly deformed ellipsoidal shells (scalp, subcutaneous fat,
skull with two cortical tables and diploë, subarachnoid CSF, cortical grey matter, white
matter) with deep grey nuclei, lateral and third ventricles and the interhemispheric
fissure inside. Sizes are in millimetres in the head's own frame, so the same anatomy can be
rendered on any site's grid. Ventricles, sulci and the fissure widen with age (atrophy).
HU values and their sources are documented in ``docs/synthetic.md``.

Example:
    >>> from iphbench.synth._field import Grid
    >>> rng = np.random.default_rng(0)
    >>> head = draw_head(rng, age=74)
    >>> grid = Grid((64, 64, 32), (3.4, 3.4, 5.0), (-108.0, -108.0, -70.0))
    >>> labels = render_head(head, grid)
    >>> int(labels.max()) <= int(Tissue.DEEP_GREY)
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from iphbench.synth._field import Grid, local_coords, rotation_matrix, smooth_field


class Tissue(IntEnum):
    """Labels of the phantom's label map (uint8)."""

    AIR = 0
    SOFT = 1  # scalp skin, galea and muscle
    FAT = 2  # subcutaneous fat
    BONE = 3  # cortical bone (outer and inner table)
    DIPLOE = 4  # cancellous bone between the tables
    CSF = 5  # subarachnoid CSF and the interhemispheric fissure
    VENTRICLE = 6  # lateral and third ventricles
    GREY = 7  # cortical grey matter
    WHITE = 8  # white matter
    DEEP_GREY = 9  # basal ganglia and thalami
    EDEMA = 10  # perihematomal oedema
    HEMORRHAGE = 11  # the intraparenchymal hemorrhage (the mask)


PARENCHYMA: tuple[Tissue, ...] = (Tissue.GREY, Tissue.WHITE, Tissue.DEEP_GREY)
INTRACRANIAL: tuple[Tissue, ...] = (
    Tissue.CSF,
    Tissue.VENTRICLE,
    Tissue.GREY,
    Tissue.WHITE,
    Tissue.DEEP_GREY,
    Tissue.EDEMA,
    Tissue.HEMORRHAGE,
)

# (low, high) of the per-subject mean HU of each tissue; a subject draws one value per tissue.
TISSUE_HU: dict[Tissue, tuple[float, float]] = {
    Tissue.AIR: (-1000.0, -1000.0),
    Tissue.SOFT: (38.0, 52.0),
    Tissue.FAT: (-110.0, -80.0),
    Tissue.BONE: (1200.0, 1600.0),
    Tissue.DIPLOE: (550.0, 850.0),
    Tissue.CSF: (3.0, 10.0),
    Tissue.VENTRICLE: (3.0, 10.0),
    Tissue.GREY: (36.0, 40.0),
    Tissue.WHITE: (24.0, 30.0),
    Tissue.DEEP_GREY: (34.0, 39.0),
    Tissue.EDEMA: (12.0, 22.0),
    Tissue.HEMORRHAGE: (55.0, 78.0),
}
BRAIN_TEXTURE_HU = 1.0  # SD of the smooth within-tissue variation of parenchyma (clipped at ±2.5 SD)


def atrophy_index(age: float) -> float:
    """0 at 40 years or younger, 1 at 80, up to 1.5: scales ventricles, sulci and the fissure."""
    return float(np.clip((age - 40.0) / 40.0, 0.0, 1.5))


@dataclass(frozen=True)
class HeadAnatomy:
    """One subject's head, in mm in the head frame (x → right, y → anterior, z → superior)."""

    axes_mm: tuple[float, float, float]  # outer scalp semi-axes (x, y, z above the centre)
    lower_z_mm: float  # scalp semi-axis below the centre (longer: the head continues to the neck)
    centre_mm: tuple[float, float, float]  # head centre in world coordinates (filled by the cohort)
    angles_deg: tuple[float, float, float]  # pitch, roll, yaw of the head in the scanner
    shape_amp: float  # relative amplitude of the low-frequency shape deformation
    skin_mm: float  # skin + galea thickness above the fat
    fat_mm: float  # subcutaneous fat thickness
    scalp_mm: float  # total scalp thickness (skin + fat + muscle)
    skull_mm: float  # mean skull thickness
    csf_mm: float  # mean subarachnoid CSF thickness (grows with atrophy)
    cortex_mm: float  # mean cortical grey matter thickness
    ventricle_scale: float  # lateral ventricle size factor (grows with atrophy)
    fissure_mm: float  # interhemispheric fissure width
    hu: tuple[float, ...]  # mean HU per Tissue value (index = label)
    seed: int  # seed of the anatomy's smooth fields

    def hu_of(self, tissue: Tissue) -> float:
        """This subject's mean HU for ``tissue``."""
        return self.hu[int(tissue)]


def draw_head(rng: np.random.Generator, age: float) -> HeadAnatomy:
    """Draw one subject's head: adult sizes, small tilt, tissue HU, atrophy from ``age``."""
    a = atrophy_index(age)
    size = rng.uniform(0.93, 1.05)
    axes = (size * rng.uniform(70, 78), size * rng.uniform(90, 99), size * rng.uniform(74, 82))
    hu = tuple(float(rng.uniform(*TISSUE_HU[t])) for t in Tissue)
    return HeadAnatomy(
        axes_mm=axes,
        lower_z_mm=axes[2] * rng.uniform(1.15, 1.3),
        centre_mm=(0.0, 0.0, 0.0),
        angles_deg=(rng.uniform(-10, 10), rng.uniform(-3, 3), rng.uniform(-4, 4)),
        shape_amp=rng.uniform(0.02, 0.05),
        skin_mm=rng.uniform(1.2, 2.0),
        fat_mm=rng.uniform(0.8, 2.0),
        scalp_mm=rng.uniform(4.5, 6.5),
        skull_mm=rng.uniform(5.5, 8.0),
        csf_mm=1.0 + 2.5 * a + rng.uniform(-0.3, 0.3),
        cortex_mm=rng.uniform(2.6, 3.6),
        ventricle_scale=(1.0 + 0.9 * a) * rng.uniform(0.9, 1.1),
        fissure_mm=1.5 + 2.0 * a,
        hu=hu,
        seed=int(rng.integers(2**31)),
    )


@dataclass
class HeadGeometry:
    """Where every voxel of a grid lies in one head: head-frame coordinates and shell depths (mm, float32)."""

    u: np.ndarray  # head-frame x (→ right), centred on the head
    v: np.ndarray  # head-frame y (→ anterior)
    w: np.ndarray  # head-frame z (→ superior)
    depth: np.ndarray  # depth below the scalp surface along the ray from the head centre
    skull: np.ndarray  # local skull thickness
    inner: np.ndarray  # depth below the inner table (negative outside the cranial cavity)
    sulci: np.ndarray  # local subarachnoid CSF thickness
    cortex: np.ndarray  # local cortical grey matter thickness
    brain_radius: np.ndarray  # distance from the centre to the inner table along the ray (fissure depth)


def head_geometry(
    head: HeadAnatomy,
    grid: Grid,
    *,
    skull_mean_mm: float | None = None,
    inner_roughness_mm: float = 0.0,
) -> HeadGeometry:
    """The head frame and shell depths of ``head`` on ``grid`` (what ``render_head`` cuts the shells from).

    Args:
        head: the subject's head.
        grid: the sampling grid.
        skull_mean_mm: skull thickness used for the fissure's depth; ``None`` takes the mean over
            ``grid`` (the standard cohort). Give a fixed value to render a head in pieces.
        inner_roughness_mm: amplitude of bumps of the inner table into the cranial cavity (the hard
            preset's irregular inner table); 0 draws nothing extra.
    """
    frng = np.random.default_rng(head.seed)
    axes = grid.axes()
    rot = rotation_matrix(*head.angles_deg)
    u, v, w = local_coords(axes, np.asarray(head.centre_mm), rot)
    ax, ay, az = head.axes_mm
    zax = np.where(w > 0, np.float32(az), np.float32(head.lower_z_mm))
    rho = np.sqrt((u / ax) ** 2 + (v / ay) ** 2 + (w / zax) ** 2)
    deform = 1.0 + head.shape_amp * smooth_field(axes, 40.0, frng)
    r = np.sqrt(u**2 + v**2 + w**2)
    surface = r / np.maximum(rho, 1e-6) * deform  # radial distance from the centre to the scalp surface
    depth = surface - r  # mm below the scalp surface along the ray from the centre

    skull = head.skull_mm * (1.0 + 0.15 * smooth_field(axes, 25.0, frng))
    sulci = np.maximum(head.csf_mm * (1.0 + 0.7 * smooth_field(axes, 6.0, frng)), 0.4)
    cortex = head.cortex_mm * (1.0 + 0.25 * smooth_field(axes, 8.0, frng))
    mean_skull = skull.mean() if skull_mean_mm is None else np.float32(skull_mean_mm)
    if inner_roughness_mm > 0:  # drawn last, so the fields above are the standard head's
        skull = skull + np.float32(inner_roughness_mm) * np.maximum(smooth_field(axes, 4.0, frng), 0.0)
    inner = depth - head.scalp_mm - skull  # depth below the inner table
    brain_radius = surface - head.scalp_mm - mean_skull
    return HeadGeometry(u, v, w, depth, skull, inner, sulci, cortex, brain_radius)


def render_head(head: HeadAnatomy, grid: Grid) -> np.ndarray:
    """Label map (uint8, ``Tissue`` values) of ``head`` on ``grid`` (no lesion).

    Shells are cut at radial depths below the deformed outer scalp surface; the deformation,
    skull thickness, cortical folding and sulcal CSF vary smoothly (``smooth_field``).
    """
    return label_head(head, head_geometry(head, grid))


def label_head(head: HeadAnatomy, geo: HeadGeometry) -> np.ndarray:
    """Cut the tissue shells, deep nuclei, ventricles and fissure of ``head`` from its geometry."""
    depth, inner, skull, sulci = geo.depth, geo.inner, geo.skull, geo.sulci
    labels = np.zeros(depth.shape, dtype=np.uint8)
    labels[depth >= 0] = Tissue.SOFT
    labels[(depth >= head.skin_mm) & (depth < head.skin_mm + head.fat_mm)] = Tissue.FAT
    in_skull = (depth >= head.scalp_mm) & (inner < 0)
    frac = (depth - head.scalp_mm) / skull  # 0 at the outer table, 1 at the inner table
    labels[in_skull] = Tissue.BONE
    labels[in_skull & (frac > 0.3) & (frac < 0.7)] = Tissue.DIPLOE
    labels[inner >= 0] = Tissue.CSF
    labels[inner >= sulci] = Tissue.GREY
    labels[inner >= sulci + geo.cortex] = Tissue.WHITE

    brain = inner >= sulci
    _paint_deep_structures(labels, geo.u, geo.v, geo.w, head, brain)
    # Interhemispheric fissure: a CSF sheet in the outer half of the upper brain.
    fissure = (
        brain & (np.abs(geo.u) < head.fissure_mm / 2) & (geo.w > -10) & (inner < 0.45 * geo.brain_radius)
    )
    labels[fissure] = Tissue.CSF
    return labels


def _ellipsoid(
    u: np.ndarray,
    v: np.ndarray,
    w: np.ndarray,
    centre: tuple[float, float, float],
    semi: tuple[float, float, float],
) -> np.ndarray:
    return (
        ((u - centre[0]) / semi[0]) ** 2 + ((v - centre[1]) / semi[1]) ** 2 + ((w - centre[2]) / semi[2]) ** 2
    ) < 1.0


def _paint_deep_structures(
    labels: np.ndarray, u: np.ndarray, v: np.ndarray, w: np.ndarray, head: HeadAnatomy, brain: np.ndarray
) -> None:
    """Basal ganglia and thalami (deep grey), then the ventricles on top of them."""
    s = head.ventricle_scale
    for side in (-1.0, 1.0):
        deep = _ellipsoid(u, v, w, (side * 22.0, 6.0, 8.0), (7.0, 15.0, 10.0))  # lentiform nucleus
        deep |= _ellipsoid(u, v, w, (side * 11.0, -12.0, 8.0), (8.0, 12.0, 9.0))  # thalamus
        labels[deep & brain] = Tissue.DEEP_GREY
    half_width = 3.0 * s
    for side in (-1.0, 1.0):
        # Lateral ventricle: a banana, its ends bending down (frontal and occipital horns).
        wc = w - 20.0 + 0.012 * v**2
        vent = (
            ((u - side * (half_width + 1.5)) / half_width) ** 2
            + (v / (26.0 + 4 * s)) ** 2
            + (wc / (5.0 + 2.5 * s)) ** 2
        ) < 1
        labels[vent & brain] = Tissue.VENTRICLE
    third = _ellipsoid(u, v, w, (0.0, -4.0, 6.0), (0.8 + 0.8 * s, 12.0, 8.0))
    labels[third & brain] = Tissue.VENTRICLE
