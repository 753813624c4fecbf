"""nnU-Net 3d_fullres beside the paper's U-Net on the same subjects, folds, protocols and metrics (issue 13).

Builds the demo's synthetic cohort (``iphbench synth``: 24 subjects, 4 sites, ``small``
~128 × 128 × 56 voxels), then one study with ``models.names: [unet, nnunet_3d_fullres]``:
U-Net with the paper recipe at the demo's reduced settings (width 8, 32³ patches, 6 × 12
steps), nnU-Net with its own plans and trainer for ``--epochs`` × ``--iterations``, both on
the same ``--folds``-fold split. It trains (``iphbench study run``), evaluates, runs the
statistics and writes the report, and prints as Markdown:

* the wall time per fold of each style (U-Net: its three views; nnU-Net: training plus
  predicting the fold's test subjects) and of nnU-Net's one-off export / plan / preprocess;
* mean ± sd of F-measure, IoU and d_H95 per protocol (U-Net at 2.5D, nnU-Net at 3D).

Usage:
    .venv/bin/python bench/nnunet_reference.py --out /tmp/nnref                 # CPU, reduced
    .venv/bin/python bench/nnunet_reference.py --out /tmp/nnref --folds 5 --epochs 1000 --iterations 250 \\
        --device cuda --full-unet                                              # the real thing, on a GPU

``--recipes paper iphbench`` also trains U-Net with the iphbench recipe at the same compute as its
paper runs (the demo's iphbench settings). ``--full-unet`` trains U-Net at the paper's settings (width 64, 64³ patches, up to 300 epochs)
instead of the demo's. Needs ``iphbench[nnunet]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path
from typing import Any


def study_dict(cohort: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    unet = (
        {"models": {"names": ["unet", "nnunet_3d_fullres"], "width": 64}, "prep": {"patch_size": 64},
         "train": {"device": args.device}}
        if args.full_unet
        else {"models": {"names": ["unet", "nnunet_3d_fullres"], "width": 8}, "prep": {"patch_size": 32},
              "train": {"epochs": 6, "steps_per_epoch": 12, "lr": 5e-3, "batch_size": 32, "device": args.device}}
    )  # fmt: skip
    if args.recipes != [
        "paper"
    ]:  # U-Net also with the iphbench recipe, at the same compute as its paper runs
        train = unet["train"]
        steps = train.get("epochs", 6) * train.get("steps_per_epoch", 12)
        train["recipe"] = list(args.recipes)
        train["recipe_models"] = {"iphbench": ["unet"]}
        if not args.full_unet:
            train["iphbench"] = {
                "lr": 5e-3,
                "batch_size": 32,
                "steps": steps,
                "val_every": 12,
                "warmup_steps": 6,
            }
    return {
        "cohort": str(cohort),
        "out": str(out),
        "name": "nnU-Net reference benchmark",
        "folds": {"scheme": "kfold", "k": args.folds, "seed": 0},
        "nnunet": {
            "epochs": args.epochs,
            "iterations_per_epoch": args.iterations,
            "val_iterations_per_epoch": args.val_iterations,
            "test_time_mirroring": not args.no_mirroring,
            "preprocessing_workers": args.workers,
            "augmentation_workers": args.augmentation_workers,
        },
        **unet,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--subjects", type=int, default=24)
    parser.add_argument("--sites", type=int, default=4)
    parser.add_argument("--size", default="small")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--val-iterations", type=int, default=1)
    parser.add_argument("--no-mirroring", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--augmentation-workers", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--full-unet", action="store_true")
    parser.add_argument("--recipes", nargs="+", default=["paper"], choices=["paper", "iphbench"],
                        help="U-Net's training recipes (iphbench: at the same compute as the paper runs)")  # fmt: skip
    args = parser.parse_args()

    import pandas as pd
    import torch

    from iphbench.config import StudyConfig
    from iphbench.report.html import write_report
    from iphbench.stats.write import write_stats
    from iphbench.study.evaluate import evaluate_study
    from iphbench.study.grid import run_study
    from iphbench.synth import generate_cohort

    if args.threads:
        torch.set_num_threads(args.threads)
    wall: dict[str, float] = {}
    t0 = time.perf_counter()
    cohort = generate_cohort(
        args.out / "cohort", n_subjects=args.subjects, n_sites=args.sites, seed=0, size=args.size
    )
    wall["cohort"] = time.perf_counter() - t0
    out = args.out / "study"
    cfg = StudyConfig.from_dict(study_dict(cohort, out, args))
    t0 = time.perf_counter()
    result = run_study(cfg, executor="local")
    wall["study run"] = time.perf_counter() - t0
    if not result.ok:
        raise SystemExit(f"runs failed: {result.failed}")
    t0 = time.perf_counter()
    evaluate_study(out, device=args.device)
    wall["evaluate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_stats(out)
    write_report(out, pdf=False)
    wall["stats + report"] = time.perf_counter() - t0

    print(f"nnU-Net reference benchmark, {datetime.date.today()}, {platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), device {args.device}")  # fmt: skip
    print(f"\n{args.subjects} subjects, {args.sites} sites ({args.size}), {args.folds} folds; nnU-Net 3d_fullres "
          f"{args.epochs} epochs × {args.iterations} iterations (+{args.val_iterations} val), mirroring "
          f"{'off' if args.no_mirroring else 'on'}; U-Net {'paper settings' if args.full_unet else 'demo settings'}\n")  # fmt: skip
    prepared = json.loads((out / "nnunet" / "prepared.json").read_text())
    print("| stage | seconds |\n|---|---:|")
    for k, v in {**wall, **{f"nnU-Net {k}": v for k, v in prepared["seconds"].items()}}.items():
        print(f"| {k} | {v:.0f} |")
    print(
        "\n| fold | U-Net (3 views, every recipe) train s | nnU-Net 3d_fullres train s | nnU-Net predict s (test subjects) |"
    )
    print("|---:|---:|---:|---:|")
    for k in range(args.folds):
        unet = sum(
            json.loads((out / "runs" / style / v / f"fold{k}" / "done.json").read_text())["seconds"]
            for v in cfg.views
            for style in ("unet", "unet+iphbench")
            if (out / "runs" / style).is_dir()
        )
        nn = json.loads((out / "runs" / "nnunet_3d_fullres" / "3D" / f"fold{k}" / "done.json").read_text())
        print(f"| {k} | {unet:.0f} | {nn['seconds']['train']:.0f} | {nn['seconds']['predict']:.0f} "
              f"({len(nn['test_subjects'])}) |")  # fmt: skip
    m = pd.read_csv(out / "metrics.csv")
    m = m[
        (m["style"].isin(["unet", "unet+iphbench"]) & (m["orientation"] == "2.5D"))
        | (m["style"] == "nnunet_3d_fullres")
    ]
    m = m[m["ref_ml"] > 0]
    print(
        "\n| protocol | style | orientation | n | F-measure | IoU | d_H95 (mm) |\n|---|---|---|---:|---|---|---|"
    )
    for (protocol, style, orientation), g in m.groupby(["protocol", "style", "orientation"], sort=True):
        cells = [f"{g[c].mean():.3f} ± {g[c].std(ddof=1):.3f}" for c in ("dice", "iou", "hd95_mm")]
        print(f"| {protocol} | {style} | {orientation} | {len(g)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
