"""``intensity_problem``: the one rule that decides whether a scan's values are HU (validate, prepare, predict)."""

from __future__ import annotations

import numpy as np
import pytest

from iphbench.io._checks import RAW_MAX, intensity_problem
from iphbench.synth import plan_cohort, synthesize_subject
from iphbench.synth.phantom import INTRACRANIAL, Tissue


@pytest.fixture(scope="module", params=["tiny", "small"])
def synthetic(request: pytest.FixtureRequest):
    """One synthetic subject of the project's generator (with a hemorrhage) at the given size."""
    return synthesize_subject(plan_cohort(1, 1, seed=5, size=request.param)[0])


def test_synthetic_scans_are_hu(synthetic) -> None:
    assert intensity_problem(synthetic.image.astype(np.float32)) is None


def test_missing_intercept_is_an_error_also_when_bone_stays_below_3000(synthetic) -> None:
    raw = np.clip(synthetic.image.astype(np.float32) + 1024.0, 0, 2800)  # unsigned, air at 0
    assert raw.min() >= 0 and raw.max() < RAW_MAX  # the older rule alone would have passed it
    problem = intensity_problem(raw)
    assert problem is not None
    message, severity = problem
    assert severity == "error"
    assert "do not look like HU" in message and "rescale intercept" in message
    median = float(message.split("median value is ")[1].split()[0])
    assert 1000 < median < 1200  # brain near 1,060, as in the issue


def test_skull_stripped_scans_are_a_warning(synthetic) -> None:
    """Brain kept, everything else 0 (or the brain's own values only): no air, plausible values."""
    keep = np.isin(synthetic.labels, [int(t) for t in INTRACRANIAL])
    assert keep.any()
    stripped = np.where(keep, synthetic.image, 0).astype(np.float32)
    message, severity = intensity_problem(stripped) or ("", "")
    assert severity == "warning" and "already skull-stripped" in message

    # a poor strip: brain clipped at 0 HU (minimum 0) and bone left over on 2 % of the voxels, so
    # that bone is most of what lies 50 above the minimum; the head's median alone would call it raw
    bone = np.flatnonzero(synthetic.labels.ravel() == int(Tissue.BONE))[: synthetic.image.size // 50]
    poor = np.clip(stripped, 0, None).ravel()
    poor[bone] = synthetic.image.ravel()[bone]
    head = poor[poor > 50]
    assert np.median(head) > 400
    message, severity = intensity_problem(poor.reshape(stripped.shape)) or ("", "")
    assert severity == "warning", message


def test_tiny_arrays_and_the_other_cases() -> None:
    head = np.full((8, 8, 6), -1000.0, np.float32)
    head[1:-1, 1:-1, 1:-1] = 1200.0
    head[2:-2, 2:-2, 2:-2] = 35.0
    assert intensity_problem(head) is None
    assert intensity_problem(head + 1024.0)[1] == "error"  # type: ignore[index]
    assert "constant" in intensity_problem(np.zeros((4, 4, 4), np.float32))[0]  # type: ignore[index]
    assert "normalised" in intensity_problem(np.linspace(0, 1, 64).reshape(4, 4, 4))[0]  # type: ignore[index]
    raw = np.zeros((4, 4, 4), np.float32)
    raw[0, 0, 0] = 4095.0  # nearly all background: no head median to judge, the max still tells
    assert "raw scanner values" in intensity_problem(raw)[0]  # type: ignore[index]
    brain_only = np.full((6, 6, 6), 30.0, np.float32)
    brain_only[0] = 60.0
    assert intensity_problem(brain_only)[1] == "warning"  # type: ignore[index]
