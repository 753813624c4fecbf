"""The study grid: styles × views × folds, each a resumable run (paper section 3.4-3.5).

``run_study`` opens the study folder (``config.yaml``, ``study.json``), prepares the patch
store under ``prep/``, writes ``folds.csv``, then trains every (model, view, fold) run that
is not finished: a run with ``done.json`` is skipped, a run with ``last.pt`` resumes. Runs go
to an executor (``local`` or ``ray``, see :mod:`iphbench.training.executors`); one failing
run is recorded with its error and the others go on.

Example:
    >>> from iphbench.config import StudyConfig
    >>> result = run_study(StudyConfig.load("study.yaml"), executor="local")  # doctest: +SKIP
    >>> result.ok  # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

import iphbench
from iphbench._files import atomic_write_json
from iphbench.config import StudyConfig, config_hash
from iphbench.styles import parse_style, study_styles
from iphbench.training.executors import (
    EXECUTORS,
    Outcome,
    job,
    run_dir_of,
    run_local,
    run_ray,
    visible_devices,
)
from iphbench.training.folds import make_folds, n_folds, read_folds, write_folds
from iphbench.training.progress import ProgressBoard, live_board

log = logging.getLogger(__name__)


class StudyError(RuntimeError):
    """The study folder cannot be used with this config."""


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid."""

    style: str  # a style name (iphbench.styles): "unet", "unet+iphbench", ...
    view: str
    fold: int

    def run_dir(self, out: str | Path) -> Path:
        return run_dir_of(out, self.style, self.view, self.fold)

    def __str__(self) -> str:
        return f"{self.style}/{self.view}/fold{self.fold}"


@dataclass
class GridResult:
    """Outcome of :func:`run_study`: one entry per run of the (filtered) grid."""

    out: Path
    runs: list[RunSpec]
    skipped: list[RunSpec] = field(default_factory=list)  # finished before this call
    outcomes: list[Outcome] = field(default_factory=list)  # runs attempted in this call

    @property
    def done(self) -> list[Outcome]:
        return [o for o in self.outcomes if o["status"] == "done"]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o["status"] != "done"]

    @property
    def ok(self) -> bool:
        return not self.failed


def study_hash(config: StudyConfig) -> str:
    """Hash of everything in the config that changes what is trained (all but the output folder, the
    device and the ``eval`` section: evaluation settings are keyed by ``eval/key.json`` instead, so
    changing a threshold or the d_H95 policy re-evaluates the study without refusing it)."""
    data = config.to_dict()
    data.pop("out", None)
    data.pop("eval", None)
    data["train"].pop("device", None)  # where runs train does not change what they train
    return config_hash(data)


