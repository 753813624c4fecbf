"""Zero-padding to multiples of the patch size and the non-overlapping cubic patch grid.

Paper section 3.2: "All 3D volumes were standardized to dimensions that are multiples of 64
through zero-padding. Each volume was split into 64 × 64 × 64 patches [...] that retained
patches containing at least one hemorrhagic lesion voxel". The grid does not overlap, so
``scatter_patches(extract_patches(a, o, P), o, a.shape)`` gives back ``a`` exactly wherever a
patch was taken, and ``unpad(pad_to_multiple(a, P))`` is ``a``.

Padding goes after the data on every axis (``pad[i] = (0, after)``), so voxel ``(i, j, k)``
keeps its index and the affine of the padded grid is the affine of the unpadded one.

Example:
    >>> import numpy as np
    >>> a = np.ones((70, 64, 10), dtype=np.uint8)
    >>> padded, pad = pad_to_multiple(a, 64)
    >>> padded.shape, pad
    ((128, 64, 64), ((0, 58), (0, 0), (0, 54)))
    >>> len(patch_origins(padded.shape, 64))
    2
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Pad = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
SelectionMode = Literal["lesion", "brain"]
SELECTION_MODES: tuple[str, ...] = ("lesion", "brain")


def padded_shape(shape: tuple[int, ...], size: int) -> tuple[int, int, int]:
    """Smallest shape ≥ ``shape`` whose sides are multiples of ``size`` (at least one patch per axis)."""
    if size <= 0:
        raise ValueError(f"patch size must be a positive integer, got {size}")
    if len(shape) != 3:
        raise ValueError(f"expected a 3D shape, got {shape}")
    out = [max(1, -(-int(n) // size)) * size for n in shape]
    return (out[0], out[1], out[2])


def pad_to_multiple(array: np.ndarray, size: int, value: float = 0) -> tuple[np.ndarray, Pad]:
    """Zero-pad a 3D array after its data so every side is a multiple of ``size`` (paper section 3.2).

    Args:
        array: 3D array in the canonical grid.
        size: patch side in voxels (paper: 64).
        value: fill value of the padding.

    Returns:
        The padded array (same dtype) and the pad widths ``((0, ax), (0, ay), (0, az))``.
    """
    target = padded_shape(array.shape, size)
    pad: Pad = (
        (0, target[0] - array.shape[0]),
        (0, target[1] - array.shape[1]),
        (0, target[2] - array.shape[2]),
    )
    if all(after == 0 for _, after in pad):
        return array, pad
    out = np.full(target, value, dtype=array.dtype)  # faster than np.pad for large volumes
    out[: array.shape[0], : array.shape[1], : array.shape[2]] = array
    return out, pad


def unpad(array: np.ndarray, pad: Pad | list[list[int]] | list[tuple[int, int]]) -> np.ndarray:
    """Undo :func:`pad_to_multiple` exactly (a crop; a view, not a copy)."""
    if array.ndim != 3 or len(pad) != 3:
        raise ValueError(f"unpad expects a 3D array and three pad pairs, got shape {array.shape} and {pad}")
    sl = tuple(slice(int(b), n - int(a)) for (b, a), n in zip(pad, array.shape, strict=True))
    return array[sl]


def patch_origins(shape: tuple[int, ...], size: int) -> np.ndarray:
    """Origins ``(N, 3)`` (int64, C order) of every patch of the grid over a padded ``shape``."""
    _check_grid(shape, size)
    axes = [np.arange(0, n, size, dtype=np.int64) for n in shape]
    grid = np.meshgrid(*axes, indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=1)


def patch_counts(array: np.ndarray, size: int) -> np.ndarray:
    """Number of non-zero voxels in each patch of the grid, shaped ``(nx, ny, nz)`` (int64).

    ``patch_counts(a, P).ravel()`` lines up with ``patch_origins(a.shape, P)``.
    """
    _check_grid(array.shape, size)
    nx, ny, nz = (n // size for n in array.shape)
    blocks = (array != 0).reshape(nx, size, ny, size, nz, size)
    return blocks.sum(axis=(1, 3, 5), dtype=np.int64)


def select_patches(
    mask: np.ndarray | None,
    brain: np.ndarray | None,
    size: int,
    mode: SelectionMode | str,
) -> np.ndarray:
    """Origins ``(N, 3)`` of the patches kept by a selection mode.

    Modes:
        ``lesion``: patches holding at least one lesion voxel (the paper's selective patching,
        section 3.2); needs ``mask``.
        ``brain``: patches holding at least one brain voxel (whole-brain evaluation and negative
        sampling); needs ``brain``.
    """
    if mode == "lesion":
        source = mask
    elif mode == "brain":
        source = brain
    else:
        raise ValueError(f"unknown patch selection mode {mode!r}; valid modes are {list(SELECTION_MODES)}")
    if source is None:
        raise ValueError(
            f"patch selection mode {mode!r} needs the {'mask' if mode == 'lesion' else 'brain'} array"
        )
    counts = patch_counts(source, size).ravel()
    return patch_origins(source.shape, size)[counts > 0]


def extract_patches(array: np.ndarray, origins: np.ndarray, size: int) -> np.ndarray:
    """Copy the patches at ``origins`` out of a padded 3D array: ``(N, P, P, P)`` of its dtype."""
    origins = np.asarray(origins, dtype=np.int64).reshape(-1, 3)
    out = np.empty((len(origins), size, size, size), dtype=array.dtype)
    for i, (ox, oy, oz) in enumerate(origins):
        out[i] = array[ox : ox + size, oy : oy + size, oz : oz + size]
    return out


def scatter_patches(
    patches: np.ndarray,
    origins: np.ndarray,
    shape: tuple[int, ...],
    fill: float = 0,
    dtype: np.dtype | type | None = None,
) -> np.ndarray:
    """Put patches back into a padded volume of ``shape``; voxels outside every patch get ``fill``.

    The grid does not overlap, so each voxel is written at most once and the round trip with
    :func:`extract_patches` is exact.
    """
    patches = np.asarray(patches)
    origins = np.asarray(origins, dtype=np.int64).reshape(-1, 3)
    if patches.ndim != 4 or len(patches) != len(origins):
        raise ValueError(
            f"expected patches (N, P, P, P) for {len(origins)} origins, got shape {patches.shape}"
        )
    size = patches.shape[1]
    out = np.full(shape, fill, dtype=dtype or patches.dtype)
    for patch, (ox, oy, oz) in zip(patches, origins, strict=True):
        out[ox : ox + size, oy : oy + size, oz : oz + size] = patch
    return out


def _check_grid(shape: tuple[int, ...], size: int) -> None:
    if size <= 0:
        raise ValueError(f"patch size must be a positive integer, got {size}")
    if len(shape) != 3 or any(n % size for n in shape):
        raise ValueError(
            f"shape {tuple(shape)} is not a 3D grid of whole {size}-voxel patches; pad it with pad_to_multiple first"
        )


__all__ = [
    "SELECTION_MODES",
    "Pad",
    "SelectionMode",
    "extract_patches",
    "pad_to_multiple",
    "padded_shape",
    "patch_counts",
    "patch_origins",
    "scatter_patches",
    "select_patches",
    "unpad",
]
