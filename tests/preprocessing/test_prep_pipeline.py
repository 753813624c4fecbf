"""prepare_volume (brain → window → resample → pad) and restore, its exact way back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from iphbench.config import ConfigError, PrepConfig
from iphbench.preprocessing import PrepMeta, check_prep_config, prepare_volume, restore
from iphbench.preprocessing.intensity import window_normalize


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return 2.0 * (a & b).sum() / (a.sum() + b.sum())


def test_prepare_without_resampling(make_head) -> None:
    img, mask, _ = make_head(shape=(70, 72, 40))
    prep = prepare_volume(img, PrepConfig(), mask=mask)
    assert prep.image.shape == prep.mask.shape == prep.brain.shape == (128, 128, 64)
    assert prep.image.dtype == np.float32 and prep.mask.dtype == np.uint8 and prep.brain.dtype == np.uint8
    assert prep.image.min() >= 0.0 and prep.image.max() <= 1.0
    assert np.all(prep.image[prep.brain == 0] == 0)  # 0 outside the brain and in the padding
    assert prep.mask.sum() == mask.array.sum()
    assert not prep.brain[70:].any() and not prep.brain[:, 72:].any()  # padding holds nothing
    # the way back is an exact crop; the values are the paper's window of the HU inside the brain
    brain = restore(prep.brain, prep.meta)
    expected = window_normalize(img.array, brain=brain)
    assert np.array_equal(restore(prep.image, prep.meta), expected)
    assert np.array_equal(restore(prep.mask, prep.meta, order=0), mask.array)
    m = prep.meta
    assert m.canonical_shape == m.shape == (70, 72, 40) and m.padded_shape == (128, 128, 64)
    assert m.pad == [[0, 58], [0, 56], [0, 24]] and not m.resampled
    assert set(prep.seconds) == {"brain", "intensity", "resample", "pad"}


def test_no_mask_gives_zeros_and_float16(make_head) -> None:
    img, _, _ = make_head(shape=(40, 44, 20))
    prep = prepare_volume(img, PrepConfig(patch_size=32), dtype=np.float16)
    assert prep.image.dtype == np.float16
    assert prep.mask.shape == (64, 64, 32) and not prep.mask.any()


def test_meta_is_plain_json_and_round_trips(make_head) -> None:
    img, mask, _ = make_head(shape=(40, 44, 20), flip=(True, False, True))
    prep = prepare_volume(img, PrepConfig(patch_size=32, target_spacing=[2.0, 2.0, 2.0]), mask=mask)
    text = json.dumps(prep.meta.to_dict())
    meta = PrepMeta.from_dict(json.loads(text))
    assert meta == prep.meta
    grid = meta.source_grid()
    assert grid.shape == img.source.shape
    np.testing.assert_allclose(grid.affine, img.source.affine)
    np.testing.assert_allclose(grid.ornt, img.source.ornt)
    vol = meta.canonical_volume(restore(prep.mask, meta, order=0))
    assert vol.to_source(vol.array).shape == img.source.shape


def test_resampling_round_trip_keeps_the_lesion(make_head) -> None:
    img, mask, _ = make_head(shape=(64, 72, 40), spacing=(3.0, 3.0, 4.0), lesion_radius_mm=18.0)
    cfg = PrepConfig(patch_size=32, target_spacing=[2.0, 2.0, 2.0])
    prep = prepare_volume(img, cfg, mask=mask)
    m = prep.meta
    assert m.resampled and m.spacing == (2.0, 2.0, 2.0) and m.shape == (95, 107, 79)
    assert all(n % 32 == 0 for n in m.padded_shape)
    np.testing.assert_allclose(np.asarray(m.affine)[:3, :3], np.diag([2.0, 2.0, 2.0]))
    np.testing.assert_allclose(np.asarray(m.affine)[:3, 3], np.asarray(m.canonical_affine)[:3, 3])
    # the resampled lesion holds about the same volume in mL
    ml_before = mask.array.sum() * 36.0 / 1000
    ml_after = prep.mask.sum() * 8.0 / 1000
    assert abs(ml_after - ml_before) / ml_before < 0.05
    back_nearest = restore(prep.mask, m, order=0)
    back_linear = restore(prep.mask.astype(np.float32), m, order=1) >= 0.5
    assert back_nearest.shape == mask.shape
    assert _dice(back_nearest, mask.array) > 0.95
    assert _dice(back_linear, mask.array) > 0.95
    assert np.all(prep.image[prep.brain == 0] == 0)


def test_mask_on_another_grid_is_refused(make_head) -> None:
    img, _, _ = make_head(shape=(40, 44, 20))
    _, other, _ = make_head(shape=(40, 44, 22))
    with pytest.raises(ValueError, match="must be on the scan's grid"):
        prepare_volume(img, PrepConfig(), mask=other)


def test_restore_checks_the_shape(make_head) -> None:
    img, _, _ = make_head(shape=(40, 44, 20))
    prep = prepare_volume(img, PrepConfig(brain_extraction="none"))
    with pytest.raises(ValueError, match="prepared grid"):
        restore(np.zeros((10, 10, 10)), prep.meta)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"brain_extraction": "bet"}, "valid methods"),
        ({"hu_min": 100.0}, "hu_max"),
        ({"patch_size": 0}, "patch_size"),
        ({"target_spacing": [1.0, 1.0]}, "target_spacing"),
    ],
)
def test_check_prep_config(change, message) -> None:
    with pytest.raises(ConfigError, match=message):
        check_prep_config(PrepConfig(**change))
