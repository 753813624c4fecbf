"""``iphbench predict`` never writes over an input or a file it did not write, and reports implausible results.

Item 1 of issue 20: an output that is an input (the same path, a symlink, a relative or ``..`` path,
a hard link; a file inside an input DICOM series folder) is refused with exit 2 before any model is
loaded, ``--overwrite`` or not; an existing file without the stamp of ``iphbench predict`` is
refused unless ``--overwrite``; re-running into one's own outputs needs no flag. Each refusal is
checked byte for byte: the sha256 of every file under the test folder is the same afterwards.

Item 3: warnings logged while a scan is read and predicted (no bone found) and implausible
predictions (volume, share of the brain, speckle) reach ``predictions.csv`` (``warnings``) and the
console, and a clean scan's cell stays empty. docs/robustness.md lists every case.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml
from robustness_helpers import write_nifti
from typer.testing import CliRunner

from _dicom import write_dicom_series
from iphbench.cli import app

runner = CliRunner(env={"COLUMNS": "400", "NO_COLOR": "1"})
Ct = tuple[np.ndarray, np.ndarray, np.ndarray]


def predict(*args: str) -> tuple[int, str]:
    """``iphbench predict ARGS --device cpu``: exit code and output with whitespace folded."""
    result = runner.invoke(app, ["predict", *args, "--device", "cpu"])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(
            f"predict raised {result.exception!r} instead of a clear error:\n{result.output}"
        )
    assert "Traceback" not in result.output
    return result.exit_code, " ".join(result.output.split())


def digest(*folders: Path) -> dict[str, str]:
    """sha256 of every file under ``folders`` (a symlink: of what it points to)."""
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in folders
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def scans(tmp_path: Path, base_rows: pd.DataFrame) -> Path:
    """``<tmp>/scans`` holding two CT scans of the tiny cohort, p01.nii.gz and p02.nii.gz."""
    folder = tmp_path / "scans"
    folder.mkdir()
    for name, src in zip(("p01", "p02"), base_rows["image"][:2], strict=True):
        shutil.copy(src, folder / f"{name}.nii.gz")
    return folder


@pytest.fixture
def study(trained_study: Path) -> list[str]:
    """The tiny trained study (one style, 2DAxi): its nearly untrained models predict the whole brain."""
    return ["--study", str(trained_study), "--views", "2DAxi"]


@pytest.fixture
def no_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a model fails the test: a refusal must come before any work."""
    import iphbench.study.predict as scan_mod

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the models were loaded before the outputs were checked")

    monkeypatch.setattr(scan_mod.ScanPredictor, "__init__", refuse)


# --- item 1: an input is never an output ------------------------------------------------------------
@pytest.mark.parametrize(
    "how", ["same path", "symlink", "relative path", "dot-dot", "hard link", "same path with --overwrite"]
)
def test_output_that_is_the_input_is_refused(
    how: str, scans: Path, study: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_models: None
) -> None:
    scan = scans / "p01.nii.gz"
    output, extra = str(scan), []
    if how == "symlink":
        (tmp_path / "link.nii.gz").symlink_to(scan)
        output = str(tmp_path / "link.nii.gz")
    elif how == "relative path":
        monkeypatch.chdir(tmp_path)
        output = "scans/p01.nii.gz"
    elif how == "dot-dot":
        (scans / "sub").mkdir()
        output = str(scans / "sub" / ".." / "p01.nii.gz")
    elif how == "hard link":
        os.link(scan, tmp_path / "hard.nii.gz")
        output = str(tmp_path / "hard.nii.gz")
    elif how.endswith("--overwrite"):
        extra = ["--overwrite"]
    before = digest(tmp_path)
    code, text = predict(str(scan), *study, "-o", output, *extra)
    assert code == 2, text
    assert f"--output {output} is the input {scan}" in text and "Nothing was written" in text
    assert digest(tmp_path) == before


