"""The study folder: every path in it and the one way to read each of its files (docs/formats.md).

A study folder is written by several stages (prepare, the grid, evaluate, stats, report) and read
by more (predict, the learning check, the convergence figure, the nnU-Net summary). They all go
through :class:`StudyLayout`, so a file's name and how it is read are decided here once::

    <study>/
      config.yaml  study.json  folds.csv          the resolved config, its hash, the split
      prep/                                       the patch store
      runs/<style>/<view>/fold<k>/                one run (:class:`RunLayout`)
      eval/key.json  eval/postprocess.json        the evaluation cache: its key, chosen volumes
      eval/<subject>.csv                          one evaluated subject's rows
      predictions/<protocol>/<style>/<subject>_<orientation>.nii.gz   (eval.save_predictions)
      metrics.csv  stats/  figures/  tables/  report.html  notes.md   the results
      cache/compile/  nnunet/                     compiled kernels; nnU-Net's own folders

This module is a leaf: it knows the config and the file formats, not the stages that write them.

Example:
    >>> layout = StudyLayout("study")
    >>> layout.run("unet", "2DAxi", 0).best.as_posix()
    'study/runs/unet/2DAxi/fold0/best.pt'
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from iphbench.config import ConfigError, StudyConfig

log = logging.getLogger(__name__)


class StudyFolderError(RuntimeError):
    """The folder is not a (finished enough) study folder: a file a verb needs is missing."""


@dataclass(frozen=True)
class RunLayout:
    """One run's folder, ``runs/<style>/<view>/fold<k>/``, and the files in it (docs/training.md)."""

    dir: Path
    style: str
    view: str  # a view (2DAxi, ...), or an nnU-Net style's own orientation (3D, 2D)
    fold: int

    @property
    def best(self) -> Path:
        """Weights with the best validation score (``torch.load(weights_only=True)``)."""
        return self.dir / "best.pt"

    @property
    def last(self) -> Path:
        """Everything a resumed run needs."""
        return self.dir / "last.pt"

    @property
    def settings(self) -> Path:
        """``config.json``: the run's resolved settings and their hash."""
        return self.dir / "config.json"

    @property
    def history(self) -> Path:
        """``history.csv``: one row per validation."""
        return self.dir / "history.csv"

    @property
    def status(self) -> Path:
        """``status.json``: what the progress table shows while the run trains."""
        return self.dir / "status.json"

    @property
    def done(self) -> Path:
        """``done.json``: written last; a run is finished when it exists."""
        return self.dir / "done.json"

    @property
    def error(self) -> Path:
        """``error.txt``: a failed run's traceback."""
        return self.dir / "error.txt"

    @property
    def finished(self) -> bool:
        return self.done.is_file()

    def read_done(self) -> dict[str, Any]:
        """``done.json`` as a dict; ``{}`` when it is missing or unreadable (the caller decides)."""
        try:
            data = json.loads(self.done.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def read_history(self) -> pd.DataFrame | None:
        """``history.csv``, or None when it is missing, unreadable or empty (logged)."""
        try:
            history = pd.read_csv(self.history)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, pd.errors.EmptyDataError) as exc:
            log.warning("%s: not readable (%s)", self.history, exc)
            return None
        return None if history.empty else history

    def __str__(self) -> str:
        return f"{self.style}/{self.view}/fold{self.fold}"


