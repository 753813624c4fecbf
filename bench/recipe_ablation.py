"""Ablation of the iphbench recipe, one item at a time, on one view of a synthetic cohort.

Every variant trains U-Net on one view (2DAxi by default) on every fold of the same cohort at
the same compute (``--steps`` × ``--batch`` slices per run, peak lr ``--lr``), starting from
``BASE``: the iphbench recipe as first committed (intensity augmentation of ±10 HU offset,
±10 % HU scale, gamma ±0.3, noise ≤ 5 HU, blur ≤ 1 px). Each variant changes the items it
names. ``paper`` is the paper recipe at the same lr, batch and steps; ``paper_published`` the
paper recipe at its own optimiser (Adam 5e-4, batch 256) for the same number of slices.

Printed per variant (single-view predictions, no 2.5D fusion): mean Dice of the subjects with
hemorrhage under the paper and the full protocol, of those under 2 mL (full), and the mean
false-positive volume of the hemorrhage-free subjects (full). Each variant is its own study
folder under ``--out`` (prepared patches hard-linked from a sibling, ``recipes.share_prep``), so an interrupted run
resumes where it stopped.

Usage:
    .venv/bin/python bench/recipe_ablation.py                        # every variant, ~2 min each on 1 core
    .venv/bin/python bench/recipe_ablation.py --variants base milder_intensity
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import pandas as pd
from recipes import share_prep  # bench/ is on the path when this script runs

from iphbench.config import (
    EvalConfig,
    FoldsConfig,
    IphbenchRecipe,
    ModelConfig,
    PrepConfig,
    StudyConfig,
    TrainConfig,
)

#: The iphbench recipe as first committed (the ranges the ablation questioned).
BASE: dict[str, Any] = {"hu_offset": 10.0, "hu_scale": 0.1, "gamma": 0.3, "noise_hu": 5.0, "blur_sigma": 1.0}
NO_INTENSITY = {"hu_offset": 0.0, "hu_scale": 0.0, "gamma": 0.0, "noise_hu": 0.0, "blur_sigma": 0.0}

#: name → (recipe, changes to the iphbench block, changes to the train block)
VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "paper": ("paper", {}, {}),
    "paper_published": ("paper", {}, {"lr": 5e-4, "batch_size": 256}),
    "base": ("iphbench", {}, {}),
    "no_augmentation": ("iphbench", {**NO_INTENSITY, "flip": False, "rotate_deg": 0.0, "scale": 0.0}, {}),
    "no_intensity": ("iphbench", NO_INTENSITY, {}),
    "no_hu_offset_scale": ("iphbench", {"hu_offset": 0.0, "hu_scale": 0.0}, {}),
    "no_gamma_blur": ("iphbench", {"gamma": 0.0, "blur_sigma": 0.0}, {}),
    "no_noise": ("iphbench", {"noise_hu": 0.0}, {}),
    "milder_intensity": (
        "iphbench",
        {"hu_offset": 5.0, "hu_scale": 0.05, "gamma": 0.1, "noise_hu": 3.0, "blur_sigma": 0.5},
        {},
    ),
    "foreground_share_0.25": ("iphbench", {"foreground_share": 0.25}, {}),
    "no_context": ("iphbench", {"context_share": 0.0}, {}),
    "select_on_iou": ("iphbench", {"select_on": "iou"}, {}),
}


def variant_config(
    args: argparse.Namespace, cohort: Path, name: str, base: dict[str, Any] = BASE, out: Path | None = None
) -> StudyConfig:
    """The study of one variant: ``base`` (``{}`` for today's defaults) changed as the variant names."""
    recipe, ours, train = VARIANTS[name]
    slices = args.steps * args.batch
    batch = int(train.get("batch_size", args.batch))
    steps = slices // batch
    epochs = max(d for d in range(1, args.validations + 1) if steps % d == 0)  # every run: the same slices
    return StudyConfig(
        cohort=str(cohort),
        out=str(out or args.out / name),
        name=f"recipe ablation: {name}",
        views=[args.view],
        models=ModelConfig(names=[args.model], width=args.width),
        folds=FoldsConfig(k=args.folds, seed=args.seed),
        prep=PrepConfig(patch_size=args.patch),
        train=TrainConfig(
            recipe=[recipe],
            epochs=epochs,
            steps_per_epoch=steps // epochs,
            batch_size=batch,
            lr=float(train.get("lr", args.lr)),
            early_stopping_patience=0,
            plateau_patience=2,
            seed=args.seed,
            iphbench=IphbenchRecipe(
                **{
                    **base,
                    **ours,
                    "lr": args.lr,
                    "batch_size": args.batch,
                    "steps": args.steps,
                    "warmup_steps": max(1, args.steps // 20),
                    "val_every": max(1, args.steps // epochs),
                }
            ),
        ),
        eval=EvalConfig(protocols=["paper", "full"]),
    )


def score(study: Path, view: str) -> dict[str, float]:
    m = pd.read_csv(study / "metrics.csv")
    m = m[m["orientation"] == view]
    lesion, free = m[m["ref_ml"] > 0], m[(m["ref_ml"] == 0) & (m["protocol"] == "full")]
    full = lesion[lesion["protocol"] == "full"]
    return {
        "paper": lesion[lesion["protocol"] == "paper"]["dice"].mean(),
        "full": full["dice"].mean(),
        "small": full[full["ref_ml"] < 2]["dice"].mean(),
        "fp_ml": free["pred_ml"].mean(),
    }


def add_sweep_arguments(ap: argparse.ArgumentParser) -> None:
    """The cohort, split, view and budget options this script shares with ``bench/lr_width.py``."""
    ap.add_argument("--subjects", type=int, default=40)
    ap.add_argument("--sites", type=int, default=4)
    ap.add_argument("--preset", default="hard")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--view", default="2DAxi")
    ap.add_argument("--model", default="unet", help="the architecture trained")
    ap.add_argument("--patch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--validations", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)


def train_and_score(cfg: StudyConfig, out: Path, view: str) -> tuple[dict[str, float], float]:
    """Train one study (prepared patches shared from a sibling under ``out``), evaluate it, score ``view``.

    Returns the scores of ``score`` and the training wall time in seconds; a finished study is read back.
    """
    from iphbench.study.evaluate import evaluate_study
    from iphbench.study.grid import run_study

    study = Path(cfg.out)
    share_prep(out, study)
    t0 = time.perf_counter()
    grid = run_study(cfg)
    if not grid.ok:
        raise SystemExit(f"{study.name}: {len(grid.failed)} run(s) failed")
    seconds = time.perf_counter() - t0
    evaluate_study(study)
    return score(study, view), seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench_out/recipe_ablation"))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    add_sweep_arguments(ap)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-3)
    args = ap.parse_args()
    args.out = args.out.resolve()

    from iphbench.synth import generate_cohort

    cohort = generate_cohort(args.out / "cohort", n_subjects=args.subjects, n_sites=args.sites, seed=args.seed,
                             size="small", healthy_fraction=0.2, preset=args.preset)  # fmt: skip
    print(f"# recipe ablation, {time.strftime('%Y-%m-%d')}: {args.subjects} subjects ({args.preset}), "
          f"{args.folds}-fold, unet width {args.width}, {args.patch}³, {args.view} only, "
          f"{args.steps * args.batch} slices per run")  # fmt: skip
    print("\n| variant | Dice, paper protocol | Dice, full | Dice < 2 mL, full | FP mL, IPH-free | train s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.variants:
        s, seconds = train_and_score(variant_config(args, cohort, name), args.out, args.view)
        print(f"| {name} | {s['paper']:.3f} | {s['full']:.3f} | {s['small']:.3f} | {s['fp_ml']:.2f} | {seconds:.0f} |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
