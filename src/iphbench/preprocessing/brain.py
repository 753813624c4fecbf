"""Brain extraction (skull stripping) for non-contrast head CT, behind a small registry.

Paper section 3.2 used SynthStrip "adjusted to CT". iphbench ships three extractors:

``ct`` (default)
    Needs no trained model: threshold bone, seal small gaps in the skull, fill the
    intracranial cavity inside it (per slice along each axis and in 3D), keep the soft-tissue
    range inside the cavity, cut thin bridges by an opening, keep the largest connected
    component, grow it back inside the candidate region and fill its holes. Every structuring
    element is an ellipsoid with radii in mm, so anisotropic voxels (0.45 × 0.45 × 5 mm) are
    handled; the input is the canonical RAS+ volume, so axis flips in the file do not matter.
    Acute blood (40–90 HU) lies in the soft-tissue range and lesions are interior after hole
    filling, so intraparenchymal hemorrhage stays inside the mask.
``synthstrip``
    Runs FreeSurfer's ``mri_synthstrip`` on a temporary NIfTI when it is on ``PATH``.
``none``
    The whole volume is "brain".

Example:
    >>> from iphbench.preprocessing.brain import list_extractors
    >>> list_extractors()
    ['ct', 'none', 'synthstrip']
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from iphbench.io.volume import Volume

log = logging.getLogger(__name__)

BrainExtractor = Callable[[Volume], np.ndarray]
_REGISTRY: dict[str, BrainExtractor] = {}


class BrainExtractionError(RuntimeError):
    """Brain extraction failed or its backend is missing; the message says what to do."""


def register_extractor(name: str) -> Callable[[BrainExtractor], BrainExtractor]:
    """Decorator adding a ``Volume -> uint8 mask`` function to the registry under ``name``."""

    def deco(fn: BrainExtractor) -> BrainExtractor:
        _REGISTRY[name] = fn
        return fn

    return deco


def list_extractors() -> list[str]:
    """Names accepted by :func:`get_extractor` (and ``PrepConfig.brain_extraction``)."""
    return sorted(_REGISTRY)


def get_extractor(name: str) -> BrainExtractor:
    """The extractor registered as ``name``; a KeyError lists the valid names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown brain extraction method {name!r}; valid methods are {list_extractors()}"
        ) from None


def extract_brain(volume: Volume, method: str = "ct") -> np.ndarray:
    """Brain mask (uint8 {0, 1}, canonical grid of ``volume``) by the extractor ``method``."""
    mask = np.asarray(get_extractor(method)(volume))
    if mask.shape != volume.shape:
        raise BrainExtractionError(
            f"brain extractor {method!r} returned shape {mask.shape} for {volume.source.path} of shape {volume.shape}"
        )
    return (mask != 0).astype(np.uint8)


# -- "ct": threshold-based extractor ------------------------------------------------------
@dataclass
class CTBrainParams:
    """Settings of the threshold-based CT extractor (HU and mm)."""

    bone_hu: float = 300.0  # voxels at or above this are bone (acute blood stays below ~100 HU)
    soft_min_hu: float = (
        -20.0
    )  # lowest HU kept inside the cavity (CSF is ~0-15 HU, partial volume a bit lower)
    seal_mm: float = 2.0  # radius of the in-plane closing that seals sutures and thin bone before filling
    open_mm: float = 3.0  # radius of the opening that cuts bridges through foramina and orbits
    min_skull_fraction: float = (
        1e-3  # below this share of bone voxels the scan is treated as already skull-less
    )
    work_mm: float = (
        1.5  # the morphology runs on blocks of whole voxels about this size (speed), refined after
    )
    air_hu: float = -500.0  # voxels at or below are air; the work is cropped to the box around the rest


def ct_brain_mask(
    hu: np.ndarray, spacing: tuple[float, float, float], params: CTBrainParams | None = None
) -> np.ndarray:
    """Threshold-based brain mask of a canonical head CT in HU (see module docstring).

    The morphology runs on a working grid of about ``params.work_mm`` (blocks of whole voxels:
    "any bone" and "any soft tissue" per block), then the blocky border is refined at full
    resolution by growing one block into the soft tissue, so voxels next to the inner table of
    the skull are kept.

    Args:
        hu: 3D CT volume in Hounsfield units, canonical RAS+ order.
        spacing: voxel size in mm along the array axes.
        params: thresholds and radii; defaults to :class:`CTBrainParams`.

    Returns:
        uint8 {0, 1} mask, same shape as ``hu``.
    """
    p = params or CTBrainParams()
    if hu.ndim != 3:
        raise ValueError(f"ct_brain_mask expects a 3D volume, got shape {hu.shape}")
    sp = (abs(float(spacing[0])), abs(float(spacing[1])), abs(float(spacing[2])))
    box = _head_box(hu, p.air_hu)
    out = np.zeros(hu.shape, dtype=np.uint8)
    if box is None:
        raise BrainExtractionError("no head found (every voxel is air): is the image in HU?")
    out[box] = _brain_in_box(np.asarray(hu[box]), sp, p)
    return out


