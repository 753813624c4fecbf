"""Many scans in one call (``iphbench predict A B C --out-dir out``): inputs, outputs and one table.

Inputs are scan files (NIfTI, NRRD, MHA), DICOM series folders, folders holding any of these
(searched recursively: each folder that holds DICOM files is one series), or a cohort manifest
(its ``subject`` and ``image`` columns). The study's models are loaded once
(:class:`iphbench.inference.scan.ScanPredictor`); each scan is read, predicted and written on its
own, and a failure (an unreadable scan, values that are not HU, a full disk) is recorded in that
scan's row while the others go on. ``predictions.csv`` in the output folder is rewritten
(atomically) after every scan, so an interrupted batch leaves the rows done so far.

Every output path is planned (:func:`batch_outputs`) and checked before any model is loaded
(:func:`check_batch_outputs`: no output replaces an input, none replaces a file that
``iphbench predict`` did not write unless ``overwrite``; ``iphbench.study.outputs``). Warnings
logged while a scan is read and predicted, and the plausibility flags of its prediction
(:func:`iphbench.inference.scan.plausibility_warnings`), go into its row's ``warnings`` column.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iphbench._files import atomic_write_text
from iphbench.inference.scan import ScanPrediction, plausibility_warnings
from iphbench.inference.summary_image import write_summary_png
from iphbench.io import read_volume
from iphbench.io.cohort import CohortError, load_cohort, missing_columns_problem
from iphbench.io.read import SUFFIXES
from iphbench.io.seg import SegWriteError, write_dicom_seg
from iphbench.io.volume import Volume
from iphbench.masks import count_lesions
from iphbench.study.outputs import (
    STAMP_KEY,
    check_outputs,
    stamp,
    write_prediction_mask,
    write_stamped_nifti,
)
from iphbench.study.predict import ScanPredictor

log = logging.getLogger(__name__)

TABLE = "predictions.csv"
COLUMNS: tuple[str, ...] = (
    "subject",  # from the manifest, else the file or folder name
    "input",  # the scan file or DICOM folder
    "output",  # the mask written (NIfTI or DICOM SEG); empty when the scan failed
    "summary",  # the summary PNG, when requested
    "volume_ml",  # predicted hemorrhage volume in mL
    "n_lesions",  # connected components of the predicted mask (26-connectivity)
    "seconds",  # wall time for this scan: read, predict, write
    "status",  # "ok" or "failed"
    "error",  # why it failed (names the file)
    "style",  # the style that predicted it
    "orientation",  # 2.5D or one view
    # appended (the columns above keep their places): warnings logged while the scan was read and
    # predicted (e.g. no bone found, gantry tilt) and implausible-prediction flags, joined by "; "
    "warnings",
)
FORMATS: tuple[str, ...] = ("auto", "nifti", "seg")  # auto: DICOM SEG for a DICOM series, else NIfTI
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class BatchInputError(ValueError):
    """The batch's inputs cannot be used (nothing found, an unreadable manifest); nothing was predicted."""


@dataclass(frozen=True)
class ScanInput:
    """One scan to predict."""

    subject: str  # names its outputs: <subject>.nii.gz, <subject>.seg.dcm, <subject>.png
    path: Path | None  # a scan file or a DICOM series folder; None: a manifest row without image


def is_dicom_file(path: Path) -> bool:
    """A ``.dcm``/``.ima`` name, or the ``DICM`` marker after the 128-byte preamble."""
    if path.suffix.lower() in (".dcm", ".ima"):
        return True
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def _is_scan_file(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in SUFFIXES)


def _holds_dicom(folder: Path) -> bool:
    return any(p.is_file() and not p.name.startswith(".") and is_dicom_file(p) for p in folder.iterdir())


def _safe(name: str) -> str:
    return _UNSAFE.sub("_", name).strip("._") or "scan"


