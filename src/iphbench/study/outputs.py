"""What ``iphbench predict`` may write over: the output check, and the stamp on every output it writes.

Two rules (docs/predict.md, "What predict writes over"), checked for every planned output before
any model is loaded (:func:`check_outputs`):

1. an output never replaces an input: not the same path (symlinks, ``..``, relative paths
   resolved), not the same file (device and inode: a hard link), not a file inside an input DICOM
   series folder (it would join the series). ``--overwrite`` does not lift this rule;
2. an existing file is replaced only when ``iphbench predict`` wrote it, i.e. it carries our stamp
   (:func:`written_by_predict`), or with ``--overwrite``. Re-running into the same place (the
   normal resume) therefore needs no flag, while a user's own file of the same name is refused.

The stamp, by format: NIfTI header ``descrip`` = ``iphbench predict <what> <version>
<fingerprint>``; NRRD/MHA header key ``iphbench`` = ``predict <what> <version> <fingerprint>``;
PNG text chunk ``iphbench`` = ``predict summary <version>``; DICOM SEG: Segmentation Storage with
Manufacturer ``iphbench`` (what ``iphbench.io.seg`` writes); ``predictions.csv``: its header
(:data:`TABLE_HEADER`). A stamp is metadata a user's own file does not carry by accident and it
travels with the file (an unchanged copy is still ours); the fingerprint of the voxels makes an
output that a user corrected in a viewer and saved under the same name theirs (ITK-based viewers
keep the header, stamp included, but the voxels changed).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from PIL import Image

from iphbench import __version__
from iphbench._files import atomic_path
from iphbench.io._sitk import to_itk
from iphbench.io.mask import write_mask_like
from iphbench.io.volume import Volume, write_nifti_like

log = logging.getLogger(__name__)

STAMP_KEY = "iphbench"  # the stamp's key in NRRD/MHA headers and PNG text chunks
SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"  # DICOM Segmentation Storage SOP class
#: How every ``predictions.csv`` that iphbench wrote begins (``iphbench.study.batch.COLUMNS``;
#: later versions append columns): the table's stamp.
TABLE_HEADER: tuple[str, ...] = (
    "subject", "input", "output", "summary", "volume_ml", "n_lesions", "seconds", "status", "error",
    "style", "orientation",
)  # fmt: skip


class OutputRefused(ValueError):
    """An output would write over an input, or over a file ``iphbench predict`` did not write; nothing was written."""


def _identity(path: Path) -> tuple[int, int] | None:
    """The file's (device, inode), following symlinks; ``None`` when it does not exist."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _listing(lines: Sequence[str], limit: int = 10) -> str:
    more = f"; and {len(lines) - limit} more" if len(lines) > limit else ""
    return "; ".join(lines[:limit]) + more


