"""Segmentation metrics as pure functions on binary masks with voxel spacing (paper section 3.4).

Dice (the paper's F-measure, eq. 3), IoU (eq. 4), precision, recall, volume in mL and the
95th-percentile Hausdorff distance d_H95 in mm (eq. 5), following DESIGN.md's "Metric
conventions" exactly:

* **Surface** of a mask: its voxels with at least one background face neighbour (6-connectivity
  in 3D, 4 in 2D). Outside the array counts as background, so mask voxels on the array border
  are surface voxels. This is ``mask & ~binary_erosion(mask)`` with scipy's default cross
  structure and ``border_value=0``: the edge definition of MONAI's ``get_mask_edges``.
* **Distances** in mm by an exact Euclidean distance transform
  (``scipy.ndimage.distance_transform_edt`` with ``sampling=spacing``) of the complement of the
  other mask's surface, read at this mask's surface voxels. It is computed only inside the
  bounding box of the union of both masks: every surface voxel lies in that box, so cropping
  changes no distance. A one-voxel background margin around the box makes the border handling
  above exact. In 3D the transform is done slice by slice along the coarsest axis and combined
  across slices at the surface voxels only (the EDT is separable; same values, less time),
  and a crop that is mostly empty space uses a k-d tree instead (same values again);
  see ``iphbench.evaluation._surface``.
* **Percentile**: ``numpy.percentile`` with its default linear interpolation of each directed
  set (the convention of MONAI's ``torch.quantile``); d_H95 is the larger of the two.
* **Empty masks** are never dropped: both empty gives Dice 1, IoU 1, d_H95 0 (status
  ``"both_empty"``); reference non-empty and prediction empty gives Dice 0, IoU 0 (``"missed"``);
  the reverse gives the same values with ``"false_alarm"``. d_H95 is then undefined: the
  functions return NaN unless given the value to use (``empty_hd95``); the study's policy
  (``eval.hd95_when_empty``, default ``worst``) gives :func:`worst_case_hd95_mm`, the diagonal
  of the scan's field of view, as MetricsReloaded and the BraTS challenges do, so that every
  style is averaged over the same subjects. The status always tells such a value from a measured
  distance. Precision is NaN when the prediction is empty and recall is NaN when the reference
  is empty (0/0).

Masks are any arrays of equal shape (2D or 3D; bool or uint8 are the fast path) where non-zero
means foreground. The full-volume work is a bounding-box scan at memory speed; everything else
happens in the small crop, so a 512x512x40 scan costs a few milliseconds (bench/hd95.py).

Example:
    >>> import numpy as np
    >>> ref = np.zeros((64, 64, 20), bool); ref[20:40, 20:40, 5:15] = True
    >>> pred = np.roll(ref, 2, axis=0)
    >>> round(hd95(pred, ref, spacing=(0.5, 0.5, 5.0)), 3)
    1.0
    >>> m = segmentation_metrics(pred, ref, (0.5, 0.5, 5.0))
    >>> (round(m.dice, 3), m.status)
    (0.9, 'ok')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from iphbench.evaluation._surface import Method, directed_distances, surface_voxels

Status = Literal["ok", "both_empty", "missed", "false_alarm"]
STATUSES: tuple[Status, ...] = ("ok", "both_empty", "missed", "false_alarm")

_Box = tuple[tuple[int, int], ...]  # inclusive (first, last) index per axis


@dataclass(frozen=True)
class SegmentationMetrics:
    """All metrics of one predicted mask against its reference (one row of metrics.csv)."""

    dice: float  # F-measure, eq. 3; 1 when both masks are empty
    iou: float  # eq. 4; 1 when both masks are empty
    precision: float  # TP / (TP + FP); NaN when the prediction is empty
    recall: float  # TP / (TP + FN); NaN when the reference is empty
    hd95_mm: float  # d_H95 in mm (eq. 5, 95th percentile); 0 when both empty, empty_hd95 (NaN) when one is
    ref_ml: float  # reference volume in mL
    pred_ml: float  # predicted volume in mL
    status: Status  # "ok", "both_empty", "missed" (ref only) or "false_alarm" (pred only)

    def as_dict(self) -> dict[str, float | str]:
        """The fields as a plain dict (for a DataFrame row)."""
        return asdict(self)


# --------------------------------------------------------------------------- validation and cropping


def _check_spacing(spacing: Sequence[float], ndim: int, shape: tuple[int, ...]) -> tuple[float, ...]:
    sp = tuple(float(s) for s in np.atleast_1d(np.asarray(spacing, dtype=float)))
    if len(sp) != ndim:
        raise ValueError(
            f"spacing {tuple(spacing)} has {len(sp)} value(s) but the masks are {ndim}D (shape {shape}): "
            f"give one voxel size in mm per array axis"
        )
    if not all(math.isfinite(s) and s > 0 for s in sp):
        raise ValueError(f"spacing {sp} must be finite and positive (voxel sizes in mm)")
    return sp


def _check_pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, r = np.asarray(pred), np.asarray(ref)
    if p.shape != r.shape:
        raise ValueError(
            f"pred has shape {p.shape} but ref has shape {r.shape}: both masks must be on the same voxel grid "
            f"(resample or restore the prediction to the reference's grid first)"
        )
    if p.ndim not in (2, 3):
        raise ValueError(f"masks must be 2D or 3D, got {p.ndim}D arrays of shape {p.shape}")
    return p, r


def _bbox_rows(u: np.ndarray) -> _Box | None:
    """Bounding box of the non-zero bytes of a C-contiguous 1-byte array, without a full-size temporary.

    One pass over the array as 64-bit words finds the occupied range of axis 0; the occupied slab is
    OR-reduced onto the remaining axes and the small projection is handled recursively.
    """
    if u.size == 0:
        return None
    if u.ndim == 1:
        nz = np.flatnonzero(u)
        return None if nz.size == 0 else ((int(nz[0]), int(nz[-1])),)
    rows = u.reshape(u.shape[0], -1)
    wide = rows.shape[1] % 8 == 0
    words = rows.view(np.uint64) if wide else rows
    occupied = np.flatnonzero(words.any(axis=1))
    if occupied.size == 0:
        return None
    first, last = int(occupied[0]), int(occupied[-1])
    proj = np.bitwise_or.reduce(words[first : last + 1], axis=0)
    proj = proj.view(np.uint8).reshape(u.shape[1:])
    rest = _bbox_rows(proj)
    assert rest is not None  # the slab holds a non-zero byte
    return ((first, last), *rest)


def bounding_box(mask: np.ndarray) -> _Box | None:
    """Inclusive ``(first, last)`` index per axis of the non-zero voxels of ``mask``; None when empty."""
    m = np.asarray(mask)
    if m.dtype.itemsize != 1 or m.dtype.kind not in "biu":
        m = m != 0
    if m.flags.c_contiguous:
        return _bbox_rows(m.view(np.uint8))
    if m.flags.f_contiguous:  # nibabel arrays are Fortran-ordered: scan the transpose, then reverse
        box = _bbox_rows(m.T.view(np.uint8))
        return None if box is None else box[::-1]
    return _bbox_rows(np.ascontiguousarray(m).view(np.uint8))


def _union(a: _Box | None, b: _Box | None) -> _Box | None:
    if a is None:
        return b
    if b is None:
        return a
    return tuple((min(x[0], y[0]), max(x[1], y[1])) for x, y in zip(a, b, strict=True))


def _padded_crop(mask: np.ndarray, box: _Box) -> np.ndarray:
    """``mask`` inside ``box`` as bool, with one background voxel of margin on every side."""
    out = np.zeros(tuple(hi - lo + 3 for lo, hi in box), dtype=bool)
    out[tuple(slice(1, -1) for _ in box)] = mask[tuple(slice(lo, hi + 1) for lo, hi in box)]
    return out


@dataclass(frozen=True)
class _Pair:
    """Both masks cropped to the union bounding box (+1 voxel margin) with their voxel counts."""

    pred: np.ndarray | None  # padded bool crop; None when both masks are empty
    ref: np.ndarray | None
    n_pred: int
    n_ref: int
    n_both: int


def _crop_pair(pred: np.ndarray, ref: np.ndarray) -> _Pair:
    box = _union(bounding_box(pred), bounding_box(ref))
    if box is None:
        return _Pair(None, None, 0, 0, 0)
    p, r = _padded_crop(pred, box), _padded_crop(ref, box)
    return _Pair(p, r, int(np.count_nonzero(p)), int(np.count_nonzero(r)), int(np.count_nonzero(p & r)))


# --------------------------------------------------------------------------- overlap metrics


def _ratio(num: int, den: int) -> float:
    return float(num) / den if den else math.nan


def _dice(c: _Pair) -> float:
    return 1.0 if c.n_pred + c.n_ref == 0 else 2.0 * c.n_both / (c.n_pred + c.n_ref)


def _iou(c: _Pair) -> float:
    union = c.n_pred + c.n_ref - c.n_both
    return 1.0 if union == 0 else c.n_both / union


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice coefficient = the paper's F-measure (eq. 3): 2 TP / (2 TP + FP + FN).

    Both masks empty gives 1.0 (DESIGN.md); one empty gives 0.0.
    """
    return _dice(_crop_pair(*_check_pair(pred, ref)))


