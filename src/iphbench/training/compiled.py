"""``torch.compile`` for the trainer: when it is on, where its cache lives, and eager when it fails.

* :func:`resolve_compile`: ``train.compile`` is ``"auto"`` (on for CUDA, off on the CPU, where
  compilation costs more than it saves on small runs and the CPU results stay bit-identical to
  eager), ``true`` or ``false``.
* :func:`compile_cache`: the folder of inductor's on-disk caches (FX graphs, AOTAutograd
  graphs, Triton kernels and autotuning results). The study points it at ``<out>/cache/compile``
  (``train.compile_cache: auto``), so the 60 runs of a grid compile each graph once: a later
  run of the same architecture and batch size (any view, any fold) only traces and loads. On a
  Ray cluster the study folder is shared, so the cache is too. Inductor reads the folder from the
  ``TORCHINDUCTOR_CACHE_DIR`` environment variable; the study sets it for the run and restores it
  afterwards, so nothing is required of the user's environment.
* :class:`Guarded`: a function run through its compiled form until that raises once (a
  compiler bug, a missing C compiler, an unsupported operator), then eagerly, with a warning in
  the log: a failed compilation never fails a run, let alone a grid.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch

from iphbench.config import COMPILE_MODES

log = logging.getLogger(__name__)

# ``train.compile_mode`` values are torch.compile's modes (config.COMPILE_MODES). ``reduce-overhead``
# and ``max-autotune`` replay CUDA graphs: training batches have a static shape (samplers always
# deliver full batches) and compiled validation pads its batches to one size.
CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"

R = TypeVar("R")


def resolve_compile(setting: bool | str, device: torch.device) -> bool:
    """Whether a run compiles: ``"auto"`` = on CUDA only; ``True``/``False`` as given, on any device.

    Raises:
        ValueError: ``setting`` is none of ``"auto"``, ``True``, ``False``.
    """
    if setting == "auto":
        return device.type == "cuda"
    if isinstance(setting, bool):
        return setting
    raise ValueError(f"train.compile must be 'auto', true or false, got {setting!r}")


def uses_cudagraphs(mode: str) -> bool:
    """Whether ``torch.compile(mode=mode)`` replays CUDA graphs (cudagraph trees)."""
    return mode in ("reduce-overhead", "max-autotune")


def study_cache_dir(out: str | Path) -> Path:
    """The compile cache of a study: ``<out>/cache/compile`` (docs/training.md)."""
    return Path(out) / "cache" / "compile"


def resolve_cache(setting: str, out: str | Path | None) -> str:
    """``train.compile_cache`` for one run: ``"auto"`` becomes the study's folder when the run belongs
    to a study (``out``), else stays ``"auto"`` (torch's default folder); ``"none"`` and folders stay."""
    if setting == "auto" and out is not None:
        return str(study_cache_dir(out))
    return setting


@contextlib.contextmanager
def compile_cache(setting: str) -> Iterator[Path | None]:
    """Point inductor's caches at the folder ``setting`` while the block runs (``"auto"``/``"none"``: torch's default).

    Yields the folder used, or None for torch's default.
    """
    if setting in ("auto", "none", ""):
        yield None
        return
    folder = Path(setting).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    before = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(folder)
    if before != str(folder):
        _clear_inductor_memo()
    try:
        yield folder
    finally:
        if before is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = before


def _clear_inductor_memo() -> None:
    """Forget inductor's in-process memo of its cache folder (as ``temporary_cache_dir`` does)."""
    with contextlib.suppress(
        Exception
    ):  # private API; without it the new folder still takes effect for new graphs
        from torch._inductor.utils import clear_caches

        clear_caches()


class Guarded(Generic[R]):
    """``fn`` through its compiled form, falling back to ``fn`` itself for good after the first failure.

    A failure is logged once (as a warning, with the error) under ``name``; the call that failed
    is repeated eagerly, so the caller sees the eager result. Use :meth:`run` to guard a longer
    piece of work that uses the compiled function (e.g. forward and backward of a training step).

    Example:
        >>> g = Guarded(lambda x: x + 1, compiled=lambda x: 1 / 0, name="demo")
        >>> g(1), g.compiled is None
        (2, True)
    """

    def __init__(self, fn: Callable[..., R], compiled: Callable[..., R] | None, name: str) -> None:
        self.fn, self.compiled, self.name = fn, compiled, name
        self.error: str | None = None

    @property
    def active(self) -> bool:
        """Whether calls still go through the compiled form."""
        return self.compiled is not None

    def __call__(self, *args: Any) -> R:
        return self.run(lambda f: f(*args))

    def run(
        self, work: Callable[[Callable[..., R]], Any], before_retry: Callable[[], None] | None = None
    ) -> Any:
        """``work(compiled)``; if it raises, log, switch to eager for good, call ``before_retry`` and
        return ``work(fn)``."""
        if self.compiled is not None:
            try:
                return work(self.compiled)
            except Exception as exc:  # compile errors surface at the first call; never fail the run for them
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "torch.compile of %s failed; running it eagerly from now on (%s)",
                    self.name,
                    self.error.splitlines()[0][:500],
                )
                self.compiled = None
                if before_retry is not None:
                    before_retry()
        return work(self.fn)


def compile_fn(fn: Callable[..., R], mode: str) -> Callable[..., R]:
    """``torch.compile(fn, mode=mode, dynamic=False)``: shapes are static (full batches, padded validation)."""
    return torch.compile(fn, mode=None if mode == "default" else mode, dynamic=False)


__all__ = [
    "CACHE_ENV",
    "COMPILE_MODES",
    "Guarded",
    "compile_cache",
    "compile_fn",
    "resolve_cache",
    "resolve_compile",
    "study_cache_dir",
    "uses_cudagraphs",
]