def _stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _scans_in(folder: Path, exclude: Path | None) -> list[ScanInput]:
    """Series folders and scan files under ``folder`` (recursively), named by their relative path.

    ``exclude`` (a resolved folder) is skipped when it lies inside ``folder``: the output folder of
    an earlier run. When it *is* ``folder`` nothing is skipped: every scan there is an input, and
    the output check refuses the outputs that would replace them.
    """
    found: list[ScanInput] = []
    if _holds_dicom(folder):
        return [ScanInput(_safe(folder.name), folder)]
    root = folder.resolve()
    exclude = None if exclude is None or exclude.resolve() == root else exclude.resolve()
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        where = root / rel  # compared resolved: a relative folder must not hide the output folder
        if exclude is not None and (where == exclude or exclude in where.parents):
            continue  # our own outputs, when the output folder is inside the input folder
        if path.is_dir() and _holds_dicom(path):
            found.append(ScanInput(_safe("_".join(rel.parts)), path))
        elif path.is_file() and _is_scan_file(path):
            found.append(ScanInput(_safe("_".join((*rel.parts[:-1], _stem(path)))), path))
    return found


def manifest_inputs(csv: Path) -> list[ScanInput]:
    """The ``subject`` and ``image`` columns of a cohort manifest (paths relative to its folder)."""
    try:
        df = load_cohort(csv)
    except CohortError as exc:
        raise BatchInputError(str(exc)) from None
    problem = missing_columns_problem(df, ("subject", "image"))  # names another separator, too
    if problem:
        raise BatchInputError(f"manifest {csv}: {problem} (predict needs subject and image)")
    if len(df) == 0:
        raise BatchInputError(f"manifest {csv} has no rows")
    out = []
    for i, (subject, image) in enumerate(zip(df["subject"], df["image"], strict=True)):
        name = str(subject or "").strip() or f"row{i + 2}"
        out.append(ScanInput(_safe(name), Path(str(image)) if image else None))
    return out


def find_inputs(
    paths: Sequence[Path], manifest: Path | None = None, exclude: Path | None = None
) -> list[ScanInput]:
    """Every scan named by ``paths`` (files, series folders, folders of scans) and ``manifest``.

    Subject names are made unique (``ct``, ``ct_2``; ignoring case, so that two subjects never
    share an output file on a case-insensitive file system) and safe for file names.

    Raises:
        BatchInputError: a folder without scans, no scan at all, or an unreadable manifest (a
            missing scan file is not an error here: its row fails and the other scans go on).
    """
    items: list[ScanInput] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            inside = _scans_in(path, exclude)
            if not inside:
                raise BatchInputError(
                    f"no scan found in folder {path} (looked for DICOM series and "
                    f"{', '.join(sorted(SUFFIXES))} files)"
                )
            items += inside
        else:  # a file, or a missing path: its row will say "file not found" and the others go on
            items.append(ScanInput(_safe(_stem(path)), path))
    if manifest is not None:
        items += manifest_inputs(Path(manifest))
    if not items:
        raise BatchInputError(
            "no scan given: name scan files, DICOM series folders, folders of them, or --manifest"
        )
    taken: set[str] = set()
    unique = []
    for item in items:
        name, n = item.subject, 1
        while name.lower() in taken:  # also skips a "ct_2" that another input already is
            n += 1
            name = f"{item.subject}_{n}"
        taken.add(name.lower())
        unique.append(item if n == 1 else ScanInput(name, item.path))
    return unique


def output_format(fmt: str, scan_format: str) -> str:
    """``nifti`` or ``seg`` for a scan of ``scan_format`` under the ``--format`` choice ``fmt``."""
    if fmt == "auto":
        return "seg" if scan_format == "dicom" else "nifti"
    return fmt


def mask_path(item: ScanInput, out_dir: Path, fmt: str = "auto") -> Path:
    """Where a batch writes ``item``'s mask: ``<out_dir>/<subject>.nii.gz``, or ``.seg.dcm`` by ``fmt``.

    Known before the scan is read (a folder is a DICOM series, as ``read_volume`` decides), so
    every output is planned and checked before anything is predicted.
    """
    scan_format = "dicom" if item.path is not None and item.path.is_dir() else "nifti"
    kind = output_format(fmt, scan_format)
    return Path(out_dir) / f"{item.subject}{'.seg.dcm' if kind == 'seg' else '.nii.gz'}"


