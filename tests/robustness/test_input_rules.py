"""The rules that decide whether a scan or a manifest can be used (issue 20, items 2, 7, 8, 9, 10).

Each rule is one function that ``validate``, ``prepare`` and ``predict`` share; every case here
runs the CLI on a realistic input and checks the exit code, that the message names the file,
folder, row or key, and that no traceback reaches the user. docs/robustness.md lists the cases.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from robustness_helpers import BAD, write_nifti
from scipy import ndimage
from typer.testing import CliRunner

from _dicom import write_dicom_series
from iphbench.cli import app
from iphbench.io._checks import intensity_problem
from iphbench.synth import plan_cohort, synthesize_subject
from iphbench.synth.phantom import INTRACRANIAL, Tissue

runner = CliRunner(env={"COLUMNS": "400", "NO_COLOR": "1"})
Ct = tuple[np.ndarray, np.ndarray, np.ndarray]
DICOM_AFFINE = np.diag([3.44, 3.44, 5.0, 1.0])  # axial series, 3.44 mm pixels, 5 mm slices


def invoke(*args: str) -> tuple[int, str]:
    """Exit code and output (line breaks folded) of ``iphbench ARGS``; an escaped exception fails."""
    result = runner.invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(
            f"{args[0]} raised {result.exception!r} instead of a clear error:\n{result.output}"
        )
    out = " ".join(result.output.split())
    assert "Traceback" not in out, out
    return result.exit_code, out


def prepare(csv: Path, store: Path) -> tuple[int, str]:
    return invoke("prepare", str(csv), "--out", str(store), "--workers", "1", "--no-progress")


def predict(scan: str | Path, study: Path, out_mask: Path) -> tuple[int, str]:
    args = ["--study", str(study), "-o", str(out_mask), "--views", "2DAxi", "--device", "cpu"]
    return invoke("predict", str(scan), *args)


def assert_refused_by_validate_and_prepare(csv: Path, store: Path, *fragments: str) -> str:
    """``validate`` blames only subject BAD and ``prepare`` fails it alone; returns validate's output."""
    code, out = invoke("validate", str(csv))
    assert code == 1, out
    assert f"error: [{BAD}]" in out and all(f in out for f in fragments), out
    assert set(re.findall(r"error: \[(\w+)\]", out)) == {BAD}
    code, prep = prepare(csv, store)
    assert code == 1 and f"failed {BAD}:" in prep and all(f in prep for f in fragments), prep
    assert "5 prepared" in prep and not (store / "subjects" / BAD / "done").exists()
    return out


# --- item 2: a scan that is not CT ------------------------------------------------------------------
T1_LIKE: dict[Tissue, float] = {  # T1-weighted intensities (arbitrary units) per phantom tissue
    Tissue.AIR: 0.0,
    Tissue.SOFT: 350.0,
    Tissue.FAT: 900.0,  # fat is bright on T1
    Tissue.BONE: 30.0,  # cortical bone gives no signal
    Tissue.DIPLOE: 600.0,  # marrow fat
    Tissue.CSF: 150.0,
    Tissue.VENTRICLE: 150.0,
    Tissue.GREY: 450.0,
    Tissue.WHITE: 700.0,
    Tissue.DEEP_GREY: 550.0,
    Tissue.EDEMA: 350.0,
    Tissue.HEMORRHAGE: 500.0,
}


@pytest.fixture(scope="module")
def labels(ct: Ct) -> np.ndarray:
    """The tissue label map of subject BAD (the generator's first subject), on its file's grid."""
    scan = synthesize_subject(plan_cohort(6, 2, seed=0, size="tiny")[0])
    assert np.array_equal(scan.image.astype(np.float32), ct[0])  # same subject, same voxel order
    return scan.labels


