"""Benchmark of `iphbench predict` on one synthetic clinical-size scan (512 × 512 × ~40), issue 6.

One style, 2.5D (three views), one fold, random-initialised checkpoints written in the
trainer's ``best.pt`` format with ``done.json`` (timing does not depend on the weights).
Measures, per device:
  (a) the whole command's wall time: ``iphbench predict SCAN --study S -o mask.nii.gz`` as a
      subprocess (Python start, imports, reading, model loading, everything);
  (b) the in-process time from a loaded scan and loaded models to the written mask
      (``predict_scan`` + ``write_mask_like``), split into preprocess, inference, restore and
      write; the median of ``--repeats`` runs (after one warm-up run on CUDA).

With ``--batch N`` (issue 15) it instead compares, on N clinical-size scans (distinct synthetic
subjects), N separate ``iphbench predict SCAN -o mask`` commands against one
``iphbench predict SCAN... --out-dir`` call (models loaded once), checks that both give identical
masks, and reports seconds per scan.

Usage:
    .venv/bin/python bench/predict.py                  # width 64 (the paper's VGG16), CPU and CUDA if present
    .venv/bin/python bench/predict.py --quick          # width 8, CPU: a smoke run of the whole path
    .venv/bin/python bench/predict.py --devices cuda --repeats 5
    .venv/bin/python bench/predict.py --batch 10 --width 4 --views 2DAxi --devices cpu   # batch vs separate

Prints Markdown tables. The issue's target for (b) on an H100: under 1 second.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VIEWS = ("2DAxi", "2DCor", "2DSag")


def build_study(work: Path, style: str, width: int, n_scans: int = 1) -> tuple[Path, Path]:
    """Clinical-size synthetic scans and a study folder whose runs hold untrained checkpoints.

    Returns the first scan (all of them are ``work/cohort/images/*.nii.gz``) and the study.
    """
    import torch

    from iphbench._files import atomic_write_json
    from iphbench.config import StudyConfig
    from iphbench.synth import generate_cohort
    from iphbench.training.checkpoint import best_payload, build_model, model_kwargs, save_checkpoint

    csv = generate_cohort(work / "cohort", n_subjects=n_scans, n_sites=1, seed=0, size="clinical")
    scan = sorted((work / "cohort" / "images").glob("*.nii.gz"))[0]
    study = work / "study"
    cfg = StudyConfig.from_dict(
        {
            "cohort": str(csv),
            "out": str(study),
            "models": {"names": [style], "width": width},
            "folds": {"k": 2},
        }
    )
    study.mkdir(parents=True, exist_ok=True)
    cfg.save(study / "config.yaml")
    kwargs = model_kwargs(cfg.models, style)
    for i, view in enumerate(VIEWS):
        torch.manual_seed(i)
        model = build_model(style, width, kwargs)
        run = study / "runs" / style / view / "fold0"
        run.mkdir(parents=True, exist_ok=True)
        save_checkpoint(run / "best.pt", best_payload(model, style, width, kwargs, view, 0, 0, 0.0))
        atomic_write_json(run / "done.json", {"model": style, "view": view, "fold": 0, "benchmark": True})
    return scan, study


def _run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} ... failed:\n{done.stdout}\n{done.stderr}")
    return wall


def batch_vs_separate(work: Path, study: Path, style: str, device: str, views: str) -> dict[str, Any]:
    """N separate ``predict`` commands vs one batch call over the same N scans (same outputs checked)."""
    import nibabel as nib
    import numpy as np
    import pandas as pd

    exe = str(Path(sys.executable).parent / "iphbench")
    scans = sorted((work / "cohort" / "images").glob("*.nii.gz"))
    common = ["--study", str(study), "--style", style, "--device", device, "--views", views]
    sep_dir, batch_dir = work / f"separate_{device}", work / f"batch_{device}"
    sep_dir.mkdir(exist_ok=True)
    separate = [_run([exe, "predict", str(scan), "-o", str(sep_dir / scan.name), *common]) for scan in scans]
    batch = _run([exe, "predict", *map(str, scans), "--out-dir", str(batch_dir), *common])
    table = pd.read_csv(batch_dir / "predictions.csv")
    assert (table["status"] == "ok").all(), table
    for scan in scans:
        a = np.asarray(nib.load(sep_dir / scan.name).dataobj)
        b = np.asarray(nib.load(batch_dir / scan.name).dataobj)
        assert np.array_equal(a, b), f"{scan.name}: batch and separate masks differ"
    return {
        "n": len(scans),
        "separate_total": sum(separate),
        "separate_per_scan": sum(separate) / len(scans),
        "batch_total": batch,
        "batch_per_scan": batch / len(scans),
        "batch_scan_median": float(table["seconds"].median()),  # read + predict + write, per scan
        "shape": nib.load(scans[0]).shape,
    }


def batch_main(n: int, width: int, style: str, devices: list[str], views: str, keep: Path | None) -> None:
    import torch

    work = keep or Path(tempfile.mkdtemp(prefix="iphbench-bench-batch-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        _, study = build_study(work, style, width, n_scans=n)
        made = time.perf_counter() - t0
        rows = []
        for device in devices:
            name = (
                torch.cuda.get_device_name(0)
                if device == "cuda"
                else f"CPU ({torch.get_num_threads()} threads)"
            )
            rows.append((name, batch_vs_separate(work, study, style, device, views)))
        r0 = rows[0][1]
        shape = "x".join(map(str, r0["shape"]))
        print(f"## `iphbench predict`: {r0['n']} scans of {shape} in one call vs {r0['n']} separate calls\n")
        print(f"{datetime.date.today()}, {platform.platform()}, {os.cpu_count()} cores, torch {torch.__version__}; "
              f"{style} width {width}, {views}, 1 fold ({3 if views == '2.5D' else 1} model(s)); scans made in {made:.0f} s (not timed below)\n")  # fmt: skip
        print("| device | separate calls s/scan | one batch call s/scan | speed-up | batch: read+predict+write s/scan (median) | total separate s | total batch s |")  # fmt: skip
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, r in rows:
            print(f"| {name} | {r['separate_per_scan']:.2f} | {r['batch_per_scan']:.2f} | "
                  f"{r['separate_per_scan'] / r['batch_per_scan']:.2f}x | {r['batch_scan_median']:.2f} | "
                  f"{r['separate_total']:.1f} | {r['batch_total']:.1f} |")  # fmt: skip
        print("\nMasks identical between the batch and the separate calls for every scan (checked).")
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


def time_command(scan: Path, study: Path, style: str, device: str, out: Path) -> float:
    exe = Path(sys.executable).parent / "iphbench"
    cmd = [str(exe), "predict", str(scan), "--study", str(study), "-o", str(out), "--model", style]
    cmd += ["--device", device]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"iphbench predict failed:\n{done.stdout}\n{done.stderr}")
    return wall


def time_in_process(
    scan: Path, study: Path, style: str, device: str, out: Path, repeats: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """Median seconds per stage over ``repeats`` runs (after a warm-up) and facts about the run."""
    import numpy as np
    import torch

    from iphbench.inference import resolve_device
    from iphbench.io import read_volume, write_mask_like
    from iphbench.layout import StudyLayout
    from iphbench.study.backends import load_style_models
    from iphbench.study.predict import predict_scan

    dev = resolve_device(device)
    t0 = time.perf_counter()
    image = read_volume(scan)
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    models = load_style_models(StudyLayout(study), style, list(VIEWS), dev)
    load_s = time.perf_counter() - t0

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    samples: dict[str, list[float]] = {}
    result = None
    warmup = 1 if dev.type == "cuda" else 0  # first CUDA kernels and cuDNN plans; the CPU needs none
    for i in range(repeats + warmup):
        sync()
        t0 = time.perf_counter()
        result = predict_scan(image, study, style=style, device=device, models=models)  # type: ignore[arg-type]
        t1 = time.perf_counter()
        write_mask_like(result.mask, image, out)
        t2 = time.perf_counter()
        if i < warmup:
            continue
        for stage in ("preprocess", "inference", "restore"):
            samples.setdefault(stage, []).append(result.seconds[stage])
        samples.setdefault("write", []).append(t2 - t1)
        samples.setdefault("total", []).append(t2 - t0)
    assert result is not None
    med = {k: statistics.median(v) for k, v in samples.items()}
    facts = {
        "read_s": read_s,
        "load_s": load_s,
        "shape": image.shape,
        "spacing": image.spacing,
        "n_models": result.n_models,
        "volume_ml": result.volume_ml,
        "mask_voxels": int(np.count_nonzero(result.mask)),
    }
    return med, facts


def time_overhead(scan: Path, study: Path, style: str, out: Path, repeats: int) -> dict[str, float]:
    """The same in-process path with a voxel-wise stand-in for each view's model (CPU).

    What is left is everything around the networks: preprocessing, cutting and placing
    patches, fusion, restoring and writing; on a GPU it adds to the networks' time.
    """
    import torch

    from iphbench.io import read_volume, write_mask_like
    from iphbench.study.predict import predict_scan

    image = read_volume(scan)

    class StandIn(torch.nn.Module):
        """logit = 8x - 4 voxel by voxel (about half the brain above 0.5): no convolution at all."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 8.0 - 4.0

    models = {view: [StandIn()] for view in VIEWS}
    samples: dict[str, list[float]] = {}
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        result = predict_scan(image, study, style=style, device="cpu", models=models)  # type: ignore[arg-type]
        t1 = time.perf_counter()
        write_mask_like(result.mask, image, out)
        t2 = time.perf_counter()
        if i == 0:
            continue
        for stage in ("preprocess", "inference", "restore"):
            samples.setdefault(stage, []).append(result.seconds[stage])
        samples.setdefault("write", []).append(t2 - t1)
        samples.setdefault("total", []).append(t2 - t0)
    return {k: statistics.median(v) for k, v in samples.items()}


def count_patches(scan: Path, study: Path) -> int:
    from iphbench.config import StudyConfig
    from iphbench.io import read_volume
    from iphbench.preprocessing import prepare_volume
    from iphbench.preprocessing.patching import select_patches

    cfg = StudyConfig.load(study / "config.yaml")
    prepared = prepare_volume(read_volume(scan), cfg.prep)
    return len(select_patches(prepared.mask, prepared.brain, cfg.prep.patch_size, "brain"))


def overhead_only(scan: Path | None, repeats: int) -> None:
    """Only the pipeline-overhead row (no network): quick before/after checks of the code around the models."""
    work = Path(tempfile.mkdtemp(prefix="iphbench-bench-predict-"))
    try:
        _, study = build_study(work, "fpn", 4)
        scan = scan or next((work / "cohort" / "images").glob("*.nii.gz"))
        o = time_overhead(scan, study, "fpn", work / "o.nii.gz", repeats)
        print("| total s | preprocess s | inference (gather, scatter, fuse) s | restore s | write s |")
        print("|---|---|---|---|---|")
        print(
            f"| {o['total']:.3f} | {o['preprocess']:.3f} | {o['inference']:.3f} | {o['restore']:.3f} | {o['write']:.3f} |"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="width 8, CPU only, 1 repeat")
    parser.add_argument("--width", type=int, default=None, help="model width (default 64; 8 with --quick)")
    parser.add_argument("--style", default="fpn", help="architecture (default fpn)")
    parser.add_argument(
        "--devices", default=None, help="comma list of cpu,cuda (default: cpu and cuda when present)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed in-process runs per device (default 3)"
    )
    parser.add_argument("--no-command", action="store_true", help="skip the subprocess timing (a)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the scan and study in this folder")
    parser.add_argument(
        "--overhead-only", action="store_true", help="only the stand-in-model pipeline-overhead row"
    )
    parser.add_argument(
        "--batch", type=int, default=None, help="N scans: one batch call vs N separate calls (issue 15)"
    )
    parser.add_argument("--views", default="2.5D", help="with --batch: 2.5D or one view (default 2.5D)")
    args = parser.parse_args()

    import torch

    if args.overhead_only:
        overhead_only(None, args.repeats or 5)
        return
    if args.batch:
        devices = (args.devices or "cpu,cuda").split(",")
        devices = [d for d in devices if d != "cuda" or torch.cuda.is_available()]
        batch_main(args.batch, args.width or 8, args.style, devices, args.views, args.keep)
        return

    width = args.width or (8 if args.quick else 64)
    repeats = args.repeats or (1 if args.quick else 3)
    devices = (args.devices or ("cpu" if args.quick else "cpu,cuda")).split(",")
    devices = [d for d in devices if d != "cuda" or torch.cuda.is_available()]
    work = args.keep or Path(tempfile.mkdtemp(prefix="iphbench-bench-predict-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        scan, study = build_study(work, args.style, width)
        n_patches = count_patches(scan, study)
        rows = []
        for device in devices:
            wall = (
                None
                if args.no_command
                else time_command(scan, study, args.style, device, work / "cmd.nii.gz")
            )
            med, facts = time_in_process(scan, study, args.style, device, work / "mask.nii.gz", repeats)
            name = (
                torch.cuda.get_device_name(0)
                if device == "cuda"
                else f"CPU ({torch.get_num_threads()} threads)"
            )
            rows.append((name, wall, med, facts))
        overhead = time_overhead(scan, study, args.style, work / "overhead.nii.gz", max(repeats, 3))

        f = rows[0][3]
        print(f"## `iphbench predict`: one {f['shape'][0]}x{f['shape'][1]}x{f['shape'][2]} scan, "
              f"{args.style} width {width}, 2.5D, 1 fold ({f['n_models']} models), {n_patches} brain patches of 64³\n")  # fmt: skip
        print(f"{datetime.date.today()}, {platform.platform()}, {os.cpu_count()} cores, torch {torch.__version__}; "
              f"median of {repeats} in-process run(s) (after a warm-up on CUDA)\n")  # fmt: skip
        print("| device | (a) command wall s | (b) in-process s | preprocess s | inference s | restore s | write s "
              "| read scan s | load models s |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|")
        for name, wall, med, facts in rows:
            cmd = "skipped" if wall is None else f"{wall:.2f}"
            print(f"| {name} | {cmd} | {med['total']:.3f} | {med['preprocess']:.3f} | {med['inference']:.3f} | "
                  f"{med['restore']:.3f} | {med['write']:.3f} | {facts['read_s']:.3f} | {facts['load_s']:.3f} |")  # fmt: skip
        o = overhead
        print(f"| CPU, voxel-wise stand-in models (pipeline overhead) | - | {o['total']:.3f} | {o['preprocess']:.3f} | "
              f"{o['inference']:.3f} | {o['restore']:.3f} | {o['write']:.3f} | - | - |")  # fmt: skip
        print(
            f"\nPredicted volume (random weights, meaningless): {f['volume_ml']:.1f} mL. "
            "Target for (b) on an H100: < 1 s."
        )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
