"""`iphbench validate`: not built yet."""

from __future__ import annotations

from iphbench.cli._app import app, fail


@app.command("validate", help="(not built yet)")
def validate_cmd() -> None:
    raise fail("'iphbench validate' is not built yet", code=2)
