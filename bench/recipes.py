"""The two training recipes side by side at the same compute: paper vs iphbench on a synthetic cohort.

Generates a synthetic cohort (``--preset hard`` by default: mimics, unlabelled bleeds, low
contrast; docs/synthetic.md) and trains one architecture on every view and fold with

- **paper, published optimiser**: Adam, lr 5e-4, batch 256, ``--epochs`` epochs (the paper's
  settings; on a small cohort this is few optimiser steps, as on the real cohort of issue 11);
- **paper, tuned optimiser**: the same recipe at the demo's reduced
  setting, lr 5e-3 and batch 32: the strongest paper baseline we know at a small budget;
- **iphbench**: the recipe at its defaults (AdamW, lr 2e-3, batch 64, warm-up + cosine over a
  step budget, sampling, context, augmentation, subject-Dice selection, post-processing).

Every run of every setting sees the same number of training slices (``--slices-per-run``):
paper ``epochs × steps_per_epoch × batch``, iphbench ``steps × batch``. Each setting is its own
study folder under ``--out`` (``--settings`` picks some); they share the first one's prepared
patches and, by the seed, the same folds. ``--iphbench-lr`` and ``--iphbench-batch`` give the
iphbench recipe another optimiser (e.g. the tuned paper's, 5e-3 and 32, for a like-for-like run).
Every held-out subject is evaluated under both protocols, and the script prints, per setting:

- 2.5D mean Dice of the subjects with hemorrhage (mean ± sd, n), and of those under 2 mL;
- false-positive volume on hemorrhage-free subjects under the ``full`` protocol (mean, max mL);
- runs still improving in the last tenth of training (the report's convergence rule);
- the issue 11 criterion for the iphbench recipe against each paper setting: ≥ 0.10 higher
  2.5D mean Dice under both protocols and at most half the false-positive volume;
- wall time of each stage.

Every number is measured in this run; it describes small models on synthetic data.

Usage:
    .venv/bin/python bench/recipes.py                        # 40 subjects, 4 sites, 5 folds, hard preset
    .venv/bin/python bench/recipes.py --quick                # a smoke run (tiny cohort, 2 folds)
    .venv/bin/python bench/recipes.py --width 64 --patch 64 --slices-per-run 245760 \\
        --device cuda                                        # the device version
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import pandas as pd
import torch

from iphbench.config import (
    EvalConfig,
    FoldsConfig,
    IphbenchRecipe,
    ModelConfig,
    PrepConfig,
    StudyConfig,
    TrainConfig,
)

PUBLISHED = "paper, published optimiser"
TUNED = "paper, tuned optimiser"
OURS = "iphbench"


def _steps(slices: int, batch: int, what: str) -> int:
    if slices % batch:
        raise SystemExit(f"--slices-per-run {slices} is not a multiple of the {what} batch {batch}")
    return slices // batch


def build_config(args: argparse.Namespace, cohort: Path, out: Path, setting: str) -> StudyConfig:
    """The study of one setting: the paper recipe at its (lr, batch), or the iphbench recipe."""
    paper_lr, paper_batch = (
        (args.paper_lr, args.paper_batch) if setting == PUBLISHED else (5e-3, args.tuned_batch)
    )
    paper_steps = _steps(args.slices_per_run, paper_batch, "paper")
    if paper_steps % args.epochs:
        raise SystemExit(f"{paper_steps} paper steps do not split into {args.epochs} epochs")
    ours_steps = _steps(args.slices_per_run, args.iphbench_batch, "iphbench")
    return StudyConfig(
        cohort=str(cohort),
        out=str(out),
        name=f"recipes on the {args.preset} preset: {setting}",
        views=list(args.views),
        models=ModelConfig(names=[args.model], width=args.width),
        folds=FoldsConfig(k=args.folds, seed=args.seed),
        prep=PrepConfig(patch_size=args.patch),
        train=TrainConfig(
            recipe=["iphbench"] if setting == OURS else ["paper"],
            epochs=args.epochs,
            steps_per_epoch=paper_steps // args.epochs,
            batch_size=paper_batch,
            lr=paper_lr,
            early_stopping_patience=0,  # the whole budget: the runs see the same slices
            seed=args.seed,
            device=args.device,
            iphbench=IphbenchRecipe(
                batch_size=args.iphbench_batch,
                steps=ours_steps,
                val_every=max(1, ours_steps // args.epochs),
                lr=args.iphbench_lr,
                warmup_steps=max(1, ours_steps // 20),
            ),
        ),
        eval=EvalConfig(protocols=["paper", "full"]),
    )


def study_folder(args: argparse.Namespace, setting: str) -> Path:
    if setting == OURS:
        return args.out / f"iphbench_lr{args.iphbench_lr:g}_b{args.iphbench_batch}"
    if setting == PUBLISHED:
        return args.out / f"paper_lr{args.paper_lr:g}_b{args.paper_batch}"
    return args.out / f"paper_lr0.005_b{args.tuned_batch}"


def summarise(study: Path, names: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per (setting, protocol): 2.5D Dice of subjects with IPH (all, < 2 mL), FP mL of IPH-free subjects."""
    from iphbench.report.convergence import load_histories, run_table

    m = pd.read_csv(study / "metrics.csv", dtype={"subject": str})
    fused = m[(m["orientation"] == "2.5D") & m["style"].isin(list(names))]
    rows = []
    for (style, protocol), g in fused.groupby(["style", "protocol"]):
        lesion, free = g[g["ref_ml"] > 0], g[g["ref_ml"] == 0]
        small = lesion[lesion["ref_ml"] < 2]
        rows.append({
            "setting": names[style], "protocol": protocol, "dice_mean": lesion["dice"].mean(),
            "dice_sd": lesion["dice"].std(), "n": len(lesion), "small_dice": small["dice"].mean(),
            "n_small": len(small), "fp_ml_free_mean": free["pred_ml"].mean() if len(free) else float("nan"),
            "fp_ml_free_max": free["pred_ml"].max() if len(free) else float("nan"), "n_free": len(free),
        })  # fmt: skip
    runs = run_table(load_histories(study))
    runs = runs[runs["style"].isin(list(names))].assign(setting=lambda r: r["style"].map(names))
    return pd.DataFrame(rows), runs


