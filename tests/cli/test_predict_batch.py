"""`iphbench predict` over many scans: a manifest, files and folders of series; one CSV; failures go on."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from typer.testing import CliRunner

from _dicom import write_dicom_series
from iphbench.cli import app
from iphbench.config import StudyConfig

runner = CliRunner(env={"COLUMNS": "300", "NO_COLOR": "1"})


def _text(output: str) -> str:
    return " ".join(output.split())


def _invoke(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, ["predict", *args, "--device", "cpu"])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise AssertionError(f"predict raised {res.exception!r}:\n{res.output}")
    return res.exit_code, _text(res.output)


@pytest.fixture(scope="module")
def inputs(tiny_study: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three good scans of the tiny cohort (two NIfTI, one as a DICOM series) and a truncated one."""
    csv = Path(StudyConfig.load(tiny_study / "config.yaml").cohort)
    cohort = pd.read_csv(csv, dtype={"subject": str})
    lesion = cohort[cohort["lesion_ml"] > 0]
    root = tmp_path_factory.mktemp("batch_inputs")
    a, b, c = (csv.parent / p for p in lesion["image"].iloc[:3])
    img = nib.load(c)
    series = write_dicom_series(
        root / "dicom" / "series c", np.asarray(img.dataobj).astype(np.float32), img.affine
    )
    broken = root / "broken.nii.gz"
    data = a.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    return {"a": a, "b": b, "series": series, "broken": broken, "csv": csv}


