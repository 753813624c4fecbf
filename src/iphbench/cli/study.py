"""`iphbench study run`: train the models × views × folds grid of a study, locally or on Ray.

Finished runs are skipped and unfinished ones resume. A failed run is reported with its
error (``error.txt`` in its folder) and the others go on; the exit code is 1 if any run
failed. See docs/training.md.
"""

from __future__ import annotations

from pathlib import Path

import typer

from iphbench.cli._app import console, fail, study_app


@study_app.command("run", help="Train every unfinished run of the study grid (local or Ray executor).")
def study_cmd(
    study: Path = typer.Argument(..., help="Study YAML file."),
    executor: str = typer.Option(
        "local", "--executor", "-e", help="local (this machine) or ray (a Ray cluster)."
    ),
    address: str | None = typer.Option(
        None,
        "--address",
        help="Ray cluster to join ('auto' or HOST:6379); default starts a local Ray instance.",
    ),
    only_style: list[str] | None = typer.Option(
        None,
        "--only-style",
        "--only-model",
        help="Train only this style (repeatable): an architecture (its paper-recipe style) or e.g. unet+iphbench.",
    ),
    only_view: list[str] | None = typer.Option(
        None, "--only-view", help="Train only this view (repeatable)."
    ),
    only_fold: list[int] | None = typer.Option(
        None, "--only-fold", help="Train only this fold (repeatable)."
    ),
    device: list[str] | None = typer.Option(
        None,
        "--device",
        help="Local devices to spread runs over (repeatable, e.g. --device cuda:0 --device cuda:1).",
    ),
    runs_per_device: int = typer.Option(
        1,
        "--runs-per-device",
        min=1,
        help="Runs trained at once on each device (several fill a GPU that one run cannot; "
        "Ray: each run asks for 1/N of a GPU).",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a live progress table."),
) -> None:
    from iphbench.config import ConfigError, StudyConfig
    from iphbench.study.executors import ExecutorError
    from iphbench.study.grid import StudyError, run_study

    if executor not in ("local", "ray"):
        raise fail(f"--executor must be 'local' or 'ray', got {executor!r}", code=2)
    if address and executor != "ray":
        raise fail("--address is for the ray executor; add --executor ray", code=2)
    try:
        cfg = StudyConfig.load(study)
    except (ConfigError, OSError) as exc:
        raise fail(str(exc)) from None
    try:
        result = run_study(
            cfg,
            executor=executor,
            address=address,
            devices=device or None,
            styles=only_style or None,
            views=only_view or None,
            folds=only_fold or None,
            progress=progress,
            runs_per_device=runs_per_device,
        )
    except ConfigError as exc:  # a setting only the registry or the grid can judge (an unknown model)
        raise fail(f"study file {study}: {exc}") from None
    except (StudyError, ExecutorError, OSError, ValueError) as exc:
        raise fail(str(exc)) from None
    console.print(
        f"study {result.out}: {len(result.done)} trained, {len(result.skipped)} already done, "
        f"{len(result.failed)} failed of {len(result.runs)} runs"
    )
    for o in result.failed:
        console.print(f"[red]failed[/] {o['style']}/{o['view']}/fold{o['fold']}: {o.get('error')}")
    if result.failed:
        raise typer.Exit(1)