def _head_box(hu: np.ndarray, air_hu: float, margin: int = 2) -> tuple[slice, slice, slice] | None:
    """Bounding box of the non-air voxels plus a margin (the rest of the field of view is air)."""
    head = hu > air_hu
    box = []
    for axis in range(3):
        hit = np.flatnonzero(head.any(axis=tuple(a for a in range(3) if a != axis)))
        if hit.size == 0:
            return None
        box.append(slice(max(0, int(hit[0]) - margin), min(hu.shape[axis], int(hit[-1]) + margin + 1)))
    return (box[0], box[1], box[2])


def _brain_in_box(hu: np.ndarray, sp: tuple[float, float, float], p: CTBrainParams) -> np.ndarray:
    bone = hu >= p.bone_hu
    soft = (hu >= p.soft_min_hu) & ~bone
    block = tuple(max(1, int(p.work_mm // s)) for s in sp)
    coarse_sp = (sp[0] * block[0], sp[1] * block[1], sp[2] * block[2])
    brain_c = _brain_core(_pool_any(bone, block), _pool_any(soft, block), coarse_sp, p)
    brain = _upsample(brain_c, block, hu.shape)
    if any(b > 1 for b in block):
        grown = ndimage.maximum_filter(brain.view(np.uint8), size=tuple(2 * b + 1 for b in block)).astype(
            bool
        )
        brain = _largest_component(grown & soft)
    filled = _fill_holes_3d(brain) | _fill_holes_2d(brain, axis=2)
    return np.asarray(filled, dtype=np.uint8)


def _brain_core(
    bone: np.ndarray, soft: np.ndarray, spacing: tuple[float, float, float], p: CTBrainParams
) -> np.ndarray:
    """Brain mask on the working grid: cavity inside the sealed skull ∩ soft tissue, opened, largest part."""
    if bone.mean() < p.min_skull_fraction:
        log.warning("almost no bone (>= %g HU) found: treating the scan as already skull-stripped", p.bone_hu)
        candidate = soft & ~bone
    else:
        sealed = ndimage.binary_closing(bone, _ellipsoid(p.seal_mm, spacing, in_plane=True)) | bone
        cavity = _fill_holes_all_ways(sealed) & ~bone
        candidate = cavity & soft
    if not candidate.any():
        raise BrainExtractionError("no soft tissue found inside the skull: is the image in HU?")
    core = ndimage.binary_opening(candidate, _ellipsoid(p.open_mm, spacing))
    if not core.any():  # a tiny or very thin brain: fall back to the candidate itself
        core = candidate
    core = _largest_component(core)
    # grow back the rim that the opening shaved off, but only into the candidate region
    grown = ndimage.binary_dilation(core, _ellipsoid(p.open_mm + min(spacing), spacing)) & candidate
    return _fill_holes_all_ways(_largest_component(grown))


def _pool_any(mask: np.ndarray, block: tuple[int, ...]) -> np.ndarray:
    """True where any voxel of each ``block`` is true (the array is padded with False at the end)."""
    if all(b == 1 for b in block):
        return mask
    shape = [-(-n // b) * b for n, b in zip(mask.shape, block, strict=True)]
    padded = np.zeros(shape, dtype=bool)
    padded[: mask.shape[0], : mask.shape[1], : mask.shape[2]] = mask
    nx, ny, nz = (n // b for n, b in zip(shape, block, strict=True))
    return np.asarray(padded.reshape(nx, block[0], ny, block[1], nz, block[2]).any(axis=(1, 3, 5)))


def _upsample(mask: np.ndarray, block: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    """Nearest-neighbour inverse of :func:`_pool_any`, cropped to ``shape``."""
    out = mask
    for axis, b in enumerate(block):
        if b > 1:
            out = np.repeat(out, b, axis=axis)
    return np.ascontiguousarray(out[: shape[0], : shape[1], : shape[2]])


def _ellipsoid(radius_mm: float, spacing: tuple[float, float, float], in_plane: bool = False) -> np.ndarray:
    """Boolean ellipsoid structuring element of radius ``radius_mm`` on a grid of ``spacing`` mm."""
    radii = [int(np.floor(radius_mm / s)) for s in spacing]
    if in_plane:
        radii[2] = 0
    grids = np.ogrid[tuple(slice(-r, r + 1) for r in radii)]
    dist = sum((g * s / max(radius_mm, 1e-6)) ** 2 for g, s in zip(grids, spacing, strict=True))
    ball = np.asarray(dist <= 1.0)
    if ball.sum() <= 1:  # radius below one voxel: the 6-neighbour cross
        return np.asarray(ndimage.generate_binary_structure(3, 1))
    return ball


def _fill_holes_all_ways(mask: np.ndarray) -> np.ndarray:
    """Fill holes in 3D and in every 2D slice along each axis (a skull open at its base still
    encloses the brain in axial slices, and a lesion touching one slice's edge is interior in another)."""
    filled = _fill_holes_3d(mask)
    for axis in range(3):
        filled |= _fill_holes_2d(mask, axis)
    return np.asarray(filled, dtype=bool)


def _fill_holes_3d(mask: np.ndarray) -> np.ndarray:
    """``binary_fill_holes`` by one labelling pass (background parts not touching the border are holes)."""
    labels, n = ndimage.label(~mask)
    if n == 0:
        return mask.copy()
    outside = np.zeros(n + 1, dtype=bool)
    for axis in range(3):
        for index in (0, -1):
            outside[np.unique(np.take(labels, index, axis=axis))] = True
    outside[0] = True
    return np.asarray(mask | ~outside[labels])


def _fill_holes_2d(mask: np.ndarray, axis: int) -> np.ndarray:
    """Fill holes of every 2D slice across ``axis`` in one labelling pass."""
    struct = np.zeros((3, 3, 3), dtype=bool)
    plane: list[slice | int] = [slice(None)] * 3
    plane[axis] = 1
    struct[tuple(plane)] = ndimage.generate_binary_structure(2, 1)
    labels, n = ndimage.label(~mask, structure=struct)
    if n == 0:
        return mask.copy()
    outside = np.zeros(n + 1, dtype=bool)
    for other in (a for a in range(3) if a != axis):  # a background region touching a slice's edge is outside
        for index in (0, -1):
            outside[np.unique(np.take(labels, index, axis=other))] = True
    outside[0] = True  # label 0 is the mask itself, kept as is
    holes = ~outside[labels]
    return mask | holes


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return np.asarray(labels == int(sizes.argmax()))


@register_extractor("ct")
def _ct(volume: Volume) -> np.ndarray:
    return ct_brain_mask(np.asarray(volume.array, dtype=np.float32), volume.spacing)


@register_extractor("none")
def _none(volume: Volume) -> np.ndarray:
    return np.ones(volume.shape, dtype=np.uint8)


# -- "synthstrip": FreeSurfer's mri_synthstrip ---------------------------------------------
SYNTHSTRIP_COMMAND = "mri_synthstrip"
SYNTHSTRIP_WINDOW = (0.0, 100.0)  # HU window written for SynthStrip (its CT adjustment: a brain window)


@register_extractor("synthstrip")
def _synthstrip(volume: Volume) -> np.ndarray:
    return synthstrip_brain_mask(volume)


def synthstrip_brain_mask(
    volume: Volume, command: str = SYNTHSTRIP_COMMAND, timeout_s: float = 600.0
) -> np.ndarray:
    """Brain mask by ``mri_synthstrip`` (Hoopes et al. 2022), run on a temporary NIfTI.

    The CT is clipped to a brain window (:data:`SYNTHSTRIP_WINDOW`) before SynthStrip sees it,
    the usual way of adjusting the MRI-trained network to CT.
    """
    exe = shutil.which(command)
    if exe is None:
        raise BrainExtractionError(
            f"brain extraction 'synthstrip' needs the {command!r} command on PATH: install FreeSurfer "
            "(https://surfer.nmr.mgh.harvard.edu/docs/synthstrip/) or the standalone SynthStrip container, "
            "or set prep.brain_extraction to 'ct' (the built-in CT extractor)"
        )
    lo, hi = SYNTHSTRIP_WINDOW
    data = np.clip(np.asarray(volume.array, dtype=np.float32), lo, hi)
    with tempfile.TemporaryDirectory(prefix="iphbench-synthstrip-") as tmp:
        src, out = Path(tmp) / "image.nii.gz", Path(tmp) / "mask.nii.gz"
        nib.save(nib.Nifti1Image(data, np.asarray(volume.affine)), str(src))
        proc = subprocess.run(
            [exe, "-i", str(src), "-m", str(out)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise BrainExtractionError(
                f"{command} failed on {volume.source.path} (exit code {proc.returncode}): {' | '.join(tail)}"
            )
        mask = np.asarray(nib.load(str(out)).dataobj)  # type: ignore[attr-defined]
    if mask.shape != volume.shape:
        raise BrainExtractionError(
            f"{command} returned a mask of shape {mask.shape}, expected {volume.shape}"
        )
    return (mask > 0).astype(np.uint8)


__all__ = [
    "BrainExtractionError",
    "BrainExtractor",
    "CTBrainParams",
    "ct_brain_mask",
    "extract_brain",
    "get_extractor",
    "list_extractors",
    "register_extractor",
    "synthstrip_brain_mask",
]
