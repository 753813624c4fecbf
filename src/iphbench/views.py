"""The three orientations of the paper (2DAxi, 2DCor, 2DSag) as fixed axis permutations.

Every volume inside iphbench is held in the canonical RAS+ voxel order (see
``iphbench.io.volume``): array axis 0 runs left→Right, axis 1 posterior→Anterior,
axis 2 inferior→Superior. A view is then a fixed choice of slicing axis:

======  ============  =============  =========================
view    slices along  slice shape    permutation of (x, y, z)
======  ============  =============  =========================
2DAxi   axis 2 (S)    (x, y)         (2, 0, 1)
2DCor   axis 1 (A)    (x, z)         (1, 0, 2)
2DSag   axis 0 (R)    (y, z)         (0, 1, 2)
======  ============  =============  =========================

``to_slices`` moves the slicing axis to the front, so a 64³ patch becomes 64 slices of
64×64; ``from_slices`` is its exact inverse. Both work on a leading batch of patches too.
The 2.5D style is not a view: it is the mean of the three views' probabilities
(paper section 3.4).
"""

from __future__ import annotations

from typing import Final, TypeVar

VIEWS: Final[tuple[str, ...]] = ("2DAxi", "2DCor", "2DSag")
FUSED: Final[str] = "2.5D"
ORIENTATIONS: Final[tuple[str, ...]] = (*VIEWS, FUSED)

_PERM: Final[dict[str, tuple[int, int, int]]] = {
    "2DAxi": (2, 0, 1),
    "2DCor": (1, 0, 2),
    "2DSag": (0, 1, 2),
}

ArrayT = TypeVar("ArrayT")


def check_view(view: str) -> str:
    """Return ``view`` if it names one of the three views, else raise a ValueError listing them."""
    if view not in _PERM:
        raise ValueError(f"unknown view {view!r}; valid views are {', '.join(VIEWS)}")
    return view


def permutation(view: str) -> tuple[int, int, int]:
    """Axis permutation that brings the slicing axis of ``view`` first."""
    return _PERM[check_view(view)]


def inverse_permutation(view: str) -> tuple[int, int, int]:
    """The permutation that undoes :func:`permutation`."""
    perm = permutation(view)
    inv = [0, 0, 0]
    for i, p in enumerate(perm):
        inv[p] = i
    return (inv[0], inv[1], inv[2])


def _permute(array: ArrayT, axes: tuple[int, ...]) -> ArrayT:
    """Reorder all axes of a NumPy array or a torch tensor (torch's ``transpose`` swaps only two)."""
    if hasattr(array, "permute"):
        return array.permute(*axes)
    return array.transpose(*axes)  # type: ignore[attr-defined]


def to_slices(volume: ArrayT, view: str) -> ArrayT:
    """Cut a volume ``(X, Y, Z)`` or a batch ``(B, X, Y, Z)`` into 2D slices of ``view``.

    Returns ``(S, H, W)`` for one volume and ``(B * S, H, W)`` for a batch, where S is the
    extent along the slicing axis. Works on NumPy arrays and torch tensors alike.

    Example:
        >>> import numpy as np
        >>> v = np.arange(2 * 3 * 4).reshape(2, 3, 4)
        >>> to_slices(v, "2DAxi").shape
        (4, 2, 3)
        >>> bool((from_slices(to_slices(v, "2DAxi"), "2DAxi", v.shape) == v).all())
        True
    """
    perm = permutation(view)
    ndim = volume.ndim  # type: ignore[attr-defined]
    if ndim == 3:
        return _permute(volume, perm)
    if ndim == 4:
        moved = _permute(volume, (0, *(p + 1 for p in perm)))
        b, s, h, w = moved.shape  # type: ignore[attr-defined]
        return moved.reshape(b * s, h, w)  # type: ignore[attr-defined]
    raise ValueError(f"to_slices expects a 3D volume or a 4D batch, got {ndim} dimensions")


def from_slices(slices: ArrayT, view: str, shape: tuple[int, ...]) -> ArrayT:
    """Put slices made by :func:`to_slices` back into volumes of ``shape`` (3D or batched 4D)."""
    perm = permutation(view)
    inv = inverse_permutation(view)
    if len(shape) == 3:
        return _permute(slices, inv)
    if len(shape) == 4:
        b = shape[0]
        spatial = shape[1:]
        moved_shape = (b, *(spatial[p] for p in perm))
        vol = slices.reshape(moved_shape)  # type: ignore[attr-defined]
        return _permute(vol, (0, *(i + 1 for i in inv)))
    raise ValueError(f"from_slices expects a 3D or 4D target shape, got {shape}")


def slice_spacing(spacing: tuple[float, float, float], view: str) -> tuple[float, float]:
    """In-plane pixel spacing (mm) of a slice in ``view`` given canonical voxel spacing."""
    perm = permutation(view)
    return (spacing[perm[1]], spacing[perm[2]])


__all__ = [
    "FUSED",
    "ORIENTATIONS",
    "VIEWS",
    "check_view",
    "from_slices",
    "inverse_permutation",
    "permutation",
    "slice_spacing",
    "to_slices",
]
