"""``iphbench predict``: segment new scans with a trained study and report their hemorrhage volume.

One scan: ``iphbench predict SCAN --study STUDY -o mask.nii.gz`` (``-o seg.dcm`` writes a DICOM SEG
for a DICOM series). Many: ``iphbench predict A B FOLDER [--manifest cohort.csv] --study STUDY
--out-dir out`` writes one mask per subject and ``out/predictions.csv`` (docs/predict.md).

No output ever replaces an input, and an existing file that ``iphbench predict`` did not write is
replaced only with ``--overwrite`` (``iphbench.study.outputs``); both are checked before any
model is loaded. Warnings about a scan and implausible predictions are printed in yellow and kept
in ``predictions.csv``'s ``warnings`` column.

Exit status: 0 when every scan succeeded (warnings or not), 1 when any failed (each named) or the
study cannot be used, 2 for bad arguments (found before any scan is predicted).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from iphbench.cli._app import app, console, fail

STYLE_HELP = (
    "Style: a folder of finished runs under <study>/runs/ (e.g. fpn, unet+iphbench, nnunet_3d_fullres). Default: the best mean "
    "2.5D Dice under the full protocol in the study's metrics.csv (paper if full was not scored), else fpn."
)
MASK_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".dcm")
PROBABILITY_SUFFIXES = (".nii.gz", ".nii")  # the probability map is always NIfTI (float32)


@app.command("predict")
def predict_cmd(
    scans: list[Path] | None = typer.Argument(
        None,
        help="Scans: NIfTI, NRRD or MHA files, DICOM series folders, or folders holding them (searched recursively).",
    ),
    study: Path = typer.Option(..., "--study", "-s", help="A trained study folder."),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="One scan: the mask file (.nii.gz, .nii, .nrrd, .mha; .dcm = DICOM SEG, for a DICOM series).",
    ),
    out_dir: Path | None = typer.Option(
        None, "--out-dir", help="Many scans: a folder for one mask per subject and predictions.csv."
    ),
    manifest: Path | None = typer.Option(
        None, "--manifest", help="A cohort manifest: predict its image column, named by its subject column."
    ),
    fmt: str = typer.Option(
        "auto",
        "--format",
        help="With --out-dir: auto (DICOM SEG for DICOM series, else NIfTI), nifti or seg.",
    ),
    summary_png: bool = typer.Option(
        False, "--summary-png", help="Also write a review PNG beside each mask (largest slice + overview)."
    ),
    style: str | None = typer.Option(None, "--style", "--model", "-m", help=STYLE_HELP),
    views: str = typer.Option(
        "2.5D", "--views", help="2.5D (mean of the three views) or one of 2DAxi, 2DCor, 2DSag."
    ),
    device: str = typer.Option("auto", help="auto, cpu or cuda[:N]."),
    probability: Path | None = typer.Option(
        None, help="One scan: also write the probability map here (NIfTI, float32)."
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace existing files that iphbench predict did not write (its own outputs are replaced "
        "anyway). An input is never replaced.",
    ),
) -> None:
    """Segment scans with a trained study; print the hemorrhage volume in mL.

    Brain extraction, windowing, every brain patch through the chosen style's fold models, fusion;
    each mask is written in its scan's own grid (or as a DICOM SEG referencing the series)."""
    from iphbench.study.batch import FORMATS

    scans = list(scans or [])
    if fmt not in FORMATS:
        raise fail(f"--format {fmt!r}: choose {', '.join(FORMATS)}", code=2)
    if output is None and out_dir is None:
        raise fail("say where to write: -o FILE for one scan, or --out-dir FOLDER for several", code=2)
    if output is not None and out_dir is not None:
        raise fail("give -o (one scan) or --out-dir (several scans), not both", code=2)
    from iphbench.layout import StudyLayout

    if not StudyLayout(study).is_study():
        raise fail(f"{study} is not a study folder (config.yaml is missing)")
    if output is not None:
        _check_single(scans, manifest, output, fmt, probability)
        _check_single_outputs(scans[0], output, probability, summary_png, overwrite)
        _predict_single(scans[0], study, output, style, views, device, probability, summary_png)
    else:
        if probability is not None:
            raise fail("--probability works with -o (one scan); with --out-dir it is not written", code=2)
        assert out_dir is not None
        _predict_batch(scans, manifest, study, out_dir, fmt, style, views, device, summary_png, overwrite)


def _check_single(
    scans: list[Path], manifest: Path | None, output: Path, fmt: str, probability: Path | None
) -> None:
    if manifest is not None or len(scans) != 1:
        raise fail(
            f"-o writes one mask, but {len(scans)} scan(s){' and a manifest' if manifest else ''} were given; "
            "use --out-dir FOLDER for several scans",
            code=2,
        )
    name = output.name.lower()
    if not name.endswith(MASK_SUFFIXES):
        raise fail(
            f"--output {output}: unsupported suffix; use .nii.gz, .nii, .nrrd or .mha (or .dcm for a DICOM SEG)",
            code=2,
        )
    if probability is not None and not probability.name.lower().endswith(PROBABILITY_SUFFIXES):
        raise fail(f"--probability {probability}: the probability map is NIfTI; use .nii.gz or .nii", code=2)
    is_seg = name.endswith(".dcm")
    if fmt != "auto" and (fmt == "seg") != is_seg:
        raise fail(f"--format {fmt} does not match --output {output}; the suffix decides with -o", code=2)
    if is_seg and not scans[0].is_dir():
        raise fail(
            f"--output {output}: a DICOM SEG references a DICOM series, but {scans[0]} is not a DICOM folder; "
            "write .nii.gz instead",
            code=2,
        )


