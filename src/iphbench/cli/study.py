"""`iphbench study`: not built yet."""

from __future__ import annotations

from iphbench.cli._app import fail, study_app


@study_app.command("run", help="(not built yet)")
def study_cmd() -> None:
    raise fail("'iphbench study run' is not built yet", code=2)
