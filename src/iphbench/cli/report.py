"""`iphbench report`: not built yet."""

from __future__ import annotations

from iphbench.cli._app import app, fail


@app.command("report", help="(not built yet)")
def report_cmd() -> None:
    raise fail("'iphbench report' is not built yet", code=2)
