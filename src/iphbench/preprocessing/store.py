"""The patch store: prepared subjects on disk, memory-mappable, with a patch index (docs/formats.md).

``prepare_store`` writes it from a cohort manifest (subjects in parallel processes, each
finished subject skipped on the next run, a changed preprocessing config refused unless
``overwrite``); ``PatchStore`` reads it for training, inference and evaluation.

Example:
    >>> result = prepare_store("cohort.csv", "study/prep", PrepConfig(), workers=4)  # doctest: +SKIP
    >>> store = PatchStore("study/prep")  # doctest: +SKIP
    >>> images, masks, table = store.patches(store.subjects[:2], "lesion")  # doctest: +SKIP
    >>> images.dtype, images.shape[1:]  # doctest: +SKIP
    (dtype('float16'), (64, 64, 64))
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from iphbench import __version__
from iphbench._files import atomic_write_json, atomic_write_text
from iphbench.config import ConfigError, PrepConfig, config_hash, from_mapping, plain
from iphbench.io.cohort import load_cohort, missing_columns_problem
from iphbench.preprocessing._subject import (
    DERIVED_COLUMNS,
    PATCH_COLUMNS,
    input_fingerprint,
    is_done,
    prepare_subject,
    read_done,
    subject_dir,
)
from iphbench.preprocessing.patching import SELECTION_MODES, extract_patches
from iphbench.preprocessing.pipeline import PreparedSubject, PrepMeta, check_prep_config

log = logging.getLogger(__name__)

STORE_FORMAT = 1
INDEX_COLUMNS: tuple[str, ...] = ("subject", "site", *PATCH_COLUMNS)


class StoreConfigError(ConfigError):
    """The store was prepared with another preprocessing config."""


@dataclass
class PrepareResult:
    """What ``prepare_store`` did."""

    root: Path  # the store folder
    done: list[str] = field(default_factory=list)  # subjects prepared by this run
    skipped: list[str] = field(
        default_factory=list
    )  # subjects already finished with the same config and inputs
    failed: dict[str, str] = field(default_factory=dict)  # subject → cause
    n_lesion_patches: int = 0  # lesion-mode patches in the whole store after this run
    n_brain_patches: int = 0  # brain-mode patches in the whole store after this run

    @property
    def ok(self) -> bool:
        return not self.failed


def prepare_store(
    cohort: str | Path | pd.DataFrame,
    root: str | Path,
    config: PrepConfig | None = None,
    workers: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    on_subject: Callable[[dict[str, Any]], None] | None = None,
) -> PrepareResult:
    """Prepare every subject of a cohort into the patch store at ``root`` (paper section 3.2).

    Args:
        cohort: the manifest CSV (paths relative to it) or a loaded DataFrame with absolute paths.
        root: the store folder (created).
        config: preprocessing settings; default :class:`PrepConfig` (the paper's).
        workers: parallel processes; default all cores (at most one per subject); 1 runs in this process.
        progress: show a rich progress bar.
        overwrite: when the store holds another config, delete its subjects and start again
            instead of refusing.
        on_subject: called with each subject's outcome dict as it finishes.

    Returns:
        A :class:`PrepareResult`; failed subjects are listed with their cause, the others finish.

    Raises:
        StoreConfigError: the store was prepared with another config and ``overwrite`` is False.
        ValueError: the manifest misses columns or repeats a subject id.
    """
    config = check_prep_config(config or PrepConfig())
    df = load_manifest(cohort)
    root = Path(root)
    chash = _open_for_writing(root, config, overwrite)

    rows = [{str(k): v for k, v in r.items()} for r in df.to_dict(orient="records")]
    result = PrepareResult(root=root)
    todo: list[dict[str, Any]] = []
    for row in rows:
        subject = str(row["subject"])
        try:
            subject_dir(root, subject)
        except ValueError as exc:
            result.failed[subject] = str(exc)
            continue
        if is_done(root, subject, chash, input_fingerprint(row)):
            result.skipped.append(subject)
        else:
            todo.append(row)
    if result.skipped:
        log.info("%d subject(s) already prepared with this config: skipped", len(result.skipped))

    cfg_dict = plain(config)
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))

    def record(outcome: dict[str, Any]) -> None:
        if outcome["status"] == "done":
            result.done.append(outcome["subject"])
        else:
            result.failed[outcome["subject"]] = outcome["error"]
            log.error("subject %s failed: %s", outcome["subject"], outcome["error"])
        if on_subject is not None:
            on_subject(outcome)

    with _progress_bar(progress, len(todo)) as advance:
        if n_workers == 1:
            for row in todo:
                record(prepare_subject(row, str(root), cfg_dict, chash))
                advance()
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as pool:
                futures: dict[Future[dict[str, Any]], str] = {
                    pool.submit(prepare_subject, row, str(root), cfg_dict, chash): str(row["subject"])
                    for row in todo
                }
                for fut in as_completed(futures):
                    try:
                        outcome = fut.result()
                    except Exception as exc:  # the worker process itself died (e.g. out of memory)
                        outcome = {
                            "subject": futures[fut],
                            "status": "failed",
                            "error": f"worker process died: {exc!r}",
                        }
                    record(outcome)
                    advance()

    order = [str(r["subject"]) for r in rows]
    subjects, index = rebuild_tables(root, chash, order)
    result.n_lesion_patches = int((index["lesion_voxels"] > 0).sum()) if len(index) else 0
    result.n_brain_patches = int((index["brain_voxels"] > 0).sum()) if len(index) else 0
    log.info(
        "patch store %s: %d prepared, %d skipped, %d failed; %d subjects, %d lesion and %d brain patches",
        root,
        len(result.done),
        len(result.skipped),
        len(result.failed),
        len(subjects),
        result.n_lesion_patches,
        result.n_brain_patches,
    )
    return result


def rebuild_tables(
    root: str | Path, chash: str, order: list[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write ``subjects.csv`` and ``index.csv`` from every finished subject (manifest order first)."""
    root = Path(root)
    folder = root / "subjects"
    names = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    ranked = {s: i for i, s in enumerate(order or [])}
    names.sort(key=lambda s: (ranked.get(s, len(ranked)), s))
    summaries, patches = [], []
    for name in names:
        done = read_done(root, name)
        if done is None or done.get("config_hash") != chash:
            continue
        sub = subject_dir(root, name)
        summary = json.loads((sub / "summary.json").read_text(encoding="utf-8"))
        manifest = summary["manifest"]
        row = {c: manifest.get(c) for c in summary["manifest_columns"]}
        row.update({c: summary["derived"][c] for c in DERIVED_COLUMNS})
        summaries.append(row)
        table = pd.read_csv(sub / "patches.csv")
        table.insert(0, "site", manifest.get("site", ""))
        table.insert(0, "subject", name)
        patches.append(table)
    subjects = pd.DataFrame(summaries)
    index = pd.concat(patches, ignore_index=True) if patches else pd.DataFrame(columns=list(INDEX_COLUMNS))
    atomic_write_text(root / "subjects.csv", subjects.to_csv(index=False))
    atomic_write_text(root / "index.csv", index.to_csv(index=False))
    return subjects, index


class PatchStore:
    """Read side of a patch store folder (docs/formats.md)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        path = self.root / "store.json"
        if not path.is_file():
            raise FileNotFoundError(
                f"{self.root} is not a patch store (no store.json): run `iphbench prepare cohort.csv --out {self.root}`"
            )
        info = json.loads(path.read_text(encoding="utf-8"))
        if info.get("format") != STORE_FORMAT:
            raise ValueError(
                f"{path} has store format {info.get('format')}; this iphbench reads format {STORE_FORMAT}"
            )
        self.info: dict[str, Any] = info
        self.config: PrepConfig = from_mapping(PrepConfig, info["config"], "prep")
        self.config_hash: str = str(info["config_hash"])

    @property
    def patch_size(self) -> int:
        return self.config.patch_size

    @cached_property
    def subjects_table(self) -> pd.DataFrame:
        """``subjects.csv``: manifest columns + shape, spacing, ref_ml and patch counts."""
        path = self.root / "subjects.csv"
        if not path.is_file() or path.stat().st_size <= 1:
            return pd.DataFrame(columns=["subject", "site"])
        return pd.read_csv(path, dtype={"subject": str, "site": str}, keep_default_na=False, na_values=[""])

    @property
    def subjects(self) -> list[str]:
        """Finished subjects, in manifest order."""
        return [str(s) for s in self.subjects_table["subject"]]

    @cached_property
    def index(self) -> pd.DataFrame:
        """``index.csv``: one row per patch touching the brain or the lesion."""
        path = self.root / "index.csv"
        if not path.is_file() or path.stat().st_size <= 1:
            return pd.DataFrame(columns=list(INDEX_COLUMNS))
        return pd.read_csv(path, dtype={"subject": str, "site": str})

    @cached_property
    def _by_subject(self) -> dict[str, pd.DataFrame]:
        return {str(s): t for s, t in self.index.groupby("subject", sort=False)}

    def _check(self, subject: str) -> None:
        if subject not in self._by_subject and subject not in set(self.subjects):
            raise KeyError(
                f"subject {subject!r} is not in the patch store {self.root} ({len(self.subjects)} subjects); "
                "was it in the cohort, and did it fail? run `iphbench prepare` again to see"
            )

    def load(self, subject: str, mmap: bool = True) -> PreparedSubject:
        """One subject's padded arrays (memory-mapped, read-only, by default) and its PrepMeta."""
        self._check(subject)
        folder = subject_dir(self.root, subject)

        def arr(name: str) -> np.ndarray:
            return np.load(folder / name, mmap_mode="r" if mmap else None, allow_pickle=False)

        meta = PrepMeta.from_dict(json.loads((folder / "meta.json").read_text(encoding="utf-8")))
        return PreparedSubject(
            image=arr("image.npy"), mask=arr("mask.npy"), brain=arr("brain.npy"), meta=meta
        )

    def patch_origins(self, subject: str, mode: str) -> np.ndarray:
        """Origins ``(N, 3)`` (int64) of the subject's patches in selection ``mode``.

        ``lesion``: patches holding a lesion voxel (the paper's selection); ``brain``: patches
        touching the brain mask; ``context``: brain patches without any lesion voxel (the
        lesion-free context of the ``iphbench`` training recipe).
        """
        self._check(subject)
        table = self._by_subject.get(subject)
        if table is None:
            return np.zeros((0, 3), dtype=np.int64)
        if mode == "context":
            kept = table[(table["brain_voxels"] > 0) & (table["lesion_voxels"] <= 0)]
        else:
            kept = table[table[_mode_column(mode)] > 0]
        return kept[["ox", "oy", "oz"]].to_numpy(dtype=np.int64)

    def patches(
        self, subjects: Sequence[str], mode: str, max_per_subject: int | None = None, seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
        """All patches of ``subjects`` in selection ``mode`` (see :meth:`patch_origins`).

        Args:
            max_per_subject: keep at most this many patches per subject, drawn without
                replacement by a generator seeded with ``(seed, subject)`` (None = all).

        Returns:
            images float16 ``(N, P, P, P)``, masks uint8 ``(N, P, P, P)`` and a table with
            columns subject, ox, oy, oz (one row per patch, same order).
        """
        size = self.patch_size
        per = [(s, _at_most(self.patch_origins(s, mode), max_per_subject, seed, s)) for s in subjects]
        total = sum(len(o) for _, o in per)
        images = np.empty((total, size, size, size), dtype=np.float16)
        masks = np.empty((total, size, size, size), dtype=np.uint8)
        rows: list[tuple[str, int, int, int]] = []
        at = 0
        for subject, origins in per:
            if not len(origins):
                continue
            prep = self.load(subject, mmap=True)
            n = len(origins)
            images[at : at + n] = extract_patches(prep.image, origins, size)
            masks[at : at + n] = extract_patches(prep.mask, origins, size)
            rows.extend((subject, int(o[0]), int(o[1]), int(o[2])) for o in origins)
            at += n
        table = pd.DataFrame(rows, columns=["subject", "ox", "oy", "oz"])
        return images, masks, table


# -- helpers ----------------------------------------------------------------------------------
def _at_most(origins: np.ndarray, limit: int | None, seed: int, subject: str) -> np.ndarray:
    if limit is None or len(origins) <= limit:
        return origins
    digest = int.from_bytes(hashlib.sha256(subject.encode()).digest()[:8], "little")
    rng = np.random.default_rng([seed, digest])
    keep = np.sort(rng.choice(len(origins), size=limit, replace=False))
    return origins[keep]


def _mode_column(mode: str) -> str:
    if mode == "lesion":
        return "lesion_voxels"
    if mode == "brain":
        return "brain_voxels"
    raise ValueError(
        f"unknown patch selection mode {mode!r}; valid modes are {[*SELECTION_MODES, 'context']}"
    )


def load_manifest(cohort: str | Path | pd.DataFrame) -> pd.DataFrame:
    if isinstance(cohort, pd.DataFrame):
        df = cohort.copy()
    else:
        df = load_cohort(cohort)
    missing = missing_columns_problem(df, ("subject", "image"))
    if missing:
        where = "" if isinstance(cohort, pd.DataFrame) else f" {cohort}"
        raise ValueError(f"the cohort manifest{where}: {missing}")
    if df.empty:
        where = "" if isinstance(cohort, pd.DataFrame) else f" {cohort}"
        raise ValueError(
            f"the cohort manifest{where} has no rows (empty cohort): there is nothing to prepare"
        )
    df["subject"] = df["subject"].astype(str)
    if "site" not in df.columns:
        df["site"] = ""
    dup = sorted(df["subject"][df["subject"].duplicated()].unique())
    if dup:
        raise ValueError(
            f"the cohort manifest repeats subject id(s) {dup[:10]}: each subject must appear once"
        )
    return df


def _open_for_writing(root: Path, config: PrepConfig, overwrite: bool) -> str:
    """Check or write ``store.json``; wipe the subjects of another config when ``overwrite``."""
    chash = config_hash(config)
    path = root / "store.json"
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old.get("config_hash") != chash:
            changed = _config_diff(old.get("config", {}), plain(config))
            if not overwrite:
                raise StoreConfigError(
                    f"the patch store {root} was prepared with another preprocessing config "
                    f"(hash {old.get('config_hash')}, now {chash}; changed: {changed}). "
                    "Use --overwrite (overwrite=True) to prepare it again, or choose another --out folder"
                )
            log.warning("patch store %s: config changed (%s); deleting its prepared subjects", root, changed)
            shutil.rmtree(root / "subjects", ignore_errors=True)
            for name in ("subjects.csv", "index.csv"):
                (root / name).unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        path,
        {"format": STORE_FORMAT, "iphbench": __version__, "config": plain(config), "config_hash": chash},
    )
    return chash


def _config_diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(set(old) | set(new))
    parts = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]
    return "; ".join(parts) or "format of the stored config"


class _progress_bar:
    """A rich progress bar over ``total`` subjects, or a no-op when disabled."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled and total > 0
        self.total = total
        self._progress: Any = None

    def __enter__(self) -> Callable[[], None]:
        if not self.enabled:
            return lambda: None
        self._progress = Progress(
            TextColumn("preparing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=False
        )
        self._progress.start()
        task = self._progress.add_task("subjects", total=self.total)
        return lambda: self._progress.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


__all__ = [
    "PatchStore",
    "PrepareResult",
    "StoreConfigError",
    "load_manifest",
    "prepare_store",
    "rebuild_tables",
]
