"""Benchmark of `iphbench prepare` on synthetic clinical-size scans (512 × 512 × ~40).

Measures, on the same synthetic cohort:
  * seconds per subject with one worker process (one core) and with all cores,
  * brain-extraction ("ct") seconds per scan and the other steps (read, window, pad, write),
  * lesion retention: share of hemorrhage voxels inside the brain mask (target >= 99.5 %).

Usage:
    .venv/bin/python bench/prepare.py            # 8 subjects
    .venv/bin/python bench/prepare.py --quick    # 3 subjects
    .venv/bin/python bench/prepare.py --subjects 16 --workers 8 --keep /tmp/prep_bench

Prints Markdown tables. Single-threaded numerical libraries are forced (OMP_NUM_THREADS=1 etc.)
so that "one core" means one core and "all cores" comes from worker processes only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported (inside main), and inherited by worker processes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 subjects instead of 8")
    parser.add_argument("--subjects", type=int, default=None, help="number of synthetic subjects")
    parser.add_argument(
        "--workers", type=int, default=None, help="processes of the all-cores run (default: all cores)"
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep the cohort and stores in this folder")
    args = parser.parse_args()

    import numpy as np

    from iphbench.config import PrepConfig
    from iphbench.preprocessing.store import PatchStore, prepare_store
    from iphbench.synth import generate_cohort

    n = args.subjects or (3 if args.quick else 8)
    cores = os.cpu_count() or 1
    workers = args.workers or cores
    work = args.keep or Path(tempfile.mkdtemp(prefix="iphbench-bench-prepare-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        csv = generate_cohort(
            work / "cohort", n_subjects=n, n_sites=min(n, 4), seed=0, size="clinical", workers=workers
        )
        synth_s = time.perf_counter() - t0

        cfg = PrepConfig()
        runs: dict[str, float] = {}
        for label, w in (("one core", 1), (f"all cores ({workers} processes)", workers)):
            root = work / f"prep_w{w}"
            shutil.rmtree(root, ignore_errors=True)
            t0 = time.perf_counter()
            result = prepare_store(csv, root, cfg, workers=w, progress=False)
            runs[label] = time.perf_counter() - t0
            if result.failed:
                raise SystemExit(f"subjects failed: {result.failed}")
        t0 = time.perf_counter()
        again = prepare_store(csv, work / "prep_w1", cfg, workers=1, progress=False)
        rerun_s = time.perf_counter() - t0
        assert len(again.skipped) == n

        store = PatchStore(work / "prep_w1")
        steps: dict[str, list[float]] = {}
        kept = total = 0
        per_subject_retention = []
        shapes = []
        for subject in store.subjects:
            summary = json.loads((store.root / "subjects" / subject / "summary.json").read_text())
            for k, v in summary["seconds"].items():
                steps.setdefault(k, []).append(float(v))
            prep = store.load(subject)
            lesion = np.asarray(prep.mask, dtype=bool)
            inside = int((lesion & np.asarray(prep.brain, dtype=bool)).sum())
            kept, total = kept + inside, total + int(lesion.sum())
            if lesion.any():
                per_subject_retention.append(inside / lesion.sum())
            shapes.append(tuple(prep.meta.canonical_shape))
        table = store.subjects_table
        size_mb = sum(f.stat().st_size for f in (store.root / "subjects").rglob("*.npy")) / 1e6 / n

        print(f"## iphbench prepare: {n} synthetic clinical-size subjects\n")
        print(
            f"Date {datetime.date.today().isoformat()}; machine: {platform.machine()}, {cores} logical cores "
            f"({platform.processor() or platform.platform()}); numpy/scipy single-threaded. "
            f"Scans: {sorted(set(shapes))[0]}..{sorted(set(shapes))[-1]} voxels; synthetic cohort written in {synth_s:.1f} s.\n"
        )
        print("| run | wall s | s / subject | speed-up |")
        print("|---|---:|---:|---:|")
        one = runs["one core"]
        for label, wall in runs.items():
            print(f"| {label} | {wall:.1f} | {wall / n:.2f} | {one / wall:.2f}x |")
        print(f"| rerun, all finished (skipped) | {rerun_s:.2f} | {rerun_s / n:.3f} | |")
        print("\n| step (one core) | median s / scan | max s / scan |")
        print("|---|---:|---:|")
        for k in ("read", "brain", "intensity", "resample", "pad", "write"):
            if k in steps:
                name = "brain extraction (ct)" if k == "brain" else k
                print(f"| {name} | {statistics.median(steps[k]):.3f} | {max(steps[k]):.3f} |")
        print("\n| quality | value |")
        print("|---|---:|")
        print(f"| lesion retention, all hemorrhage voxels | {100 * kept / max(total, 1):.3f} % |")
        if per_subject_retention:
            print(f"| lesion retention, worst subject | {100 * min(per_subject_retention):.3f} % |")
        print(f"| lesion patches / subject (mean) | {table['n_lesion_patches'].mean():.1f} |")
        print(f"| brain patches / subject (mean) | {table['n_brain_patches'].mean():.1f} |")
        print(f"| store size / subject | {size_mb:.1f} MB |")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
