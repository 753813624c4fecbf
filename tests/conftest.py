"""Suite-wide settings: few threads so that tests behave on a 2-core CI machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

try:
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
except ImportError:  # pragma: no cover - torch is a core dependency
    pass


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained study (unet and fpn, three views, two folds; see tests/_study.py), built once.

    Treat it as read-only: copy it (``shutil.copytree``) before evaluating or changing it.
    """
    from _study import build_tiny_study

    return build_tiny_study(tmp_path_factory.mktemp("tiny_study"))
