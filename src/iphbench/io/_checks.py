"""File-level checks of one cohort row: the scan and its mask (used by ``iphbench.io.cohort``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from iphbench.io.mask import MaskError, binarize_mask, grid_mismatch
from iphbench.io.read import read_volume
from iphbench.io.volume import Volume, VolumeReadError

MAX_SPACING_MM = 20.0  # a voxel side above this is not a head CT grid (thick slices are ~5-10 mm)
MIN_SPACING_MM = 0.05  # a voxel side below this is not a head CT grid either (in-plane is ~0.2-1 mm)
RAW_MAX = 3000.0  # min >= 0 with max above this looks like raw 0..4095 scanner values without rescale
Found = tuple[str, str, str, str]  # (subject, file, message, severity): the fields of ``Issue``


def check_subject_files(
    subject: str, image: str, mask: str, labels: Sequence[int] | None
) -> tuple[list[Found], dict[str, Any]]:
    """Read one subject's scan and mask and list what is wrong with them.

    Returns:
        The problems found and a summary row (shape, spacing, ref_ml, hu_min, hu_max, format).
    """
    found: list[Found] = []
    info: dict[str, Any] = {"shape": None, "spacing": None, "ref_ml": float("nan")}
    vol: Volume | None = None
    if image:
        try:
            vol = read_volume(image)
        except VolumeReadError as exc:
            found.append((subject, image, _read_message(exc, "image"), "error"))
    if vol is not None:
        info.update(
            shape=vol.shape,
            spacing=tuple(round(s, 4) for s in vol.spacing),
            format=vol.source.format,
            hu_min=float(vol.array.min()),
            hu_max=float(vol.array.max()),
        )
        found += [(subject, image, m, sev) for m, sev in _spacing_problems(vol) + _intensity_problems(vol)]
    if mask:
        found += _check_mask(subject, mask, vol, labels, info)
    return found, info


def _read_message(exc: VolumeReadError, what: str) -> str:
    text = str(exc)
    if text.startswith("file not found"):
        return f"{what} {text}"
    return f"{what} unreadable: {text}"


def spacing_problem(spacing: Sequence[float]) -> str | None:
    """Why a voxel spacing (mm) cannot be a head CT grid, or ``None`` when it is plausible."""
    ok = np.all(np.isfinite(spacing)) and MIN_SPACING_MM <= min(spacing) and max(spacing) <= MAX_SPACING_MM
    if ok:
        return None
    shown = " x ".join(f"{s:.4g}" for s in spacing)
    return (
        f"absurd voxel spacing {shown} mm (expected {MIN_SPACING_MM:g} to {MAX_SPACING_MM:g} mm); "
        "fix the header (pixdim / PixelSpacing) or re-export the scan"
    )


def _spacing_problems(vol: Volume) -> list[tuple[str, str]]:
    problem = spacing_problem(vol.spacing)
    return [(problem, "error")] if problem else []


def _intensity_problems(vol: Volume) -> list[tuple[str, str]]:
    lo, hi = float(vol.array.min()), float(vol.array.max())
    if lo == hi:
        return [(f"image is constant (every voxel is {lo:g}); the scan is empty", "error")]
    if lo >= 0 and hi > RAW_MAX:
        return [
            (
                f"intensities {lo:g}..{hi:g} do not look like HU (no air below 0): raw scanner values "
                "without rescale slope/intercept? Export the scan in HU (air about -1000)",
                "error",
            )
        ]
    if lo >= 0 and hi <= 1.0:
        return [(f"intensities {lo:g}..{hi:g} look normalised, not HU; give the original HU scan", "error")]
    if lo > -200:
        return [
            (
                f"no voxel below {lo:g} HU (air is about -1000 HU): is the scan in HU, or already skull-stripped?",
                "warning",
            )
        ]
    return []


def _check_mask(
    subject: str, mask: str, vol: Volume | None, labels: Sequence[int] | None, info: dict[str, Any]
) -> list[Found]:
    try:
        mvol = read_volume(mask, dtype=None)  # the file's own dtype: uint8 masks stay small
    except VolumeReadError as exc:
        return [(subject, mask, _read_message(exc, "mask"), "error")]
    found: list[Found] = []
    if vol is not None:
        problem = grid_mismatch(mvol, vol)
        if problem:
            found.append((subject, mask, problem, "error"))
    try:
        binary = binarize_mask(mvol.array, labels=labels, name=mask)
    except MaskError as exc:
        found.append((subject, mask, str(exc), "error"))
    else:
        voxel_ml = (vol if vol is not None and not found else mvol).voxel_volume_ml
        info["ref_ml"] = float(binary.sum(dtype=np.int64)) * voxel_ml
    return found
