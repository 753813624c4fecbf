"""`iphbench predict` on DICOM series: DICOM SEG output, read back with highdicom and pydicom; tilted series."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from _dicom import write_dicom_series
from iphbench.cli import app
from iphbench.config import StudyConfig

hd = pytest.importorskip("highdicom")
pydicom = pytest.importorskip("pydicom")

runner = CliRunner(env={"COLUMNS": "300", "NO_COLOR": "1"})
SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


def _text(output: str) -> str:
    return " ".join(output.split())


@pytest.fixture(scope="module")
def lesion_scan(tiny_study: Path) -> tuple[np.ndarray, np.ndarray]:
    """HU and RAS affine of a hemorrhage scan of the tiny cohort stored RAS."""
    csv = Path(StudyConfig.load(tiny_study / "config.yaml").cohort)
    cohort = pd.read_csv(csv, dtype={"subject": str})
    row = cohort[(cohort["synth_storage"] == "RAS") & (cohort["lesion_ml"] > 0)].iloc[0]
    img = nib.load(csv.parent / row["image"])
    return np.asarray(img.dataobj).astype(np.float32), img.affine.copy()


def _predict(study: Path, scan: Path, out: Path, *extra: str) -> str:
    res = runner.invoke(
        app, ["predict", str(scan), "--study", str(study), "-o", str(out), "--device", "cpu", *extra]
    )
    assert res.exit_code == 0, res.output
    return _text(res.output)


def _headers(folder: Path) -> list:
    """Source slice headers in ascending order along the slice normal (the reader's order)."""
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.iterdir())]
    iop = np.asarray(headers[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    return sorted(headers, key=lambda h: float(np.asarray(h.ImagePositionPatient, dtype=float) @ normal))


def _seg_on_source(seg_path: Path, headers: list) -> np.ndarray:
    """The SEG's segment 1 on the source slices, as an (i, j, k) array (k = source slice order)."""
    seg = hd.seg.segread(seg_path)
    uids = [h.SOPInstanceUID for h in headers]
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, segment_numbers=[1], assert_missing_frames_are_empty=True
    )
    return np.asarray(pixels[..., 0]).transpose(2, 1, 0).astype(np.uint8)


def test_dicom_seg_references_the_source_and_equals_the_nifti_mask(
    tiny_study: Path, lesion_scan: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    hu, affine = lesion_scan
    series = write_dicom_series(tmp_path / "series", hu, affine)
    headers = _headers(series)
    seg_out, nii_out = tmp_path / "iph.seg.dcm", tmp_path / "iph.nii.gz"
    text = _predict(tiny_study, series, seg_out, "--style", "fpn")
    assert "DICOM SEG written to" in text
    _predict(tiny_study, series, nii_out, "--style", "fpn")

    # pydicom: a Segmentation of the source study, series and frame of reference
    ds = pydicom.dcmread(seg_out)
    src = headers[0]
    assert ds.SOPClassUID == SEG_STORAGE and ds.Modality == "SEG"
    assert ds.StudyInstanceUID == src.StudyInstanceUID
    assert ds.FrameOfReferenceUID == src.FrameOfReferenceUID
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == src.SeriesInstanceUID
    assert ds.SeriesInstanceUID != src.SeriesInstanceUID
    referenced = {
        i.ReferencedSOPInstanceUID for i in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    }
    assert referenced == {h.SOPInstanceUID for h in headers}
    segment = ds.SegmentSequence[0]
    assert segment.SegmentLabel == "intraparenchymal hemorrhage"
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "50960005"  # SCT Hemorrhage
    assert segment.SegmentAlgorithmType == "AUTOMATIC"
    algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
    from iphbench import __version__

    assert algorithm.AlgorithmName == "iphbench" and algorithm.AlgorithmVersion == __version__
    assert (
        "style=fpn" in algorithm.AlgorithmParameters and "orientation=2.5D" in algorithm.AlgorithmParameters
    )
    assert f"study={tiny_study.name}" in algorithm.AlgorithmParameters
    # each frame sits on the slice it references
    position = {h.SOPInstanceUID: [float(v) for v in h.ImagePositionPatient] for h in headers}
    for frame in ds.PerFrameFunctionalGroupsSequence:
        uid = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        ipp = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        np.testing.assert_allclose(ipp, position[uid], atol=1e-3)

    # highdicom: the segment on the source slices equals the NIfTI mask voxel for voxel
    from_seg = _seg_on_source(seg_out, headers)
    nifti = np.asarray(nib.load(nii_out).dataobj)
    assert nifti.shape == hu.shape
    assert nifti.any() and not nifti.all(), "an empty or full mask would make the comparison vacuous"
    np.testing.assert_array_equal(from_seg, nifti)


def test_seg_for_a_nifti_scan_is_refused_before_any_work(tiny_study: Path, tmp_path: Path) -> None:
    scan = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), str(scan))
    res = runner.invoke(
        app, ["predict", str(scan), "--study", str(tiny_study), "-o", str(tmp_path / "x.dcm")]
    )
    assert res.exit_code == 2 and "not a DICOM folder" in _text(res.output)
    assert not (tmp_path / "x.dcm").exists()