def check_outputs(
    outputs: Sequence[tuple[str, Path]],
    inputs: Sequence[Path],
    overwrite: bool = False,
    advice: str = "choose another output path",
) -> None:
    """Refuse outputs that would destroy an input, or a file that ``iphbench predict`` did not write.

    Always refused, ``overwrite`` or not: an output that is an input (the same path once resolved:
    symlinks, ``..``, relative paths; or the same file by device and inode: a hard link, another
    spelling on a case-insensitive file system), an output inside an input folder (a file written
    into a DICOM series folder joins the series), two outputs that are one file, and an output
    that is a folder. Refused unless ``overwrite``: an existing file without the stamp of
    ``iphbench predict`` (:func:`written_by_predict`), so re-running into the same place replaces
    our own outputs and nothing else.

    Args:
        outputs: ``(label, path)`` of every file to be written; the label names it in the message
            (``--output``, ``--probability``, ``summary image``, ``output``, ``table``).
        inputs: the scans (files and DICOM series folders) and any other file read (a manifest).
        overwrite: replace existing files that ``iphbench predict`` did not write.
        advice: what to do instead, at the end of the message (e.g. ``choose another --out-dir``).

    Raises:
        OutputRefused: naming every refused output and why; nothing has been written.
    """
    by_path: dict[Path, Path] = {}
    by_id: dict[tuple[int, int], Path] = {}
    folders: dict[Path | tuple[int, int], Path] = {}  # input folders by resolved path and by identity
    for inp in map(Path, inputs):
        ident = _identity(inp)
        by_path[inp.resolve()] = inp
        if ident is not None:
            by_id[ident] = inp
        if inp.is_dir():
            folders[inp.resolve()] = inp
            if ident is not None:
                folders[ident] = inp
    clashes: list[str] = []
    seen: dict[Path | tuple[int, int], tuple[str, Path]] = {}
    holding: dict[Path, Path | None] = {}  # an output's folder -> the input folder it lies in (cached)
    for label, out in outputs:
        out = Path(out)
        where, ident = out.resolve(), _identity(out)
        hit = by_path.get(where) or (by_id.get(ident) if ident is not None else None)
        if hit is not None:
            clashes.append(f"{label} {out} is the input {hit} (it would be lost)")
            continue
        if folders:
            if where.parent not in holding:
                holding[where.parent] = _folder_holding(where.parent, folders)
            folder = holding[where.parent]
            if folder is not None:
                clashes.append(
                    f"{label} {out} lies inside the input DICOM series folder {folder} (a file there joins the series)"
                )
                continue
        first = seen.get(where) or (seen.get(ident) if ident is not None else None)
        if first is not None:
            clashes.append(f"{label} {out} and {first[0]} {first[1]} are the same file")
            continue
        seen[where] = (label, out)
        if ident is not None:
            seen[ident] = (label, out)
    if clashes:
        raise OutputRefused(
            f"refusing to write over an input: {_listing(clashes)}. Nothing was written: {advice}"
        )
    existing = [Path(out) for _, out in outputs if Path(out).exists()]
    not_files = [str(p) for p in existing if p.is_dir()]
    if not_files:
        raise OutputRefused(f"output {_listing(not_files)} is a folder, not a file: {advice}")
    foreign = [str(p) for p in existing if not overwrite and not written_by_predict(p)]
    if foreign:
        raise OutputRefused(
            f"refusing to replace {len(foreign)} existing file(s) that iphbench predict did not write: "
            f"{_listing(foreign)}. Nothing was written: pass --overwrite to replace them, or {advice}"
        )


def _folder_holding(folder: Path, inputs: dict[Path | tuple[int, int], Path]) -> Path | None:
    """The input folder that is ``folder`` or one of its parents (by resolved path or identity)."""
    for candidate in (folder, *folder.parents):
        hit = inputs.get(candidate)
        ident = _identity(candidate) if hit is None else None
        if hit is None and ident is not None:
            hit = inputs.get(ident)
        if hit is not None:
            return hit
    return None


def fingerprint(data: np.ndarray) -> str:
    """16 hex digits of the SHA-256 of voxels as stored (dtype, shape, bytes).

    Part of a volume's stamp: an output edited in a viewer and saved under the same name keeps
    its header (ITK-based tools copy the NIfTI ``descrip`` and header keys), but no longer its
    voxels, so it stops being ours and is not replaced without ``--overwrite``.
    """
    digest = hashlib.sha256(f"{data.dtype.str}{data.shape}".encode())
    digest.update(np.ascontiguousarray(data).tobytes())
    return digest.hexdigest()[:16]


def stamp(what: str, data: np.ndarray | None = None) -> str:
    """The stamp ``iphbench predict`` writes into an output: ``predict <what> <version> [<fingerprint>]``.

    Args:
        what: mask, probability or summary.
        data: the voxels as written (a volume's stamp names them: :func:`fingerprint`); ``None``
            for the summary PNG.
    """
    text = f"predict {what} {__version__}"
    return text if data is None else f"{text} {fingerprint(data)}"


