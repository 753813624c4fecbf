"""`iphbench evaluate` and `iphbench predict` through Typer's CliRunner on the tiny trained study."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nibabel import orientations as ornt_mod
from typer.testing import CliRunner

from iphbench.cli import app
from iphbench.config import StudyConfig

runner = CliRunner()


def _text(output: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(output.split())


def _cohort(study: Path) -> tuple[Path, pd.DataFrame]:
    csv = Path(StudyConfig.load(study / "config.yaml").cohort)
    return csv, pd.read_csv(csv, dtype={"subject": str, "site": str})


@pytest.fixture(scope="module")
def scans(tiny_study: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A RAS-stored scan of the cohort, and the same voxels written in a permuted, flipped (PIL) order."""
    csv, cohort = _cohort(tiny_study)
    row = cohort[(cohort["synth_storage"] == "RAS") & (cohort["lesion_ml"] > 0)].iloc[0]
    ras = csv.parent / row["image"]
    img = nib.load(ras)
    assert "".join(nib.aff2axcodes(img.affine)) == "RAS"
    data = np.asarray(img.dataobj)
    transform = ornt_mod.ornt_transform(
        ornt_mod.axcodes2ornt(("R", "A", "S")), ornt_mod.axcodes2ornt(("P", "I", "L"))
    )
    moved = ornt_mod.apply_orientation(data, transform)
    affine = img.affine @ ornt_mod.inv_ornt_aff(transform, data.shape)
    out = tmp_path_factory.mktemp("scans") / "pil.nii.gz"
    nib.save(nib.Nifti1Image(np.ascontiguousarray(moved), affine), str(out))
    assert "".join(nib.aff2axcodes(nib.load(out).affine)) == "PIL"
    assert nib.load(out).shape != img.shape  # the axes really are permuted
    return {"ras": ras, "pil": out}