class StudyLayout:
    """Paths and loaders of one study folder.

    Args:
        root: the study folder (``out`` of the study YAML).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # -- paths ----------------------------------------------------------------------------------
    @property
    def config_yaml(self) -> Path:
        return self.root / "config.yaml"

    @property
    def study_json(self) -> Path:
        """The iphbench version and config hash the study was made with."""
        return self.root / "study.json"

    @property
    def folds_csv(self) -> Path:
        return self.root / "folds.csv"

    @property
    def prep(self) -> Path:
        """The patch store (``iphbench.preprocessing.store``)."""
        return self.root / "prep"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def run(self, style: str, view: str, fold: int) -> RunLayout:
        """The folder of one run: ``runs/<style>/<view>/fold<k>``."""
        return RunLayout(self.runs / style / view / f"fold{int(fold)}", style, view, int(fold))

    @property
    def eval_dir(self) -> Path:
        """The evaluation cache (resumable evaluation)."""
        return self.root / "eval"

    @property
    def eval_key(self) -> Path:
        return self.eval_dir / "key.json"

    @property
    def postprocess_json(self) -> Path:
        """The post-processing volumes chosen on each fold's validation subjects."""
        return self.eval_dir / "postprocess.json"

    def eval_subject(self, subject: str) -> Path:
        """One evaluated subject's rows of metrics.csv."""
        return self.eval_dir / f"{subject}.csv"

    def predictions_dir(self, protocol: str) -> Path:
        """The saved test predictions of one protocol, a folder per style (``eval.save_predictions``)."""
        return self.root / "predictions" / protocol

    def prediction(self, protocol: str, style: str, subject: str, orientation: str) -> Path:
        """A saved test prediction (``eval.save_predictions``)."""
        return self.predictions_dir(protocol) / style / f"{subject}_{orientation}.nii.gz"

    @property
    def metrics_csv(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def stats_dir(self) -> Path:
        return self.root / "stats"

    @property
    def figures_dir(self) -> Path:
        return self.root / "figures"

    @property
    def tables_dir(self) -> Path:
        """The report's tables as Markdown and CSV."""
        return self.root / "tables"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def notes_md(self) -> Path:
        """Free-text run settings a study's author adds to its report (the demo writes one)."""
        return self.root / "notes.md"

    @property
    def compile_cache(self) -> Path:
        """Compiled kernels shared by every run of the study (``train.compile_cache: study``)."""
        return self.root / "cache" / "compile"

    @property
    def nnunet_dir(self) -> Path:
        """nnU-Net's raw, preprocessed and results folders of this study (never the user's)."""
        return self.root / "nnunet"

    # -- loaders --------------------------------------------------------------------------------
    def is_study(self) -> bool:
        return self.config_yaml.is_file()

    def config(self) -> StudyConfig:
        """The study's resolved config.

        Raises:
            StudyFolderError: the folder has no config.yaml (not a study folder).
            ConfigError: config.yaml does not load (the message names it and the key).
        """
        if not self.is_study():
            raise StudyFolderError(
                f"{self.root} is not a study folder: config.yaml is missing (run 'iphbench study run' first)"
            )
        return StudyConfig.load(self.config_yaml)

    def config_or_none(self) -> StudyConfig | None:
        """The study's config, or None when there is none or it does not load (a warning says why).

        For readers to which the config only adds settings (thresholds of a banner, the HU window
        of a figure), so that a bare ``metrics.csv`` can still be reported on.
        """
        if not self.is_study():
            return None
        try:
            return StudyConfig.load(self.config_yaml)
        except ConfigError as exc:
            log.warning("%s; its defaults are used instead", exc)
            return None

    def read_study_json(self) -> dict[str, Any] | None:
        """``study.json``, or None when there is none.

        Raises:
            StudyFolderError: it exists but is not a JSON object.
        """
        if not self.study_json.exists():
            return None
        try:
            stored = json.loads(self.study_json.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise StudyFolderError(
                f"{self.study_json} is not valid JSON ({exc}); delete it only if {self.root} holds no results"
            ) from None
        if not isinstance(stored, dict):
            raise StudyFolderError(
                f"{self.study_json} does not hold a mapping; delete it only if {self.root} holds no results"
            )
        return stored

    def folds(self) -> pd.DataFrame:
        """``folds.csv``: subject, site, fold, role.

        Raises:
            StudyFolderError: the study has not been split yet.
        """
        if not self.folds_csv.is_file():
            raise StudyFolderError(
                f"{self.folds_csv} is missing: the study has not been split into folds yet (run 'iphbench study run')"
            )
        return pd.read_csv(self.folds_csv, dtype={"subject": str, "site": str})

    def run_folders(self) -> Iterator[RunLayout]:
        """Every run folder under ``runs/`` (finished or not), in path order (``fold10`` before ``fold2``)."""
        if not self.runs.is_dir():
            return
        found = []
        for path in self.runs.glob("*/*/fold*"):
            if path.is_dir() and path.name[4:].isdigit():
                found.append(RunLayout(path, path.parts[-3], path.parts[-2], int(path.name[4:])))
        yield from sorted(found, key=lambda r: r.dir)

    def finished_runs(self, style: str | None = None, view: str | None = None) -> list[RunLayout]:
        """Finished runs (``done.json`` present), of one style and view if given, in path order."""
        return [
            r
            for r in self.run_folders()
            if r.finished and (style is None or r.style == style) and (view is None or r.view == view)
        ]

    def trained_styles(self) -> list[str]:
        """Styles with at least one finished run (sorted)."""
        return sorted({r.style for r in self.finished_runs()})

    def histories(self) -> Iterator[tuple[RunLayout, pd.DataFrame | None]]:
        """Every run that has a ``history.csv``, with the table (None: unreadable or empty, logged).

        Read by the learning check and the report's learning curves.
        """
        for run in self.run_folders():
            if run.history.is_file():
                yield run, run.read_history()

    def __repr__(self) -> str:
        return f"StudyLayout({str(self.root)!r})"


__all__ = ["RunLayout", "StudyFolderError", "StudyLayout"]
