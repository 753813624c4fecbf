"""The ``Volume`` type: a 3D scan or mask in canonical RAS+ voxel order, with the way back to its file.

Canonical orientation (documented once, used everywhere): after reading, voxel axes are
reordered and flipped (never resampled) to the closest RAS+ orientation of the file's
affine, as ``nibabel.as_closest_canonical`` does. Increasing array index 0 then moves
towards the patient's Right, index 1 towards Anterior and index 2 towards Superior, so
the axial, coronal and sagittal views are fixed array axes for every input (see
``iphbench.views``). Oblique scans keep their obliquity in ``affine``; only the closest
axis order is used.

``SourceGrid`` remembers the file's own shape, affine and the permutation/flip that was
applied, so a predicted mask is written back in the exact grid and orientation of the
file it came from: read → write → read returns the same array and affine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel import orientations as ornt_mod
from nibabel.openers import ImageOpener

from iphbench._files import atomic_path

MIN_SLICES = 3
"""Fewest voxels a scan may have along any axis (``check_voxels``).

Why 3: the coronal and sagittal views (2DCor, 2DSag) cut the volume across its slices, and the
brain extraction fills the skull's cavity in 3D; both need a slice with neighbours on both sides.
With 1 or 2 slices every voxel lies on the volume's surface: the cross-sections are 1-2 pixel
strips padded into 64-pixel patches and nothing can be "inside" the skull, so the models (trained
on whole heads) would predict on garbage. No real head CT is near this limit (10 mm slices cover a
head in about 15); a 1-2 slice series is a localizer or a single exported slice. A short slab of a
few slices is still a volume and is read, as a DICOM series of 3 slices is.
"""


class VolumeReadError(OSError):
    """A scan or mask could not be read; the message names the file and the cause."""


@dataclass
class SourceGrid:
    """How a canonical array maps back to the file it was read from."""

    shape: tuple[int, ...]  # array shape in the file's own voxel order
    affine: np.ndarray  # the file's voxel→world (RAS mm) affine
    ornt: np.ndarray  # nibabel orientation transform from file axes to canonical axes (3×2)
    path: str | None = None  # the file or DICOM folder it came from
    format: str = "nifti"  # "nifti", "nrrd", "mha", "dicom"
    meta: dict[str, object] = field(default_factory=dict)  # format extras (e.g. DICOM series UID)


@dataclass
class Volume:
    """A 3D array in canonical RAS+ voxel order with its affine (mm) and its source grid.

    Attributes:
        array: voxel values; HU (float32) for scans, {0, 1} (uint8) for masks.
        affine: 4×4 voxel→world (RAS, mm) affine of ``array``.
        source: the file's own grid, for writing results back aligned with the input.
    """

    array: np.ndarray
    affine: np.ndarray
    source: SourceGrid

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along the canonical axes (x, y, z)."""
        sp = np.sqrt((np.asarray(self.affine)[:3, :3] ** 2).sum(axis=0))
        return (float(sp[0]), float(sp[1]), float(sp[2]))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in mL (1 mL = 1000 mm³)."""
        sx, sy, sz = self.spacing
        return sx * sy * sz / 1000.0

    def to_source(self, array: np.ndarray) -> np.ndarray:
        """Map a canonical-grid array (same shape as ``self.array``) back to the file's voxel order."""
        if tuple(array.shape) != self.shape:
            raise ValueError(
                f"array shape {array.shape} does not match the volume's canonical shape {self.shape}"
            )
        inverse = ornt_mod.ornt_transform(ornt_mod.axcodes2ornt(("R", "A", "S")), _source_ornt(self.source))
        return np.asarray(ornt_mod.apply_orientation(array, inverse))

    def with_array(self, array: np.ndarray) -> Volume:
        """A new Volume on the same grid holding ``array``."""
        if tuple(array.shape) != self.shape:
            raise ValueError(f"array shape {array.shape} does not match the volume's shape {self.shape}")
        return Volume(array=array, affine=self.affine.copy(), source=self.source)


def _source_ornt(source: SourceGrid) -> np.ndarray:
    return ornt_mod.io_orientation(source.affine)


def canonicalize(array: np.ndarray, affine: np.ndarray, source: SourceGrid) -> Volume:
    """Reorder and flip a file-grid ``array`` into canonical RAS+ order (no resampling)."""
    if array.ndim != 3:
        raise VolumeReadError(f"{source.path}: expected a 3D volume, got shape {array.shape}")
    spacing = np.sqrt((np.asarray(affine, dtype=np.float64)[:3, :3] ** 2).sum(axis=0))
    if not np.all(np.isfinite(affine)) or np.any(spacing <= 0) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        shown = " x ".join(f"{s:.4g}" for s in spacing)
        raise VolumeReadError(
            f"{source.path}: invalid voxel grid (voxel spacing {shown} mm, or axes not independent); "
            "fix the file's header (pixdim / spacing / direction)"
        )
    file_ornt = ornt_mod.io_orientation(affine)
    transform = ornt_mod.ornt_transform(file_ornt, ornt_mod.axcodes2ornt(("R", "A", "S")))
    canon = np.ascontiguousarray(ornt_mod.apply_orientation(array, transform))
    canon_affine = affine @ ornt_mod.inv_ornt_aff(transform, array.shape)
    source.ornt = transform
    return Volume(array=canon, affine=canon_affine, source=source)


