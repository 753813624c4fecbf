"""The in-memory preprocessing of one scan (paper section 3.2) and its exact way back.

``prepare_volume`` runs, in order: brain extraction → HU window and min-max with 0 outside
the brain → optional resampling → zero-padding to multiples of the patch size. ``restore``
undoes padding and resampling, so an array on the padded grid (a predicted probability map,
say) comes back on the canonical grid of the original scan. The patch store
(``iphbench.preprocessing.store``) and ``iphbench predict`` both go through these two functions,
so training data and new scans are prepared identically.

Example:
    >>> import numpy as np
    >>> from iphbench.config import PrepConfig
    >>> from iphbench.io.volume import SourceGrid, Volume
    >>> hu = np.full((70, 60, 20), 40.0, np.float32); hu[0] = -1000.0  # brain values, air on one side
    >>> ct = Volume(hu, np.eye(4), SourceGrid((70, 60, 20), np.eye(4), np.zeros((3, 2))))
    >>> prep = prepare_volume(ct, PrepConfig(brain_extraction="none"))
    >>> prep.image.shape, float(prep.image.max())
    ((128, 64, 64), 0.5384615659713745)
    >>> restore(prep.image, prep.meta).shape
    (70, 60, 20)
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from iphbench.config import ConfigError, PrepConfig
from iphbench.io._checks import intensity_problem, spacing_problem
from iphbench.io.volume import SourceGrid, Volume
from iphbench.preprocessing.brain import extract_brain, list_extractors
from iphbench.preprocessing.intensity import window_normalize
from iphbench.preprocessing.patching import pad_to_multiple, unpad
from iphbench.preprocessing.resample import resample_array, resample_mask, resampled_affine

log = logging.getLogger(__name__)


@dataclass
class PrepMeta:
    """How a prepared (padded) grid maps back to the scan's canonical grid; JSON-able via ``to_dict``."""

    canonical_shape: tuple[int, int, int]  # canonical RAS+ shape of the scan, before resampling and padding
    canonical_spacing: tuple[float, float, float]  # its voxel size in mm
    canonical_affine: list[list[float]]  # its voxel→world (RAS mm) affine
    shape: tuple[
        int, int, int
    ]  # shape after resampling, before padding (= canonical_shape without resampling)
    spacing: tuple[float, float, float]  # voxel size in mm after resampling
    affine: list[list[float]]  # voxel→world affine of the (resampled) grid; the padded grid shares it
    padded_shape: tuple[int, int, int]  # shape after zero-padding to multiples of patch_size
    pad: list[list[int]]  # (before, after) zero-padding per axis
    patch_size: int  # cubic patch side in voxels
    resampled: bool  # whether the scan was resampled to a target spacing
    resampling: dict[str, Any] = field(default_factory=dict)  # method and target spacing when resampled
    source: dict[str, Any] = field(
        default_factory=dict
    )  # the file's own grid: shape, affine, ornt, path, format

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (lists, numbers, strings)."""
        return dict(_jsonable(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrepMeta:
        """Inverse of :meth:`to_dict`."""
        d = dict(data)
        for key in ("canonical_shape", "shape", "padded_shape"):
            d[key] = tuple(int(v) for v in d[key])
        for key in ("canonical_spacing", "spacing"):
            d[key] = tuple(float(v) for v in d[key])
        d["pad"] = [[int(a), int(b)] for a, b in d["pad"]]
        return cls(**d)

    def source_grid(self) -> SourceGrid:
        """The scan's :class:`SourceGrid` (to write results back in the file's own grid)."""
        s = self.source
        return SourceGrid(
            shape=tuple(s["shape"]),
            affine=np.asarray(s["affine"], dtype=np.float64),
            ornt=np.asarray(s["ornt"], dtype=np.float64),
            path=s.get("path"),
            format=s.get("format", "nifti"),
            meta=dict(s.get("meta", {})),
        )

    def canonical_volume(self, array: np.ndarray) -> Volume:
        """``array`` (canonical grid, e.g. from :func:`restore`) as a Volume that knows its source file."""
        return Volume(
            array=array, affine=np.asarray(self.canonical_affine, dtype=np.float64), source=self.source_grid()
        )


@dataclass
class PreparedSubject:
    """One scan after preprocessing, on the padded canonical grid."""

    image: (
        np.ndarray
    )  # float32 (or float16), windowed + min-max normalised, 0 outside the brain and in the padding
    mask: np.ndarray  # uint8 {0, 1} hemorrhage; all zeros when the scan has no mask
    brain: np.ndarray  # uint8 {0, 1} brain mask
    meta: PrepMeta  # how to map back to the scan's canonical grid
    seconds: dict[str, float] = field(default_factory=dict)  # time per step (brain, intensity, resample, pad)


def check_prep_config(config: PrepConfig) -> PrepConfig:
    """Raise ConfigError naming the setting when ``config`` cannot work; return it otherwise."""
    if config.brain_extraction not in list_extractors():
        raise ConfigError(
            f"prep.brain_extraction {config.brain_extraction!r} is unknown; valid methods are {list_extractors()}"
        )
    if not config.hu_max > config.hu_min:
        raise ConfigError(f"prep.hu_max ({config.hu_max}) must be greater than prep.hu_min ({config.hu_min})")
    if config.out_max == config.out_min:
        raise ConfigError("prep.out_min and prep.out_max must differ")
    if config.patch_size <= 0:
        raise ConfigError(f"prep.patch_size must be a positive integer, got {config.patch_size}")
    ts = config.target_spacing
    if ts is not None and (len(ts) != 3 or any(v <= 0 for v in ts)):
        raise ConfigError(
            f"prep.target_spacing must be three positive numbers (x, y, z) in mm or null, got {ts}"
        )
    return config


def prepare_volume(
    image: Volume,
    config: PrepConfig,
    mask: Volume | None = None,
    dtype: np.dtype | type = np.float32,
) -> PreparedSubject:
    """Preprocess one canonical CT as in paper section 3.2.

    Args:
        image: the scan in HU, canonical RAS+ (from ``iphbench.io.read_volume``).
        config: preprocessing settings.
        mask: optional hemorrhage mask on the same grid (non-zero = lesion; choose labels when
            reading it with ``iphbench.io.read_mask(labels=...)``).
        dtype: floating dtype of the prepared image (the patch store keeps float16).

    Returns:
        A :class:`PreparedSubject` on the padded grid.
    """
    check_prep_config(config)
    name = image.source.path or "scan"
    bad_spacing = spacing_problem(image.spacing)
    if bad_spacing:  # brain extraction sizes its kernels in mm: an absurd grid gives garbage or huge arrays
        raise ValueError(f"{name}: {bad_spacing}")
    bad_values = intensity_problem(image.array)  # the same rule as 'iphbench validate' (io/_checks.py)
    if bad_values and bad_values[1] == "error":  # e.g. a missing rescale intercept: an all-white window
        raise ValueError(f"{name}: {bad_values[0]}")
    if bad_values:
        log.warning("%s: %s", name, bad_values[0])
    if mask is not None and mask.shape != image.shape:
        raise ValueError(
            f"mask {mask.source.path} has canonical shape {mask.shape} but image {name} has {image.shape}: "
            "the mask must be on the scan's grid"
        )
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    brain = extract_brain(image, config.brain_extraction)
    seconds["brain"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    img = window_normalize(
        image.array, config.hu_min, config.hu_max, config.out_min, config.out_max, brain=brain
    )
    lesion = (
        np.zeros(image.shape, np.uint8) if mask is None else (np.asarray(mask.array) != 0).astype(np.uint8)
    )
    seconds["intensity"] = time.perf_counter() - t0

    spacing = image.spacing
    affine = np.asarray(image.affine, dtype=np.float64)
    resampling: dict[str, Any] = {}
    t0 = time.perf_counter()
    if config.target_spacing is not None:
        target = tuple(float(v) for v in config.target_spacing)
        img = resample_array(img, spacing, target, order=1)
        brain = resample_mask(brain, spacing, target)
        lesion = resample_mask(lesion, spacing, target) if lesion.any() else np.zeros(img.shape, np.uint8)
        img[brain == 0] = 0
        affine = resampled_affine(affine, spacing, target)
        resampling = {
            "target_spacing": list(target),
            "image": "trilinear, centre-aligned grid",
            "masks": "trilinear on {0,1} then >= 0.5",
        }
        log.debug("%s: resampled %s @ %s mm -> %s @ %s mm", name, image.shape, spacing, img.shape, target)
        new_spacing = (float(target[0]), float(target[1]), float(target[2]))
    else:
        new_spacing = spacing
    seconds["resample"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    shape = (int(img.shape[0]), int(img.shape[1]), int(img.shape[2]))
    img_p, pad = pad_to_multiple(img.astype(dtype, copy=False), config.patch_size)
    brain_p, _ = pad_to_multiple(brain, config.patch_size)
    lesion_p, _ = pad_to_multiple(lesion, config.patch_size)
    seconds["pad"] = time.perf_counter() - t0

    src = image.source
    meta = PrepMeta(
        canonical_shape=(int(image.shape[0]), int(image.shape[1]), int(image.shape[2])),
        canonical_spacing=spacing,
        canonical_affine=np.asarray(image.affine, dtype=np.float64).tolist(),
        shape=shape,
        spacing=new_spacing,
        affine=affine.tolist(),
        padded_shape=(int(img_p.shape[0]), int(img_p.shape[1]), int(img_p.shape[2])),
        pad=[list(p) for p in pad],
        patch_size=config.patch_size,
        resampled=config.target_spacing is not None,
        resampling=resampling,
        source={
            "shape": [int(v) for v in src.shape],
            "affine": np.asarray(src.affine, dtype=np.float64).tolist(),
            "ornt": np.asarray(src.ornt, dtype=np.float64).tolist(),
            "path": src.path,
            "format": src.format,
            "meta": _jsonable(dict(src.meta)),
        },
    )
    return PreparedSubject(image=img_p, mask=lesion_p, brain=brain_p, meta=meta, seconds=seconds)


def restore(padded: np.ndarray, meta: PrepMeta, order: int = 1) -> np.ndarray:
    """Map an array on the padded prepared grid back to the scan's canonical grid.

    Removes the padding (an exact crop) and, if the scan was resampled, maps back to the
    original spacing on the same centre-aligned grid.

    Args:
        padded: array of shape ``meta.padded_shape``.
        meta: the subject's :class:`PrepMeta`.
        order: 1 (trilinear) for images and probabilities, 0 (nearest) for masks; without
            resampling the result is the exact crop whatever the order. For the smoothest mask,
            restore the probabilities with ``order=1`` and threshold afterwards.

    Returns:
        Array of shape ``meta.canonical_shape`` (float32 after linear resampling, else the input dtype).
    """
    if tuple(padded.shape) != tuple(meta.padded_shape):
        raise ValueError(
            f"array shape {tuple(padded.shape)} does not match the prepared grid {tuple(meta.padded_shape)}"
        )
    out = unpad(np.asarray(padded), meta.pad)
    if meta.resampled:
        out = resample_array(
            out, meta.spacing, meta.canonical_spacing, order=order, shape=meta.canonical_shape
        )
    return np.ascontiguousarray(out)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    return str(obj)


__all__ = ["PrepMeta", "PreparedSubject", "check_prep_config", "prepare_volume", "restore"]
