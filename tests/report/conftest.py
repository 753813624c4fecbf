"""A small fake study (planted effects, tiny NIfTI volumes) shared by the report tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from _fake_study import FakeStudySpec, make_fake_study

SMALL = FakeStudySpec(sites={"A": 7, "B": 2, "C": 6, "D": 1}, n_free=2, n_volumes=2, seed=5)


@pytest.fixture(scope="module")
def fake_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fake_study(
        tmp_path_factory.mktemp("study") / "s", SMALL, notes="Ran at **reduced** width 8, 2 epochs."
    )
