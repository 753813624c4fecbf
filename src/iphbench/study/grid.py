"""The study grid: styles × views × folds, each a resumable run (paper section 3.4-3.5).

``run_study`` first checks everything it can without writing a byte (:func:`check_inputs`: the
study folder's config and version, the preprocessing settings, the cohort manifest, the grid
filters), then prepares the patch store under ``prep/``, stamps the study folder
(``config.yaml``, ``study.json``) and writes ``folds.csv``, then trains every (model, view,
fold) run that is not finished: a run with ``done.json`` is skipped, a run with ``last.pt``
resumes. Runs go to an executor (``local`` or ``ray``, see :mod:`iphbench.study.executors`);
one failing run is recorded with its error and the others go on.

Example:
    >>> from iphbench.config import StudyConfig
    >>> result = run_study(StudyConfig.load("study.yaml"), executor="local")  # doctest: +SKIP
    >>> result.ok  # doctest: +SKIP
    True
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

import iphbench
from iphbench._files import atomic_write_json
from iphbench.config import EXECUTION_SETTINGS, StudyConfig, config_hash
from iphbench.layout import RunLayout, StudyFolderError, StudyLayout
from iphbench.preprocessing.pipeline import check_prep_config
from iphbench.preprocessing.store import PatchStore, load_manifest, prepare_store
from iphbench.study.backends import BackendUnavailableError, StyleBackend, backend_for
from iphbench.study.executors import EXECUTORS, Outcome, job, run_local, run_ray, visible_devices
from iphbench.study.progress import ProgressBoard, live_board
from iphbench.styles import parse_style, study_styles
from iphbench.training.folds import make_folds, n_folds, read_folds, write_folds

log = logging.getLogger(__name__)


class StudyError(RuntimeError):
    """The study folder cannot be used with this config."""


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid."""

    style: str  # a style name (iphbench.styles): "unet", "unet+iphbench", ...
    view: str
    fold: int

    def run(self, out: str | Path) -> RunLayout:
        return StudyLayout(out).run(self.style, self.view, self.fold)

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
    """Hash of everything in the config that changes what is trained: all but the output folder,
    the cohort's path, ``config.EXECUTION_SETTINGS`` (device, checkpoint and compile settings) and
    the ``eval`` section (evaluation settings are keyed by ``eval/key.json`` instead, so changing a
    threshold or the d_H95 policy re-evaluates the study without refusing it).

    The cohort's path is where the data lies, not what it is: a cohort moved to another disk must
    not make a trained study unusable, and the same path can hold other subjects. What the study
    was trained on is guarded by its subjects instead (:func:`check_inputs` compares the manifest
    with ``folds.csv``) and by the patch store, which prepares again any scan whose path, size or
    modification time changed.
    """
    return config_hash(_hashed_settings(config, with_cohort=False))


def _hashed_settings(config: StudyConfig, with_cohort: bool) -> dict[str, Any]:
    """The settings :func:`study_hash` covers; ``with_cohort``: as iphbench hashed them before
    issue 20 (``study.json`` files written then are still accepted, see :func:`check_study`)."""
    data = config.to_dict()
    data.pop("out", None)
    if not with_cohort:
        data.pop("cohort", None)
    data.pop("eval", None)
    data["train"]["iphbench"].pop("min_component_ml", None)  # post-processing: part of the evaluation key
    for key in EXECUTION_SETTINGS:  # where and how fast runs train does not change what they train
        data["train"].pop(key, None)
    backends = [backend_for(n) for n in config.models.names]
    for section in ("nnunet",):  # a backend's own section counts only when the study uses that backend
        if not any(section in b.config_sections for b in backends):
            data.pop(section, None)  # so a study keeps the hash it had before the section existed
    for backend in backends:
        for key in backend.unhashed:  # how many processes, not what is trained
            name, _, setting = key.partition(".")
            data.get(name, {}).pop(setting, None)
    return data


