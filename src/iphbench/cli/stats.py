"""`iphbench stats`: not built yet."""

from __future__ import annotations

from iphbench.cli._app import app, fail


@app.command("stats", help="(not built yet)")
def stats_cmd() -> None:
    raise fail("'iphbench stats' is not built yet", code=2)
