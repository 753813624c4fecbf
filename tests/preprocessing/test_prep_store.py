"""The patch store: layout, idempotence, config hash, failures, the read side, lesion retention."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iphbench.config import PrepConfig, config_hash
from iphbench.io import read_mask, read_volume
from iphbench.io.cohort import load_cohort
from iphbench.preprocessing import prepare_volume
from iphbench.preprocessing.store import PatchStore, StoreConfigError, prepare_store

CFG = PrepConfig()  # the paper's settings


@pytest.fixture(scope="module")
def store_root(synth_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("prep_store") / "prep"
    result = prepare_store(synth_cohort, root, CFG, workers=1, progress=False)
    assert result.ok and len(result.done) == 6
    return root


def test_layout_and_tables(store_root: Path, synth_cohort: Path) -> None:
    info = json.loads((store_root / "store.json").read_text())
    assert info["format"] == 1 and info["config_hash"] == config_hash(CFG)
    store = PatchStore(store_root)
    manifest = load_cohort(synth_cohort)
    assert store.subjects == list(manifest["subject"])  # manifest order
    table = store.subjects_table
    for col in (*manifest.columns, "shape_x", "spacing_z", "ref_ml", "n_lesion_patches", "n_brain_patches"):
        assert col in table.columns, col
    assert list(store.index.columns) == ["subject", "site", "ox", "oy", "oz", "lesion_voxels", "brain_voxels"]
    for name in ("image.npy", "mask.npy", "brain.npy", "meta.json", "patches.csv", "summary.json", "done"):
        assert (store_root / "subjects" / store.subjects[0] / name).is_file()
    # counts agree between the tables
    per = store.index.groupby("subject")
    for row in table.itertuples():
        idx = per.get_group(row.subject)
        assert row.n_lesion_patches == (idx.lesion_voxels > 0).sum()
        assert row.n_brain_patches == (idx.brain_voxels > 0).sum()


def test_load_is_memory_mapped_and_matches_prepare_volume(store_root: Path, synth_cohort: Path) -> None:
    store = PatchStore(store_root)
    subject = store.subjects[0]
    prep = store.load(subject)
    assert isinstance(prep.image, np.memmap) and prep.image.dtype == np.float16
    assert prep.mask.dtype == np.uint8 and prep.brain.dtype == np.uint8
    row = load_cohort(synth_cohort).set_index("subject").loc[subject]
    img = read_volume(row["image"])
    direct = prepare_volume(img, CFG, mask=read_mask(row["mask"], like=img), dtype=np.float16)
    assert np.array_equal(np.asarray(prep.image), direct.image)
    assert np.array_equal(np.asarray(prep.mask), direct.mask)
    assert prep.meta == direct.meta
    ref_ml = store.subjects_table.set_index("subject").loc[subject, "ref_ml"]
    assert ref_ml == pytest.approx(direct.mask.sum() * img.voxel_volume_ml)


def test_patches_by_mode(store_root: Path) -> None:
    store = PatchStore(store_root)
    subjects = store.subjects[:4]
    images, masks, table = store.patches(subjects, "lesion")
    P = CFG.patch_size
    n_expected = int(store.subjects_table.set_index("subject").loc[subjects, "n_lesion_patches"].sum())
    assert images.shape == masks.shape == (n_expected, P, P, P)
    assert images.dtype == np.float16 and masks.dtype == np.uint8
    assert list(table.columns) == ["subject", "ox", "oy", "oz"] and len(table) == n_expected
    assert all(m.any() for m in masks)  # the paper's selection: >= 1 lesion voxel each
    first = table.iloc[0]
    prep = store.load(first.subject)
    o = (first.ox, first.oy, first.oz)
    assert np.array_equal(images[0], prep.image[o[0] : o[0] + P, o[1] : o[1] + P, o[2] : o[2] + P])
    b_images, _, b_table = store.patches(subjects, "brain")
    assert len(b_table) >= len(table) and len(b_images) == len(b_table)
    origins = store.patch_origins(subjects[0], "brain")
    assert origins.shape[1] == 3 and origins.dtype == np.int64
    with pytest.raises(ValueError, match="valid modes"):
        store.patches(subjects, "all")
    with pytest.raises(KeyError, match="not in the patch store"):
        store.load("nobody")


def test_healthy_subject_has_no_lesion_patches(store_root: Path) -> None:
    table = PatchStore(store_root).subjects_table
    healthy = table[table["ref_ml"] == 0]
    assert len(healthy) == 1
    assert int(healthy["n_lesion_patches"].iloc[0]) == 0 and int(healthy["n_brain_patches"].iloc[0]) > 0


def test_lesion_retention_of_the_brain_mask(store_root: Path) -> None:
    """Share of hemorrhage voxels inside the brain mask over the synthetic cohort (target >= 99.5 %)."""
    store = PatchStore(store_root)
    kept = total = 0
    for subject in store.subjects:
        prep = store.load(subject)
        lesion = np.asarray(prep.mask, dtype=bool)
        kept += int((lesion & np.asarray(prep.brain, dtype=bool)).sum())
        total += int(lesion.sum())
    assert total > 0
    assert kept / total >= 0.995


def test_second_run_skips_and_changed_config_is_refused(store_root: Path, synth_cohort: Path) -> None:
    image = store_root / "subjects" / PatchStore(store_root).subjects[0] / "image.npy"
    before = image.stat().st_mtime_ns
    again = prepare_store(synth_cohort, store_root, CFG, workers=1, progress=False)
    assert again.done == [] and len(again.skipped) == 6 and again.ok
    assert image.stat().st_mtime_ns == before
    changed = PrepConfig(hu_max=90.0)
    assert config_hash(changed) != config_hash(CFG)
    with pytest.raises(
        StoreConfigError, match=r"another preprocessing config.*hu_max: 100.0 -> 90.0.*--overwrite"
    ):
        prepare_store(synth_cohort, store_root, changed, workers=1, progress=False)
    assert PatchStore(store_root).config_hash == config_hash(CFG)  # the refused run changed nothing


def test_overwrite_and_changed_input(synth_cohort: Path, tmp_path: Path) -> None:
    df = load_cohort(synth_cohort).iloc[:2].copy()
    root = tmp_path / "prep"
    assert len(prepare_store(df, root, PrepConfig(), workers=1, progress=False).done) == 2
    # an input file that changed is prepared again, the other skipped
    path = Path(df["image"].iloc[1])
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    rerun = prepare_store(df, root, PrepConfig(), workers=1, progress=False)
    assert rerun.done == [df["subject"].iloc[1]] and rerun.skipped == [df["subject"].iloc[0]]
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    # overwrite with a new config prepares everything again under the new hash
    new = PrepConfig(patch_size=32)
    res = prepare_store(df, root, new, workers=1, progress=False, overwrite=True)
    assert len(res.done) == 2
    store = PatchStore(root)
    assert store.config == new and store.config_hash == config_hash(new)
    assert store.load(store.subjects[0]).image.shape[0] % 32 == 0


def test_failing_subject_does_not_stop_the_others_in_parallel(synth_cohort: Path, tmp_path: Path) -> None:
    df = load_cohort(synth_cohort).iloc[:2].copy()
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a nifti file")
    bad = df.iloc[[0]].copy()
    bad["subject"] = "bad001"
    bad["image"] = str(broken)
    cohort = pd.concat([bad, df], ignore_index=True)
    root = tmp_path / "prep"
    result = prepare_store(cohort, root, PrepConfig(), workers=2, progress=False)
    assert sorted(result.done) == sorted(df["subject"])
    assert list(result.failed) == ["bad001"]
    assert "broken.nii.gz" in result.failed["bad001"]
    store = PatchStore(root)
    assert store.subjects == list(df["subject"])
    assert "bad001" not in set(store.index["subject"])
    assert not (root / "subjects" / "bad001" / "done").exists()


def test_manifest_problems(synth_cohort: Path, tmp_path: Path) -> None:
    df = load_cohort(synth_cohort).iloc[:2].copy()
    dup = pd.concat([df, df.iloc[[0]]], ignore_index=True)
    with pytest.raises(ValueError, match="repeats subject"):
        prepare_store(dup, tmp_path / "a", PrepConfig(), workers=1, progress=False)
    odd = df.iloc[[0]].copy()
    odd["subject"] = "../escape"
    result = prepare_store(odd, tmp_path / "b", PrepConfig(), workers=1, progress=False)
    assert "cannot name a folder" in result.failed["../escape"]
    with pytest.raises(FileNotFoundError, match="iphbench prepare"):
        PatchStore(tmp_path / "nothing")
