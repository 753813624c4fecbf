"""`iphbench prepare`: not built yet."""

from __future__ import annotations

from iphbench.cli._app import app, fail


@app.command("prepare", help="(not built yet)")
def prepare_cmd() -> None:
    raise fail("'iphbench prepare' is not built yet", code=2)