def mr_like(labels: np.ndarray, top: float | None, zero_background: bool = False) -> np.ndarray:
    """A T1-like MR volume of the same head: smooth tissue contrast, a bias field, Rician noise.

    ``top`` rescales it so that its 99.5th percentile is ``top`` (e.g. 255 for an 8-bit export),
    ``None`` keeps the raw units (0..~800); with ``zero_background`` the scanner masked the air to 0.
    """
    rng = np.random.default_rng(0)
    lut = np.zeros(256, np.float32)
    for tissue, value in T1_LIKE.items():
        lut[int(tissue)] = value
    image = ndimage.gaussian_filter(lut[labels], 1.0)
    bias = ndimage.zoom(rng.uniform(0.85, 1.15, (3, 3, 3)), np.array(labels.shape) / 3, order=1)
    image = image * bias[: labels.shape[0], : labels.shape[1], : labels.shape[2]]
    noise = rng.normal(0, 12.0, (2, *image.shape))
    image = np.sqrt((image + noise[0]) ** 2 + noise[1] ** 2)
    if zero_background:
        image[~ndimage.binary_dilation(labels > 0, iterations=2)] = 0.0
    if top is not None:
        image = np.clip(image / np.percentile(image, 99.5) * top, 0, top).round()
    return image.astype(np.float32)


MR_VOLUMES: dict[str, tuple[float | None, bool]] = {  # name: (top, zero_background)
    "mr_t1_raw": (None, False),
    "mr_t1_0-1500": (1500.0, True),
    "mr_t1_0-4095": (4095.0, False),
    "mr_t1_0-255": (255.0, False),
}


@pytest.mark.parametrize("name", list(MR_VOLUMES))
def test_mr_volume_is_refused_by_validate_and_prepare(
    name: str, labels: np.ndarray, ct: Ct, make_cohort, tmp_path: Path
) -> None:
    """Before: an MR NIfTI passed validate with the skull-stripped warning and was prepared."""
    top, zero = MR_VOLUMES[name]
    csv = make_cohort(image=write_nifti(tmp_path / f"{name}.nii.gz", mr_like(labels, top, zero), ct[2]))
    out = assert_refused_by_validate_and_prepare(
        csv, tmp_path / "prep", f"{name}.nii.gz", "do not look like HU of a head CT", "Is it an MR"
    )
    assert "non-contrast head CT in HU" in out


def test_mr_volume_is_refused_by_predict(
    labels: np.ndarray, ct: Ct, trained_study: Path, tmp_path: Path
) -> None:
    scan = write_nifti(tmp_path / "t1_8bit.nii.gz", mr_like(labels, 255.0), ct[2])
    code, out = predict(scan, trained_study, tmp_path / "m.nii.gz")
    assert code == 1 and "t1_8bit.nii.gz" in out and "Is it an MR" in out, out
    assert not (tmp_path / "m.nii.gz").exists()


def test_hu_rule_keeps_ct_and_skull_stripped_ct(labels: np.ndarray, ct: Ct) -> None:
    """The stronger rule never refuses a CT in HU, nor a skull-stripped CT (a warning, as before)."""
    assert intensity_problem(ct[0]) is None
    inside = np.isin(labels, [int(t) for t in INTRACRANIAL])
    stripped = {
        "brain only, background 0": np.where(inside, ct[0], 0.0),
        "air set to 0, skull kept": np.where(labels == int(Tissue.AIR), 0.0, ct[0]),
        "brain window, rest 0": np.where((ct[0] < -100) | (ct[0] > 100), 0.0, ct[0]),
    }
    for what, image in stripped.items():
        problem = intensity_problem(image.astype(np.float32))
        assert problem is not None and problem[1] == "warning", (what, problem)
    z = np.where(inside, (ct[0] - 30.0) / 10.0, 0.0).astype(np.float32)  # z-scored brain
    assert "standardised" in intensity_problem(z)[0]  # type: ignore[index]


def _mr_dicom(
    folder: Path, labels: np.ndarray, affine: np.ndarray, modality: str | None, sop: str | None
) -> Path:
    """An MR-valued series written as DICOM, its Modality and SOP class set (``None``: tag removed)."""
    import pydicom

    write_dicom_series(folder, mr_like(labels, 4095.0), affine, intercept=0.0)
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        for keyword, value in (("Modality", modality), ("SOPClassUID", sop)):
            if value is None:
                delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
        if sop is not None:
            ds.file_meta.MediaStorageSOPClassUID = sop
        ds.save_as(path, enforce_file_format=True)
    return folder


MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def test_mr_dicom_series_is_refused_by_validate_prepare_and_predict(
    labels: np.ndarray, ct: Ct, make_cohort, trained_study: Path, tmp_path: Path
) -> None:
    """Before: an MR series (Modality MR, MR Image Storage) was predicted and given a hemorrhage mask."""
    folder = _mr_dicom(tmp_path / "mr series", labels, ct[2], "MR", MR_IMAGE_STORAGE)
    csv = make_cohort(image=str(folder))
    fragments = (str(folder), "is not a CT series", "Modality MR", f"{MR_IMAGE_STORAGE} (MR Image Storage)")
    out = assert_refused_by_validate_and_prepare(csv, tmp_path / "prep", *fragments)
    assert "needs a non-contrast head CT" in out
    code, out = predict(folder, trained_study, tmp_path / "m.nii.gz")
    assert code == 1 and all(f in out for f in fragments), out
    assert not (tmp_path / "m.nii.gz").exists()


@pytest.mark.parametrize(
    "modality, sop, fragment",
    [
        ("PT", "1.2.840.10008.5.1.4.1.1.128", "Modality PT, SOP class 1.2.840.10008.5.1.4.1.1.128 (Positron"),
        ("CT", "1.2.840.10008.5.1.4.1.1.7", "(Secondary Capture Image Storage)"),
        ("MR", None, "Modality MR, SOP class (absent)"),
        (None, None, "do not look like HU of a head CT"),  # no tags: the HU rule decides
    ],
    ids=["PET", "CT secondary capture", "MR without SOP class", "no tags"],
)
def test_dicom_modality_and_sop_class(
    modality: str | None, sop: str | None, fragment: str, labels: np.ndarray, make_cohort, tmp_path: Path
) -> None:
    folder = _mr_dicom(tmp_path / "series", labels, DICOM_AFFINE, modality, sop)
    code, out = invoke("validate", str(make_cohort(image=str(folder), mask="")))
    assert code == 1 and f"error: [{BAD}]" in out and fragment in out and str(folder) in out, out


def test_dicom_ct_without_tags_is_read(ct: Ct, make_cohort, tmp_path: Path) -> None:
    """A CT series whose Modality and SOP class were stripped (some anonymisers) is judged by its HU."""
    import pydicom

    folder = write_dicom_series(tmp_path / "anonymised", ct[0], ct[2])
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        del ds.Modality, ds.SOPClassUID
        ds.save_as(path)
    code, out = invoke("validate", str(make_cohort(image=str(folder), mask="")))
    assert code == 0, out


# --- item 7: one subject-id rule ---------------------------------------------------------------------
def test_unsafe_subject_ids_are_refused_by_validate_and_prepare(
    base_rows: pd.DataFrame, make_cohort, tmp_path: Path
) -> None:
    """Before: validate said ok for ids that prepare then refused."""
    rows = base_rows.copy()
    rows.loc[1, "subject"] = "../../escaped"
    rows.loc[2, "subject"] = "site A/p 002"
    csv = make_cohort(rows=rows)
    code, out = invoke("validate", str(csv))
    assert code == 1, out
    rule = "cannot name a folder: use letters, digits, '.', '_' and '-' only"
    assert f"error: [../../escaped] row 3: subject id '../../escaped' {rule}" in out
    assert f"error: [site A/p 002] row 4: subject id 'site A/p 002' {rule}" in out
    assert "cohort.csv" in out
    code, out = prepare(csv, tmp_path / "deep" / "prep")
    assert code == 1 and "4 prepared" in out, out
    assert f"failed ../../escaped: subject id '../../escaped' {rule}" in out
    assert f"failed site A/p 002: subject id 'site A/p 002' {rule}" in out
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "deep" / "escaped").exists()