# -- evaluate ---------------------------------------------------------------------------------------
def test_evaluate_writes_metrics_and_prints_a_summary(tiny_study: Path, tmp_path: Path) -> None:
    study = tmp_path / "study"
    shutil.copytree(tiny_study, study)
    res = runner.invoke(app, ["evaluate", str(study), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    text = _text(res.output)
    assert "metrics written to" in text and "metrics.csv" in text
    # one optimisation step of width-4 models learns nothing: the summary says so, with the numbers
    assert "results are not meaningful" in text and "the models did not learn" in text
    assert "best mean Dice" in text and "eval.learning_check" in text
    m = pd.read_csv(study / "metrics.csv")
    assert len(m) > 0 and set(m["protocol"]) == {"paper", "full"}
    for word in ("paper", "full", "2.5D", "fpn", "unet", "missed"):
        assert word in text


def test_evaluate_missing_runs_and_not_a_study(tiny_study: Path, tmp_path: Path) -> None:
    study = tmp_path / "study"
    shutil.copytree(tiny_study, study)
    (study / "runs" / "unet" / "2DSag" / "fold1" / "done.json").unlink()
    res = runner.invoke(app, ["evaluate", str(study), "--device", "cpu"])
    assert res.exit_code == 1
    text = _text(res.output)
    assert "unet/2DSag/fold1" in text and "not finished" in text and "iphbench study run" in text
    assert "Traceback" not in res.output
    assert not (study / "metrics.csv").exists()

    res = runner.invoke(app, ["evaluate", str(tmp_path / "nothing"), "--device", "cpu"])
    assert res.exit_code == 1 and "not a study folder" in _text(res.output)
    assert "Traceback" not in res.output


# -- predict ----------------------------------------------------------------------------------------
def _predict(study: Path, scan: Path, out: Path, *extra: str) -> tuple[str, int]:
    res = runner.invoke(
        app, ["predict", str(scan), "--study", str(study), "-o", str(out), "--device", "cpu", *extra]
    )
    return res.output, res.exit_code


def test_predict_on_a_non_canonical_scan_writes_the_mask_in_its_grid(
    tiny_study: Path, scans: dict[str, Path], tmp_path: Path
) -> None:
    from iphbench.io import read_volume
    from iphbench.study.predict import predict_scan

    out = tmp_path / "mask.nii.gz"
    output, code = _predict(tiny_study, scans["pil"], out, "--model", "fpn")
    assert code == 0, output
    written, source = nib.load(out), nib.load(scans["pil"])
    assert written.shape == source.shape
    np.testing.assert_array_equal(written.affine, source.affine)
    mask = np.asarray(written.dataobj)
    assert mask.dtype == np.uint8

    vol = read_volume(scans["pil"])
    canonical = predict_scan(vol, tiny_study, style="fpn", orientation="2.5D", device="cpu")
    assert canonical.mask.any() and not canonical.mask.all(), "an all-or-nothing mask would make this vacuous"
    np.testing.assert_array_equal(mask, vol.to_source(canonical.mask))
    # the same voxels stored RAS give the same canonical prediction
    ras = predict_scan(read_volume(scans["ras"]), tiny_study, style="fpn", device="cpu")
    np.testing.assert_array_equal(ras.mask, canonical.mask)

    voxel_ml = float(np.prod(source.header.get_zooms()[:3])) / 1000.0
    printed = re.search(r"([0-9.]+) mL of hemorrhage predicted", _text(output))
    assert printed is not None, output
    assert float(printed.group(1)) == pytest.approx(int(mask.sum()) * voxel_ml, abs=0.006)
    assert canonical.volume_ml == pytest.approx(
        int(mask.sum()) * voxel_ml, rel=1e-6
    )  # header zooms are float32
    assert "fpn, 2.5D, 6 model(s)" in _text(output)  # 3 views x 2 folds


def test_predict_single_view_and_probability_map(
    tiny_study: Path, scans: dict[str, Path], tmp_path: Path
) -> None:
    from iphbench.io import read_volume
    from iphbench.study.predict import predict_scan

    out, prob = tmp_path / "cor.nii.gz", tmp_path / "prob.nii.gz"
    output, code = _predict(
        tiny_study, scans["pil"], out, "--model", "unet", "--views", "2DCor", "--probability", str(prob)
    )
    assert code == 0, output
    assert "unet, 2DCor, 2 model(s)" in _text(output)
    vol = read_volume(scans["pil"])
    expected = predict_scan(vol, tiny_study, style="unet", orientation="2DCor", device="cpu")
    np.testing.assert_array_equal(np.asarray(nib.load(out).dataobj), vol.to_source(expected.mask))
    p = nib.load(prob)
    assert p.shape == nib.load(scans["pil"]).shape
    np.testing.assert_allclose(np.asarray(p.dataobj), vol.to_source(expected.probability), atol=1e-6)
    assert ((np.asarray(p.dataobj) >= 0.5) == (np.asarray(nib.load(out).dataobj) == 1)).all()


def test_predict_default_style_is_best_under_full_else_fpn(
    tiny_study: Path, scans: dict[str, Path], tmp_path: Path
) -> None:
    study = tmp_path / "study"
    shutil.copytree(tiny_study, study, ignore=shutil.ignore_patterns("prep"))
    output, code = _predict(study, scans["ras"], tmp_path / "a.nii.gz", "--views", "2DAxi")
    assert code == 0, output
    assert "(fpn, 2DAxi" in _text(output)  # no metrics.csv yet
    assert "style fpn: no metrics.csv yet" in _text(output)
    rows = [
        {"subject": "s", "style": style, "orientation": "2.5D", "protocol": protocol, "dice": d}
        for style, protocol, d in (("unet", "full", 0.6), ("fpn", "full", 0.5), ("fpn", "paper", 0.9))
    ]
    pd.DataFrame(rows).to_csv(study / "metrics.csv", index=False)
    output, code = _predict(study, scans["ras"], tmp_path / "b.nii.gz", "--views", "2DAxi")
    assert code == 0, output
    assert "(unet, 2DAxi" in _text(output)  # fpn is better under paper, unet under full
    assert "style unet: best mean 2.5D Dice under the full protocol in metrics.csv (0.600)" in _text(output)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "vgg16"], "style 'vgg16' has no finished run"),
        (["--style", "transunet"], "choose --style among the trained styles: fpn, unet"),
        (["--views", "3D"], "unknown orientation '3D'"),
        (["--views", "2dcor"], "unknown orientation"),
    ],
)
def test_predict_bad_arguments_fail_clearly(
    tiny_study: Path, scans: dict[str, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "mask.nii.gz"
    output, code = _predict(tiny_study, scans["ras"], out, *args)
    assert code != 0
    assert message in _text(output)
    assert "Traceback" not in output and not out.exists()


def test_predict_not_a_study_and_unreadable_scan(
    tiny_study: Path, scans: dict[str, Path], tmp_path: Path
) -> None:
    output, code = _predict(tmp_path, scans["ras"], tmp_path / "m.nii.gz")
    assert code == 1 and "not a study folder" in _text(output) and "Traceback" not in output
    output, code = _predict(tiny_study, tmp_path / "missing.nii.gz", tmp_path / "m.nii.gz")
    assert code == 1 and "missing.nii.gz" in _text(output) and "Traceback" not in output