def test_batch_over_a_manifest_with_one_broken_scan(
    tiny_study: Path, inputs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every scan gets a row, the broken one fails with its file named, exit status 1 names it,
    the models are loaded once, and the good scans' masks are what predict_scan gives."""
    import iphbench.study.backends as backends_mod

    loads: list[str] = []
    real_load = backends_mod.load_style_models

    def counting_load(*args, **kwargs):
        loads.append(args[1])
        return real_load(*args, **kwargs)

    monkeypatch.setattr(backends_mod, "load_style_models", counting_load)
    manifest = tmp_path / "new.csv"
    pd.DataFrame(
        {
            "subject": ["p01", "p02", "p03", "p04"],
            "image": [str(inputs["a"]), str(inputs["broken"]), str(inputs["series"]), str(inputs["b"])],
        }
    ).to_csv(manifest, index=False)
    out = tmp_path / "out"
    code, text = _invoke(
        "--manifest", str(manifest), "--study", str(tiny_study), "--out-dir", str(out), "-m", "fpn"
    )
    assert code == 1
    assert "1 scan(s) failed: p02" in text and "failed p02:" in text and "broken.nii.gz" in text
    assert loads == ["fpn"]  # one load for the whole batch (all views and folds at once)

    table = pd.read_csv(out / "predictions.csv", dtype={"subject": str}, keep_default_na=False)
    assert list(table.columns) == [
        "subject", "input", "output", "summary", "volume_ml", "n_lesions", "seconds", "status", "error",
        "style", "orientation", "warnings",
    ]  # fmt: skip
    assert list(table["subject"]) == ["p01", "p02", "p03", "p04"]
    assert list(table["status"]) == ["ok", "failed", "ok", "ok"]
    bad = table.set_index("subject").loc["p02"]
    assert "broken.nii.gz" in bad["error"] and bad["output"] == "" and bad["volume_ml"] == ""
    ok = table[table["status"] == "ok"].set_index("subject")
    assert (ok["style"] == "fpn").all() and (ok["orientation"] == "2.5D").all()
    assert (ok["seconds"].astype(float) > 0).all()
    assert ok.loc["p03", "output"].endswith("p03.seg.dcm")  # a DICOM series: DICOM SEG by default
    for subject in ("p01", "p04"):
        path = Path(ok.loc[subject, "output"])
        assert path == out / f"{subject}.nii.gz"
        mask = np.asarray(nib.load(path).dataobj)
        assert mask.any(), "an empty mask would make the volume and lesion checks vacuous"
        voxel_ml = float(np.prod(nib.load(path).header.get_zooms()[:3])) / 1000
        assert float(ok.loc[subject, "volume_ml"]) == pytest.approx(mask.sum() * voxel_ml, rel=1e-5)
        _, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
        assert int(ok.loc[subject, "n_lesions"]) == n

    from iphbench.io import read_volume
    from iphbench.study.predict import predict_scan

    vol = read_volume(inputs["a"])
    expected = predict_scan(vol, tiny_study, style="fpn", device="cpu")
    np.testing.assert_array_equal(
        np.asarray(nib.load(out / "p01.nii.gz").dataobj), vol.to_source(expected.mask)
    )


def test_lesion_count_is_26_connected() -> None:
    from iphbench.masks import count_lesions

    mask = np.zeros((6, 6, 6), np.uint8)
    mask[1, 1, 1] = mask[2, 2, 2] = 1  # corner neighbours: one lesion under 26-connectivity
    mask[4, 4, 4] = 1
    assert count_lesions(mask) == 2
    assert count_lesions(np.zeros((3, 3, 3))) == 0


def test_files_and_a_folder_of_series_all_succeed_with_summary_images(
    tiny_study: Path, inputs: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "studies"
    shutil.copytree(inputs["series"].parent, folder)  # studies/series c/*.dcm
    write_dicom_series(folder / "second" / "ct", *_small_head())  # a nested series
    out = tmp_path / "out"
    code, text = _invoke(
        str(inputs["a"]), str(folder), "--study", str(tiny_study), "--out-dir", str(out),
        "--format", "nifti", "--summary-png", "--views", "2DAxi",
    )  # fmt: skip
    assert code == 0, text
    table = pd.read_csv(out / "predictions.csv", dtype={"subject": str})
    stem = inputs["a"].name.removesuffix(".nii.gz")
    assert list(table["subject"]) == [stem, "second_ct", "series_c"]
    assert (table["status"] == "ok").all() and (table["orientation"] == "2DAxi").all()
    for subject in table["subject"]:
        assert (out / f"{subject}.nii.gz").exists()  # --format nifti also for the DICOM series
        png = out / f"{subject}.png"
        import matplotlib.image as mpimg

        picture = mpimg.imread(png)
        assert picture.ndim == 3 and picture.shape[1] > picture.shape[0] > 300  # two panels side by side
        assert picture[..., :3].std() > 0.05  # not a blank image
    assert "3 of 3 scan(s) predicted" in text and "loaded once" in text


def _small_head() -> tuple[np.ndarray, np.ndarray]:
    """A 48x48x24 head (air, skull, brain, a blob of blood) on 4 mm x 4 mm x 5 mm voxels."""
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in (48, 48, 24)), indexing="ij")
    r = np.sqrt(x**2 + y**2 + z**2)
    hu = np.where(r < 0.75, 35.0, np.where(r < 0.85, 1000.0, -1000.0)).astype(np.float32)
    hu[(x - 0.3) ** 2 + y**2 + z**2 < 0.04] = 70.0
    return hu, np.diag([4.0, 4.0, 5.0, 1.0])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "m.nii.gz", "--out-dir", "o"], "not both"),
        ([], "-o FILE for one scan, or --out-dir FOLDER"),
        (["-o", "m.nii.gz", "SECOND"], "use --out-dir FOLDER for several scans"),
        (["--out-dir", "o", "--format", "dicom"], "--format 'dicom': choose auto, nifti, seg"),
        (["--out-dir", "o", "EMPTY"], "no scan found in folder"),
        (["--out-dir", "o", "--probability", "p.nii.gz"], "--probability works with -o"),
        (["--out-dir", "o", "--style", "vgg16"], "style 'vgg16' has no finished run"),
        (["--out-dir", "o", "--views", "3D"], "unknown orientation '3D'"),
    ],
)
def test_bad_arguments_exit_2_before_any_work(
    tiny_study: Path, inputs: dict[str, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "EMPTY").mkdir()
    args = [str(tmp_path / a) if a in ("m.nii.gz", "o", "p.nii.gz", "EMPTY") else a for a in args]
    args = [str(inputs["b"]) if a == "SECOND" else a for a in args]
    code, text = _invoke(str(inputs["a"]), "--study", str(tiny_study), *args)
    assert code == 2 and message in text, text
    assert not (tmp_path / "o").exists() and not (tmp_path / "m.nii.gz").exists()


def test_single_scan_summary_png_beside_the_mask(
    tiny_study: Path, inputs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "mask.nii.gz"
    code, text = _invoke(str(inputs["a"]), "--study", str(tiny_study), "-o", str(out), "--summary-png")
    assert code == 0, text
    assert (tmp_path / "mask.png").stat().st_size > 10_000
    assert "lesion(s)" in text and f"summary image: {tmp_path / 'mask.png'}" in text


def test_format_seg_fails_the_nifti_rows_only(
    tiny_study: Path, inputs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code, text = _invoke(
        str(inputs["a"]), str(inputs["series"]), "--study", str(tiny_study), "--out-dir", str(out),
        "--format", "seg", "--views", "2DAxi",
    )  # fmt: skip
    assert code == 1 and "1 scan(s) failed" in text
    table = pd.read_csv(out / "predictions.csv", keep_default_na=False).set_index("subject")
    stem = inputs["a"].name.removesuffix(".nii.gz")
    assert table.loc[stem, "status"] == "failed" and "use --format nifti" in table.loc[stem, "error"]
    assert table.loc["series_c", "status"] == "ok" and (out / "series_c.seg.dcm").exists()