# --- item 8: one minimum slice count -----------------------------------------------------------------
def _one_slice(kind: str, ct: Ct, d: Path) -> tuple[str, str]:
    """Subject BAD's scan cut to slice 15, as ``kind``; returns (image path, mask path)."""
    import SimpleITK as sitk

    from iphbench.io._sitk import to_itk

    image, mask = ct[0][:, :, 15:16], ct[1][:, :, 15:16]
    if kind == "dicom":
        return str(write_dicom_series(d / "one slice", image, ct[2])), ""
    if kind == "nifti":
        return write_nifti(d / "scan.nii.gz", image, ct[2]), write_nifti(d / "mask.nii.gz", mask, ct[2])
    path = d / f"scan.{kind}"
    sitk.WriteImage(to_itk(image, ct[2]), str(path))
    return str(path), ""


@pytest.mark.parametrize("kind", ["nifti", "nrrd", "mha", "dicom"])
def test_one_slice_scan_is_refused_everywhere(kind: str, ct: Ct, make_cohort, tmp_path: Path) -> None:
    """Before: a one-slice NIfTI (60, 60, 1) was predicted; DICOM alone refused < 2 slices."""
    image, mask = _one_slice(kind, ct, tmp_path)
    csv = make_cohort(image=image, mask=mask)
    fragment = f"{image} holds 1 slice along axis 2 (shape (60, 60, 1)); iphbench needs a 3D CT volume"
    if kind == "nifti":
        assert_refused_by_validate_and_prepare(csv, tmp_path / "prep", fragment, "at least 3 slices")
    else:
        code, out = invoke("validate", str(csv))
        assert code == 1 and f"error: [{BAD}]" in out and fragment in out, out


def test_one_slice_scan_is_refused_by_predict(ct: Ct, trained_study: Path, tmp_path: Path) -> None:
    for kind in ("nifti", "dicom"):
        image, _ = _one_slice(kind, ct, tmp_path / kind)
        code, out = predict(image, trained_study, tmp_path / "m.nii.gz")
        assert code == 1 and f"{image} holds 1 slice along axis 2" in out, out
        assert not (tmp_path / "m.nii.gz").exists()


def test_slice_minimum_boundary(ct: Ct, make_cohort, tmp_path: Path) -> None:
    """2 slices are refused (any axis: here a sagittal slab), 3 are read."""
    two = write_nifti(tmp_path / "two.nii.gz", ct[0][20:22], ct[2])
    code, out = invoke("validate", str(make_cohort(image=two, mask="")))
    assert code == 1 and "two.nii.gz holds 2 slices along axis 0 (shape (2, 60, 32))" in out, out
    three = write_nifti(tmp_path / "three.nii.gz", ct[0][:, :, 14:17], ct[2])
    code, out = invoke("validate", str(make_cohort(image=three, mask="")))
    assert code == 0, out


# --- item 9: slices that disagree on their grid ------------------------------------------------------
def _edit_slices(folder: Path, count: int, **tags: object) -> None:
    """Set ``tags`` on the last ``count`` slices of a series (files sorted by name = slice order)."""
    import pydicom

    for path in sorted(folder.iterdir())[-count:]:
        ds = pydicom.dcmread(path)
        for keyword, value in tags.items():
            setattr(ds, keyword, value)
        if "Rows" in tags:  # a smaller slice: its pixels shrink with it
            ds.PixelData = np.zeros((int(ds.Rows), int(ds.Columns)), np.int16).tobytes()
        ds.save_as(path)


@pytest.mark.parametrize(
    "tags, fragment",
    [
        (
            {"PixelSpacing": ["0.7", "0.7"]},
            "PixelSpacing (mm): 3.44 x 3.44 (29 slices), 0.7 x 0.7 (3 slices)",
        ),
        ({"Rows": 30}, "Rows x Columns: 60 x 60 (29 slices), 30 x 60 (3 slices)"),
        (
            {"ImageOrientationPatient": ["-1", "0", "0", "0", "-0.9848", "-0.1736"]},
            "ImageOrientationPatient: [-1, 0, 0, 0, -1, 0] (29 slices), [-1, 0, 0, 0, -0.9848, -0.1736] (3 slices)",
        ),
    ],
    ids=["PixelSpacing", "Rows", "ImageOrientationPatient"],
)
def test_dicom_slices_with_another_grid_are_refused(
    tags: dict[str, object], fragment: str, ct: Ct, make_cohort, tmp_path: Path
) -> None:
    """Before: slices with another PixelSpacing were read on the first slice's spacing (wrong mL)."""
    folder = write_dicom_series(tmp_path / "series", ct[0], DICOM_AFFINE)
    _edit_slices(folder, 3, **tags)
    csv = make_cohort(image=str(folder), mask="")
    assert_refused_by_validate_and_prepare(
        csv, tmp_path / "prep", f"DICOM folder {folder}: the slices disagree on", fragment
    )


