"""`iphbench predict`: not built yet."""

from __future__ import annotations

from iphbench.cli._app import app, fail


@app.command("predict", help="(not built yet)")
def predict_cmd() -> None:
    raise fail("'iphbench predict' is not built yet", code=2)
