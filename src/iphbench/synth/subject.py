"""One synthetic subject: demographics, head, optional hemorrhage, scanner effects.

Every random choice of subject ``index`` comes from generators seeded with
``(seed, index, stream)``, so a subject is the same whichever worker renders it and
however many subjects the cohort has (only its site and target volume are set by the
cohort). Streams: 0 demographics, 1 anatomy and head position, 2 hemorrhage, 3 noise
(4: the hard preset's items, ``iphbench.synth.hard``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from iphbench.synth._field import Grid, smooth_field
from iphbench.synth.lesion import LesionSpec, draw_lesion, paint_lesion
from iphbench.synth.phantom import BRAIN_TEXTURE_HU, PARENCHYMA, HeadAnatomy, Tissue, draw_head, render_head
from iphbench.synth.preset import HardPreset
from iphbench.synth.scanner import ScannerProfile, apply_scanner, grid_for

if TYPE_CHECKING:
    from iphbench.synth.hard import HardInfo

_SUBJECT_STREAM = 7
AGE_MEAN, AGE_SD, AGE_RANGE = 74.0, 13.0, (25, 99)  # paper Table 1: ages ~ 59-88 per site, overall ~74 ± 13
MALE_FRACTION = 0.53  # paper Table 1: about half male
LESION_HU_RANGE = (45.0, 90.0)  # clean hemorrhage HU is clipped to this range (acute blood 50-90 HU)
EDEMA_HU_RANGE = (10.0, 25.0)  # clean oedema HU is clipped to this range


@dataclass(frozen=True)
class SubjectSpec:
    """What the cohort decides about subject ``index``; the rest is drawn from its own seed."""

    subject: str  # subject id
    index: int  # position in the cohort (seeds the subject's random streams)
    seed: int  # cohort seed
    profile: ScannerProfile  # the site's scanner
    lesion_ml: float | None  # target hemorrhage volume in mL; None = hemorrhage-free
    preset: HardPreset | None = None  # the hard preset's knobs; None = the standard cohort
    juxtacortical: bool = False  # hard preset: a small hemorrhage placed against the cortex


@dataclass
class SyntheticScan:
    """A rendered subject on its site's canonical RAS+ grid."""

    spec: SubjectSpec
    age: int  # years
    sex: str  # "M" or "F"
    grid: Grid  # canonical grid (shape, spacing, origin)
    labels: np.ndarray  # uint8 Tissue label map
    hu_clean: np.ndarray  # float32 HU before scanner effects (blur, noise, calibration)
    image: np.ndarray  # int16 HU as written to the file
    mask: np.ndarray  # uint8 {0,1}: the hemorrhage (not the oedema)
    head: HeadAnatomy
    lesion: LesionSpec | None
    hard: HardInfo | None = None  # what the hard preset added (None for the standard cohort)

    @property
    def lesion_ml(self) -> float:
        """Rendered hemorrhage volume in mL (mask voxels × voxel volume)."""
        return float(self.mask.sum()) * self.grid.voxel_ml

    @property
    def lesion_hu(self) -> float:
        """Mean clean HU inside the hemorrhage (NaN when there is none).

        Hard preset: the mean over the hemorrhage's sub-slice voxels, before slice averaging.
        """
        if self.hard is not None:
            return self.hard.lesion_hu
        return float(self.hu_clean[self.mask > 0].mean()) if self.mask.any() else float("nan")


def subject_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    """The generator of one of subject ``index``'s random streams."""
    return np.random.default_rng([seed, _SUBJECT_STREAM, index, stream])


def draw_demographics(seed: int, index: int) -> tuple[int, str]:
    """Age (years, ~74 ± 13, clipped) and sex ("M" with probability 0.53) of subject ``index``."""
    rng = subject_rng(seed, index, 0)
    age = int(np.clip(round(rng.normal(AGE_MEAN, AGE_SD)), *AGE_RANGE))
    sex = "M" if rng.random() < MALE_FRACTION else "F"
    return age, sex


def synthesize_standard(spec: SubjectSpec) -> SyntheticScan:
    """Render one subject of the standard cohort: head, hemorrhage and oedema, clean HU, then the scanner.

    The mask is the hemorrhage label on the site's grid: in ``hu_clean`` it is exactly the
    intracranial region at or above ``LESION_HU_RANGE[0]`` HU. ``spec.preset`` is not read:
    ``iphbench.synth.render.synthesize_subject`` sends a spec with a preset to the hard preset.
    """
    age, sex = draw_demographics(spec.seed, spec.index)
    grid = grid_for(spec.profile)
    head = place_head(spec, grid, age)
    labels = render_head(head, grid)

    lesion = None
    mask = np.zeros(grid.shape, dtype=np.uint8)
    if spec.lesion_ml is not None:
        lesion = draw_lesion(subject_rng(spec.seed, spec.index, 2), spec.lesion_ml)
        mask = paint_lesion(labels, grid, lesion).astype(np.uint8)

    hu_clean = _clean_hu(labels, head, grid)
    image = apply_scanner(hu_clean, spec.profile, subject_rng(spec.seed, spec.index, 3))
    image = np.clip(np.rint(image), -1024, 3071).astype(np.int16)
    return SyntheticScan(spec, age, sex, grid, labels, hu_clean, image, mask, head, lesion)


def place_head(spec: SubjectSpec, grid: Grid, age: int) -> HeadAnatomy:
    """Draw subject ``spec.index``'s head (stream 1) and place it: top of the head 6-16 mm below the top slice."""
    rng = subject_rng(spec.seed, spec.index, 1)
    head = draw_head(rng, age)
    z_top = grid.origin[2] + (grid.shape[2] - 1) * grid.spacing[2]
    centre = (
        rng.uniform(-6.0, 6.0),
        rng.uniform(-8.0, 8.0),
        z_top - rng.uniform(6.0, 16.0) - head.axes_mm[2],
    )
    return dataclasses.replace(head, centre_mm=(float(centre[0]), float(centre[1]), float(centre[2])))


def _clean_hu(labels: np.ndarray, head: HeadAnatomy, grid: Grid) -> np.ndarray:
    """Per-tissue HU plus smooth within-tissue variation (never crossing the hemorrhage threshold)."""
    rng = np.random.default_rng([head.seed, 1])
    lut = np.asarray(head.hu, dtype=np.float32)
    hu = lut[labels]
    parenchyma = np.isin(labels, [int(t) for t in PARENCHYMA])
    texture = np.clip(smooth_field(grid, 10.0, rng), -2.5, 2.5) * np.float32(BRAIN_TEXTURE_HU)
    hu[parenchyma] += texture[parenchyma]
    soft = labels == Tissue.SOFT
    hu[soft] += 3.0 * smooth_field(grid, 15.0, rng)[soft]
    for tissue, amp, (lo, hi) in (
        (Tissue.HEMORRHAGE, 4.0, LESION_HU_RANGE),
        (Tissue.EDEMA, 2.0, EDEMA_HU_RANGE),
    ):
        sel = labels == tissue
        if sel.any():
            # Fields only over the lesion's bounding box: cheap at clinical size.
            box = tuple(slice(int(ix.min()), int(ix.max()) + 1) for ix in np.nonzero(sel))
            sub = grid.crop(tuple(b.start for b in box), tuple(b.stop for b in box))  # type: ignore[arg-type]
            local = hu[box]
            local_sel = sel[box]
            local[local_sel] = np.clip(
                local[local_sel] + amp * smooth_field(sub, 5.0, rng)[local_sel], lo, hi
            )
    return hu
