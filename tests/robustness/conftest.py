"""Fixtures private to the robustness suite: a tiny synthetic cohort, bad files made from it, a trained study."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from robustness_helpers import BAD, LESION_FREE, ODD_ROOT, ONE_VOXEL, tiny_study


@pytest.fixture(scope="session")
def base_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic cohort: 6 subjects with hemorrhages on 2 sites (64×64×32 voxels)."""
    from iphbench.synth import generate_cohort

    return Path(
        generate_cohort(tmp_path_factory.mktemp("cohort"), n_subjects=6, n_sites=2, seed=0, size="tiny")
    )


@pytest.fixture(scope="session")
def base_rows(base_cohort: Path) -> pd.DataFrame:
    df = pd.read_csv(base_cohort, dtype={"subject": str, "site": str})[
        ["subject", "site", "age", "sex", "image", "mask"]
    ]
    for col in ("image", "mask"):
        df[col] = [str((base_cohort.parent / p).resolve()) for p in df[col]]
    return df


@pytest.fixture(scope="session")
def ct(base_rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first subject's scan (HU), mask and affine, as bad files are made from them."""
    img = nib.load(base_rows["image"][0])
    mask = np.asarray(nib.load(base_rows["mask"][0]).dataobj).astype(np.uint8)
    return img.get_fdata().astype(np.float32), mask, img.affine


@pytest.fixture
def make_cohort(tmp_path: Path, base_rows: pd.DataFrame) -> Callable[..., Path]:
    """Write a cohort.csv whose subject BAD uses the given image/mask paths (None = unchanged)."""

    def build(image: str | None = None, mask: str | None = None, rows: pd.DataFrame | None = None) -> Path:
        df = base_rows.copy() if rows is None else rows.copy()
        if image is not None:
            df.loc[df["subject"] == BAD, "image"] = image
        if mask is not None:
            df.loc[df["subject"] == BAD, "mask"] = mask
        path = tmp_path / "cohort.csv"
        df.to_csv(path, index=False)
        return path

    return build


@pytest.fixture(scope="session")
def odd_cohort(tmp_path_factory: pytest.TempPathFactory, base_rows: pd.DataFrame) -> Path:
    """The tiny cohort under a non-ASCII, space-containing folder, with non-ASCII file and site names,
    one hemorrhage-free subject (no lesion patch) and one subject whose lesion is a single voxel."""
    root = tmp_path_factory.mktemp("odd") / ODD_ROOT
    rows = base_rows.copy()
    for col in ("image", "mask"):
        paths = []
        for subject, src in zip(rows["subject"], rows[col], strict=True):
            dst = root / col / f"sujeito é {subject}.nii.gz"
            dst.parent.mkdir(parents=True, exist_ok=True)
            if col == "mask" and subject in (LESION_FREE, ONE_VOXEL):
                img = nib.load(src)
                arr = np.asarray(img.dataobj).astype(np.uint8)
                out = np.zeros_like(arr)
                if subject == ONE_VOXEL:
                    out[tuple(np.argwhere(arr)[len(np.argwhere(arr)) // 2])] = (
                        1  # one voxel inside its lesion
                    )
                nib.save(nib.Nifti1Image(out, img.affine), str(dst))
            else:
                shutil.copy(src, dst)
            paths.append(str(dst.relative_to(root)))
        rows[col] = paths
    rows["site"] = rows["site"].map({"A": "Hôpital A", "B": "病院 B"})
    csv = root / "coorte ü.csv"
    rows.to_csv(csv, index=False)
    return csv


@pytest.fixture(scope="session")
def trained_study(odd_cohort: Path) -> Path:
    """The odd cohort prepared, trained on 2DAxi (unet, width 4, 1 epoch, 2 folds) and evaluated: the folder."""
    from iphbench.config import StudyConfig
    from iphbench.study.evaluate import evaluate_study
    from iphbench.study.grid import run_study

    root = odd_cohort.parent
    cfg = StudyConfig.load(tiny_study(root, odd_cohort, out=str(root / "estudo ü")))
    assert run_study(cfg).ok
    evaluate_study(cfg.out, device="cpu")
    return Path(cfg.out)


@pytest.fixture
def study_copy(tmp_path: Path, trained_study: Path) -> Path:
    """A private copy of the trained study, free to damage."""
    dst = tmp_path / "study"
    shutil.copytree(trained_study, dst)
    return dst
