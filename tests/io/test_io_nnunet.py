"""import_nnunet: an nnU-Net v2 raw dataset folder becomes a valid cohort manifest."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from iphbench.io.cohort import load_cohort, validate_cohort
from iphbench.io.nnunet import NnunetImportError, import_nnunet


@pytest.fixture
def dataset(tmp_path: Path, head_ct, cube_mask) -> Path:
    root = tmp_path / "Dataset101_IPH"
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (root / sub).mkdir(parents=True)
    affine = np.diag([0.5, 0.5, 5.0, 1.0])
    for case in ("iph_001", "iph_002", "iph_003"):
        nib.save(nib.Nifti1Image(head_ct(), affine), str(root / "imagesTr" / f"{case}_0000.nii.gz"))
        nib.save(nib.Nifti1Image(cube_mask(), affine), str(root / "labelsTr" / f"{case}.nii.gz"))
    nib.save(nib.Nifti1Image(head_ct(), affine), str(root / "imagesTs" / "iph_900_0000.nii.gz"))
    meta = {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, "IPH": 1},
        "numTraining": 3,
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def test_import_with_covariates(dataset: Path, tmp_path: Path, caplog) -> None:
    covs = tmp_path / "covs.csv"
    covs.write_text("case_id,site,age,sex,scanner\niph_001,A,60,M,GE\niph_002,B,71,female,Siemens\n")
    out = tmp_path / "out" / "cohort.csv"
    with caplog.at_level(logging.WARNING):
        assert import_nnunet(dataset, out, covariates_csv=covs, include_test=True) == out
    assert "2 case(s) are not in" in caplog.text and "iph_003" in caplog.text
    raw = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(raw.columns[:6]) == ["subject", "site", "age", "sex", "image", "mask"]
    assert "scanner" in raw.columns and "nnunet_set" in raw.columns
    assert raw["subject"].tolist() == ["iph_001", "iph_002", "iph_003", "iph_900"]
    assert raw["site"].tolist() == ["A", "B", "unknown", "unknown"]
    assert not Path(raw["image"].iloc[0]).is_absolute()  # relative to the manifest: the folder can move
    assert raw["mask"].iloc[3] == ""  # test case: no mask
    df = load_cohort(out)
    assert Path(df["image"].iloc[0]) == (dataset / "imagesTr" / "iph_001_0000.nii.gz").resolve()
    assert Path(df["mask"].iloc[1]) == (dataset / "labelsTr" / "iph_002.nii.gz").resolve()
    report = validate_cohort(df)
    # the two cases without covariates lack age and sex: validation says so; the files are fine
    assert {i.subject for i in report.errors} == {"iph_003", "iph_900"}
    assert report.summary.set_index("subject").loc["iph_001", "ref_ml"] == pytest.approx(0.01)


def test_label_values_and_label_maps(dataset: Path, tmp_path: Path, cube_mask) -> None:
    meta = json.loads((dataset / "dataset.json").read_text())
    meta["labels"] = {"background": 0, "IPH": 1, "IVH": 2}
    (dataset / "dataset.json").write_text(json.dumps(meta))
    labels = cube_mask()
    labels[3, 3, 2] = 2
    nib.save(
        nib.Nifti1Image(labels, np.diag([0.5, 0.5, 5.0, 1.0])), str(dataset / "labelsTr" / "iph_001.nii.gz")
    )
    covs = tmp_path / "covs.csv"
    covs.write_text("subject,site,age,sex\n" + "".join(f"iph_00{i},A,50,M\n" for i in (1, 2, 3)))
    out = import_nnunet(dataset, tmp_path / "c.csv", covariates_csv=covs, label_values=[1])
    df = load_cohort(out)
    assert df["mask_labels"].tolist() == ["1", "1", "1"]
    report = validate_cohort(df)
    assert report.ok, [str(i) for i in report.issues]
    assert report.summary.set_index("subject").loc["iph_001", "ref_ml"] == pytest.approx(7 * 0.00125)
    out2 = import_nnunet(dataset, tmp_path / "c2.csv", covariates_csv=covs)  # no labels chosen
    bad = validate_cohort(load_cohort(out2))
    assert [i.subject for i in bad.errors] == ["iph_001"] and "--mask-labels" in bad.errors[0].message
    with pytest.raises(NnunetImportError, match=r"label value\(s\) \[5\] are not in"):
        import_nnunet(dataset, tmp_path / "c3.csv", label_values=[5])


def test_refusals(dataset: Path, tmp_path: Path) -> None:
    meta = json.loads((dataset / "dataset.json").read_text())
    meta["channel_names"] = {"0": "CT", "1": "CTA"}
    (dataset / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(NnunetImportError, match=r"2 input channels.*CT channel only"):
        import_nnunet(dataset, tmp_path / "c.csv")
    meta["channel_names"] = {"0": "CT"}
    (dataset / "dataset.json").write_text(json.dumps(meta))
    (dataset / "labelsTr" / "iph_002.nii.gz").unlink()
    with pytest.raises(NnunetImportError, match=r"1 training case\(s\) have no label file: .*iph_002.nii.gz"):
        import_nnunet(dataset, tmp_path / "c.csv")
    with pytest.raises(NnunetImportError, match=r"dataset\.json not found"):
        import_nnunet(tmp_path, tmp_path / "c.csv")
    (tmp_path / "nokey.csv").write_text("patient,site\n1,A\n")
    (dataset / "labelsTr" / "iph_002.nii.gz").write_bytes(b"")
    with pytest.raises(NnunetImportError, match="no case-id column"):
        import_nnunet(dataset, tmp_path / "c.csv", covariates_csv=tmp_path / "nokey.csv")
    assert not (tmp_path / "c.csv").exists()


def test_file_ending_from_dataset_json(tmp_path: Path, head_ct, cube_mask) -> None:
    import SimpleITK as sitk

    root = tmp_path / "Dataset2"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    sitk.WriteImage(sitk.GetImageFromArray(head_ct().T.copy()), str(root / "imagesTr" / "a_0000.mha"))
    sitk.WriteImage(sitk.GetImageFromArray(cube_mask().T.copy()), str(root / "labelsTr" / "a.mha"))
    (root / "dataset.json").write_text(
        json.dumps({"channel_names": {"0": "CT"}, "labels": {"background": 0, "b": 1}, "file_ending": ".mha"})
    )
    out = import_nnunet(root, tmp_path / "c.csv")
    df = load_cohort(out)
    assert df["subject"].tolist() == ["a"] and df["site"].tolist() == ["unknown"]
    assert df["image"].iloc[0].endswith("a_0000.mha")


def test_semicolon_separated_covariates_are_read(dataset: Path, tmp_path: Path) -> None:
    """A covariates table exported by a European spreadsheet (`;`), read like a cohort manifest."""
    covs = tmp_path / "covs.csv"
    covs.write_text("case_id;site;age;sex\niph_001;A;60;M\niph_002;B;71;F\niph_003;A;55;F\n")
    out = import_nnunet(dataset, tmp_path / "out" / "cohort.csv", covariates_csv=covs)
    raw = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert raw["site"].tolist() == ["A", "B", "A"] and raw["age"].tolist() == ["60", "71", "55"]
