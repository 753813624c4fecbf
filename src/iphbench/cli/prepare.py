"""`iphbench prepare`: build the patch store of a cohort (paper section 3.2; docs/preprocessing.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from iphbench.cli._app import app, console, fail

if TYPE_CHECKING:
    from iphbench.config import PrepConfig


@app.command("prepare")
def prepare_cmd(
    cohort: Path = typer.Argument(..., help="Cohort manifest CSV (subject, site, age, sex, image, mask)."),
    out: Path = typer.Option(..., "--out", "-o", help="Patch store folder to create or update."),
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="YAML with preprocessing settings (a PrepConfig mapping, or a study YAML whose 'prep' section is used).",
    ),
    workers: int | None = typer.Option(
        None, "--workers", "-j", min=1, help="Parallel processes (default: all cores)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Re-prepare everything if the store holds another config."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Skull-strip, window, pad and index every subject of COHORT into the patch store at --out."""
    from iphbench.config import ConfigError, PrepConfig
    from iphbench.io.cohort import CohortError
    from iphbench.preprocessing.store import prepare_store

    try:
        prep = load_prep_config(config) if config is not None else PrepConfig()
        result = prepare_store(cohort, out, prep, workers=workers, progress=progress, overwrite=overwrite)
    except (ConfigError, CohortError, ValueError, OSError) as exc:
        raise fail(str(exc)) from None

    console.print(
        f"patch store [bold]{out}[/]: {len(result.done)} prepared, {len(result.skipped)} skipped, "
        f"{len(result.failed)} failed; patches: {result.n_lesion_patches} lesion, {result.n_brain_patches} brain"
    )
    for subject, error in result.failed.items():
        console.print(f"  [red]failed[/] {subject}: {error}")
    if result.failed:
        raise typer.Exit(1)


def load_prep_config(path: Path) -> PrepConfig:
    """A PrepConfig from YAML: either the settings themselves or a study YAML's ``prep`` section."""
    from iphbench.config import ConfigError, PrepConfig, from_mapping, load_yaml_mapping

    data = load_yaml_mapping(path, "preprocessing config")
    if "prep" in data and isinstance(data["prep"], dict):
        data = data["prep"]
    try:
        return from_mapping(PrepConfig, data, "prep")
    except ConfigError as exc:  # say which file holds the bad setting
        raise ConfigError(f"preprocessing config {path}: {exc}") from None
