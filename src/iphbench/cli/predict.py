"""``iphbench predict SCAN --study STUDY -o mask.nii.gz``: segment a new scan and report its volume."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from iphbench.cli._app import app, console, fail

MODEL_HELP = (
    "Style: unet, attention_unet, fpn, transunet, or an nnU-Net style the study trained (nnunet_3d_fullres, "
    "nnunet_2d). Default: the best 2.5D style in the study's metrics.csv, else fpn."
)


@app.command("predict")
def predict_cmd(
    scan: Path = typer.Argument(..., help="Scan to segment: NIfTI, NRRD, MHA or a DICOM series folder."),
    study: Path = typer.Option(..., "--study", "-s", help="A trained study folder."),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Where to write the mask (.nii.gz, .nii, .nrrd, .mha)."
    ),
    model: str | None = typer.Option(None, "--model", "--style", "-m", help=MODEL_HELP),
    views: str = typer.Option(
        "2.5D", "--views", help="2.5D (mean of the three views) or one of 2DAxi, 2DCor, 2DSag."
    ),
    device: str = typer.Option("auto", help="auto, cpu or cuda[:N]."),
    probability: Path | None = typer.Option(
        None, help="Also write the probability map here (NIfTI, float32)."
    ),
) -> None:
    """Segment a new scan with a trained study; print its hemorrhage volume in mL.

    Brain extraction, windowing, every brain patch through the chosen style's fold models, fusion;
    the mask is written in the scan's own grid."""
    import numpy as np
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from iphbench.inference.scan import predict_scan
    from iphbench.io import VolumeReadError, read_volume, write_mask_like

    if not (study / "config.yaml").exists():
        raise fail(f"{study} is not a study folder (config.yaml is missing)")
    if not output.name.lower().endswith((".nii.gz", ".nii", ".nrrd", ".mha")):
        raise fail(f"--output {output}: unsupported suffix; use .nii.gz, .nii, .nrrd or .mha", code=2)
    t_start = time.perf_counter()
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task(f"reading {scan.name}", total=5)
        try:
            image = read_volume(scan)
            bar.update(task, advance=1, description="loading models")
            result = predict_scan(
                image, study, style=model, orientation=views, device=device,
                on_step=lambda name: bar.update(task, advance=1, description=name),
            )  # fmt: skip
        except (VolumeReadError, FileNotFoundError, ValueError, RuntimeError) as exc:
            raise fail(f"{scan}: {exc}") from None
        try:
            write_mask_like(result.mask, image, output)
            if probability is not None:
                from iphbench.io.volume import write_nifti_like

                write_nifti_like(result.probability, image, probability, dtype=np.float32)
        except (OSError, ValueError) as exc:  # disk full, read-only folder, unsupported suffix
            raise fail(f"cannot write the result of {scan}: {exc}") from None
        bar.update(task, advance=1, description="written")
    wall = time.perf_counter() - t_start
    console.print(
        f"[bold]{result.volume_ml:.2f} mL[/] of hemorrhage predicted in {scan} "
        f"({result.style}, {result.orientation}, {result.n_models} model(s)); mask written to [bold]{output}[/] "
        f"in {wall:.1f} s"
    )
