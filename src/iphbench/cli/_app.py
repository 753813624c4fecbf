"""The Typer application that every verb module registers its command on."""

from __future__ import annotations

import logging

import typer
from rich.console import Console

app = typer.Typer(
    name="iphbench",
    help="Multi-site benchmarking of IPH segmentation models on non-contrast head CT (Duarte et al., MIDL 2026).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
study_app = typer.Typer(help="Run the models × views × folds grid of a study.", no_args_is_help=True)
app.add_typer(study_app, name="study")

console = Console(stderr=False)
err_console = Console(stderr=True)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug logging.")) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=False)],
        force=True,
    )


# options shared by `stats` and `report` (one definition, one help text)
MIN_SITE_N_OPTION = typer.Option(
    1,
    "--min-site-n",
    help="Pool sites with fewer subjects in the OLS models. 1 (default): every site its own level (eq. 6).",
)
HD95_POLICY_OPTION = typer.Option(
    None,
    "--hd95-when-empty",
    help="d_H95 of a missed lesion or false alarm: worst or exclude. Default: the study's eval.hd95_when_empty.",
)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print an error in red and return an Exit to raise: ``raise fail("...")``."""
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)
