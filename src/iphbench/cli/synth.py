"""`iphbench synth`: not built yet."""

from __future__ import annotations

from iphbench.cli._app import app, fail


@app.command("synth", help="(not built yet)")
def synth_cmd() -> None:
    raise fail("'iphbench synth' is not built yet", code=2)