def iou(pred: np.ndarray, ref: np.ndarray) -> float:
    """Intersection over union (eq. 4): TP / (TP + FP + FN); 1.0 when both masks are empty."""
    return _iou(_crop_pair(*_check_pair(pred, ref)))


def precision(pred: np.ndarray, ref: np.ndarray) -> float:
    """Precision P = TP / (TP + FP) (section 3.4); NaN when the prediction is empty (0/0)."""
    c = _crop_pair(*_check_pair(pred, ref))
    return _ratio(c.n_both, c.n_pred)


def recall(pred: np.ndarray, ref: np.ndarray) -> float:
    """Recall R = TP / (TP + FN) (section 3.4); NaN when the reference is empty (0/0)."""
    c = _crop_pair(*_check_pair(pred, ref))
    return _ratio(c.n_both, c.n_ref)


def volume_ml(mask: np.ndarray, spacing: Sequence[float]) -> float:
    """Volume of the non-zero voxels in mL (voxel count x voxel volume in mm^3 / 1000)."""
    m = np.asarray(mask)
    sp = _check_spacing(spacing, m.ndim, m.shape)
    return int(np.count_nonzero(m)) * math.prod(sp) / 1000.0


# --------------------------------------------------------------------------- surface distances


def surface_distances(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], method: Method = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances in mm: (pred surface → ref surface, ref surface → pred surface).

    Surfaces and distances as in the module docstring. Each array holds one distance per surface
    voxel (in C order of the voxels, unsorted). An empty mask has no surface: its own array is empty
    and the other one is all ``inf`` (there is nothing to be near). ``method`` as in :func:`hd95`.
    """
    p, r = _check_pair(pred, ref)
    sp = _check_spacing(spacing, p.ndim, p.shape)
    c = _crop_pair(p, r)
    if c.pred is None or c.ref is None:
        return np.empty(0), np.empty(0)
    sp_, sr = surface_voxels(c.pred), surface_voxels(c.ref)
    if c.n_pred == 0 or c.n_ref == 0:
        return np.full(int(np.count_nonzero(sp_)), np.inf), np.full(int(np.count_nonzero(sr)), np.inf)
    return directed_distances(sp_, sr, sp, method)


def _hd_from_pair(c: _Pair, sp: tuple[float, ...], percentile: float, method: Method = "auto") -> float:
    if c.n_pred == 0 and c.n_ref == 0:
        return 0.0
    if c.n_pred == 0 or c.n_ref == 0:
        return math.nan
    assert c.pred is not None and c.ref is not None
    s_pred, s_ref = surface_voxels(c.pred), surface_voxels(c.ref)
    if np.array_equal(s_pred, s_ref):  # identical surfaces: every distance is 0, skip both transforms
        return 0.0
    d_pr, d_rp = directed_distances(s_pred, s_ref, sp, method)
    return float(max(np.percentile(d_pr, percentile), np.percentile(d_rp, percentile)))


def hd95(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float],
    percentile: float = 95.0,
    method: Method = "auto",
) -> float:
    """Percentile Hausdorff distance d_H95 in mm (paper eq. 5 with the 95th percentile).

    The ``percentile`` of each directed set of surface distances (linear interpolation, as
    ``numpy.percentile`` and MONAI's ``torch.quantile``), then the larger of the two. With
    ``percentile=100`` this is the classical Hausdorff distance of eq. 5.

    Args:
        pred: predicted mask (non-zero = foreground), 2D or 3D.
        ref: reference mask, same shape.
        spacing: voxel size in mm along each array axis.
        percentile: in [0, 100].
        method: how the exact nearest-surface distances are found: "edt" (Euclidean distance
            transform of the crop; in 3D computed slice by slice along the coarsest axis),
            "kdtree" (k-d tree over the surface voxels) or "auto" (the k-d tree only when the crop
            is mostly empty space, e.g. a small false positive far from the lesion). The distances
            are the same; only the time differs.

    Returns:
        d_H95 in mm; 0.0 when both masks are empty, NaN when exactly one is empty.
    """
    if not 0.0 <= float(percentile) <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    p, r = _check_pair(pred, ref)
    sp = _check_spacing(spacing, p.ndim, p.shape)
    return _hd_from_pair(_crop_pair(p, r), sp, float(percentile), method)


def worst_case_hd95_mm(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """The worst-case d_H95 of a scan: the diagonal of its field of view in mm, ``‖shape × spacing‖``.

    No two surface points of the scan can be farther apart, so it bounds every real d_H95. It is the
    value given to a missed lesion or a false alarm (one mask empty) under the ``worst`` policy, as in
    MetricsReloaded (Maier-Hein et al. 2024) and the BraTS challenges (373.13 mm, the diagonal of their
    240 × 240 × 155 grid of 1 mm voxels).

    Example:
        >>> round(worst_case_hd95_mm((240, 240, 155), (1.0, 1.0, 1.0)), 2)
        373.13
    """
    dims = tuple(int(n) for n in shape)
    sp = _check_spacing(spacing, len(dims), dims)
    return float(math.sqrt(sum((n * s) ** 2 for n, s in zip(dims, sp, strict=True))))


def segmentation_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float],
    percentile: float = 95.0,
    empty_hd95: float = math.nan,
) -> SegmentationMetrics:
    """Every metric of one subject in one pass (one crop shared by all of them).

    Args:
        pred: predicted mask (non-zero = foreground), 2D or 3D.
        ref: reference mask on the same grid.
        spacing: voxel size in mm along each array axis.
        percentile: the Hausdorff percentile (95 in the paper).
        empty_hd95: d_H95 reported when exactly one mask is empty (status ``missed`` or
            ``false_alarm``): NaN (the ``exclude`` policy) or :func:`worst_case_hd95_mm` of the scan
            (the ``worst`` policy, iphbench's default).

    Returns:
        The metrics and the subject's status: "ok", "both_empty", "missed" or "false_alarm".
    """
    if not 0.0 <= float(percentile) <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    p, r = _check_pair(pred, ref)
    sp = _check_spacing(spacing, p.ndim, p.shape)
    c = _crop_pair(p, r)
    status: Status
    if c.n_pred == 0 and c.n_ref == 0:
        status = "both_empty"
    elif c.n_pred == 0:
        status = "missed"
    elif c.n_ref == 0:
        status = "false_alarm"
    else:
        status = "ok"
    voxel_ml = math.prod(sp) / 1000.0
    return SegmentationMetrics(
        dice=_dice(c),
        iou=_iou(c),
        precision=_ratio(c.n_both, c.n_pred),
        recall=_ratio(c.n_both, c.n_ref),
        hd95_mm=float(empty_hd95)
        if status in ("missed", "false_alarm")
        else _hd_from_pair(c, sp, float(percentile)),
        ref_ml=c.n_ref * voxel_ml,
        pred_ml=c.n_pred * voxel_ml,
        status=status,
    )
