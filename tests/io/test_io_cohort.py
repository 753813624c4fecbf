"""load_cohort / validate_cohort: every problem reported at once, with subject and file."""

from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from iphbench.io.cohort import CohortError, load_cohort, normalise_sex, validate_cohort

SPACING = np.diag([0.5, 0.5, 5.0, 1.0])


def test_good_cohort(cohort_dir, head_ct, cube_mask) -> None:
    csv = cohort_dir(
        [
            ("s01", "A", 61, "male", head_ct(), cube_mask()),
            ("s02", "A", "70.5", "F", head_ct(), cube_mask(value=255)),
            ("s03", "B", 44, " Female ", head_ct(), ""),  # unlabelled scan
        ]
    )
    df = load_cohort(csv)
    assert list(df.columns) == ["subject", "site", "age", "sex", "image", "mask", "scanner"]
    assert df["sex"].tolist() == ["M", "F", "F"]
    assert df["age"].tolist() == [61.0, 70.5, 44.0]
    assert all(Path(p).is_absolute() and Path(p).exists() for p in df["image"])
    assert df["mask"].iloc[2] == "" and df["scanner"].iloc[0] == "Xs01"
    report = validate_cohort(df)
    assert report.ok and report.issues == [], [str(i) for i in report.issues]
    s = report.summary.set_index("subject")
    assert s.loc["s01", "shape"] == (8, 8, 6)
    assert s.loc["s01", "spacing"] == (0.5, 0.5, 5.0)
    assert s.loc["s01", "ref_ml"] == pytest.approx(8 * 1.25 / 1000)
    assert s.loc["s02", "ref_ml"] == pytest.approx(0.01)
    assert np.isnan(s.loc["s03", "ref_ml"])
    report.raise_if_errors()  # no error: does not raise


def test_broken_cohort_reports_everything(cohort_dir, tmp_path: Path, head_ct, cube_mask) -> None:
    raw = head_ct() + 1024.0
    raw[0, 0, 0] = 4095.0
    nan = head_ct()
    nan[0, 0, 0] = np.nan
    labels = cube_mask()
    labels[3, 3, 2] = 2
    shifted = SPACING.copy()
    shifted[0, 3] = 3.0
    (tmp_path / "garbage.nii.gz").write_bytes(b"this is no nifti")
    rows = [
        ("ok", "A", 50, "M", head_ct(), cube_mask()),
        ("nofile", "A", 50, "M", "images/does_not_exist.nii.gz", ""),
        ("shape", "A", 50, "M", head_ct(), cube_mask((8, 8, 5))),
        ("affine", "A", 50, "M", head_ct(), (cube_mask(), shifted)),
        ("labelmap", "A", 50, "M", head_ct(), labels),
        ("dup", "B", 50, "M", head_ct(), ""),
        ("dup", "B", 51, "F", head_ct(), ""),
        ("agetext", "B", "forty", "M", head_ct(), ""),
        ("agemissing", "B", "", "M", head_ct(), ""),
        ("sexcode", "B", 50, "X", head_ct(), ""),
        ("rawct", "B", 50, "M", raw, ""),
        ("zeros", "B", 50, "M", np.zeros((8, 8, 6), np.float32), ""),
        ("nan", "C", 50, "M", nan, ""),
        ("garbage", "C", 50, "M", "garbage.nii.gz", ""),
        ("nosite", "", 50, "M", head_ct(), ""),
    ]
    csv = cohort_dir(rows)
    # one scan with absurd spacing, written separately on its own grid
    nib.save(
        nib.Nifti1Image(head_ct(), np.diag([0.5, 0.5, 25.0, 1.0])), str(tmp_path / "images" / "thick.nii.gz")
    )
    with csv.open("a") as fh:
        fh.write("thick,C,50,M,images/thick.nii.gz,,x\n")
    report = validate_cohort(load_cohort(csv))
    expected = {  # subject: (file part, message pattern)
        "nofile": ("does_not_exist.nii.gz", r"image file not found"),
        "shape": ("masks/shape.nii.gz", r"shape \(8, 8, 5\) but image .*images/shape.nii.gz"),
        "affine": ("masks/affine.nii.gz", r"different affines"),
        "labelmap": ("masks/labelmap.nii.gz", r"not binary.*--mask-labels"),
        "dup": ("cohort.csv", r"duplicate subject id 'dup' in rows 7, 8"),
        "agetext": ("cohort.csv", r"age 'forty' is not a number"),
        "agemissing": ("cohort.csv", r"age is missing"),
        "sexcode": ("cohort.csv", r"unknown sex code 'X'"),
        "rawct": ("images/rawct.nii.gz", r"do not look like HU.*rescale"),
        "zeros": ("images/zeros.nii.gz", r"constant"),
        "nan": ("images/nan.nii.gz", r"1 NaN"),
        "garbage": ("garbage.nii.gz", r"image unreadable"),
        "nosite": ("cohort.csv", r"site is missing"),
        "thick": ("thick.nii.gz", r"absurd voxel spacing 0.5 x 0.5 x 25 mm"),
    }
    for subject, (file_part, pattern) in expected.items():
        hits = [i for i in report.errors if i.subject == subject and file_part in i.file]
        assert any(re.search(pattern, i.message) for i in hits), (
            subject,
            [str(i) for i in report.issues],
        )
    assert not [i for i in report.issues if i.subject == "ok"]
    assert not report.ok
    with pytest.raises(CohortError, match=r"error\(s\)"):
        report.raise_if_errors()
    assert set(report.summary["subject"]) >= set(expected)


