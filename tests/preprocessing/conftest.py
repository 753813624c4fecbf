"""Fixtures private to the preprocessing tests: small head CT phantoms (HU) with a known hemorrhage,
and a small synthetic cohort from ``iphbench.synth`` (made once per session)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from iphbench.io.volume import SourceGrid, Volume, canonicalize


def head_phantom(
    shape: tuple[int, int, int] = (64, 72, 40),
    spacing: tuple[float, float, float] = (3.0, 3.0, 4.0),
    lesion_mm: tuple[float, float, float] = (35.0, 20.0, 10.0),
    lesion_radius_mm: float = 12.0,
    foramen: bool = True,
    seed: int = 0,
    flip: tuple[bool, bool, bool] = (False, False, False),
) -> tuple[Volume, Volume, np.ndarray]:
    """A head: air, scalp (40 HU), skull (1000 HU, open at the base if ``foramen``), brain (~30 HU),
    ventricles (8 HU) and a hemorrhage sphere (70 HU) centred ``lesion_mm`` from the head centre.

    Returns the CT and the lesion mask as canonical Volumes and the true brain (canonical bool array) (``flip`` writes the file grid with
    negative axes first, so canonicalisation has work to do).
    """
    rng = np.random.default_rng(seed)
    sp = np.asarray(spacing, dtype=float)
    centre = (np.asarray(shape) - 1) / 2.0
    grids = np.meshgrid(
        *[(np.arange(n) - c) * s for n, c, s in zip(shape, centre, sp, strict=True)], indexing="ij"
    )
    x, y, z = grids
    semi = np.array([70.0, 85.0, 65.0])

    def ell(a: np.ndarray, off: tuple[float, float, float] = (0, 0, 0)) -> np.ndarray:
        return ((x - off[0]) / a[0]) ** 2 + ((y - off[1]) / a[1]) ** 2 + ((z - off[2]) / a[2]) ** 2 <= 1.0

    hu = np.full(shape, -1000.0, dtype=np.float32)
    hu[ell(semi + 6)] = 40.0  # scalp
    hu[ell(semi)] = 1000.0  # skull
    brain = ell(semi - 6)
    hu[brain] = 30.0
    if foramen:  # opening in the skull base with soft tissue running down into the neck
        hole = (x**2 + y**2 <= 12.0**2) & (z < 0)
        hu[hole & ~brain & (hu > 100)] = 35.0
    hu[ell(np.array([8.0, 20.0, 10.0]))] = 8.0  # ventricles
    lesion = (
        (x - lesion_mm[0]) ** 2 + (y - lesion_mm[1]) ** 2 + (z - lesion_mm[2]) ** 2 <= lesion_radius_mm**2
    ) & brain
    hu[lesion] = 70.0
    hu += rng.normal(0.0, 4.0, size=shape).astype(np.float32)
    affine = np.diag([*sp, 1.0])
    affine[:3, 3] = -centre * sp
    mask = lesion.astype(np.uint8)
    hu_file, mask_file = hu, mask
    for axis, f in enumerate(flip):
        if f:  # store the file with this axis reversed; the affine keeps world positions
            hu_file, mask_file = np.flip(hu_file, axis), np.flip(mask_file, axis)
            a = affine.copy()
            a[:3, axis] = -affine[:3, axis]
            a[:3, 3] = affine[:3, 3] + affine[:3, axis] * (shape[axis] - 1)
            affine = a
    hu_file, mask_file = np.ascontiguousarray(hu_file), np.ascontiguousarray(mask_file)
    img = canonicalize(
        hu_file, affine, SourceGrid(shape=shape, affine=affine, ornt=np.zeros((3, 2)), path="phantom")
    )
    msk = canonicalize(
        mask_file, affine, SourceGrid(shape=shape, affine=affine, ornt=np.zeros((3, 2)), path="phantom-mask")
    )
    brain_file = np.ascontiguousarray(_flip(brain, flip))
    true_brain = canonicalize(
        brain_file, affine, SourceGrid(shape=shape, affine=affine, ornt=np.zeros((3, 2)))
    )
    return img, msk, true_brain.array.astype(bool)


def _flip(a: np.ndarray, flip: tuple[bool, bool, bool]) -> np.ndarray:
    for axis, f in enumerate(flip):
        if f:
            a = np.flip(a, axis)
    return a


@pytest.fixture
def make_head() -> Callable[..., tuple[Volume, Volume, np.ndarray]]:
    """The :func:`head_phantom` factory."""
    return head_phantom


@pytest.fixture(scope="session")
def synth_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six small synthetic subjects on two sites, one hemorrhage-free; returns cohort.csv."""
    from iphbench.synth import generate_cohort

    out = tmp_path_factory.mktemp("prep_synth")
    return generate_cohort(out, n_subjects=6, n_sites=2, seed=11, size="small", healthy_fraction=1 / 6)
