"""File-level checks of one cohort row: the scan and its mask (used by ``iphbench.io.cohort``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from iphbench.config import MAX_SPACING_MM, MIN_SPACING_MM
from iphbench.io.mask import MaskError, binarize_mask, grid_mismatch
from iphbench.io.read import read_volume
from iphbench.io.volume import Volume, VolumeReadError

RAW_MAX = 3000.0  # min >= 0 with max above this looks like raw 0..4095 scanner values without rescale
AIR_HU = -500.0  # a head CT in HU has air (about -1000) around the head or in the sinuses, below this
TISSUE_ABOVE_MIN = 50.0  # voxels this far above the scan's minimum are the head (not background)
TISSUE_MEDIAN_MAX_HU = 400.0  # the head's median in HU is ~20-100; without the intercept it is ~1,050
SHIFTED_BRAIN = (970.0, 1150.0)  # brain, CSF and blood (-10..90 HU) + 1000 or 1024: a missing intercept
SHIFTED_BRAIN_MIN_FRACTION = 0.05  # share of voxels there that marks a missing intercept (brain is 10-40 %)
BRAIN_MAX_MIN_HU = 20.0  # brain parenchyma is 20-45 HU: a scan with nothing above this is not in HU
BRAIN_WINDOW_HU = (-20.0, 100.0)  # brain 20-45, CSF 0-15, blood 50-90 HU, with noise and partial volume
HEAD_MEDIAN_MAX_BRAIN_HU = 100.0  # no air: a head whose median is above every brain/CSF/blood value is not HU
BRAIN_SHARE_MIN = 0.5  # no air: less than this share of the head in ``BRAIN_WINDOW_HU`` is not a CT brain
BACKGROUND_MADS = 6.0  # the background ends this many (normal-scaled) MADs above the border voxels' median
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
        tilt = vol.source.meta.get("gantry_tilt")
        if isinstance(tilt, dict):
            found.append(
                (
                    subject,
                    image,
                    f"gantry tilt of {float(tilt['angle_deg']):.1f} degrees: the series is resampled onto a "
                    "regular grid (shear correction); a mask for it must be on that grid (docs/io.md)",
                    "warning",
                )
            )
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
    problem = intensity_problem(vol.array)
    return [problem] if problem else []


def intensity_problem(array: np.ndarray) -> tuple[str, str] | None:
    """Why a scan's voxel values are not usable as HU, as ``(message, severity)``, or ``None``.

    The one rule used by ``validate``, ``prepare`` and ``predict`` (``prepare_volume`` raises on
    every ``"error"``). In order:

    - constant image: error (an empty scan);
    - values within [0, 1]: error (normalised, not HU);
    - no air and nothing above ``BRAIN_MAX_MIN_HU`` = 20: error (standardised values, e.g. z-scores:
      a head in HU always holds brain at 20-45 HU);
    - no air (nothing below ``AIR_HU`` = -500 HU), **and** the median of the head's voxels (those
      more than ``TISSUE_ABOVE_MIN`` = 50 above the scan's minimum) above ``TISSUE_MEDIAN_MAX_HU``
      = 400, **and** at least ``SHIFTED_BRAIN_MIN_FRACTION`` = 5 % of all voxels within
      ``SHIFTED_BRAIN`` = 970..1150 (where brain, CSF and blood, -10..90 HU, land when an
      intercept of -1000 or -1024 is not applied), **and** at least ``BRAIN_SHARE_MIN`` = 50 % of
      the head above the background (below) there: error, the missing-intercept case. In HU the
      head's median is brain (20-45 HU) pulled up a little by bone, about 20-100 HU; without the
      intercept it is ~1,050. The 5 % keeps a skull-stripped scan with left-over bone (a few
      voxels at 1,000 HU among a 0 background) a warning; a head's brain alone is 10-40 % of a
      clinical field of view. The 50 % is the brain share of a CT head (63-100 %) shifted by the
      intercept (measured 67-78 %); an MR scaled so that some tissue lands in that band holds at
      most 40 % of its head there and gets the next message instead;
    - no air, and the head does not look like a brain in HU: error (an MR or another non-CT scan,
      or raw values). The head is the voxels above the background, whose level comes from the
      volume's six faces (their median + ``BACKGROUND_MADS`` MADs: a constant 0 for a skull-stripped
      CT, the noise floor of an MR). A CT head without air, stripped or not, is mostly brain
      (20-45 HU), CSF and scalp: its median is 28-34 HU and 71-100 % of it lies within
      ``BRAIN_WINDOW_HU`` = -20..100 HU, left-over skull included. An MR's head in its arbitrary
      units has a median in the hundreds (0..1500, 0..4095 scales) or above 100 even when scaled
      into 0..255 (T1 and T2: 119-165), with 0-41 % in that window. So: median above
      ``HEAD_MEDIAN_MAX_BRAIN_HU`` = 100 **or** less than ``BRAIN_SHARE_MIN`` = 50 % within the
      window. Measured on synthetic heads (standard and hard presets, two sizes) and T1-/T2-like
      MR volumes made from their label maps (tests/robustness/test_input_rules.py). An MR whose
      values happen to fall like a brain in HU (e.g. a dark T2 scaled into 0..100) cannot be told
      from a skull-stripped CT by its values: it passes with the warning below;
    - minimum >= 0 and maximum above ``RAW_MAX`` = 3000: error (raw stored values, any head);
    - no air otherwise: warning (an already skull-stripped scan with plausible brain values).

    Args:
        array: the scan's voxels, float; a 3D volume (in any axis order) for the head-vs-background
            rule, which otherwise takes the minimum as the background.

    Returns:
        ``(message, "error" | "warning")`` or ``None`` when the values look like HU.
    """
    lo, hi = float(array.min()), float(array.max())
    if lo == hi:
        return f"image is constant (every voxel is {lo:g}); the scan is empty", "error"
    if lo >= 0 and hi <= 1.0:
        return f"intensities {lo:g}..{hi:g} look normalised, not HU; give the original HU scan", "error"
    if lo >= AIR_HU and hi < BRAIN_MAX_MIN_HU:
        return (
            f"intensities {lo:g}..{hi:g} look standardised (e.g. z-scores), not HU: nothing reaches brain's "
            f"{BRAIN_MAX_MIN_HU:g}-45 HU; give the original HU scan",
            "error",
        )
    if lo >= AIR_HU:
        median, shifted = _tissue_stats(array, lo)
        head = _head_stats(array, lo)
        shifted_head = head is None or head.shifted_share >= BRAIN_SHARE_MIN
        if median > TISSUE_MEDIAN_MAX_HU and shifted >= SHIFTED_BRAIN_MIN_FRACTION and shifted_head:
            return (
                f"intensities do not look like HU: no air (minimum {lo:g}, nothing below {AIR_HU:g}) and the "
                f"head's median value is {median:.0f} ({shifted:.0%} of the voxels within "
                f"{SHIFTED_BRAIN[0]:g}..{SHIFTED_BRAIN[1]:g}; brain is 20-45 HU): the rescale intercept (about -1024) "
                "was probably not applied. Export the scan in HU (air about -1000), e.g. apply "
                "RescaleSlope/RescaleIntercept or convert the DICOM series with dcm2niix",
                "error",
            )
        if head is not None and (
            head.median > HEAD_MEDIAN_MAX_BRAIN_HU or head.brain_share < BRAIN_SHARE_MIN
        ):
            window = f"{BRAIN_WINDOW_HU[0]:g}..{BRAIN_WINDOW_HU[1]:g}"
            return (
                f"intensities do not look like HU of a head CT: no air (minimum {lo:g}, nothing below "
                f"{AIR_HU:g}) and the head (the {head.fraction:.0%} of voxels above the background, > "
                f"{head.background:.4g}) has a median of {head.median:.4g} with {head.brain_share:.0%} of it "
                f"within {window} (in HU brain is 20-45, CSF 0-15, blood 50-90). Is it an MR or another "
                "non-CT scan, or raw scanner values without rescale slope/intercept? iphbench needs a "
                "non-contrast head CT in HU (air about -1000)",
                "error",
            )
    if lo >= 0 and hi > RAW_MAX:
        return (
            f"intensities {lo:g}..{hi:g} do not look like HU (no air below 0): raw scanner values "
            "without rescale slope/intercept? Export the scan in HU (air about -1000)",
            "error",
        )
    if lo >= AIR_HU:
        return (
            f"no voxel below {lo:g} HU (air is about -1000 HU): is the scan in HU, or already skull-stripped?",
            "warning",
        )
    return None


def _tissue_stats(array: np.ndarray, lo: float) -> tuple[float, float]:
    """The head's median (voxels more than ``TISSUE_ABOVE_MIN`` above ``lo``; -inf when none) and the
    fraction of voxels within ``SHIFTED_BRAIN``, from a regular sample of about 1e6 voxels."""
    flat = np.asarray(array).reshape(-1)
    sample = flat[:: max(1, flat.size // 1_000_000)]
    tissue = sample[sample > lo + TISSUE_ABOVE_MIN]
    median = float(np.median(tissue)) if tissue.size else float("-inf")
    band = (sample >= SHIFTED_BRAIN[0]) & (sample <= SHIFTED_BRAIN[1])
    return median, float(np.count_nonzero(band)) / sample.size


@dataclass(frozen=True)
class _Head:
    """The voxels of a scan above its background (``_head_stats``)."""

    background: float  # level above which a voxel is head
    fraction: float  # share of the scan's voxels above it
    median: float  # median of the head's voxels
    brain_share: float  # share of the head's voxels within ``BRAIN_WINDOW_HU``
    shifted_share: float  # share of the head's voxels within ``SHIFTED_BRAIN`` (a missing intercept)


def _head_stats(array: np.ndarray, lo: float) -> _Head | None:
    """The head above the background level of the volume's faces (``None`` when nothing is above it).

    The faces are mostly background in any head scan (the head is rounded; the lowest slice cuts
    the neck but is one face of six), so their median is the background and their median absolute
    deviation its noise: 0 and 0 for a constant background, the noise floor for an MR.
    """
    a = np.asarray(array)
    if a.ndim == 3 and min(a.shape) > 0:
        faces = np.concatenate(
            [f.reshape(-1) for f in (a[0], a[-1], a[:, 0], a[:, -1], a[:, :, 0], a[:, :, -1])]
        ).astype(np.float64)
        centre = float(np.median(faces))
        spread = 1.4826 * float(np.median(np.abs(faces - centre)))
        background = centre + BACKGROUND_MADS * spread
    else:
        background = lo
    flat = a.reshape(-1)
    sample = flat[:: max(1, flat.size // 1_000_000)]
    head = sample[sample > background]
    if head.size == 0:
        return None
    inside = (head >= BRAIN_WINDOW_HU[0]) & (head <= BRAIN_WINDOW_HU[1])
    shifted = (head >= SHIFTED_BRAIN[0]) & (head <= SHIFTED_BRAIN[1])
    return _Head(
        background=background,
        fraction=head.size / sample.size,
        median=float(np.median(head)),
        brain_share=float(np.count_nonzero(inside)) / head.size,
        shifted_share=float(np.count_nonzero(shifted)) / head.size,
    )


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
