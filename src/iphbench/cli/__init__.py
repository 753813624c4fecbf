"""Command-line interface: ``iphbench VERB ...``. One module per verb, heavy imports inside commands."""

from __future__ import annotations

from iphbench.cli import (  # noqa: F401  (each module registers its commands on the app)
    demo,
    evaluate,
    import_nnunet,
    predict,
    prepare,
    report,
    stats,
    study,
    synth,
    train,
    validate,
)
from iphbench.cli._app import app


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
