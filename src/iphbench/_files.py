"""Crash-safe file writing: write to a temporary name in the same folder, flush, fsync, rename.

A reader never sees a half-written file under its final name, so a run killed at any
moment leaves either the old file, the new file, or no file (DESIGN.md, robustness).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success fsync it and rename it onto ``path``.

    Args:
        path: final destination.
        suffix: suffix for the temporary name (some writers pick the format from it, e.g. ``.nii.gz``).

    Example:
        >>> with atomic_path("/tmp/x.txt") as tmp:  # doctest: +SKIP
        ...     tmp.write_text("hello")
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".tmp{suffix}", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    except OSError as exc:  # disk full, permission denied, ...: say which file could not be written
        with contextlib.suppress(OSError):
            tmp.unlink()
        if exc.filename is not None and str(exc.filename) not in (str(tmp), str(final)):
            raise
        raise OSError(exc.errno, f"cannot write {final}: {exc.strerror or exc}", str(final)) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_save_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Save ``array`` as a ``.npy`` file atomically (never pickled: object arrays are refused)."""
    if array.dtype == object:
        raise TypeError(f"refusing to save an object array to {path}: the patch store holds no pickles")
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array, allow_pickle=False)