def _check_single_outputs(
    scan: Path, output: Path, probability: Path | None, summary_png: bool, overwrite: bool
) -> None:
    """Refuse (exit 2, before any work) an output that is the scan, or a file we did not write."""
    from iphbench.study.batch import summary_path
    from iphbench.study.outputs import OutputRefused, check_outputs

    planned = [("--output", output)]
    if probability is not None:
        planned.append(("--probability", probability))
    if summary_png:
        planned.append(("summary image", summary_path(output)))
    try:
        check_outputs(planned, [scan], overwrite)
    except OutputRefused as exc:
        raise fail(str(exc), code=2) from None


def _warn(text: str, subject: str | None = None) -> None:
    """One yellow line with a scan's warnings (what was logged reading it, implausible predictions)."""
    from rich.markup import escape

    if text:
        who = f"{escape(subject)}: " if subject is not None else ""
        console.print(f"[yellow]warning[/] {who}{escape(text)}", soft_wrap=True)


def _load(study: Path, style: str | None, views: str, device: str) -> Any:
    """The study's chosen style, loaded once; bad style/views exit 2, an unusable study 1."""
    from iphbench.config import ConfigError
    from iphbench.study.predict import ScanPredictor

    try:
        return ScanPredictor(study, style=style, orientation=views, device=device)
    except ConfigError as exc:  # the study's config.yaml does not load: the study, not an argument
        raise fail(str(exc)) from None
    except ValueError as exc:  # an unknown orientation, a style without finished runs
        raise fail(str(exc), code=2) from None
    except (FileNotFoundError, RuntimeError, OSError) as exc:  # no finished run, damaged checkpoint
        raise fail(str(exc)) from None


def _predict_single(
    scan: Path,
    study: Path,
    output: Path,
    style: str | None,
    views: str,
    device: str,
    probability: Path | None,
    summary_png: bool,
) -> None:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from iphbench.study.batch import ScanInput, predict_one, summary_path

    t_start = time.perf_counter()
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as bar:
        bar.add_task("loading models", total=None)
        predictor = _load(study, style, views, device)
        bar.update(bar.task_ids[0], description=f"predicting {scan.name}")
        row = predict_one(
            ScanInput(scan.name, scan),
            predictor,
            output,
            summary_png=summary_png,
            probability=probability,
        )
    if row["status"] != "ok":
        _warn(str(row["warnings"]))  # what was logged may explain the failure
        raise fail(str(row["error"]))
    wall = time.perf_counter() - t_start
    kind = "DICOM SEG" if output.name.lower().endswith(".dcm") else "mask"
    console.print(
        f"[bold]{row['volume_ml']:.2f} mL[/] of hemorrhage predicted in {scan}, {row['n_lesions']} lesion(s) "
        f"({predictor.style}, {predictor.orientation}, {predictor.n_models} model(s)); {kind} written to "
        f"[bold]{output}[/] in {wall:.1f} s"
    )
    _warn(str(row["warnings"]))
    if summary_png:
        console.print(f"summary image: {summary_path(output)}")
    console.print(f"style {predictor.style}: {predictor.choice.reason}")


def _predict_batch(
    scans: list[Path],
    manifest: Path | None,
    study: Path,
    out_dir: Path,
    fmt: str,
    style: str | None,
    views: str,
    device: str,
    summary_png: bool,
    overwrite: bool,
) -> None:
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from iphbench.study.batch import (
        TABLE,
        BatchInputError,
        check_batch_outputs,
        find_inputs,
        predict_many,
    )
    from iphbench.study.outputs import OutputRefused

    try:
        items = find_inputs(scans, manifest, exclude=out_dir.resolve())
        check_batch_outputs(
            items, out_dir, fmt, summary_png, overwrite, also_read=[manifest] if manifest else []
        )
    except (BatchInputError, OutputRefused) as exc:
        raise fail(str(exc), code=2) from None
    t_start = time.perf_counter()
    predictor = _load(study, style, views, device)
    console.print(
        f"{len(items)} scan(s); style {predictor.style} ({predictor.choice.reason}), {predictor.orientation}, "
        f"{predictor.n_models} model(s) loaded once in {predictor.load_seconds:.1f} s"
    )
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("predicting", total=len(items))
        try:
            table = predict_many(
                items,
                predictor,
                out_dir,
                fmt=fmt,
                summary_png=summary_png,
                on_scan=lambda item: bar.update(task, description=f"predicting {escape(item.subject)}"),
                on_done=lambda row: bar.advance(task),
                overwrite=overwrite,
            )
        except OutputRefused as exc:  # a file appeared since the check above
            raise fail(str(exc), code=2) from None
        except OSError as exc:  # predictions.csv cannot be written (disk full, read-only folder)
            raise fail(str(exc)) from None
    failed = table[table["status"] != "ok"]
    warned = table[table["warnings"] != ""]
    wall = time.perf_counter() - t_start
    with_warnings = f", {len(warned)} with warnings (column warnings)" if len(warned) else ""
    console.print(
        f"{len(table) - len(failed)} of {len(table)} scan(s) predicted in {wall:.1f} s "
        f"({wall / max(len(table), 1):.1f} s per scan){with_warnings}; table written to [bold]{out_dir / TABLE}[/]"
    )
    for row in warned.itertuples(index=False):
        _warn(str(row.warnings), str(row.subject))
    for row in failed.itertuples(index=False):
        console.print(f"[red]failed[/] {escape(str(row.subject))}: {escape(str(row.error))}", soft_wrap=True)
    if len(failed):
        raise fail(f"{len(failed)} scan(s) failed: {', '.join(map(str, failed['subject']))}")
