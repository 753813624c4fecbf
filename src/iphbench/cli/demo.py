"""``iphbench demo``: the whole method on a synthetic multi-site cohort, ending in a report."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from iphbench.cli._app import app, console, fail
from iphbench.demo import DemoSettings

_DEFAULTS = DemoSettings()


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(
        Path("demo_out"), "--out", "-o", help="Folder for the cohort, the study and the report."
    ),
    subjects: int = typer.Option(_DEFAULTS.subjects, help="Synthetic subjects."),
    sites: int = typer.Option(_DEFAULTS.sites, help="Synthetic sites."),
    folds: int = typer.Option(_DEFAULTS.folds, help="Cross-validation folds (paper: 5)."),
    width: int = typer.Option(_DEFAULTS.width, help="VGG16 width (paper: 64)."),
    epochs: int = typer.Option(_DEFAULTS.epochs, help="Epochs per run (paper: up to 300)."),
    seed: int = typer.Option(_DEFAULTS.seed, help="Seed of the cohort, folds and training."),
    preset: str = typer.Option(
        _DEFAULTS.preset,
        help="Synthetic cohort preset: hard (closer to real scans; pass mark 0.40) or standard (0.70).",
    ),
    iphbench_recipe: bool = typer.Option(
        True,
        "--iphbench-recipe/--paper-only",
        help="Also train U-Net with the iphbench recipe (same compute).",
    ),
) -> None:
    """Run the whole method on a synthetic multi-site cohort and write OUT/study/report.html.

    Generates a synthetic cohort, prepares it, trains the 4 architectures with the paper's recipe and U-Net
    also with the iphbench recipe, each in 3 views × FOLDS folds, evaluates under the paper and full
    protocols, runs the statistics and writes the report. Reduced settings so that it
    finishes in minutes on a CPU; the report says which."""
    from iphbench.demo.run import run_demo

    settings = DemoSettings(
        subjects=subjects, sites=sites, folds=folds, width=width, epochs=epochs, seed=seed, preset=preset,
        recipes=["paper", "iphbench"] if iphbench_recipe else ["paper"],
    )  # fmt: skip
    t0 = time.perf_counter()
    result = run_demo(
        out, settings, on_stage=lambda text: console.print(f"[bold cyan]demo[/] {text}"), progress=True
    )
    wall = time.perf_counter() - t0
    console.print(
        f"best style {result.best_style}: 2.5D mean Dice {result.best_dice:.3f} (paper protocol) "
        f"— demo finished in {wall / 60:.1f} min"
    )
    console.print(f"report: [bold]{result.report}[/]")
    if not result.learned:
        raise fail(
            f"the models did not learn enough: best 2.5D Dice {result.best_dice:.3f} < {result.pass_mark} "
            f"(the pass mark of the {preset} preset)"
        )