def check_study(out: Path, config: StudyConfig) -> bool:
    """Refuse a study folder made with another config or iphbench version.

    Returns:
        True when ``out/study.json`` exists and matches ``config``; False when there is none yet.

    Raises:
        StudyError: ``study.json`` is unreadable, or records another config hash or version
            (for example a ``config.yaml`` edited after training).
    """
    layout = StudyLayout(out)
    stored = _read_marker(layout)
    if stored is None:
        return False
    digest = study_hash(config)
    if stored.get("config_hash") not in (digest, config_hash(_hashed_settings(config, with_cohort=True))):
        raise StudyError(
            f"study folder {out} was made with a different config (hash {stored.get('config_hash')}, "
            f"this config {digest}); compare with {layout.config_yaml}, then either restore that config "
            "or choose a new 'out' folder"
        )
    if stored.get("iphbench") != iphbench.__version__:  # never mix results of two versions
        raise StudyError(
            f"study folder {out} was made with iphbench {stored.get('iphbench')}; this is "
            f"{iphbench.__version__}. Choose a new 'out' folder (or use iphbench "
            f"{stored.get('iphbench')} to continue this study)"
        )
    return True


def _read_marker(layout: StudyLayout) -> dict[str, Any] | None:
    try:
        return layout.read_study_json()
    except StudyFolderError as exc:
        raise StudyError(str(exc)) from None


def open_study(config: StudyConfig) -> Path:
    """Create or reopen the study folder; refuse one made with a different config.

    Writes ``config.yaml`` (resolved) and ``study.json`` (iphbench version and config hash; a
    ``study.json`` of the hash before issue 20, which covered the cohort's path, is rewritten).
    """
    layout = StudyLayout(config.out)
    layout.root.mkdir(parents=True, exist_ok=True)
    check_study(layout.root, config)  # refuses another config or version
    digest = study_hash(config)
    if (_read_marker(layout) or {}).get("config_hash") != digest:  # none yet, or the pre-issue-20 hash
        atomic_write_json(layout.study_json, {"iphbench": iphbench.__version__, "config_hash": digest})
    config.save(layout.config_yaml)
    return layout.root


def check_inputs(
    config: StudyConfig, styles: Sequence[str] | None = None, views: Sequence[str] | None = None
) -> None:
    """Everything :func:`run_study` can check before it writes a byte; raises, writes nothing.

    The study folder (made with another config or iphbench version), the preprocessing
    settings, the cohort manifest (exists, reads, has rows and the required columns: the rules
    of ``prepare``), its subjects against the ``folds.csv`` of a study already split, and the
    ``styles``/``views`` filters. The study folder used to be stamped first, so a missing cohort
    left a ``study.json`` that then refused the corrected config (issue 20).

    Raises:
        StudyError: another config or version, other subjects, a filter not in the study.
        ConfigError: preprocessing settings that cannot work.
        ValueError: the cohort manifest is missing, unreadable or empty (``CohortError``).
    """
    layout = StudyLayout(config.out)
    check_study(layout.root, config)
    check_prep_config(config.prep)
    manifest = load_manifest(config.cohort)  # the manifest rules of prepare_store
    _check_same_subjects(layout, config.cohort, manifest["subject"].astype(str).tolist())
    _chosen_cells(config, styles, views, None, None)


def _check_same_subjects(layout: StudyLayout, cohort: str, subjects: list[str]) -> None:
    """Refuse a cohort whose subjects are not those ``folds.csv`` split (the study's own)."""
    path, out = layout.folds_csv, layout.root
    if not path.is_file():
        return
    split = set(read_folds(path)["subject"].astype(str))
    new, gone = sorted(set(subjects) - split), sorted(split - set(subjects))
    if new or gone:
        raise StudyError(
            f"the cohort {cohort} does not list the subjects that study {out} was split over ({path}): "
            f"{_some(new)} not in the study, {_some(gone)} of the study missing from the cohort. Point 'cohort' "
            "at the study's cohort, or choose a new 'out' folder to run a study of this one"
        )


