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


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print an error in red and return an Exit to raise: ``raise fail("...")``."""
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)