@pytest.mark.parametrize("clash", ["the input", "the mask"])
def test_probability_map_that_is_the_input_or_the_mask_is_refused(
    clash: str, scans: Path, study: list[str], tmp_path: Path, no_models: None
) -> None:
    scan, mask = scans / "p01.nii.gz", tmp_path / "out" / "m.nii.gz"
    probability = scan if clash == "the input" else mask
    before = digest(tmp_path)
    code, text = predict(str(scan), *study, "-o", str(mask), "--probability", str(probability))
    assert code == 2, text
    if clash == "the input":
        assert f"--probability {scan} is the input {scan}" in text
    else:
        assert f"--probability {mask} and --output {mask} are the same file" in text
    assert digest(tmp_path) == before and not mask.parent.exists()


@pytest.mark.parametrize("given", ["files", "folder", "relative folder"])
def test_batch_out_dir_that_holds_the_inputs_is_refused(
    given: str,
    scans: Path,
    study: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_models: None,
) -> None:
    """``--out-dir`` = the inputs' folder: ``<subject>.nii.gz`` would be the scans themselves. With a
    relative folder this wrote over them before (the output folder was not recognised as the input folder)."""
    args = [str(scans / "p01.nii.gz"), str(scans / "p02.nii.gz"), "--out-dir", str(scans)]
    if given == "folder":
        args = [str(scans), "--out-dir", str(scans)]
    elif given == "relative folder":
        monkeypatch.chdir(tmp_path)
        args = ["scans", "--out-dir", "scans"]
    before = digest(tmp_path)
    code, text = predict(*args, *study)
    assert code == 2, text
    assert "refusing to write over an input" in text and "choose another --out-dir" in text
    for name in ("p01.nii.gz", "p02.nii.gz"):
        assert f"{name} is the input" in text and f"scans/{name}" in text
    assert digest(tmp_path) == before and not (scans / "predictions.csv").exists()


