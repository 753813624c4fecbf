"""`iphbench validate` through Typer's CliRunner: exit codes and the problems it lists."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from typer.testing import CliRunner

from iphbench.cli import app

AFFINE = np.diag([0.5, 0.5, 5.0, 1.0])


def _cohort(tmp_path: Path, broken: bool) -> Path:
    ct = np.full((8, 8, 6), -1000.0, np.float32)
    ct[2:6, 2:6, 1:5] = 40.0
    ct[1, 1, 1] = 1500.0
    mask = np.zeros((8, 8, 6), np.uint8)
    mask[3:5, 3:5, 2:4] = 1  # 8 voxels × 1.25 mm³ = 0.01 mL
    (tmp_path / "img").mkdir()
    lines = ["subject,site,age,sex,image,mask"]
    for i, site in enumerate(["A", "A", "B"]):
        nib.save(nib.Nifti1Image(ct, AFFINE), str(tmp_path / "img" / f"s{i}.nii.gz"))
        m = mask * (2 if broken and i == 1 else 1)
        nib.save(nib.Nifti1Image(m, AFFINE), str(tmp_path / "img" / f"s{i}_mask.nii.gz"))
        lines.append(f"s{i},{site},{50 + i},{'F' if i else 'M'},img/s{i}.nii.gz,img/s{i}_mask.nii.gz")
    if broken:
        lines.append("s0,B,abc,Q,img/missing.nii.gz,")
    (tmp_path / "cohort.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "cohort.csv"


def test_validate_ok(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", str(_cohort(tmp_path, broken=False))], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "3 subjects" in result.output
    assert "Subjects per site" in result.output
    assert "0.01" in result.output  # hemorrhage mL per subject
    assert "0.5..0.5" not in result.output and "0.5, 0.5, 5" in result.output  # spacing range collapses
    assert "ok" in result.output


def test_validate_broken_lists_every_problem(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", str(_cohort(tmp_path, broken=True))], terminal_width=200)
    assert result.exit_code == 1, result.output
    out = result.output
    assert "duplicate subject id 's0'" in out
    assert "age 'abc' is not a number" in out
    assert "unknown sex code 'Q'" in out
    assert "image file not found" in out and "missing.nii.gz" in out
    assert "[s1] mask" in out and "s1_mask.nii.gz is not binary" in out and "--mask-labels" in out
    assert "error(s)" in out


def test_validate_mask_labels_option(tmp_path: Path) -> None:
    csv = _cohort(tmp_path, broken=True)
    lines = csv.read_text().splitlines()[:-1]  # drop the broken table row, keep the label-map mask
    csv.write_text("\n".join(lines) + "\n")
    assert CliRunner().invoke(app, ["validate", str(csv)]).exit_code == 1
    result = CliRunner().invoke(app, ["validate", str(csv), "--mask-labels", "1,2"])
    assert result.exit_code == 0, result.output
    assert CliRunner().invoke(app, ["validate", str(csv), "--mask-labels", "x"]).exit_code == 2


def test_validate_missing_manifest(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "none.csv")])
    assert result.exit_code == 1
    assert "not found" in result.output
