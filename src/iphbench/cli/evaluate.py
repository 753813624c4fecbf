"""`iphbench evaluate`: not built yet."""

from __future__ import annotations

from iphbench.cli._app import app, fail


@app.command("evaluate", help="(not built yet)")
def evaluate_cmd() -> None:
    raise fail("'iphbench evaluate' is not built yet", code=2)