def test_tilted_series_is_predicted_and_its_mask_written_back_aligned(
    tiny_study: Path, lesion_scan: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    """A gantry-tilted series is read (resampled, warned), predicted, and its masks are aligned:
    the NIfTI on the regular grid, the SEG on the acquired slices, the same voxels in patient space."""
    hu, affine = lesion_scan
    tilted = affine.copy()
    tilted[1, 2] = 1.6  # each slice starts 1.6 mm further anterior: ~18 degrees at 5 mm slices
    series = write_dicom_series(tmp_path / "tilted", hu, tilted)
    headers = _headers(series)
    seg_out, nii_out = tmp_path / "tilt.seg.dcm", tmp_path / "tilt.nii.gz"
    res = runner.invoke(
        app, ["predict", str(series), "--study", str(tiny_study), "-o", str(seg_out), "--style", "fpn"]
    )
    assert res.exit_code == 0, res.output
    assert "gantry tilt of 17.7 degrees" in _text(res.output) and "regular grid" in _text(res.output)
    _predict(tiny_study, series, nii_out, "--style", "fpn")

    regular = nib.load(nii_out)
    reg_mask = np.asarray(regular.dataobj)
    assert reg_mask.shape[1] > hu.shape[1]  # the regular grid is widened along the drift
    lin = regular.affine[:3, :3]
    np.testing.assert_allclose(lin.T @ lin, np.diag(np.diag(lin.T @ lin)), atol=1e-5)  # no shear

    acquired = _seg_on_source(seg_out, headers)  # on the acquired slices
    assert acquired.shape == hu.shape and acquired.any() and not acquired.all()
    # world position of every acquired voxel, from each slice's own ImagePositionPatient (LPS)
    lps = np.diag([-1.0, -1.0, 1.0])
    row_col = np.asarray(headers[0].ImageOrientationPatient, dtype=float)
    sx, sy = (float(v) for v in reversed(headers[0].PixelSpacing))
    i, j = np.meshgrid(np.arange(hu.shape[0]), np.arange(hu.shape[1]), indexing="ij")
    inv = np.linalg.inv(regular.affine)
    normal = np.cross(row_col[:3], row_col[3:])
    ipp0 = np.asarray(headers[0].ImagePositionPatient, dtype=float)

    def overlap(ignore_tilt: bool) -> float:
        """Share of the SEG's voxels whose patient position falls on a NIfTI mask voxel."""
        hits = 0
        for k, h in enumerate(headers):
            ipp = ipp0 + k * 5.0 * normal if ignore_tilt else np.asarray(h.ImagePositionPatient, dtype=float)
            world = (ipp + i[..., None] * sx * row_col[:3] + j[..., None] * sy * row_col[3:]) @ lps.T
            idx = np.rint(world @ inv[:3, :3].T + inv[:3, 3]).astype(int)
            idx = np.clip(idx, 0, np.asarray(reg_mask.shape) - 1)
            values = reg_mask[idx[..., 0], idx[..., 1], idx[..., 2]]
            hits += int(np.count_nonzero(values & acquired[:, :, k]))
        return hits / int(acquired.sum())

    assert overlap(ignore_tilt=False) > 0.99  # the same voxels in patient space (rounding at .5 aside)
    assert overlap(ignore_tilt=True) < 0.8  # placing the slices as if untilted would be visibly off
    acquired_mm3 = acquired.sum() * abs(np.linalg.det(tilted[:3, :3]))  # sheared voxels: sx * sy * dz
    assert acquired_mm3 == pytest.approx(reg_mask.sum() * abs(np.linalg.det(lin)), rel=0.05)
