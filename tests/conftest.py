"""Suite-wide settings: one torch/OpenMP thread per test process.

On a 2-core machine two OpenMP threads spin-wait on each other whenever anything else runs
(subprocesses, Ray workers, other jobs), which made single tests 10-20x slower; one thread is
predictable. Tests that need another count set it locally.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a core dependency
    pass


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained study (unet and fpn, three views, two folds; see tests/_study.py), built once.

    Treat it as read-only: copy it (``shutil.copytree``) before evaluating or changing it.
    """
    from _study import build_tiny_study

    return build_tiny_study(tmp_path_factory.mktemp("tiny_study"))
