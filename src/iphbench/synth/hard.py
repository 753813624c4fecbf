"""Render one subject under the hard preset (``docs/synthetic.md``, "Hard preset").

The same subject as in the standard cohort (demographics, head, hemorrhage shape come from the
same streams), rendered the way real scans are hard:

1. the label map on a sub-slice grid (``k`` sub-slices per slice, ``artifacts.fine_grid``), in
   pieces of a few slices so clinical-size heads fit in memory: head shells with an irregular
   inner table, skull-base ridges, calcifications and the falx (``mimics``), unlabelled bleeds
   (``bleeds``);
2. the hemorrhage painted into the remaining parenchyma of the whole sub-slice map, so it never
   overlaps a mimic or a bleed (placed against the cortex for ``SubjectSpec.juxtacortical``);
3. clean HU per sub-slice (low-contrast clot when ``lesion_hu`` is set), averaged over each
   slice (partial volume); the label of a voxel is its plurality tissue, the mask is where that is
   the hemorrhage;
4. streaks near the skull base, then the site's scanner (calibration, in-plane kernel, noise).

Every item draws from its own generator (``item_rng``), so switching one item off leaves the
others, and the rest of the subject, as they were.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from iphbench.synth._field import Grid, smooth_field
from iphbench.synth.artifacts import (
    StreakDraw,
    average_subslices,
    draw_streaks,
    fine_grid,
    plurality_labels,
    streak_image,
)
from iphbench.synth.bleeds import NO_BLEEDS, BleedDraw, draw_bleeds, paint_bleeds
from iphbench.synth.lesion import draw_lesion, paint_lesion
from iphbench.synth.mimics import MimicDraw, SoftLayer, draw_mimics, draw_skull_base, paint_mimics
from iphbench.synth.phantom import (
    BRAIN_TEXTURE_HU,
    PARENCHYMA,
    HeadAnatomy,
    Tissue,
    head_geometry,
    label_head,
)
from iphbench.synth.preset import HardLabel, HardPreset, subslices
from iphbench.synth.scanner import apply_scanner, grid_for
from iphbench.synth.subject import (
    _SUBJECT_STREAM,
    EDEMA_HU_RANGE,
    LESION_HU_RANGE,
    SubjectSpec,
    SyntheticScan,
    draw_demographics,
    place_head,
    subject_rng,
)

N_LABELS = int(max(HardLabel)) + 1
_HARD_STREAM = 4
_ITEMS: tuple[str, ...] = (
    "choroid",
    "pineal",
    "falx",
    "falx_calc",
    "bone",
    "skull_base",
    "streaks",
    "subdural",
    "subarachnoid",
    "intraventricular",
    "lesion_hu",
)
_PIECE_VOXELS = 4_000_000  # sub-slice voxels rendered at once (a few slices at clinical size)


@dataclass
class HardInfo:
    """What the hard preset added to one subject."""

    preset: HardPreset
    subslices: int  # sub-slices averaged per slice (1: point sampling)
    lesion_hu: float  # mean clean HU of the hemorrhage's sub-slice voxels (NaN when none)
    grey_hu: float  # the subject's cortical grey matter HU (contrast = lesion_hu - grey_hu)
    juxtacortical: bool  # the hemorrhage was placed against the cortex
    volumes_ml: dict[str, float]  # sub-slice volume of each HardLabel, by lower-case name
    mimics: MimicDraw
    bleeds: BleedDraw
    streaks: StreakDraw | None
    streak_hu: np.ndarray | None  # HU the streaks added to the image (site grid)
    labels_fine: np.ndarray  # uint8 label map on the sub-slice grid
    mask_fine: np.ndarray  # bool hemorrhage on the sub-slice grid


def item_rng(seed: int, index: int, item: str) -> np.random.Generator:
    """The generator of one hard-preset item of subject ``index`` (stream 4, one sub-stream per item)."""
    return np.random.default_rng([seed, _SUBJECT_STREAM, index, _HARD_STREAM, _ITEMS.index(item)])


def synthesize_hard(spec: SubjectSpec) -> SyntheticScan:
    """Render subject ``spec`` under ``spec.preset`` (see the module docstring)."""
    preset = spec.preset
    if preset is None:
        raise ValueError(f"{spec.subject}: synthesize_hard needs a SubjectSpec with a preset")
    age, sex = draw_demographics(spec.seed, spec.index)
    grid = grid_for(spec.profile)
    head = place_head(spec, grid, age)
    k = subslices(grid.spacing[2], preset.partial_volume, preset.subslice_mm)
    fine = fine_grid(grid, k)

    rngs = {name: item_rng(spec.seed, spec.index, name) for name in _ITEMS}
    base = draw_skull_base(rngs["skull_base"])
    mimics = draw_mimics(rngs, preset, head, base)
    has_lesion = spec.lesion_ml is not None
    bleeds = draw_bleeds(rngs, preset, head) if has_lesion or preset.bleeds_in_iph_free else NO_BLEEDS
    streaks = draw_streaks(rngs["streaks"], head, base) if preset.streaks else None
    lesion_range = preset.lesion_hu if preset.lesion_hu is not None else LESION_HU_RANGE
    lesion_mean = (
        float(rngs["lesion_hu"].uniform(lesion_range[0] + 3.0, lesion_range[1] - 3.0))
        if preset.lesion_hu is not None
        else head.hu_of(Tissue.HEMORRHAGE)
    )

    pieces = _pieces(fine, k)
    labels_f = np.empty(fine.shape, dtype=np.uint8)
    layers: list[list[SoftLayer]] = []
    for z0, z1 in pieces:
        sub = fine.crop((0, 0, z0), (fine.shape[0], fine.shape[1], z1))
        geo = head_geometry(head, sub, skull_mean_mm=head.skull_mm, inner_roughness_mm=mimics.roughness_mm)
        piece = label_head(head, geo)
        layers.append(paint_mimics(piece, geo, mimics, grid.spacing[0]))
        paint_bleeds(piece, geo, sub, head, bleeds)
        labels_f[:, :, z0:z1] = piece

    lesion = None
    mask_f = np.zeros(fine.shape, dtype=bool)
    if spec.lesion_ml is not None:
        lesion = draw_lesion(subject_rng(spec.seed, spec.index, 2), spec.lesion_ml)
        if spec.juxtacortical:
            lesion = dataclasses.replace(lesion, deep=False, juxtacortical=True)
        mask_f = paint_lesion(labels_f, fine, lesion)

    lut = _lookup(head, mimics, bleeds, lesion_mean)
    textures = _lesion_textures(labels_f, fine, head, lesion_range)
    hu_clean = np.empty(grid.shape, dtype=np.float32)
    labels = np.empty(grid.shape, dtype=np.uint8)
    lesion_sum = 0.0
    for (z0, z1), soft in zip(pieces, layers, strict=True):
        sub = fine.crop((0, 0, z0), (fine.shape[0], fine.shape[1], z1))
        piece = labels_f[:, :, z0:z1]
        hu = _clean_hu_piece(piece, sub, head, lut, textures, z0, soft)
        lesion_sum += float(hu[piece == Tissue.HEMORRHAGE].sum(dtype=np.float64))
        hu_clean[:, :, z0 // k : z1 // k] = average_subslices(hu, k)
        labels[:, :, z0 // k : z1 // k] = plurality_labels(piece, k, N_LABELS)
    mask = (labels == Tissue.HEMORRHAGE).astype(np.uint8)
    if mask_f.any() and not mask.any():  # a sliver thinner than half a slice: keep its densest voxel
        share = mask_f.reshape(grid.shape[0], grid.shape[1], grid.shape[2], k).sum(axis=3)
        mask.flat[int(np.argmax(share))] = 1
        labels.flat[int(np.argmax(share))] = Tissue.HEMORRHAGE

    streak_hu = streak_image(grid, labels, streaks) if streaks is not None else None
    recon = hu_clean if streak_hu is None else hu_clean + streak_hu
    image = apply_scanner(recon, spec.profile, subject_rng(spec.seed, spec.index, 3))
    image = np.clip(np.rint(image), -1024, 3071).astype(np.int16)

    counts = np.bincount(labels_f.ravel(), minlength=N_LABELS)
    info = HardInfo(
        preset=preset,
        subslices=k,
        lesion_hu=lesion_sum / int(mask_f.sum()) if mask_f.any() else float("nan"),
        grey_hu=head.hu_of(Tissue.GREY),
        juxtacortical=bool(lesion is not None and lesion.juxtacortical),
        volumes_ml={lab.name.lower(): float(counts[lab]) * fine.voxel_ml for lab in HardLabel},
        mimics=mimics,
        bleeds=bleeds,
        streaks=streaks,
        streak_hu=streak_hu,
        labels_fine=labels_f,
        mask_fine=mask_f,
    )
    return SyntheticScan(spec, age, sex, grid, labels, hu_clean, image, mask, head, lesion, hard=info)


def _pieces(fine: Grid, k: int) -> list[tuple[int, int]]:
    """Sub-slice ranges of whole slices, about ``_PIECE_VOXELS`` each (depends on the grid only)."""
    per_slice = fine.shape[0] * fine.shape[1] * k
    n = max(1, _PIECE_VOXELS // per_slice)
    n_slices = fine.shape[2] // k
    return [(j * k, min(j + n, n_slices) * k) for j in range(0, n_slices, n)]


def _lookup(head: HeadAnatomy, mimics: MimicDraw, bleeds: BleedDraw, lesion_hu: float) -> np.ndarray:
    """HU of every label value; the falx labels read as fissure CSF (their density is blended in)."""
    lut = np.zeros(N_LABELS, dtype=np.float32)
    lut[: len(head.hu)] = head.hu
    lut[Tissue.HEMORRHAGE] = lesion_hu
    lut[HardLabel.CHOROID_CALC] = mimics.choroid[0].hu if mimics.choroid else 0.0
    lut[HardLabel.PINEAL_CALC] = mimics.pineal.hu if mimics.pineal is not None else 0.0
    lut[HardLabel.FALX] = lut[HardLabel.FALX_CALC] = head.hu_of(Tissue.CSF)
    lut[HardLabel.SUBDURAL] = bleeds.subdural.hu if bleeds.subdural is not None else 0.0
    lut[HardLabel.SUBARACHNOID] = bleeds.subarachnoid.hu if bleeds.subarachnoid is not None else 0.0
    lut[HardLabel.INTRAVENTRICULAR] = (
        bleeds.intraventricular.hu if bleeds.intraventricular is not None else 0.0
    )
    return lut


_Texture = tuple[int, tuple[slice, slice, slice], np.ndarray, tuple[float, float]]


def _lesion_textures(
    labels_f: np.ndarray, fine: Grid, head: HeadAnatomy, lesion_range: tuple[float, float]
) -> list[_Texture]:
    """Smooth HU variation of the clot (±4 HU) and oedema (±2 HU), on their bounding boxes of the sub-slice grid."""
    rng = np.random.default_rng([head.seed, 2])
    out: list[_Texture] = []
    for tissue, amp, hu_range in (
        (Tissue.HEMORRHAGE, 4.0, lesion_range),
        (Tissue.EDEMA, 2.0, EDEMA_HU_RANGE),
    ):
        sel = labels_f == tissue
        if not sel.any():
            continue
        box = tuple(slice(int(ix.min()), int(ix.max()) + 1) for ix in np.nonzero(sel))
        sub = fine.crop(tuple(b.start for b in box), tuple(b.stop for b in box))  # type: ignore[arg-type]
        out.append((int(tissue), box, np.float32(amp) * smooth_field(sub, 5.0, rng), hu_range))  # type: ignore[arg-type]
    return out


def _clean_hu_piece(
    piece: np.ndarray,
    sub: Grid,
    head: HeadAnatomy,
    lut: np.ndarray,
    textures: list[_Texture],
    z0: int,
    soft: list[SoftLayer],
) -> np.ndarray:
    """Clean HU of one piece of the sub-slice grid (same textures as the standard cohort, world-fixed)."""
    rng = np.random.default_rng([head.seed, 1])
    hu = lut[piece]
    parenchyma = np.isin(piece, [int(t) for t in PARENCHYMA])
    texture = np.clip(smooth_field(sub, 10.0, rng), -2.5, 2.5) * np.float32(BRAIN_TEXTURE_HU)
    hu[parenchyma] += texture[parenchyma]
    skin = piece == Tissue.SOFT
    hu[skin] += 3.0 * smooth_field(sub, 15.0, rng)[skin]
    z1 = z0 + piece.shape[2]
    for tissue, box, field, (lo, hi) in textures:
        a, b = max(box[2].start, z0), min(box[2].stop, z1)
        if a >= b:
            continue
        local = (box[0], box[1], slice(a - z0, b - z0))
        sel = piece[local] == tissue
        vals = hu[local]
        vals[sel] = np.clip(vals[sel] + field[:, :, a - box[2].start : b - box[2].start][sel], lo, hi)
        hu[local] = vals
    if soft:
        flat_hu = hu.reshape(-1)
        flat_lab = piece.reshape(-1)
        for layer in soft:  # partial volume of the falx and its plaques, never over the lesion
            keep = ~np.isin(flat_lab[layer.index], (int(Tissue.HEMORRHAGE), int(Tissue.EDEMA)))
            idx, share = layer.index[keep], layer.share[keep]
            flat_hu[idx] = (1.0 - share) * flat_hu[idx] + share * np.float32(layer.hu)
    return hu
