"""`iphbench import-nnunet` through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from typer.testing import CliRunner

from iphbench.cli import app


def test_import_nnunet_cli(tmp_path: Path) -> None:
    root = tmp_path / "Dataset7_X"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    ct = np.full((6, 6, 4), -1000.0, np.float32)
    ct[1:5, 1:5, 1:3] = 40.0
    ct[0, 0, 0] = 1200.0
    for case in ("c1", "c2"):
        nib.save(nib.Nifti1Image(ct, np.eye(4)), str(root / "imagesTr" / f"{case}_0000.nii.gz"))
        nib.save(
            nib.Nifti1Image(np.zeros((6, 6, 4), np.uint8), np.eye(4)),
            str(root / "labelsTr" / f"{case}.nii.gz"),
        )
    (root / "dataset.json").write_text(
        json.dumps({"channel_names": {"0": "CT"}, "labels": {"background": 0, "iph": 1}})
    )
    (tmp_path / "covs.csv").write_text("subject,site,age,sex\nc1,A,50,M\nc2,B,60,F\n")
    out = tmp_path / "cohort.csv"
    runner = CliRunner()
    result = runner.invoke(
        app, ["import-nnunet", str(root), "--out", str(out), "--covariates", str(tmp_path / "covs.csv")]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 2 cases" in result.output
    assert pd.read_csv(out)["site"].tolist() == ["A", "B"]
    assert runner.invoke(app, ["validate", str(out)]).exit_code == 0
    bad = runner.invoke(app, ["import-nnunet", str(tmp_path), "--out", str(tmp_path / "x.csv")])
    assert bad.exit_code == 1 and "dataset.json not found" in " ".join(bad.output.split())