def _matches(value: str, voxels: Callable[[], np.ndarray] | None) -> bool:
    """Whether ``value`` is a stamp of ours whose fingerprint (if ``voxels``) fits the file's voxels."""
    parts = value.split()
    if len(parts) < 3 or parts[0] != "predict":
        return False
    return voxels is None or (len(parts) == 4 and parts[3] == fingerprint(voxels()))


def written_by_predict(path: Path) -> bool:
    """Whether ``path`` carries the stamp of ``iphbench predict`` (so a new run may replace it).

    The stamp, by format: NIfTI header ``descrip`` = ``iphbench predict <what> <version>
    <fingerprint>``; NRRD/MHA header key ``iphbench`` = ``predict <what> <version> <fingerprint>``
    (the fingerprint must still fit the voxels: an edited output is no longer ours); PNG text chunk
    ``iphbench`` = ``predict summary <version>``; DICOM SEG: Segmentation Storage with Manufacturer
    ``iphbench``; ``predictions.csv``: its header (:data:`TABLE_HEADER`). A file that cannot be
    read, or holds another format under our suffix, is not ours.
    """
    name = path.name.lower()
    try:
        if name.endswith((".nii", ".nii.gz")):
            img: Any = nib.load(str(path))  # the voxels are read only when the header holds our stamp
            descrip = bytes(np.asarray(img.header["descrip"]).item()).decode("ascii", "replace")
            ours = descrip.startswith(f"{STAMP_KEY} ")
            return ours and _matches(descrip[len(STAMP_KEY) + 1 :], lambda: np.asanyarray(img.dataobj))
        if name.endswith((".nrrd", ".mha")):
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(path))
            reader.ReadImageInformation()
            value = reader.GetMetaData(STAMP_KEY) if reader.HasMetaDataKey(STAMP_KEY) else ""
            return _matches(value, lambda: sitk.GetArrayFromImage(reader.Execute()))
        if name.endswith(".png"):
            with Image.open(path) as picture:
                return _matches(str(picture.info.get(STAMP_KEY, "")), None)
        if name.endswith(".dcm"):
            import pydicom

            ds = pydicom.dcmread(path, stop_before_pixels=True)
            return str(ds.get("SOPClassUID", "")) == SEG_STORAGE and ds.get("Manufacturer") == "iphbench"
        if name.endswith(".csv"):
            with path.open(encoding="utf-8", errors="replace") as fh:
                columns = fh.readline().strip().split(",")
            return columns[: len(TABLE_HEADER)] == list(TABLE_HEADER)
    except Exception:  # unreadable, truncated, pydicom missing, another format under our suffix
        log.debug("%s: no iphbench predict stamp read", path, exc_info=True)
    return False


def write_stamped_nifti(
    array: np.ndarray, image: Volume, path: Path, what: str, dtype: type | np.dtype
) -> Path:
    """``write_nifti_like`` with our stamp (and the written voxels' fingerprint) in ``descrip``."""
    data = image.to_source(np.asarray(array)).astype(dtype, copy=False)
    return write_nifti_like(array, image, path, dtype=dtype, description=f"{STAMP_KEY} {stamp(what, data)}")


def write_prediction_mask(mask: np.ndarray, image: Volume, path: Path) -> Path:
    """Write a predicted mask in ``image``'s own grid (as ``write_mask_like``), stamped as ours.

    The stamp (:func:`written_by_predict`) lets the next run replace this file without ``--overwrite``.
    """
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return write_stamped_nifti(mask, image, path, "mask", np.uint8)
    if not name.endswith((".nrrd", ".mha")):
        return write_mask_like(mask, image, path)  # refuses the suffix with its own message
    # write_mask_like (io/mask.py) writes NRRD/MHA without header keys: its steps, plus the stamp

    itk = to_itk(image.to_source(np.asarray(mask)).astype(np.uint8, copy=False), image.source.affine)
    itk.SetMetaData(STAMP_KEY, stamp("mask", sitk.GetArrayViewFromImage(itk)))
    with atomic_path(path, suffix=name[name.rindex(".") :]) as tmp:
        sitk.WriteImage(itk, str(tmp), useCompression=True)
    return path