def batch_outputs(
    items: Sequence[ScanInput], out_dir: Path, fmt: str = "auto", summary_png: bool = False
) -> list[tuple[str, Path]]:
    """Every file a batch may write, labelled for :func:`check_outputs`: masks, summary images, the table."""
    planned: list[tuple[str, Path]] = []
    for item in items:
        mask = mask_path(item, out_dir, fmt)
        planned.append(("output", mask))
        if summary_png:
            planned.append(("summary image", summary_path(mask)))
    planned.append(("table", Path(out_dir) / TABLE))
    return planned


def check_batch_outputs(
    items: Sequence[ScanInput],
    out_dir: Path,
    fmt: str = "auto",
    summary_png: bool = False,
    overwrite: bool = False,
    also_read: Sequence[Path] = (),
) -> None:
    """:func:`check_outputs` for every file a batch plans to write (:func:`batch_outputs`).

    Args:
        also_read: files read besides the scans (the manifest), protected like them.

    Raises:
        OutputRefused: see :func:`check_outputs`; the message lists every clashing input.
    """
    inputs = [*(item.path for item in items if item.path is not None), *also_read]
    check_outputs(
        batch_outputs(items, out_dir, fmt, summary_png), inputs, overwrite, advice="choose another --out-dir"
    )


# -- one scan ----------------------------------------------------------------------------------------
class _Collector(logging.Handler):
    """Keeps the distinct messages of the WARNING (and above) records it sees, in order."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a malformed record must not fail the scan
            text = str(record.msg)
        if text not in self.messages:
            self.messages.append(text)


@contextlib.contextmanager
def collect_warnings(name: str = "iphbench") -> Iterator[list[str]]:
    """The messages of WARNING (and above) records logged under ``name`` while the block runs.

    Reading and preprocessing log what a scan looks like (no bone found, no air, a gantry tilt);
    without this they reach only the log, far from the row of the scan they concern.

    Example:
        >>> with collect_warnings() as caught:
        ...     logging.getLogger("iphbench.preprocessing").warning("almost no bone")
        >>> caught
        ['almost no bone']
    """
    logger = logging.getLogger(name)
    handler, level = _Collector(), logger.level
    if not logger.isEnabledFor(logging.WARNING):  # a quieter root logger must not hide them from the table
        logger.setLevel(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def predict_one(
    item: ScanInput,
    predictor: ScanPredictor,
    output: Path | None,
    out_dir: Path | None = None,
    fmt: str = "auto",
    summary_png: bool = False,
    probability: Path | None = None,
) -> dict[str, Any]:
    """Read, predict and write one scan; never raises for a problem with this scan.

    The outputs are not checked here: callers check them first (:func:`check_outputs`,
    :func:`check_batch_outputs`), before any model is loaded.

    Args:
        item: the scan.
        predictor: the loaded study style.
        output: the mask file (its suffix decides: ``.dcm`` → DICOM SEG, else NIfTI/NRRD/MHA);
            ``None``: ``out_dir/<subject>.nii.gz`` or ``.seg.dcm`` by ``fmt`` (:func:`mask_path`).
        out_dir: folder for outputs named after the subject (with ``output=None``).
        fmt: ``auto``, ``nifti`` or ``seg`` (with ``output=None``).
        summary_png: also write ``<mask name>.png`` beside the mask.
        probability: also write the probability map (NIfTI float32) here.

    Returns:
        The scan's row of ``predictions.csv`` (``COLUMNS``); ``warnings`` holds what was logged
        while it was read and predicted, and the plausibility flags of its prediction.
    """
    if output is None and out_dir is None:
        raise ValueError("predict_one needs an output file or an output folder")
    t0 = time.perf_counter()
    row: dict[str, Any] = dict.fromkeys(COLUMNS, "")
    row.update(
        subject=item.subject,
        input="" if item.path is None else str(item.path),
        style=predictor.style,
        orientation=predictor.orientation,
    )
    flags: list[str] = []
    with collect_warnings() as caught:
        try:
            if item.path is None:
                raise ValueError(f"subject {item.subject} has no image path in the manifest")
            if output is None:
                output = mask_path(item, Path(out_dir or "."), fmt)
            image = read_volume(item.path)
            is_seg = output.name.lower().endswith(".dcm")
            if is_seg and image.source.format != "dicom":  # refuse before spending the prediction
                raise SegWriteError(
                    f"a DICOM SEG references a DICOM series, but {item.path} is a {image.source.format} file; "
                    "use --format nifti (or auto) for it"
                )
            result = predictor(image)
            n_lesions = count_lesions(result.mask)
            flags = plausibility_warnings(result.volume_ml, n_lesions, result.brain_ml)
            summary = _write(item, predictor, image, result, output, summary_png, probability)
            row.update(
                output=str(output),
                summary=summary,
                volume_ml=result.volume_ml,
                n_lesions=n_lesions,
                status="ok",
            )
        except Exception as exc:  # one scan's failure must not stop the others; the row says why
            log.debug("predicting %s failed", item.path, exc_info=True)
            text = str(exc)
            where = "" if item.path is None or str(item.path) in text else f"{item.path}: "
            row.update(status="failed", error=f"{where}{text}")
    row["warnings"] = "; ".join([*caught, *flags])
    row["seconds"] = time.perf_counter() - t0
    return row


def _write(
    item: ScanInput,
    predictor: ScanPredictor,
    image: Volume,
    result: ScanPrediction,
    output: Path,
    summary_png: bool,
    probability: Path | None,
) -> str:
    """Write the mask (or DICOM SEG), the probability map and the summary image, each stamped as ours.

    Returns:
        The summary image written, or "" without ``summary_png``.
    """
    if output.name.lower().endswith(".dcm"):
        params = {
            "style": predictor.style,
            "orientation": predictor.orientation,
            "study": str(predictor.study_dir.resolve().name),
            "study_name": predictor.cfg.name,
            "threshold": f"{predictor.cfg.eval.threshold:g}",
        }
        write_dicom_seg(result.mask, image, output, algorithm=params)  # Manufacturer "iphbench": our stamp
    else:
        write_prediction_mask(result.mask, image, output)
    if probability is not None:
        write_stamped_nifti(result.probability, image, probability, "probability", np.float32)
    if summary_png:
        png = summary_path(output)
        write_summary_png(image, result, png, subject=item.subject, metadata={STAMP_KEY: stamp("summary")})
        return str(png)
    return ""


def summary_path(mask_path: Path) -> Path:
    """``mask.nii.gz`` → ``mask.png``; ``ct.seg.dcm`` → ``ct.png`` (beside the mask)."""
    return mask_path.with_name(_stem_all(mask_path.name) + ".png")


def _stem_all(name: str) -> str:
    for suffix in (".seg.dcm", ".nii.gz", ".nii", ".nrrd", ".mha", ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def predict_many(
    items: Sequence[ScanInput],
    predictor: ScanPredictor,
    out_dir: Path,
    fmt: str = "auto",
    summary_png: bool = False,
    on_scan: Callable[[ScanInput], None] | None = None,
    on_done: Callable[[dict[str, Any]], None] | None = None,
    overwrite: bool = False,
) -> pd.DataFrame:
    """Predict every scan with one loaded predictor; write masks and ``out_dir/predictions.csv``.

    Args:
        items: the scans (:func:`find_inputs`).
        predictor: the study's style, loaded once.
        out_dir: the output folder (created).
        fmt: ``auto`` (DICOM SEG for DICOM series, NIfTI otherwise), ``nifti`` or ``seg``.
        summary_png: write ``<subject>.png`` beside each mask.
        on_scan: called before each scan (progress).
        on_done: called with each finished row (progress).
        overwrite: replace existing files that ``iphbench predict`` did not write (inputs never).

    Returns:
        The table (``COLUMNS``), one row per scan in input order, failed scans included.

    Raises:
        OutputRefused: a planned output is an input or a file we did not write
            (:func:`iphbench.study.outputs.check_outputs`);
            nothing was written.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; choose {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    check_batch_outputs(items, out_dir, fmt, summary_png, overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for item in items:
        if on_scan is not None:
            on_scan(item)
        row = predict_one(item, predictor, None, out_dir=out_dir, fmt=fmt, summary_png=summary_png)
        rows.append(row)
        table = pd.DataFrame(rows, columns=list(COLUMNS))
        atomic_write_text(out_dir / TABLE, table.to_csv(index=False))
        if on_done is not None:
            on_done(row)
    return pd.DataFrame(rows, columns=list(COLUMNS))