def test_batch_table_that_is_the_manifest_is_refused(
    scans: Path, study: list[str], tmp_path: Path, no_models: None
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    manifest = out / "predictions.csv"  # a manifest kept where the table would be written
    pd.DataFrame({"subject": ["a"], "image": [str(scans / "p01.nii.gz")]}).to_csv(manifest, index=False)
    before = digest(tmp_path)
    code, text = predict("--manifest", str(manifest), "--out-dir", str(out), *study)
    assert code == 2 and f"table {manifest} is the input {manifest}" in text, text
    assert digest(tmp_path) == before


def test_outputs_inside_the_input_dicom_series_folder_are_refused(
    ct: Ct, study: list[str], tmp_path: Path, no_models: None
) -> None:
    """A file written into a series folder joins the series (the next reader sees a foreign file)."""
    hu, _, affine = ct
    series = write_dicom_series(tmp_path / "dicom" / "ct", hu, affine)
    before = digest(tmp_path)
    code, text = predict(str(series), *study, "-o", str(series / "iph.dcm"))
    assert code == 2, text
    assert f"--output {series / 'iph.dcm'} lies inside the input DICOM series folder {series}" in text
    code, text = predict(str(series), *study, "--out-dir", str(series), "--overwrite")
    assert code == 2 and f"lies inside the input DICOM series folder {series}" in text, text
    assert digest(tmp_path) == before


# --- item 1: a file we did not write is replaced only with --overwrite -------------------------------
@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_existing_file_not_written_by_predict_needs_overwrite(
    suffix: str, scans: Path, ct: Ct, study: list[str], tmp_path: Path
) -> None:
    """A user's own mask named like the output is refused, replaced with --overwrite; our own
    output is then replaced by a re-run without the flag (the stamp says it is ours)."""
    import SimpleITK as sitk

    from iphbench.study.outputs import written_by_predict

    _, mask, affine = ct
    mine = tmp_path / "out" / f"mask{suffix}"
    if suffix == ".nrrd":
        mine.parent.mkdir()
        sitk.WriteImage(sitk.GetImageFromArray(mask.T.copy()), str(mine))
    else:
        write_nifti(mine, mask, affine)  # the user's manual segmentation
    before = digest(tmp_path)
    code, text = predict(str(scans / "p01.nii.gz"), *study, "-o", str(mine))
    assert code == 2, text
    assert f"refusing to replace 1 existing file(s) that iphbench predict did not write: {mine}" in text
    assert "pass --overwrite to replace them, or choose another output path" in text
    assert digest(tmp_path) == before

    code, text = predict(str(scans / "p01.nii.gz"), *study, "-o", str(mine), "--overwrite")
    assert code == 0, text
    assert written_by_predict(mine) and digest(tmp_path)[str(mine)] != before[str(mine)]
    code, text = predict(str(scans / "p01.nii.gz"), *study, "-o", str(mine))
    assert code == 0, text  # our own output: replaced without --overwrite


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_output_corrected_in_a_viewer_is_no_longer_ours(
    suffix: str, scans: Path, study: list[str], tmp_path: Path
) -> None:
    """A predicted mask that the user corrected and saved under the same name (with an ITK-based
    viewer, which keeps the header and so our stamp) is theirs now: the voxels' fingerprint in the
    stamp no longer fits, and a re-run refuses to replace it."""
    import SimpleITK as sitk

    mask, prob = tmp_path / f"m{suffix}", tmp_path / "prob.nii.gz"
    args = [str(scans / "p01.nii.gz"), "-o", str(mask), "--probability", str(prob), *study]
    code, text = predict(*args)
    assert code == 0, text
    code, text = predict(*args)  # unchanged: still ours, mask and probability map
    assert code == 0, text

    image = sitk.ReadImage(str(mask))
    image.SetPixel(0, 0, 0, 1 - image.GetPixel(0, 0, 0))  # one voxel corrected
    sitk.WriteImage(image, str(mask))
    kept = sitk.ReadImage(str(mask))  # the viewer kept our stamp: only the fingerprint can tell
    kept_stamp = kept.GetMetaData("descrip" if suffix == ".nii.gz" else "iphbench")
    assert kept_stamp.startswith(("iphbench predict mask", "predict mask")), kept_stamp
    before = digest(tmp_path)
    code, text = predict(*args)
    assert code == 2, text
    assert f"did not write: {mask}. Nothing was written: pass --overwrite" in text and str(prob) not in text
    assert digest(tmp_path) == before


def test_batch_reruns_into_its_own_out_dir_but_keeps_a_users_file(
    scans: Path, ct: Ct, study: list[str], tmp_path: Path
) -> None:
    hu, _, affine = ct
    write_dicom_series(scans / "series", hu, affine)
    out = tmp_path / "out"
    args = [str(scans / "p01.nii.gz"), str(scans / "series"), "--out-dir", str(out), "--summary-png", *study]
    code, text = predict(*args)
    assert code == 0, text
    assert {p.name for p in out.iterdir()} == {
        "p01.nii.gz",
        "p01.png",
        "series.seg.dcm",
        "series.png",
        "predictions.csv",
    }
    code, text = predict(*args)  # the normal re-run / resume: every file there is ours
    assert code == 0, text
    assert "2 of 2 scan(s) predicted" in text

    (out / "p01.png").write_bytes((out / "series.png").read_bytes()[:8] + b"a user's own picture")
    before = digest(tmp_path)
    code, text = predict(*args)
    assert code == 2, text
    assert f"not write: {out / 'p01.png'}. Nothing was written: pass --overwrite" in text
    assert "choose another --out-dir" in text
    assert digest(tmp_path) == before
    code, text = predict(*args, "--overwrite")
    assert code == 0, text


def test_written_by_predict_reads_only_our_stamp(tmp_path: Path, ct: Ct, base_rows: pd.DataFrame) -> None:
    """Unstamped, truncated and foreign files (of every suffix predict writes) are never ours."""
    import SimpleITK as sitk

    from iphbench.io import read_volume
    from iphbench.study.batch import COLUMNS
    from iphbench.study.outputs import TABLE_HEADER, write_prediction_mask, written_by_predict

    assert COLUMNS[: len(TABLE_HEADER)] == TABLE_HEADER  # the table's stamp: new columns are appended

    hu, mask, affine = ct
    image = read_volume(base_rows["image"][0])
    ours = [
        write_prediction_mask(image.array > 100, image, tmp_path / f"ours{s}")
        for s in (".nii.gz", ".nrrd", ".mha")
    ]
    assert all(written_by_predict(p) for p in ours)
    foreign = [Path(write_nifti(tmp_path / "mine.nii.gz", mask, affine)), tmp_path / "mine.mha"]
    sitk.WriteImage(sitk.GetImageFromArray(mask), str(foreign[1]))
    truncated = tmp_path / "half.nii.gz"
    truncated.write_bytes(ours[0].read_bytes()[:100])
    text = tmp_path / "notes.nii"
    text.write_text("not an image\n" * 40)
    ct_slice = next((write_dicom_series(tmp_path / "ct", hu[:, :, :3], affine)).iterdir())
    table = tmp_path / "predictions.csv"
    table.write_text("subject,score\na,1\n")
    for path in [*foreign, truncated, text, ct_slice, table, base_rows["image"][0]]:
        assert not written_by_predict(Path(path)), path


def test_subjects_differing_only_in_case_get_distinct_outputs(
    tmp_path: Path, base_rows: pd.DataFrame
) -> None:
    """On a case-insensitive disk ``CT.nii.gz`` and ``ct.nii.gz`` are one file: one mask would replace the other."""
    from iphbench.study.batch import find_inputs

    for sub, name in (("a", "CT"), ("b", "ct"), ("c", "ct_2")):
        (tmp_path / sub).mkdir()
        shutil.copy(base_rows["image"][0], tmp_path / sub / f"{name}.nii.gz")
    items = find_inputs(
        [tmp_path / "a" / "CT.nii.gz", tmp_path / "b" / "ct.nii.gz", tmp_path / "c" / "ct_2.nii.gz"]
    )
    assert [i.subject for i in items] == ["CT", "ct_2", "ct_2_2"]


# --- item 3: warnings and implausible predictions reach the table and the console --------------------
@pytest.fixture
def strict_study(study_copy: Path) -> list[str]:
    """The trained study with ``eval.threshold: 0.9``: its models (probabilities 0.42-0.56) predict
    nothing, so a clean scan has nothing to flag."""
    path = study_copy / "config.yaml"
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    cfg["eval"]["threshold"] = 0.9
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return ["--study", str(study_copy), "--views", "2DAxi"]


def test_scan_warnings_reach_the_table_and_the_console(
    scans: Path, ct: Ct, strict_study: list[str], tmp_path: Path
) -> None:
    """A scan whose bone was removed (values above 300 HU set to brain): brain extraction logs "almost
    no bone" and treats it as skull-stripped. Before, that went to the log only."""
    hu, _, affine = ct
    no_bone = np.where(hu >= 300, 40.0, hu).astype(np.float32)
    write_nifti(scans / "nobone.nii.gz", no_bone, affine)
    out = tmp_path / "out"
    code, text = predict(
        str(scans / "p01.nii.gz"), str(scans / "nobone.nii.gz"), "--out-dir", str(out), *strict_study
    )
    assert code == 0, text
    table = pd.read_csv(out / "predictions.csv", keep_default_na=False).set_index("subject")
    assert list(table.columns)[-1] == "warnings"
    assert table.loc["p01", "warnings"] == ""  # a clean scan: nothing logged, nothing flagged
    assert (
        "almost no bone (>= 300 HU) found: treating the scan as already skull-stripped"
        in table.loc["nobone", "warnings"]
    )
    assert (table["status"] == "ok").all()
    assert "2 of 2 scan(s) predicted" in text and "1 with warnings (column warnings)" in text
    assert "warning nobone: almost no bone" in text and "warning p01" not in text

    code, text = predict(str(scans / "nobone.nii.gz"), "-o", str(tmp_path / "nb.nii.gz"), *strict_study)
    assert code == 0 and "warning almost no bone (>= 300 HU) found" in text, text
    code, text = predict(str(scans / "p01.nii.gz"), "-o", str(tmp_path / "p01.nii.gz"), *strict_study)
    assert code == 0 and "warning " not in text, text  # no yellow line for a clean scan


def test_implausible_prediction_is_flagged_but_written(scans: Path, study: list[str], tmp_path: Path) -> None:
    """The tiny study's nearly untrained models mark the whole brain (~1,500 mL), as in the issue (1,232 mL):
    the mask is written, status ok, exit 0, and the flags say why it cannot be right."""
    mask = tmp_path / "m.nii.gz"
    code, text = predict(str(scans / "p01.nii.gz"), "-o", str(mask), *study)
    assert code == 0, text
    assert np.asarray(nib.load(mask).dataobj).any()
    assert "warning implausible prediction:" in text and "mL of hemorrhage (above 150 mL" in text
    assert "of the brain mask" in text and "mL; above 50%)" in text
    assert text.index("mL of hemorrhage predicted in") < text.index("warning implausible")  # after the result

    out = tmp_path / "out"
    code, text = predict(str(scans / "p01.nii.gz"), "--out-dir", str(out), *study)
    assert code == 0 and "1 with warnings" in text, text
    row = pd.read_csv(out / "predictions.csv", keep_default_na=False).iloc[0]
    assert row["status"] == "ok" and row["volume_ml"] > 150 and (out / "p01.nii.gz").exists()
    flags = row["warnings"].split("; implausible")
    assert len(flags) == 2 and "above 150 mL" in flags[0] and "of the brain mask" in flags[1]


def test_plausibility_bounds() -> None:
    from iphbench.inference.scan import (
        MAX_BRAIN_FRACTION,
        MAX_PLAUSIBLE_LESIONS,
        MAX_PLAUSIBLE_ML,
        plausibility_warnings,
    )

    assert plausibility_warnings(MAX_PLAUSIBLE_ML, MAX_PLAUSIBLE_LESIONS, 1200.0) == []
    assert plausibility_warnings(0.0, 0, float("nan")) == []
    (big,) = plausibility_warnings(MAX_PLAUSIBLE_ML + 0.1, 1)
    assert "150.1 mL of hemorrhage (above 150 mL" in big
    (share,) = plausibility_warnings(60.1, 1, 120.0)  # a small brain (a child, an atrophy-free crop)
    assert share.startswith("implausible prediction: 60.1 mL is 50% of the brain mask (120.0 mL; above 50%)")
    assert plausibility_warnings(MAX_BRAIN_FRACTION * 120.0, 1, 120.0) == []
    (speckle,) = plausibility_warnings(3.0, MAX_PLAUSIBLE_LESIONS + 1, 1200.0)
    assert "51 lesions (above 50; speckle)" in speckle
    assert len(plausibility_warnings(900.0, 530, 1300.0)) == 3  # the scan: every flag


def test_collect_warnings_keeps_warnings_only_and_detaches() -> None:
    from iphbench.study.batch import collect_warnings

    logger = logging.getLogger("iphbench")
    handlers, level = list(logger.handlers), logger.level
    with collect_warnings() as caught:
        logging.getLogger("iphbench.preprocessing.brain").info("an info line")
        logging.getLogger("iphbench.io.dicom").warning("gantry tilt of %.1f degrees", 17.7)
        logging.getLogger("iphbench.io.dicom").warning("gantry tilt of %.1f degrees", 17.7)
        logging.getLogger("elsewhere").warning("not ours")
    assert caught == ["gantry tilt of 17.7 degrees"]
    assert logger.handlers == handlers and logger.level == level
