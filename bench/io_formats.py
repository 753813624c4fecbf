"""Benchmark: reading a scan and writing a mask back in each format, and validating a cohort.

Usage: .venv/bin/python bench/io_formats.py [--quick]

Full: one clinical-size scan (512×512×40 int16 at 0.45×0.45×5 mm, oblique and flipped
affine) in NIfTI (.nii.gz, .nii), NRRD, MHA and as a 40-file DICOM series; median of 3
runs each. Then ``validate_cohort`` on 8 subjects (NIfTI image + mask). ``--quick`` uses
256×256×20 and 4 subjects. Prints Markdown tables; times are wall-clock seconds on this
machine (ratios to .nii.gz are measured side by side in the same process).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from iphbench.io import read_mask, read_volume, write_mask_like
from iphbench.io._sitk import to_itk
from iphbench.io.cohort import load_cohort, validate_cohort


def _affine(spacing: tuple[float, float, float]) -> np.ndarray:
    c, s = np.cos(0.2), np.sin(0.2)
    aff = np.eye(4)
    aff[:3, :3] = np.array([[-c, -s, 0], [s, -c, 0], [0, 0, 1.0]]) @ np.diag(spacing)
    aff[:3, 3] = (120.0, 110.0, -40.0)
    return aff


def _scan(shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    r = np.sqrt(x**2 + y**2)[..., None].repeat(shape[2], axis=2)
    ct = np.where(r < 0.8, 35.0, np.where(r < 0.9, 1200.0, -1000.0))
    return (ct + rng.normal(0, 5, shape)).astype(np.int16)


def _median_time(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    shape = (256, 256, 20) if args.quick else (512, 512, 40)
    n_subjects = 4 if args.quick else 8
    spacing = (0.45, 0.45, 5.0)
    rng = np.random.default_rng(0)
    arr = _scan(shape, rng)
    aff = _affine(spacing)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        paths: dict[str, Path] = {}
        for suffix in (".nii.gz", ".nii"):
            paths[suffix] = tmp / f"ct{suffix}"
            nib.save(nib.Nifti1Image(arr, aff), str(paths[suffix]))
        for suffix in (".nrrd", ".mha"):
            paths[suffix] = tmp / f"ct{suffix}"
            sitk.WriteImage(to_itk(arr, aff), str(paths[suffix]), useCompression=True)
        from _dicom import write_dicom_series  # the tests' own DICOM writer (pydicom)

        paths["DICOM"] = write_dicom_series(
            tmp / "dicom", arr.astype(np.float32), aff, slope=1.0, intercept=-1024.0
        )
        rows = []
        ref = None
        for name, path in paths.items():
            vol = read_volume(path)
            mask = (vol.array > 500).astype(np.uint8)
            out_suffix = name if name != "DICOM" else ".nii.gz"
            t_read = _median_time(lambda p=path: read_volume(p))
            t_write = _median_time(
                lambda v=vol, m=mask, s=out_suffix: write_mask_like(m, v, tmp / f"mask{s}")
            )
            back = read_mask(tmp / f"mask{out_suffix}", like=vol)
            exact = bool(np.array_equal(back.array, mask))
            ref = ref or t_read
            rows.append((name, t_read, t_read / ref, out_suffix, t_write, exact))

        def old_read(path: Path = paths[".nii.gz"]) -> np.ndarray:
            """The first read_nifti (commit 8e480c9): float64 load, float32 cast, then reorder to C order."""
            img = nib.load(str(path))
            data = np.asarray(img.dataobj, dtype=np.float64).astype(np.float32)
            return np.ascontiguousarray(data)

        t_old = _median_time(old_read)
        rows.append(
            ("first read_nifti (float64, reorder float32)", t_old, t_old / ref, "-", float("nan"), True)
        )
        print(f"Volume I/O, {shape[0]}×{shape[1]}×{shape[2]} int16 scan, median of 3 (seconds)\n")
        print(
            "| input | read_volume s | × .nii.gz | mask written as | write_mask_like s | round trip exact |"
        )
        print("|---|---:|---:|---|---:|---|")
        for name, t_read, ratio, out_suffix, t_write, exact in rows:
            print(
                f"| {name} | {t_read:.3f} | {ratio:.2f} | {out_suffix} | {t_write:.3f} | {exact} |".replace(
                    "nan", "-"
                )
            )

        lines = ["subject,site,age,sex,image,mask"]
        mask = np.zeros(shape, np.uint8)
        mask[200:240, 200:240, 5:10] = 1
        for i in range(n_subjects):
            nib.save(nib.Nifti1Image(arr, aff), str(tmp / f"s{i}.nii.gz"))
            nib.save(nib.Nifti1Image(mask, aff), str(tmp / f"s{i}_mask.nii.gz"))
            lines.append(f"s{i},{'AB'[i % 2]},60,M,s{i}.nii.gz,s{i}_mask.nii.gz")
        (tmp / "cohort.csv").write_text("\n".join(lines) + "\n")
        t0 = time.perf_counter()
        report = validate_cohort(load_cohort(tmp / "cohort.csv"))
        t_val = time.perf_counter() - t0
        print(f"\nvalidate_cohort, {n_subjects} subjects (.nii.gz image + mask)\n")
        print("| subjects | errors | total s | s per subject |")
        print("|---:|---:|---:|---:|")
        print(f"| {n_subjects} | {len(report.errors)} | {t_val:.2f} | {t_val / n_subjects:.2f} |")


if __name__ == "__main__":
    main()