def criterion(table: pd.DataFrame, baseline: str) -> str:
    """The issue 11 criterion of the iphbench recipe against one paper setting, as measured."""
    t = table.set_index(["setting", "protocol"])
    if (OURS, "full") not in t.index or (baseline, "full") not in t.index:
        return f"{baseline}: not compared (a setting is missing)"
    gains = {p: t.loc[(OURS, p), "dice_mean"] - t.loc[(baseline, p), "dice_mean"] for p in ("paper", "full")}
    fp_ours, fp_base = t.loc[(OURS, "full"), "fp_ml_free_mean"], t.loc[(baseline, "full"), "fp_ml_free_mean"]
    dice_ok = all(g >= 0.10 for g in gains.values())
    fp_ok = fp_ours <= 0.5 * fp_base
    return (
        f"iphbench vs {baseline}: Dice +{gains['paper']:.3f} (paper protocol), +{gains['full']:.3f} (full) "
        f"→ {'met' if dice_ok else 'NOT met'} (≥ 0.10 both); FP {fp_ours:.3f} vs {fp_base:.3f} mL "
        f"→ {'met' if fp_ok else 'NOT met'} (≤ half)"
    ).replace("+-", "−")


def share_prep(out: Path, dst: Path) -> None:
    """Hard-link prepared patches of a sibling study (same cohort, same prep settings) into ``dst``."""
    if (dst / "prep").exists():
        return
    for src in sorted(p.parent.parent for p in out.glob("*/prep/store.json")):
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src / "prep", dst / "prep", copy_function=os.link)
        return


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench_out/recipes"))
    ap.add_argument("--preset", default="hard")
    ap.add_argument("--subjects", type=int, default=40)
    ap.add_argument("--sites", type=int, default=4)
    ap.add_argument("--healthy-fraction", type=float, default=0.2)
    ap.add_argument("--size", default="small")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--views", nargs="+", default=["2DAxi", "2DCor", "2DSag"])
    ap.add_argument("--model", default="unet")
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--patch", type=int, default=32)
    ap.add_argument("--slices-per-run", type=int, default=15360, help="training slices every run sees")
    ap.add_argument("--epochs", type=int, default=12, help="paper epochs (iphbench: as many validations)")
    ap.add_argument("--paper-lr", type=float, default=5e-4, help="published: 5e-4")
    ap.add_argument("--paper-batch", type=int, default=256)
    ap.add_argument(
        "--tuned-batch", type=int, default=32, help="batch of the tuned paper optimiser (lr 5e-3)"
    )
    ap.add_argument("--settings", nargs="+", default=["published", "tuned", "iphbench"],
                    choices=["published", "tuned", "iphbench"])  # fmt: skip
    ap.add_argument("--iphbench-lr", type=float, default=IphbenchRecipe.lr)
    ap.add_argument("--iphbench-batch", type=int, default=IphbenchRecipe.batch_size)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="tiny cohort, 2 folds, few steps: a smoke run")
    args = ap.parse_args()
    if args.quick:
        args.subjects, args.sites, args.size, args.folds, args.epochs = 8, 2, "tiny", 2, 2
        args.slices_per_run, args.paper_batch, args.iphbench_batch, args.width = 256, 32, 16, 4
        args.tuned_batch = 16

    from iphbench.study.evaluate import evaluate_study
    from iphbench.study.grid import run_study
    from iphbench.synth import generate_cohort

    out = args.out.resolve()
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    cohort = generate_cohort(out / "cohort", n_subjects=args.subjects, n_sites=args.sites, seed=args.seed,
                             size=args.size, healthy_fraction=args.healthy_fraction, preset=args.preset)  # fmt: skip
    seconds["synth"] = time.perf_counter() - t0
    args.out = out
    chosen = {"published": PUBLISHED, "tuned": TUNED, "iphbench": OURS}
    studies = []
    for key in args.settings:
        setting = chosen[key]
        folder = study_folder(args, setting)
        style = f"{args.model}+iphbench" if setting == OURS else args.model
        studies.append((folder, build_config(args, cohort, folder, setting), {style: setting}))
    tables, runs = [], []
    for study, cfg, names in studies:
        share_prep(out, study)
        t0 = time.perf_counter()
        grid = run_study(cfg)
        if not grid.ok:
            raise SystemExit(f"{len(grid.failed)} run(s) failed: {grid.failed[:2]}")
        seconds[f"prepare + train {study.name}"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        evaluate_study(study)
        seconds[f"evaluate {study.name}"] = time.perf_counter() - t0
        table, run = summarise(study, names)
        tables.append(table)
        runs.append(run)
    table, run = pd.concat(tables, ignore_index=True), pd.concat(runs, ignore_index=True)

    print(f"# recipes side by side, {time.strftime('%Y-%m-%d')}, {platform.platform()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s)")  # fmt: skip
    print(f"cohort: {args.subjects} synthetic subjects ({args.preset} preset, {args.size}), {args.sites} sites, "
          f"healthy fraction {args.healthy_fraction}; {args.folds}-fold; {args.model} width {args.width}, "
          f"{args.patch}³ patches, views {' '.join(args.views)}; {args.slices_per_run} training slices per run")  # fmt: skip
    budget = run.groupby("setting").agg(steps=("steps", "median"), slices=("slices", "median"))
    print("optimiser steps / slices per run (median): "
          + "; ".join(f"{s}: {int(r.steps)} / {int(r.slices)}" for s, r in budget.iterrows()))  # fmt: skip
    print("\n| setting | protocol | 2.5D Dice, IPH (mean ± sd, n) | 2.5D Dice, IPH < 2 mL (n) "
          "| FP mL on IPH-free (mean / max, n) |")  # fmt: skip
    print("|---|---|---|---|---|")
    order = {PUBLISHED: 0, TUNED: 1, OURS: 2}
    for r in table.sort_values(
        ["protocol", "setting"], key=lambda c: c.map(order) if c.name == "setting" else c
    ).itertuples():
        fp = f"{r.fp_ml_free_mean:.2f} / {r.fp_ml_free_max:.2f} ({r.n_free})" if r.protocol == "full" else "–"
        print(f"| {r.setting} | {r.protocol} | {r.dice_mean:.3f} ± {r.dice_sd:.3f} ({r.n}) | "
              f"{r.small_dice:.3f} ({r.n_small}) | {fp} |")  # fmt: skip
    improving = run.groupby("setting")["still_improving"].sum().to_dict()
    print(
        f"\nruns still improving in their last tenth: {improving} of {run.groupby('setting').size().to_dict()}"
    )
    for baseline in (PUBLISHED, TUNED):
        if baseline in set(table["setting"]):
            print(criterion(table, baseline))
    print("wall time: " + "; ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
    (out / "summary.json").write_text(json.dumps({"table": table.to_dict("records"), "seconds": seconds,
                                                  "args": {k: str(v) for k, v in vars(args).items()}}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
