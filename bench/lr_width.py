"""Peak learning rate against model width for the iphbench recipe, on one view of a synthetic cohort.

The iphbench recipe's default peak lr was chosen for width-64 models; ``bench/recipes.py`` found it
too low for the width-8 models the CPU benchmarks train. This sweep asks whether a higher peak lr
also suits wider models: it trains U-Net (or ``--model``) with the iphbench recipe **at today's
defaults** (only the peak lr, steps and batch set here) on one view (2DAxi) of every fold, for
every width in ``--widths`` and every peak lr in ``--lrs``, all at the same compute (``--steps`` ×
``--batch`` slices per run), and prints what ``bench/recipe_ablation.py`` prints: single-view mean Dice of
the subjects with hemorrhage (paper and full protocol), of those under 2 mL (full), and the mean
false-positive volume on hemorrhage-free subjects (full), with the training wall time.

Each (width, lr) is its own study folder under ``--out``, sharing one cohort and its prepared
patches (``recipes.share_prep``): a finished cell is read back, not retrained, so an interrupted
sweep resumes, and two processes may share ``--out`` if they take different cells (generate the
cohort first: the first process to start does it).

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python bench/lr_width.py --widths 8 32 --lrs 1e-3 2e-3 5e-3
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from recipe_ablation import add_sweep_arguments, train_and_score, variant_config  # bench/ is on the path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench_out/lr_width"))
    ap.add_argument("--widths", type=int, nargs="+", default=[8, 16, 32, 64])
    ap.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 2e-3, 5e-3])
    add_sweep_arguments(ap)
    args = ap.parse_args()
    args.out = args.out.resolve()

    import torch

    from iphbench.synth import generate_cohort

    cohort = args.out / "cohort" / "cohort.csv"
    if not cohort.exists():
        generate_cohort(cohort.parent, n_subjects=args.subjects, n_sites=args.sites, seed=args.seed, size="small",
                        healthy_fraction=0.2, preset=args.preset)  # fmt: skip
    print(f"# peak lr × width, {time.strftime('%Y-%m-%d')}: {args.subjects} subjects ({args.preset}), "
          f"{args.folds}-fold, {args.model}, iphbench recipe at its defaults, {args.patch}³, {args.view} only, "
          f"{args.steps} steps × {args.batch} = {args.steps * args.batch} slices per run, "
          f"{torch.get_num_threads()} thread(s)")  # fmt: skip
    print(
        "\n| width | peak lr | Dice, paper protocol | Dice, full | Dice < 2 mL, full | FP mL, IPH-free | train s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for width in args.widths:
        for lr in args.lrs:
            cell = argparse.Namespace(**{**vars(args), "width": width, "lr": lr})
            prefix = "" if args.model == "unet" else f"{args.model}_"
            study = args.out / f"{prefix}w{width}_lr{lr:g}"
            cfg = variant_config(cell, cohort, "base", base={}, out=study)
            s, seconds = train_and_score(cfg, args.out, args.view)
            print(f"| {width} | {lr:g} | {s['paper']:.3f} | {s['full']:.3f} | {s['small']:.3f} | "
                  f"{s['fp_ml']:.2f} | {seconds:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