def _some(items: list[str]) -> str:
    if not items:
        return "none"
    shown = ", ".join(items[:5]) + (", ..." if len(items) > 5 else "")
    return f"{len(items)} ({shown})"


def prepare_study(config: StudyConfig, progress: bool = False) -> tuple[Any, pd.DataFrame]:
    """Prepare (or reopen) the patch store under ``<out>/prep``, stamp the study folder
    (:func:`open_study`) and make or read ``folds.csv``.

    The stamp waits until the subjects are prepared and split: a cohort that cannot be prepared,
    or folds that cannot be made (too few subjects for ``folds.k``), leave no ``study.json``, so
    the corrected config is not refused as "a different config" (the patch store guards its
    own settings with ``prep/store.json``). ``folds.csv`` is written after the stamp, so a
    ``folds.csv`` always belongs to the config in ``study.json``.
    """
    layout = StudyLayout(config.out)
    prepared = prepare_store(config.cohort, layout.prep, config.prep, progress=progress)
    if prepared.failed:  # training on the others would silently drop these subjects from the study
        listed = "; ".join(f"{s}: {e}" for s, e in list(prepared.failed.items())[:5])
        more = f" and {len(prepared.failed) - 5} more" if len(prepared.failed) > 5 else ""
        raise StudyError(
            f"{len(prepared.failed)} subject(s) of {config.cohort} could not be prepared ({listed}{more}); "
            "fix their files (see 'iphbench validate') or remove them from the cohort, then run again "
            "(prepared subjects are kept)"
        )
    store = PatchStore(layout.prep)
    folds_path = layout.folds_csv
    if folds_path.exists():
        folds = read_folds(folds_path)
        open_study(config)
    else:
        subjects = store.subjects_table
        lesion_free = subjects.loc[subjects["n_lesion_patches"] <= 0, "subject"].astype(str)
        folds = make_folds(subjects[["subject", "site"]], config.folds, lesion_free=lesion_free)
        open_study(config)
        write_folds(folds, folds_path)
    return store, folds


def grid_styles(config: StudyConfig) -> list[str]:
    """Style names of a study: each architecture once per ``train.recipe`` (iphbench.styles)."""
    return [
        s.name for s in study_styles(config.models.names, config.train.recipes, config.train.recipe_models)
    ]


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
    cells = _chosen_cells(config, styles, views, folds, n_fold)
    return [RunSpec(m, v, k) for m, v in cells for k in (folds if folds is not None else range(n_fold))]


def _chosen_cells(
    config: StudyConfig,
    styles: Sequence[str] | None,
    views: Sequence[str] | None,
    folds: Sequence[int] | None,
    n_fold: int | None,
) -> list[tuple[str, str]]:
    """The (style, view) cells of the grid the filters keep; refuses a filter value not in the
    study (``folds`` once ``n_fold`` is known) and nnU-Net styles without nnU-Net installed."""
    all_styles = grid_styles(config)
    own_views = {s: parse_style(s).run_views(config.views) for s in all_styles}  # nnU-Net: its 3D / 2D
    checks: list[tuple[str, Sequence[Any] | None, list[Any]]] = [
        ("style", styles, all_styles),
        ("view", views, list(dict.fromkeys(v for vs in own_views.values() for v in vs))),
    ]
    if n_fold is not None:
        checks.append(("fold", folds, list(range(n_fold))))
    for name, chosen, allowed in checks:
        bad = [c for c in (chosen or []) if c not in allowed]
        if bad:
            raise StudyError(f"{name}(s) {bad} are not in this study; it has {list(allowed)}")
    chosen_styles = [s for s in all_styles if s in styles] if styles else all_styles
    cells = [(m, v) for m in chosen_styles for v in own_views[m] if not views or v in views]
    for backend in dict.fromkeys(backend_for(m) for m, _ in cells):  # each backend used, once
        try:
            backend.check_available()
        except BackendUnavailableError as exc:
            raise StudyError(str(exc)) from None
    return cells


