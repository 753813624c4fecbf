"""`iphbench train`: not built yet."""

from __future__ import annotations

from iphbench.cli._app import app, fail


@app.command("train", help="(not built yet)")
def train_cmd() -> None:
    raise fail("'iphbench train' is not built yet", code=2)
