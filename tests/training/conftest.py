"""A small prepared synthetic cohort shared by the training tests (made once per session)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from iphbench.config import PrepConfig, StudyConfig

PREP = PrepConfig(patch_size=32)  # 32³ patches keep CPU tests fast; still a multiple of 16


@pytest.fixture(scope="session")
def synth_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from iphbench.synth import generate_cohort

    return generate_cohort(tmp_path_factory.mktemp("cohort"), n_subjects=8, n_sites=2, seed=0, size="small")


@pytest.fixture(scope="session")
def prep_store(synth_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from iphbench.preprocessing.store import prepare_store

    root = tmp_path_factory.mktemp("store") / "prep"
    result = prepare_store(synth_cohort, root, PREP, workers=1, progress=False)
    assert result.ok and result.n_lesion_patches > 0
    return root


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture
def make_study(synth_cohort: Path, prep_store: Path, tmp_path: Path) -> Callable[..., Path]:
    """Write a tiny study YAML (and seed its prep/ with the session store); returns the YAML path."""

    def make(name: str = "study", **overrides: Any) -> Path:
        base = {
            "cohort": str(synth_cohort),
            "out": name,
            "views": ["2DCor"],
            "prep": {"patch_size": PREP.patch_size},
            "models": {"names": ["unet"], "width": 4},
            "folds": {"k": 2, "val_fraction": 0.25},
            "train": {"epochs": 1, "batch_size": 16, "steps_per_epoch": 2, "lr": 2e-3},
        }
        data = _merge(base, overrides)
        StudyConfig.from_dict(data)  # fail early on a typo in a test
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        if not (tmp_path / name / "prep").exists():
            shutil.copytree(prep_store, tmp_path / name / "prep")  # prepare_store then skips every subject
        return path

    return make
