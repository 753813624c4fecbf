"""`iphbench demo`: not built yet."""

from __future__ import annotations

from iphbench.cli._app import app, fail


@app.command("demo", help="(not built yet)")
def demo_cmd() -> None:
    raise fail("'iphbench demo' is not built yet", code=2)