def test_dicom_grid_tolerances_accept_rounding() -> None:
    """Exporters round the same grid differently from slice to slice: that is not a disagreement."""
    from iphbench.io.dicom import check_series_headers

    def header(spacing: str, iop: str) -> dict[str, str]:
        return {
            "0008|0060": "CT",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
            "0028|0030": spacing,
            "0028|0010": "512",
            "0028|0011": "512",
            "0020|0037": iop,
        }

    check_series_headers(
        "series",
        [
            header("0.48828125\\0.48828125", "1\\0\\0\\0\\0.99862953\\-0.05233596"),
            header("0.488281\\0.488281", "1.000000\\0.000000\\0.000000\\0.000000\\0.998630\\-0.052336"),
        ],
    )


# --- item 10: the manifest's separator ---------------------------------------------------------------
def _write(rows: pd.DataFrame, path: Path, sep: str, decimal: str = ".") -> Path:
    rows.to_csv(path, sep=sep, decimal=decimal, index=False)
    return path


def test_semicolon_manifest_with_decimal_commas_works_everywhere(
    base_rows: pd.DataFrame, trained_study: Path, tmp_path: Path
) -> None:
    """Before: a ';'-separated manifest (European Excel) gave "missing required columns"."""
    rows = base_rows.iloc[:2].assign(age=[63.5, 71.0])
    csv = _write(rows, tmp_path / "cohort.csv", ";", decimal=",")
    assert "63,5" in csv.read_text() and csv.read_text().startswith("subject;site;age")
    code, out = invoke("validate", str(csv))
    assert code == 0 and "semicolon-separated" in out, out
    code, out = prepare(csv, tmp_path / "prep")
    assert code == 0 and "2 prepared" in out, out
    subjects = pd.read_csv(tmp_path / "prep" / "subjects.csv")
    assert subjects.set_index("subject")["age"].to_dict() == {"synth001": 63.5, "synth002": 71.0}
    code, out = invoke(
        "predict", "--manifest", str(csv), "--study", str(trained_study), "--out-dir", str(tmp_path / "masks"),
        "--views", "2DAxi", "--device", "cpu",
    )  # fmt: skip
    assert code == 0, out
    assert sorted(p.name for p in (tmp_path / "masks").glob("*.nii.gz")) == [
        "synth001.nii.gz",
        "synth002.nii.gz",
    ]


def test_tab_manifest_works(base_rows: pd.DataFrame, tmp_path: Path) -> None:
    csv = _write(base_rows, tmp_path / "cohort.tsv.csv", "\t")
    code, out = invoke("validate", str(csv), "--no-files")
    assert code == 0 and "tab-separated" in out, out


def test_unknown_separator_is_named(base_rows: pd.DataFrame, tmp_path: Path) -> None:
    csv = _write(base_rows, tmp_path / "piped.csv", "|")
    said = "the header has one column 'subject|site|age|sex|image|mask': is the file comma-separated?"
    code, out = invoke("validate", str(csv))
    assert code == 1 and said in out and "piped.csv" in out, out
    code, out = prepare(csv, tmp_path / "prep")
    assert code == 1 and said in out and "piped.csv" in out, out


def test_decimal_comma_in_a_comma_file_is_named(base_rows: pd.DataFrame, tmp_path: Path) -> None:
    """A quoted '63,5' in a comma-separated file is ambiguous: an error that says how to write it."""
    csv = _write(
        base_rows.astype({"age": str}).assign(age=["63,5", *base_rows["age"][1:].astype(str)]),
        tmp_path / "c.csv",
        ",",
    )
    code, out = invoke("validate", str(csv), "--no-files")
    assert (
        code == 1 and f"[{BAD}] age '63,5' is not a number (a decimal comma" in out and "write 63.5" in out
    ), out