def check_study(out: Path, config: StudyConfig) -> bool:
    """Refuse a study folder made with another config or iphbench version.

    Returns:
        True when ``out/study.json`` exists and matches ``config``; False when there is none yet.

    Raises:
        StudyError: ``study.json`` is unreadable, or records another config hash or version
            (for example a ``config.yaml`` edited after training).
    """
    marker = Path(out) / "study.json"
    if not marker.exists():
        return False
    digest = study_hash(config)
    try:
        stored = json.loads(marker.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise StudyError(
            f"{marker} is not valid JSON ({exc}); delete it only if {out} holds no results"
        ) from None
    if stored.get("config_hash") != digest:
        raise StudyError(
            f"study folder {out} was made with a different config (hash {stored.get('config_hash')}, "
            f"this config {digest}); compare with {Path(out) / 'config.yaml'}, then either restore that config "
            "or choose a new 'out' folder"
        )
    if stored.get("iphbench") != iphbench.__version__:  # never mix results of two versions
        raise StudyError(
            f"study folder {out} was made with iphbench {stored.get('iphbench')}; this is "
            f"{iphbench.__version__}. Choose a new 'out' folder (or use iphbench "
            f"{stored.get('iphbench')} to continue this study)"
        )
    return True


def open_study(config: StudyConfig) -> Path:
    """Create or reopen the study folder; refuse one made with a different config.

    Writes ``config.yaml`` (resolved) and ``study.json`` (iphbench version and config hash).
    """
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    if not check_study(out, config):
        atomic_write_json(
            out / "study.json", {"iphbench": iphbench.__version__, "config_hash": study_hash(config)}
        )
    config.save(out / "config.yaml")
    return out


def prepare_study(config: StudyConfig, progress: bool = False) -> tuple[Any, pd.DataFrame]:
    """Prepare (or reopen) the patch store under ``<out>/prep`` and make or read ``folds.csv``."""
    from iphbench.preprocessing.store import PatchStore, prepare_store

    out = Path(config.out)
    prepared = prepare_store(config.cohort, out / "prep", config.prep, progress=progress)
    if prepared.failed:  # training on the others would silently drop these subjects from the study
        listed = "; ".join(f"{s}: {e}" for s, e in list(prepared.failed.items())[:5])
        more = f" and {len(prepared.failed) - 5} more" if len(prepared.failed) > 5 else ""
        raise StudyError(
            f"{len(prepared.failed)} subject(s) of {config.cohort} could not be prepared ({listed}{more}); "
            "fix their files (see 'iphbench validate') or remove them from the cohort, then run again "
            "(prepared subjects are kept)"
        )
    store = PatchStore(out / "prep")
    folds_path = out / "folds.csv"
    if folds_path.exists():
        folds = read_folds(folds_path)
    else:
        subjects = store.subjects_table
        lesion_free = subjects.loc[subjects["n_lesion_patches"] <= 0, "subject"].astype(str)
        folds = make_folds(subjects[["subject", "site"]], config.folds, lesion_free=lesion_free)
        write_folds(folds, folds_path)
    return store, folds


def grid_styles(config: StudyConfig) -> list[str]:
    """Style names of a study: each architecture once per ``train.recipe`` (iphbench.styles)."""
    return [s.name for s in study_styles(config.models.names, config.train.recipes)]


def plan_runs(
    config: StudyConfig,
    n_fold: int,
    styles: Sequence[str] | None = None,
    views: Sequence[str] | None = None,
    folds: Sequence[int] | None = None,
) -> list[RunSpec]:
    """The grid styles × views × folds of ``config``, optionally restricted to some of each.

    ``styles`` may name a style (``unet+iphbench``) or an architecture (``unet``: its
    paper-recipe style); the study's styles are :func:`grid_styles`.
    """
    all_styles = grid_styles(config)
    for name, chosen, allowed in (
        ("style", styles, all_styles),
        ("view", views, config.views),
        ("fold", folds, list(range(n_fold))),
    ):
        bad = [c for c in (chosen or []) if c not in allowed]
        if bad:
            raise StudyError(f"{name}(s) {bad} are not in this study; it has {list(allowed)}")
    chosen_styles = [s for s in all_styles if s in styles] if styles else all_styles
    nnunet = [s for s in chosen_styles if parse_style(s).is_nnunet]
    if nnunet:
        raise StudyError(f"nnU-Net styles {nnunet} cannot be trained by this version yet")
    return [
        RunSpec(m, v, k)
        for m in chosen_styles
        for v in (views or config.views)
        for k in (folds if folds is not None else range(n_fold))
    ]


def run_study(
    config: StudyConfig,
    executor: str = "local",
    address: str | None = None,
    devices: Sequence[str] | None = None,
    styles: Sequence[str] | None = None,
    views: Sequence[str] | None = None,
    folds: Sequence[int] | None = None,
    progress: bool = False,
) -> GridResult:
    """Train the unfinished runs of a study's grid.

    Args:
        config: the resolved study config (``StudyConfig.load``).
        executor: ``"local"`` or ``"ray"``.
        address: Ray cluster address (``"auto"`` or ``"host:6379"``); None starts a local Ray instance.
        devices: local devices to spread runs over (default: the configured device, or every
            visible GPU, or the CPU).
        styles, views, folds: restrict the grid (default: all of the config).
        progress: show a live table on stderr.

    Returns:
        :class:`GridResult`; ``result.ok`` is False when any run failed (see ``error.txt`` in its folder).
    """
    if executor not in EXECUTORS:
        raise StudyError(f"unknown executor {executor!r}; choose one of {list(EXECUTORS)}")
    out = open_study(config)
    _, folds_df = prepare_study(config, progress=progress)
    grid = plan_runs(config, n_folds(folds_df), styles, views, folds)
    skipped = [r for r in grid if (r.run_dir(out) / "done.json").exists()]
    todo = [r for r in grid if r not in skipped]
    log.info(
        "study %s: %d runs, %d already done, %d to train (%s)",
        out,
        len(grid),
        len(skipped),
        len(todo),
        executor,
    )
    result = GridResult(out=out, runs=grid, skipped=skipped)
    if not todo:
        return result
    cfg_dict = config.to_dict()
    jobs = [job(cfg_dict, r.style, r.view, r.fold) for r in todo]
    board = ProgressBoard(
        out, [(r.style, r.view, r.fold) for r in grid], [(r.style, r.view, r.fold) for r in skipped]
    )
    with live_board(board, enabled=progress):
        if executor == "ray":
            result.outcomes = run_ray(jobs, address, board.finished)
        else:
            devs = list(devices) if devices else visible_devices(config.train.device)
            result.outcomes = run_local(jobs, devs, board.started, board.finished)
    for o in result.failed:
        log.error("run %s/%s/fold%s failed: %s", o["style"], o["view"], o["fold"], o.get("error"))
    return result


__all__ = [
    "GridResult",
    "RunSpec",
    "StudyError",
    "check_study",
    "grid_styles",
    "open_study",
    "plan_runs",
    "prepare_study",
    "run_study",
    "study_hash",
]
