"""Bad inputs at every entry point: a clear error naming the subject and the file, never a traceback.

Each case replaces the files of subject ``synth001`` of a tiny synthetic cohort (conftest.py) with a
bad file and runs ``iphbench validate`` and ``iphbench prepare`` on it; ``study run``, ``evaluate``,
``predict``, ``stats`` and ``report`` get the cases that reach them. docs/robustness.md lists every
case with its outcome.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from robustness_helpers import BAD, LESION_FREE, ONE_VOXEL, tiny_study, write_nifti
from typer.testing import CliRunner

from _dicom import write_dicom_series
from iphbench.cli import app

runner = CliRunner(env={"COLUMNS": "400", "NO_COLOR": "1"})

Ct = tuple[np.ndarray, np.ndarray, np.ndarray]
Maker = Callable[[Path, Ct, pd.DataFrame], dict[str, str]]


def flat(text: str) -> str:
    """Output with line breaks and runs of spaces folded, so wrapped messages can be searched."""
    return " ".join(text.split())


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(
            f"{args[0]} raised {result.exception!r} instead of a clear error:\n{result.output}"
        )
    return result.exit_code, flat(result.output)


# --- bad files: each returns {"image": path} and/or {"mask": path} for subject BAD -------------------------
def truncated_gz(d: Path, ct: Ct, rows: pd.DataFrame) -> dict[str, str]:
    data = Path(rows["image"][0]).read_bytes()
    (d / "truncated.nii.gz").write_bytes(data[: len(data) // 2])
    return {"image": str(d / "truncated.nii.gz")}


def corrupt_gz(d: Path, ct: Ct, rows: pd.DataFrame) -> dict[str, str]:
    data = bytearray(Path(rows["image"][0]).read_bytes())
    data[200:400] = np.random.default_rng(0).integers(0, 256, 200, dtype=np.uint8).tobytes()
    (d / "corrupt.nii.gz").write_bytes(bytes(data))
    return {"image": str(d / "corrupt.nii.gz")}


def corrupt_header(d: Path, ct: Ct, rows: pd.DataFrame) -> dict[str, str]:
    raw = bytearray(gzip.decompress(Path(rows["image"][0]).read_bytes()))
    raw[42:44] = np.int16(
        9999
    ).tobytes()  # dim[1] = 9999: the header asks for more voxels than the file holds
    (d / "badheader.nii").write_bytes(bytes(raw))
    return {"image": str(d / "badheader.nii")}


def text_as_nii(d: Path, ct: Ct, rows: pd.DataFrame) -> dict[str, str]:
    (d / "notes.nii").write_text("this is a text file, not a scan\n" * 20)
    return {"image": str(d / "notes.nii")}


def empty_file(d: Path, ct: Ct, rows: pd.DataFrame) -> dict[str, str]:
    (d / "empty.nii.gz").write_bytes(b"")
    return {"image": str(d / "empty.nii.gz")}


def missing_file(d: Path, ct: Ct, rows: pd.DataFrame) -> dict[str, str]:
    return {"image": str(d / "nowhere.nii.gz")}


def unsupported_suffix(d: Path, ct: Ct, rows: pd.DataFrame) -> dict[str, str]:
    (d / "scan.png").write_bytes(b"\x89PNG\r\n")
    return {"image": str(d / "scan.png")}


DICOM_AFFINE = np.diag([3.44, 3.44, 5.0, 1.0])  # axial series, 3.44 mm pixels, 5 mm slices


def dicom_two_series(d: Path, ct: Ct, rows: pd.DataFrame) -> dict[str, str]:
    folder = d / "dicom"
    write_dicom_series(folder, ct[0], DICOM_AFFINE)
    write_dicom_series(folder, ct[0], DICOM_AFFINE)  # a second series (new UIDs) in the same folder
    return {"image": str(folder)}


def dicom_missing_slice(d: Path, ct: Ct, rows: pd.DataFrame) -> dict[str, str]:
    return {"image": str(write_dicom_series(d / "dicom", ct[0], DICOM_AFFINE, skip=(7,)))}


def image_2d(d: Path, ct: Ct, rows: pd.DataFrame) -> dict[str, str]:
    return {"image": write_nifti(d / "slice2d.nii.gz", ct[0][:, :, 10], ct[2])}


def image_4d(d: Path, ct: Ct, rows: pd.DataFrame) -> dict[str, str]:
    return {"image": write_nifti(d / "series4d.nii.gz", np.stack([ct[0], ct[0]], -1), ct[2])}


def nan_voxels(d: Path, ct: Ct, rows: pd.DataFrame) -> dict[str, str]:
    arr = ct[0].copy()
    arr[10, 10, 10] = np.nan
    return {"image": write_nifti(d / "nan.nii.gz", arr, ct[2])}


def inf_voxels(d: Path, ct: Ct, rows: pd.DataFrame) -> dict[str, str]:
    arr = ct[0].copy()
    arr[10, 10, 10] = -np.inf
    return {"image": write_nifti(d / "inf.nii.gz", arr, ct[2])}


def mask_labels(d: Path, ct: Ct, rows: pd.DataFrame) -> dict[str, str]:
    m = ct[1].copy()
    m[m > 0] = 2
    m[0, 0, 0] = 1
    return {"mask": write_nifti(d / "labels.nii.gz", m, ct[2])}


def mask_probabilities(d: Path, ct: Ct, rows: pd.DataFrame) -> dict[str, str]:
    return {"mask": write_nifti(d / "prob.nii.gz", ct[1].astype(np.float32) * 0.7, ct[2])}


def mask_other_shape(d: Path, ct: Ct, rows: pd.DataFrame) -> dict[str, str]:
    return {"mask": write_nifti(d / "cropped_mask.nii.gz", ct[1][:-2], ct[2])}


def mask_other_affine(d: Path, ct: Ct, rows: pd.DataFrame) -> dict[str, str]:
    shifted = ct[2].copy()
    shifted[0, 3] += 5.0
    return {"mask": write_nifti(d / "shifted_mask.nii.gz", ct[1], shifted)}


def _scaled(ct: Ct, factor: float) -> np.ndarray:
    aff = ct[2].copy()
    aff[:3, :3] *= factor
    return aff


def spacing_huge(d: Path, ct: Ct, rows: pd.DataFrame) -> dict[str, str]:
    return {
        "image": write_nifti(d / "huge_voxels.nii.gz", ct[0], _scaled(ct, 100.0)),
        "mask": write_nifti(d / "huge_mask.nii.gz", ct[1], _scaled(ct, 100.0)),
    }


def spacing_tiny(d: Path, ct: Ct, rows: pd.DataFrame) -> dict[str, str]:
    return {
        "image": write_nifti(d / "tiny_voxels.nii.gz", ct[0], _scaled(ct, 1e-4)),
        "mask": write_nifti(d / "tiny_mask.nii.gz", ct[1], _scaled(ct, 1e-4)),
    }


def _no_orientation(path: Path, array: np.ndarray) -> str:
    img = nib.Nifti1Image(array, None)
    img.header.set_qform(None, code=0)
    img.header.set_sform(None, code=0)
    img.header["pixdim"][1:4] = [3.44, 3.44, 0.0]
    nib.save(img, str(path))
    return str(path)


def spacing_zero(d: Path, ct: Ct, rows: pd.DataFrame) -> dict[str, str]:
    return {
        "image": _no_orientation(d / "zero_voxels.nii", ct[0]),
        "mask": _no_orientation(d / "zero_mask.nii", ct[1]),
    }


def missing_intercept(d: Path, ct: Ct, rows: pd.DataFrame) -> dict[str, str]:
    """Stored values without the rescale intercept: unsigned, air at 0, brain near 1,060.

    The densest bone is kept below 3000 (1,776 HU), as in many real heads, so the older
    "min >= 0 and max > 3000" rule alone does not catch it (it was only a warning).
    """
    raw = np.clip(np.rint(ct[0] + 1024.0), 0, 2800).astype(np.uint16)
    assert raw.max() < 3000
    return {"image": write_nifti(d / "no_intercept.nii.gz", raw, ct[2])}


BAD_FILES: dict[str, tuple[Maker, str]] = {  # case: (maker, a fragment the message must hold)
    "truncated .nii.gz": (truncated_gz, "truncated.nii.gz"),
    "corrupt .nii.gz": (corrupt_gz, "corrupt.nii.gz"),
    "corrupt NIfTI header": (corrupt_header, "badheader.nii"),
    "text file named .nii": (text_as_nii, "notes.nii"),
    "empty file": (empty_file, "empty.nii.gz"),
    "missing file": (missing_file, "nowhere.nii.gz"),
    "unsupported suffix": (unsupported_suffix, "scan.png"),
    "DICOM folder, two series": (dicom_two_series, "holds 2 series"),
    "DICOM folder, missing slice": (dicom_missing_slice, "missing"),
    "2D image": (image_2d, "slice2d.nii.gz"),
    "4D image": (image_4d, "series4d.nii.gz"),
    "NaN voxel": (nan_voxels, "NaN"),
    "infinite voxel": (inf_voxels, "infinite"),
    "mask labels 0/1/2": (mask_labels, "labels.nii.gz"),
    "probability mask": (mask_probabilities, "prob.nii.gz"),
    "mask on another shape": (mask_other_shape, "cropped_mask.nii.gz"),
    "mask on another affine": (mask_other_affine, "shifted_mask.nii.gz"),
    "spacing 344 mm": (spacing_huge, "huge_voxels.nii.gz"),
    "spacing 0.0003 mm": (spacing_tiny, "tiny_voxels.nii.gz"),
    "spacing 0 (no orientation)": (spacing_zero, "zero_voxels.nii"),
    "missing rescale intercept": (missing_intercept, "no_intercept.nii.gz"),
}


@pytest.fixture
def bad_cohort(
    request: pytest.FixtureRequest, tmp_path: Path, ct: Ct, base_rows: pd.DataFrame, make_cohort
) -> tuple[Path, str]:
    maker, fragment = BAD_FILES[request.param]
    files = maker(tmp_path, ct, base_rows)
    return make_cohort(**files), fragment


@pytest.mark.parametrize("bad_cohort", list(BAD_FILES), indirect=True)
def test_validate_names_subject_and_file(bad_cohort: tuple[Path, str]) -> None:
    csv, fragment = bad_cohort
    code, out = invoke("validate", str(csv))
    assert code == 1
    assert f"error: [{BAD}]" in out
    assert fragment in out
    blamed = set(re.findall(r"error: \[(\w+)\]", out))
    assert blamed == {BAD}  # the five good subjects are not blamed


@pytest.mark.parametrize("bad_cohort", list(BAD_FILES), indirect=True)
def test_prepare_fails_that_subject_only(bad_cohort: tuple[Path, str], tmp_path: Path) -> None:
    csv, fragment = bad_cohort
    store = tmp_path / "prep"
    code, out = invoke("prepare", str(csv), "--out", str(store), "--workers", "1", "--no-progress")
    assert code == 1
    assert f"failed {BAD}:" in out and fragment in out
    assert "5 prepared" in out and "1 failed" in out
    assert not (store / "subjects" / BAD / "done").exists()  # never taken as prepared


@pytest.mark.parametrize(
    "bad_cohort", ["NaN voxel", "mask on another grid" if False else "mask labels 0/1/2"], indirect=True
)
def test_study_run_refuses_a_cohort_with_an_unprepared_subject(
    bad_cohort: tuple[Path, str], tmp_path: Path
) -> None:
    """Before: the subject was dropped and the study trained on the rest (a silently smaller study)."""
    csv, fragment = bad_cohort
    code, out = invoke("study", "run", str(tiny_study(tmp_path, csv)), "--no-progress")
    assert code == 1
    assert "could not be prepared" in out and BAD in out and fragment in out
    assert not (tmp_path / "study" / "runs").exists()


@pytest.mark.parametrize(
    "bad_cohort",
    [
        "spacing 344 mm",
        "truncated .nii.gz",
        "DICOM folder, two series",
        "4D image",
        "NaN voxel",
        "missing rescale intercept",
    ],
    indirect=True,
)
def test_predict_refuses_bad_scans(bad_cohort: tuple[Path, str], trained_study: Path, tmp_path: Path) -> None:
    csv, fragment = bad_cohort
    scan = pd.read_csv(csv).set_index("subject").loc[BAD, "image"]
    out_mask = str(tmp_path / "m.nii.gz")
    # 2DAxi: the only view the study trained, so a failure is about the scan, not the models
    code, out = invoke("predict", scan, "--study", str(trained_study), "-o", out_mask, "--views", "2DAxi")
    assert code == 1 and fragment in out and "no finished" not in out, out
    assert not (tmp_path / "m.nii.gz").exists()


def test_missing_intercept_is_named_with_its_cause_by_all_three_verbs(
    tmp_path: Path, ct: Ct, base_rows: pd.DataFrame, make_cohort, trained_study: Path
) -> None:
    """The missing-intercept scan is an error naming subject, file and likely cause in validate,
    prepare and predict; before, validate gave only a warning and prepare/predict ran on it."""
    csv = make_cohort(**missing_intercept(tmp_path, ct, base_rows))
    cause = "rescale intercept (about -1024) was probably not applied"
    code, out = invoke("validate", str(csv))
    assert code == 1 and f"error: [{BAD}] intensities do not look like HU" in out and cause in out
    assert "no_intercept.nii.gz" in out
    code, out = invoke(
        "prepare", str(csv), "--out", str(tmp_path / "prep"), "--workers", "1", "--no-progress"
    )
    assert code == 1 and f"failed {BAD}:" in out and "no_intercept.nii.gz" in out and cause in out
    scan = str(tmp_path / "no_intercept.nii.gz")
    out_mask = tmp_path / "m.nii.gz"
    args = ["--study", str(trained_study), "-o", str(out_mask), "--views", "2DAxi", "--device", "cpu"]
    code, out = invoke("predict", scan, *args)
    assert code == 1 and "no_intercept.nii.gz" in out and cause in out and not out_mask.exists()


def test_skull_stripped_scan_is_a_warning_not_an_error(
    tmp_path: Path, ct: Ct, base_rows: pd.DataFrame, make_cohort
) -> None:
    """No air but brain-range values (an already skull-stripped scan, background 0): usable, warned."""
    stripped = ct[0].copy()
    stripped[(stripped < -100) | (stripped > 100)] = 0.0  # air and bone removed
    csv = make_cohort(image=write_nifti(tmp_path / "stripped.nii.gz", stripped, ct[2]))
    code, out = invoke("validate", str(csv))
    assert code == 0, out
    assert f"warning: [{BAD}] no voxel below" in out and "already skull-stripped" in out
    code, out = invoke(
        "prepare", str(csv), "--out", str(tmp_path / "prep"), "--workers", "1", "--no-progress"
    )
    assert code == 0 and "6 prepared" in out, out


# --- cohort-level cases -----------------------------------------------------------------------------
def test_empty_cohort(tmp_path: Path, base_rows: pd.DataFrame, make_cohort) -> None:
    csv = make_cohort(rows=base_rows.iloc[:0])
    for args in (
        ["validate", str(csv)],
        ["prepare", str(csv), "--out", str(tmp_path / "p"), "--no-progress"],
    ):
        code, out = invoke(*args)
        assert code == 1 and "no rows" in out and "cohort.csv" in out, out
    code, out = invoke("study", "run", str(tiny_study(tmp_path, csv)), "--no-progress")
    assert code == 1 and "no rows" in out


def test_header_only_and_garbage_manifests(tmp_path: Path) -> None:
    (tmp_path / "blank.csv").write_text("")
    (tmp_path / "binary.csv").write_bytes(bytes(range(256)) * 4)
    for name in ("blank.csv", "binary.csv"):
        for args in (
            ["validate", str(tmp_path / name)],
            ["prepare", str(tmp_path / name), "--out", str(tmp_path / "p")],
        ):
            code, out = invoke(*args)
            assert code == 1 and name in out, out


def test_one_site_kfold_works_and_loso_is_refused(
    tmp_path: Path, base_rows: pd.DataFrame, make_cohort
) -> None:
    csv = make_cohort(rows=base_rows.assign(site="onlysite"))
    code, out = invoke("validate", str(csv))
    assert code == 0
    code, out = invoke(
        "study", "run", str(tiny_study(tmp_path, csv, folds={"scheme": "loso"})), "--no-progress"
    )
    assert code == 1 and "two sites" in out and "onlysite" in out


def test_lesion_free_and_one_voxel_subjects_train_and_evaluate(odd_cohort: Path, trained_study: Path) -> None:
    """A hemorrhage-free subject (no lesion patch) and a one-voxel lesion go through the whole pipeline.

    Before: a lesion-free subject could be drawn as a fold's only validation subject and its run
    failed with "hold no 'lesion' patches"; validation subjects are now drawn among subjects with a lesion.
    """
    code, out = invoke("validate", str(odd_cohort))
    assert code == 0, out
    folds = pd.read_csv(trained_study / "folds.csv")
    assert LESION_FREE not in set(folds.loc[folds["role"] == "val", "subject"])
    metrics = pd.read_csv(trained_study / "metrics.csv")
    assert set(metrics["subject"]) == {f"synth00{i}" for i in range(1, 7)}
    free = metrics[metrics["subject"] == LESION_FREE]
    assert set(free["protocol"]) == {"full"}  # no lesion patch: not part of the paper protocol (documented)
    assert (free["ref_ml"] == 0).all()
    tiny = metrics[metrics["subject"] == ONE_VOXEL]
    assert set(tiny["protocol"]) == {"paper", "full"}
    mask = pd.read_csv(odd_cohort).set_index("subject").loc[ONE_VOXEL, "mask"]
    voxel_ml = float(np.prod(nib.load(odd_cohort.parent / mask).header.get_zooms())) / 1000
    assert np.allclose(tiny["ref_ml"], voxel_ml)


@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")  # CJK site names: boxes in figures
def test_non_ascii_and_space_paths_work(odd_cohort: Path, trained_study: Path) -> None:
    """Cohort, scans, study folder and outputs under paths with spaces and non-ASCII letters work."""
    assert " " in str(trained_study) and "ü" in str(trained_study)
    assert set(pd.read_csv(trained_study / "metrics.csv")["site"]) == {"Hôpital A", "病院 B"}
    scan = odd_cohort.parent / pd.read_csv(odd_cohort)["image"][0]
    out_mask = odd_cohort.parent / "saída ü" / "máscara 1.nii.gz"
    args = ["--study", str(trained_study), "-o", str(out_mask), "--model", "unet", "--views", "2DAxi"]
    code, out = invoke("predict", str(scan), *args, "--device", "cpu")
    assert code == 0, out
    assert nib.load(out_mask).shape == nib.load(scan).shape
    code, out = invoke(
        "report",
        str(trained_study),
        "--no-pdf",
        "--orientation",
        "2DAxi",
        "-o",
        str(trained_study.parent / "relatório ü.html"),
    )
    assert code == 0, out
    assert (trained_study.parent / "relatório ü.html").stat().st_size > 10_000


# --- study-folder cases: evaluate, predict, stats, report ---------------------------------------------
def test_evaluate_bad_study_folders(tmp_path: Path, study_copy: Path) -> None:
    code, out = invoke("evaluate", str(tmp_path / "nothing"))
    assert code == 1 and "not a study folder" in out
    (study_copy / "folds.csv").unlink()
    code, out = invoke("evaluate", str(study_copy), "--device", "cpu")
    assert code == 1 and "folds.csv" in out


def test_evaluate_refuses_unfinished_runs(study_copy: Path) -> None:
    (study_copy / "runs" / "unet" / "2DAxi" / "fold1" / "done.json").unlink()
    code, out = invoke("evaluate", str(study_copy), "--device", "cpu")
    assert code == 1 and "unet/2DAxi/fold1" in out and "not finished" in out


def test_predict_bad_arguments(trained_study: Path, base_rows: pd.DataFrame, tmp_path: Path) -> None:
    scan = base_rows["image"][0]
    cases = {
        "not a study folder": ["--study", str(tmp_path)],
        "fpn": ["--study", str(trained_study), "--model", "fpn"],  # style not trained in this study
        "unknown orientation": ["--study", str(trained_study), "--views", "3D"],
        "unsupported suffix": ["--study", str(trained_study), "-o", str(tmp_path / "mask.png")],
    }
    for fragment, extra in cases.items():
        args = ["predict", scan, "-o", str(tmp_path / "m.nii.gz"), "--device", "cpu", *extra]
        code, out = invoke(*args)
        assert code in (1, 2) and fragment in out, (fragment, out)
    assert not list(tmp_path.glob("*.nii.gz")) and not (tmp_path / "mask.png").exists()


@pytest.mark.parametrize(
    "content, fragment",
    [(None, "does not exist"), ("", "not a readable metrics table"), ("a,b\n1,2\n", "lacks column")],
    ids=["missing", "empty file", "wrong columns"],
)
@pytest.mark.parametrize("verb", ["stats", "report"])
def test_stats_and_report_bad_metrics(tmp_path: Path, content: str | None, fragment: str, verb: str) -> None:
    if content is not None:
        (tmp_path / "metrics.csv").write_text(content)
    code, out = invoke(verb, str(tmp_path))
    assert code == 1 and fragment in out and "metrics.csv" in out