def check_voxels(data: np.ndarray, path: str | Path, finite: bool = True) -> np.ndarray:
    """Return ``data`` as a 3D array or raise a ``VolumeReadError`` that says what is wrong with it.

    A trailing axis of length 1 (a 4D file holding one volume) is dropped. 2D images, volumes
    with fewer than ``MIN_SLICES`` voxels along an axis (the one rule for NIfTI, NRRD, MHA and
    DICOM: every reader passes here), 4D files with several volumes and (when ``finite``) NaN or
    infinite voxels are refused.
    """
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 2 or (data.ndim == 3 and 0 in data.shape):
        raise VolumeReadError(
            f"{path}: is a 2D image (shape {data.shape}); iphbench needs a 3D CT volume "
            "(for a DICOM series, pass the folder that holds all its slices)"
        )
    if data.ndim > 3:
        n = int(np.prod(data.shape[3:]))
        raise VolumeReadError(
            f"{path}: holds {n} volumes (shape {data.shape}); iphbench needs one 3D CT volume per file: "
            "split the series (e.g. keep the first volume) and point the cohort at that file"
        )
    if data.ndim != 3:
        raise VolumeReadError(f"{path}: expected a 3D volume, got shape {data.shape}")
    thin = [axis for axis, n in enumerate(data.shape) if n < MIN_SLICES]
    if thin:
        axis = thin[0]
        n = data.shape[axis]
        raise VolumeReadError(
            f"{path} holds {n} slice{'s' if n != 1 else ''} along axis {axis} (shape {data.shape}); "
            f"iphbench needs a 3D CT volume (at least {MIN_SLICES} slices along every axis): "
            "give the whole series (for DICOM, the folder that holds all its slices)"
        )
    if finite and data.dtype.kind == "f":
        n_nan = int(np.isnan(data).sum())
        n_inf = int(np.isinf(data).sum())
        if n_nan or n_inf:
            raise VolumeReadError(
                f"{path}: contains {n_nan} NaN and {n_inf} infinite voxels; "
                "replace them (e.g. with -1024 HU for air) before using this scan"
            )
    return data


def read_nifti(path: str | Path, dtype: type | np.dtype | None = np.float32) -> Volume:
    """Read a NIfTI file (.nii or .nii.gz) into a canonical Volume (scl_slope/inter applied).

    Args:
        path: the file.
        dtype: array dtype of the result; ``None`` keeps the file's own (scaled) dtype.

    Raises:
        VolumeReadError: unreadable file, 2D or multi-volume data, NaN or infinite voxels.
    """
    path = Path(path)
    try:
        img: Any = nib.load(str(path))
        data = np.asanyarray(img.dataobj)  # on-disk dtype, or float64 when scl_slope/scl_inter are set
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise VolumeReadError(f"cannot read NIfTI file {path}: {exc}") from None
    data = check_voxels(data, path)
    if int(img.header["sform_code"]) == 0 and int(img.header["qform_code"]) == 0:
        _check_pixdim(img, path)
    affine = np.asarray(img.affine, dtype=np.float64)
    source = SourceGrid(
        shape=tuple(data.shape), affine=affine, ornt=np.zeros((3, 2)), path=str(path), format="nifti"
    )
    return canonicalize_as(data, affine, source, dtype)


def _check_pixdim(img: Any, path: Path) -> None:
    """Refuse a header without qform/sform whose voxel sizes are not all positive.

    nibabel silently replaces such sizes with 1 mm when loading (a wrong grid: wrong mL and mm),
    so the header is read again as stored, without its fixes.
    """
    with ImageOpener(str(path)) as fh:
        raw = type(img.header).from_fileobj(fh, check=False)
    zooms = np.asarray(raw["pixdim"][1:4], dtype=np.float64)
    if not np.all(zooms > 0):
        raise VolumeReadError(
            f"{path}: the header has no orientation (qform/sform) and voxel sizes {zooms.tolist()} mm; "
            "the voxel spacing is unknown: fix pixdim (or the qform/sform) in the header"
        )


def canonicalize_as(
    data: np.ndarray, affine: np.ndarray, source: SourceGrid, dtype: type | np.dtype | None
) -> Volume:
    """``canonicalize`` and cast to ``dtype`` (``None``: keep), reordering the narrower of the two dtypes.

    Reordering a Fortran-ordered file array into C order is the slow step of reading; doing
    it on int16 rather than float32/float64 halves the bytes moved.
    """
    target = data.dtype if dtype is None else np.dtype(dtype)
    if data.dtype.itemsize > target.itemsize:
        data = data.astype(target, copy=False)
    vol = canonicalize(data, affine, source)
    vol.array = vol.array.astype(target, copy=False)
    return vol


def write_nifti_like(
    array: np.ndarray,
    like: Volume,
    path: str | Path,
    dtype: type | np.dtype = np.uint8,
    description: str = "",
) -> Path:
    """Write a canonical-grid array as NIfTI in the exact grid and orientation of ``like``'s source file.

    Args:
        array: canonical-grid array with ``like.shape``.
        like: the Volume whose source grid the file takes.
        path: output ``.nii`` or ``.nii.gz`` (written atomically).
        dtype: voxel type written.
        description: the header's ``descrip`` (at most 80 ASCII characters). ``iphbench predict``
            stamps its outputs here so that a later run recognises them as its own and may
            replace them (``iphbench.study.outputs.written_by_predict``).
    """
    path = Path(path)
    data = like.to_source(np.asarray(array)).astype(dtype, copy=False)
    img = nib.Nifti1Image(data, like.source.affine)
    img.set_qform(like.source.affine, code=1)
    img.set_sform(like.source.affine, code=1)
    if description:
        img.header["descrip"] = description.encode("ascii", "replace")[:80]
    suffix = ".nii.gz" if path.name.endswith(".nii.gz") else ".nii"
    with atomic_path(path, suffix=suffix) as tmp:
        nib.save(img, str(tmp))
    return path