def _prepare_backends(
    config: StudyConfig, store: PatchStore, folds: pd.DataFrame, todo: list[RunSpec]
) -> dict[RunSpec, Outcome]:
    """Each backend's own preparation (nnU-Net: export, plans, preprocessing, split), once, before
    its runs train in parallel.

    Returns the runs that cannot start because their backend's preparation failed, as failed
    outcomes (their ``error.txt`` holds the traceback); the study's other runs go on.
    """
    by_backend: dict[StyleBackend, list[RunSpec]] = {}
    for r in todo:
        by_backend.setdefault(backend_for(r.style), []).append(r)
    failed: dict[RunSpec, Outcome] = {}
    layout = StudyLayout(config.out)
    for backend, runs in by_backend.items():
        try:
            backend.prepare(config, store, folds, list(dict.fromkeys(r.style for r in runs)))
        except Exception as exc:
            text = traceback.format_exc()
            log.error(
                "%s could not be prepared (%s); its %d run(s) are not trained", backend.name, exc, len(runs)
            )
            for r in runs:
                run = layout.run(r.style, r.view, r.fold)
                run.dir.mkdir(parents=True, exist_ok=True)
                run.error.write_text(text, encoding="utf-8")
                failed[r] = {"style": r.style, "view": r.view, "fold": r.fold, "status": "failed",
                             "error": f"{backend.name} preparation failed: {type(exc).__name__}: {exc}"}  # fmt: skip
    return failed


def run_study(
    config: StudyConfig,
    executor: str = "local",
    address: str | None = None,
    devices: Sequence[str] | None = None,
    styles: Sequence[str] | None = None,
    views: Sequence[str] | None = None,
    folds: Sequence[int] | None = None,
    progress: bool = False,
    runs_per_device: int = 1,
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
        runs_per_device: runs trained at once on each device (local: worker processes per
            device; Ray: each task asks for ``1/runs_per_device`` of a GPU).

    Returns:
        :class:`GridResult`; ``result.ok`` is False when any run failed (see ``error.txt`` in its folder).
    """
    if executor not in EXECUTORS:
        raise StudyError(f"unknown executor {executor!r}; choose one of {list(EXECUTORS)}")
    if runs_per_device < 1:
        raise StudyError(f"runs_per_device must be at least 1, got {runs_per_device}")
    check_inputs(config, styles, views)  # nothing is written before this passes
    store, folds_df = prepare_study(config, progress=progress)  # stamps the study folder
    out = Path(config.out)
    grid = plan_runs(config, n_folds(folds_df), styles, views, folds)
    skipped = [r for r in grid if r.run(out).finished]
    todo = [r for r in grid if r not in skipped]
    unprepared = _prepare_backends(config, store, folds_df, todo)
    todo = [r for r in todo if r not in unprepared]
    log.info(
        "study %s: %d runs, %d already done, %d to train (%s)",
        out,
        len(grid),
        len(skipped),
        len(todo),
        executor,
    )
    result = GridResult(out=out, runs=grid, skipped=skipped)
    result.outcomes = list(unprepared.values())
    if not todo:
        return result
    cfg_dict = config.to_dict()
    jobs = [job(cfg_dict, r.style, r.view, r.fold) for r in todo]
    board = ProgressBoard(
        out, [(r.style, r.view, r.fold) for r in grid], [(r.style, r.view, r.fold) for r in skipped]
    )
    with live_board(board, enabled=progress):
        if executor == "ray":
            result.outcomes += run_ray(jobs, address, board.finished, runs_per_device)
        else:
            devs = list(devices) if devices else visible_devices(config.train.device)
            result.outcomes += run_local(jobs, devs, board.started, board.finished, runs_per_device)
    for o in result.failed:
        log.error("run %s/%s/fold%s failed: %s", o["style"], o["view"], o["fold"], o.get("error"))
    return result


__all__ = [
    "GridResult",
    "RunSpec",
    "StudyError",
    "check_inputs",
    "check_study",
    "grid_styles",
    "open_study",
    "plan_runs",
    "prepare_study",
    "run_study",
    "study_hash",
]
