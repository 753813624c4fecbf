"""HU window and min-max normalisation (paper section 3.2)."""

from __future__ import annotations

import numpy as np
import pytest

from iphbench.preprocessing.intensity import window_normalize


def test_paper_window_values() -> None:
    hu = np.array([-1000.0, -31.0, -30.0, 0.0, 35.0, 70.0, 100.0, 101.0, 3000.0])
    out = window_normalize(hu)
    expected = np.array([0.0, 0.0, 0.0, 30 / 130, 0.5, 100 / 130, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert out.dtype == np.float32


def test_custom_window_and_output_range() -> None:
    hu = np.array([-100.0, 0.0, 40.0, 80.0, 500.0])
    out = window_normalize(hu, hu_min=0.0, hu_max=80.0, out_min=-1.0, out_max=1.0)
    np.testing.assert_allclose(out, [-1.0, -1.0, 0.0, 1.0, 1.0], atol=1e-6)


def test_outside_brain_is_zero_and_dtype() -> None:
    hu = np.full((4, 4, 4), 60.0)
    brain = np.zeros((4, 4, 4), np.uint8)
    brain[1:3, 1:3, 1:3] = 1
    out = window_normalize(hu, brain=brain, dtype=np.float16)
    assert out.dtype == np.float16
    assert np.all(out[brain == 0] == 0)
    np.testing.assert_allclose(out[brain == 1].astype(np.float32), 90 / 130, atol=1e-3)


def test_input_is_not_modified() -> None:
    hu = np.array([-50.0, 50.0, 150.0], dtype=np.float32)
    window_normalize(hu)
    assert hu.tolist() == [-50.0, 50.0, 150.0]


def test_bad_window_and_brain_shape_raise() -> None:
    with pytest.raises(ValueError, match="hu_max > hu_min"):
        window_normalize(np.zeros(3), hu_min=100.0, hu_max=100.0)
    with pytest.raises(ValueError, match="brain mask shape"):
        window_normalize(np.zeros((2, 2, 2)), brain=np.ones((2, 2, 3), np.uint8))