def test_mask_labels_option(cohort_dir, head_ct, cube_mask) -> None:
    labels = cube_mask()
    labels[3, 3, 2] = 2
    csv = cohort_dir([("s1", "A", 50, "M", head_ct(), labels)])
    assert not validate_cohort(load_cohort(csv)).ok
    report = validate_cohort(load_cohort(csv), mask_labels=[1, 2])
    assert report.ok
    assert report.summary["ref_ml"].iloc[0] == pytest.approx(0.01)
    only2 = validate_cohort(load_cohort(csv), mask_labels=[2])
    assert only2.summary["ref_ml"].iloc[0] == pytest.approx(0.00125)


def test_missing_columns_and_empty(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("subject,site,image\ns1,A,\n")
    report = validate_cohort(load_cohort(tmp_path / "c.csv"))
    messages = [i.message for i in report.errors]
    assert any("missing required column(s): age, sex, mask" in m for m in messages)
    assert any("no image path" in m for m in messages)
    (tmp_path / "e.csv").write_text("subject,site,age,sex,image,mask\n")
    report = validate_cohort(load_cohort(tmp_path / "e.csv"))
    assert [i.message for i in report.errors] == [
        f"the cohort manifest {tmp_path / 'e.csv'} has no rows (empty cohort)"
    ]
    with pytest.raises(CohortError, match="not found"):
        load_cohort(tmp_path / "nope.csv")


def test_table_checks_without_files(cohort_dir) -> None:
    csv = cohort_dir([("s1", "A", 200, "m", "missing.nii.gz", "")])
    report = validate_cohort(load_cohort(csv), check_files=False)
    assert [i.message for i in report.issues] == ["age 200 is outside 0..120 years"]
    assert report.summary["subject"].tolist() == ["s1"]


@pytest.mark.parametrize(
    ("code", "out"), [("M", "M"), ("f", "F"), ("MALE", "M"), (" female", "F"), ("1", None), ("", None)]
)
def test_sex_codes(code: str, out: str | None) -> None:
    assert normalise_sex(code) == out


def test_zero_spacing_is_reported(tmp_path: Path, head_ct) -> None:
    hdr = nib.Nifti1Header()
    hdr.set_sform(np.diag([0.5, 0.5, 0.0, 1.0]), code=1)  # a degenerate grid: zero slice spacing
    (tmp_path / "img").mkdir()
    nib.save(nib.Nifti1Image(head_ct(), None, hdr), str(tmp_path / "img" / "z.nii.gz"))
    (tmp_path / "c.csv").write_text("subject,site,age,sex,image,mask\nz,A,50,M,img/z.nii.gz,\n")
    report = validate_cohort(load_cohort(tmp_path / "c.csv"))
    assert len(report.errors) == 1
    issue = report.errors[0]
    assert issue.subject == "z" and issue.file.endswith("z.nii.gz")
    assert "invalid voxel grid (voxel spacing 0.5 x 0.5 x 0 mm" in issue.message
