"""`iphbench train`: train one (style, view, fold) run of a study (paper section 3.4).

Prepares the study folder if needed (patch store, folds.csv), then trains that one run
into ``<out>/runs/<style>/<view>/fold<k>/``. A finished run is skipped; an unfinished one
resumes from its ``last.pt``. See docs/training.md.
"""

from __future__ import annotations

from pathlib import Path

import typer

from iphbench.cli._app import app, console, fail
from iphbench.config import PAPER_ARCHITECTURES, VIEW_NAMES


@app.command("train", help="Train one model × view × fold run of a study (resumes an unfinished run).")
def train_cmd(
    study: Path = typer.Option(..., "--study", "-s", help="Study YAML file."),
    model: str = typer.Option(
        ...,
        "--style",
        "--model",
        "-m",
        help=f"Style: a registered architecture ({', '.join(PAPER_ARCHITECTURES)}, ...; the paper recipe), ARCH+iphbench, or "
        "nnunet_3d_fullres / nnunet_2d.",
    ),
    view: str = typer.Option(
        ..., "--view", help=f"View: {', '.join(VIEW_NAMES)}; 3D or 2D for an nnU-Net style."
    ),
    fold: int = typer.Option(..., "--fold", "-k", help="Fold index (0-based)."),
    device: str | None = typer.Option(None, "--device", help="Override train.device (cpu, cuda, cuda:1)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a live progress table."),
) -> None:
    from iphbench.config import ConfigError, StudyConfig
    from iphbench.layout import StudyLayout
    from iphbench.study.grid import StudyError, run_study

    try:
        cfg = StudyConfig.load(study)
        result = run_study(
            cfg,
            executor="local",
            devices=[device] if device else None,
            styles=[model],
            views=[view],
            folds=[fold],
            progress=progress,
        )
    except (ConfigError, StudyError, OSError, ValueError) as exc:
        raise fail(str(exc)) from None
    run = StudyLayout(cfg.out).run(model, view, fold)
    run_dir = run.dir
    if result.skipped:
        console.print(f"run {model}/{view}/fold{fold} was already finished: {run_dir}")
        return
    (outcome,) = result.outcomes
    if outcome["status"] != "done":
        raise fail(f"run {model}/{view}/fold{fold} failed: {outcome.get('error')} (see {run.error})")
    if outcome.get("best_val_iou") is None:  # an nnU-Net style: no validation-selected checkpoint
        console.print(f"run {model}/{view}/fold{fold} done: {outcome['epochs_run']} epoch(s) → {run_dir}")
        return
    console.print(
        f"run {model}/{view}/fold{fold} done: best validation IoU {outcome['best_val_iou']:.4f} "
        f"at epoch {outcome['best_epoch']} of {outcome['epochs_run']} → {run_dir}"
    )
