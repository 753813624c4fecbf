"""A live progress table of a study grid: runs done, running, failed; epoch and best validation IoU.

The board learns a run's state from the executor's start/end events and reads its epoch and
best validation IoU from the ``status.json`` the trainer rewrites after each epoch, so it
works the same whether a run trains in this process, in a worker process, or on another
node of a Ray cluster (shared study folder).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from iphbench.layout import StudyLayout
from iphbench.study.executors import Job, Outcome

_STYLE = {"queued": "dim", "running": "yellow", "done": "green", "skipped": "cyan", "failed": "bold red"}


def _key(style: str, view: str, fold: int) -> tuple[str, str, int]:
    return (style, view, int(fold))


class ProgressBoard:
    """State of every run of a grid, rendered as a rich table (``Live(board)`` refreshes it).

    Args:
        out: the study folder.
        runs: (style, view, fold) of every run in the grid.
        skipped: runs already finished before this call (done.json present).
    """

    def __init__(
        self,
        out: str | Path,
        runs: Sequence[tuple[str, str, int]],
        skipped: Sequence[tuple[str, str, int]] = (),
    ) -> None:
        self.out = Path(out)
        self.t0 = time.time()
        self._lock = threading.Lock()
        self.state: dict[tuple[str, str, int], str] = {_key(*r): "queued" for r in runs}
        for r in skipped:
            self.state[_key(*r)] = "skipped"
        self.error: dict[tuple[str, str, int], str] = {}
        self._cache: dict[tuple[str, str, int], dict[str, Any]] = {}
        self._cache_time = 0.0

    def started(self, spec: Job) -> None:
        with self._lock:
            self.state[_key(spec["style"], spec["view"], spec["fold"])] = "running"

    def finished(self, spec: Job, outcome: Outcome) -> None:
        key = _key(spec["style"], spec["view"], spec["fold"])
        with self._lock:
            self.state[key] = "done" if outcome.get("status") == "done" else "failed"
            if outcome.get("error"):
                self.error[key] = str(outcome["error"])

    def counts(self) -> dict[str, int]:
        """Number of runs in each state (queued, running, done, skipped, failed)."""
        self._poll()
        out = dict.fromkeys(_STYLE, 0)
        for key in self.state:
            out[self._state_of(key)] += 1
        return out

    def _status(self, key: tuple[str, str, int]) -> dict[str, Any]:
        path = StudyLayout(self.out).run(*key).status
        try:
            if path.stat().st_mtime < self.t0 - 1.0 and self.state[key] == "queued":
                return {}
            return dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return {}

    def _poll(self) -> None:
        now = time.time()
        if now - self._cache_time < 0.5:
            return
        self._cache = {
            k: self._status(k) for k, s in self.state.items() if s in ("queued", "running", "done", "failed")
        }
        self._cache_time = now

    def _state_of(self, key: tuple[str, str, int]) -> str:
        state = self.state[key]
        if state == "queued" and self._cache.get(key, {}).get("state") == "running":
            return "running"  # a Ray task started on some node
        return state

    def table(self) -> Table:
        self._poll()
        table = Table(title=f"study {self.out}", expand=False)
        for col in ("style", "view", "fold", "state", "epoch", "best val IoU"):
            table.add_column(col, justify="right" if col in ("fold", "epoch", "best val IoU") else "left")
        with self._lock:
            items = sorted(self.state)
        for key in items:
            state = self._state_of(key)
            status = self._cache.get(key, {})
            epoch = f"{status['epoch']}/{status['epochs']}" if "epoch" in status else ""
            best = status.get("best_val_iou")
            table.add_row(
                key[0],
                key[1],
                str(key[2]),
                Text(state, style=_STYLE[state]),
                epoch,
                "" if best is None else f"{best:.4f}",
            )
        return table

    def summary(self) -> str:
        c = self.counts()
        return (
            f"{c['done']} done, {c['skipped']} already done, {c['running']} running, "
            f"{c['queued']} queued, {c['failed']} failed of {len(self.state)} runs"
        )

    def __rich__(self) -> Group:
        return Group(self.table(), Text(self.summary()))


@contextmanager
def live_board(
    board: ProgressBoard, enabled: bool = True, console: Console | None = None
) -> Iterator[ProgressBoard]:
    """Show ``board`` live on stderr while the block runs (no-op when ``enabled`` is false)."""
    if not enabled:
        yield board
        return
    with Live(board, console=console or Console(stderr=True), refresh_per_second=2, transient=False):
        yield board


__all__ = ["ProgressBoard", "live_board"]
