"""Wall time of the paper's grid: train a sample of it for real, then extrapolate to a 239-subject cohort.

The paper's grid is 4 styles × 3 views × 5 folds = 60 runs of at most 300 epochs on 239 subjects
(section 3.4-3.5). This script builds a synthetic cohort, prepares it, and trains a sample of
that grid through the real study machinery (``run_study``: executor, compile cache, checkpoints,
validation, history), each run a few epochs:

1. on CUDA, a warm-up study that compiles every sampled graph into the shared compile cache
   (as the first runs of a real grid do);
2. one run per style (paper recipe; views rotate), one at a time: per style the measured training
   and validation rates (slices/s), the per-epoch overhead (checkpoints, history) and the run's
   start-up; an epoch's training part is as long as a 239-subject epoch (``steps_per_epoch``);
3. the ``iphbench`` recipe for some styles (default U-Net), to time its step budget;
4. N runs at once on the device (``--runs-per-device``), U-Net paper runs: the aggregate training
   rate against N = 1, i.e. the grid's throughput against N.

Then it extrapolates, **labelled as such**: a 239-subject fold (5-fold, 15 % of training subjects
for validation) has ``n_train × lesion slices per subject`` training slices per epoch (the
sample cohort's mean lesion patches per subject, all slices of each patch, as the paper), so
an epoch takes ``train / train rate + validation / validation rate + overhead``; the paper grid
is 15 runs × (start-up + 300 epochs) per style (no early stopping: an upper bound), divided by
the measured speed-up of N runs per device; the ``iphbench`` grid is 15 runs × (its step budget
``train.iphbench.steps`` at the measured rate + its validations) per style.

On a GPU: CT-sized cohort (``size="clinical"``, 512×512×~40), 64³ patches, width 64, the
paper's batch 256. On a CPU, or with ``--reduced``: a small cohort, 32³ patches, width 8, a few
steps; every number is labelled "CPU, reduced" and the extrapolation only shows the arithmetic.

Usage:
    .venv/bin/python bench/grid_time.py                     # CPU: reduced, a few minutes
    python3 bench/grid_time.py --json grid_time.json        # GPU: the real sample, about 5 minutes
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from iphbench.config import FoldsConfig, IphbenchRecipe, ModelConfig, PrepConfig, StudyConfig, TrainConfig
from iphbench.styles import parse_style

PAPER = {"subjects": 239, "styles": 4, "views": 3, "folds": 5, "epochs": 300}
VIEWS = ("2DAxi", "2DCor", "2DSag")
TARGET_HOURS = 8.0


@dataclass
class Plan:
    """What the sample trains, and on what."""

    label: str  # "GPU" or "CPU, reduced"
    device: str
    subjects: int
    size: str  # synthetic cohort size
    patch: int
    width: int
    batch: int
    epochs: int  # per sampled run (the first one pays compilation; it is not timed)
    steps_per_epoch: int | None  # None: from a 239-subject fold
    iph: IphbenchRecipe
    styles: list[str]
    iph_styles: list[str]
    runs_per_device: list[int]
    warm_cache: bool
    compile_cache: str | None = None  # None: <work>/compile-cache


def make_plan(args: argparse.Namespace) -> Plan:
    cuda = torch.cuda.is_available() and not args.reduced
    archs = args.styles or ["unet", "attention_unet", "fpn", "transunet"]
    iph_archs = archs if args.iphbench_styles == ["all"] else (args.iphbench_styles or [])
    if cuda:
        return Plan(
            "GPU", torch.cuda.get_device_name(0), args.subjects or 20, "clinical", 64, 64, 256, args.epochs or 4,
            args.steps_per_epoch, replace(IphbenchRecipe(), steps=3 * 250), archs, iph_archs,
            args.runs_per_device or [1, 2, 4], True,
        )  # fmt: skip
    return Plan(
        "CPU, reduced", "cpu", args.subjects or 8, "small", 32, 8, 16, args.epochs or 3, args.steps_per_epoch or 3,
        replace(IphbenchRecipe(), batch_size=16, steps=6, val_every=2, warmup_steps=1), archs, iph_archs,
        args.runs_per_device or [1, 2], False,
    )  # fmt: skip


# -- cohort, store, study --------------------------------------------------------------------


def make_store(work: Path, plan: Plan) -> tuple[Path, Path, pd.DataFrame]:
    """The synthetic cohort and its patch store under ``work`` (reused when already there)."""
    from iphbench.preprocessing.store import PatchStore, prepare_store
    from iphbench.synth import generate_cohort

    cohort = work / "cohort" / "cohort.csv"
    workers = max(1, min(os.cpu_count() or 1, 16))
    t0 = time.perf_counter()
    if not cohort.exists():
        n_sites = max(2, min(4, plan.subjects // 4))
        generate_cohort(work / "cohort", plan.subjects, n_sites, seed=0, size=plan.size, workers=workers)
    t1 = time.perf_counter()
    prep = work / "prep"
    prepare_store(cohort, prep, PrepConfig(patch_size=plan.patch), workers=workers, progress=False)
    subjects = PatchStore(prep).subjects_table
    print(
        f"cohort: {plan.subjects} synthetic subjects ({plan.size}), generated in {t1 - t0:.0f} s, "
        f"prepared in {time.perf_counter() - t1:.0f} s; {subjects['n_lesion_patches'].mean():.2f} lesion "
        f"patches of {plan.patch}³ per subject"
    )
    return cohort, prep, subjects


def fold_sizes(n: int, k: int = 5, val_fraction: float = 0.15) -> tuple[int, int]:
    """(training, validation) subjects of one fold of an ``n``-subject cohort (training/folds.py's rule)."""
    pool = n - math.ceil(n / k)
    n_val = max(1, round(val_fraction * pool))
    return pool - n_val, n_val


def study(
    work: Path, name: str, plan: Plan, cohort: Path, prep: Path, epochs: int, steps: int | None
) -> StudyConfig:
    out = work / name
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "prep").exists():
        (out / "prep").symlink_to(prep.resolve(), target_is_directory=True)  # prepare_store then skips all
    recipes = ["paper", "iphbench"] if plan.iph_styles else "paper"
    train = TrainConfig(
        recipe=recipes, recipe_models={"iphbench": plan.iph_styles} if plan.iph_styles else {},
        epochs=epochs, batch_size=plan.batch, steps_per_epoch=steps, early_stopping_patience=0,
        iphbench=plan.iph, compile_cache=plan.compile_cache or str(work / "compile-cache"),
    )  # fmt: skip
    if epochs == 1:  # the warm-up study: one short validation-bearing epoch per run
        train = replace(train, iphbench=replace(plan.iph, steps=2, val_every=2, warmup_steps=1))
    return StudyConfig(
        cohort=str(cohort), out=str(out), views=list(VIEWS), prep=PrepConfig(patch_size=plan.patch),
        models=ModelConfig(names=plan.styles, width=plan.width), folds=FoldsConfig(k=5), train=train,
    )  # fmt: skip


def run_phase(
    cfg: StudyConfig, cells: list[tuple[str, str, int]], n: int
) -> tuple[list[dict[str, Any]], float]:
    """Train exactly ``cells`` (style, view, fold) of the study, ``n`` at once on the device, through the
    study's executor (``run_local``: spawned workers when ``n`` > 1); outcomes and wall seconds."""
    from iphbench.study.executors import job, run_local, visible_devices
    from iphbench.study.grid import open_study, prepare_study

    open_study(cfg)
    prepare_study(cfg)
    jobs = [job(cfg.to_dict(), s, v, k) for s, v, k in cells]
    t0 = time.perf_counter()
    outcomes = run_local(jobs, visible_devices(cfg.train.device), lambda _: None, lambda *_: None, n)
    wall = time.perf_counter() - t0
    for o in outcomes:
        if o["status"] != "done":
            raise RuntimeError(
                f"sample run {o['style']}/{o['view']}/fold{o['fold']} failed: {o.get('error')}"
            )
    return outcomes, wall


# -- measurements ----------------------------------------------------------------------------


@dataclass
class RunTiming:
    """Measured on one sampled run (epochs after the first; the first pays compilation)."""

    style: str
    view: str
    fold: int
    epochs: int
    train_rate: float  # training slices/s
    val_rate: float  # validation slices/s
    val_slices: int
    overhead: float  # s per epoch outside training and validation (checkpoints, history, status)
    startup: float  # s before the first epoch (data, model) + the first epoch's extra (compilation)
    epoch_seconds: float  # median measured epoch (train + validation + overhead)
    compile: str
    extra: dict[str, float] = field(default_factory=dict)


def val_slices(prep: Path, folds: pd.DataFrame, style: str, view: str, fold: int, cfg: StudyConfig) -> int:
    """Validation slices of a run, as the trainer loads them (recipe settings included)."""
    from iphbench.preprocessing.store import PatchStore
    from iphbench.training.folds import fold_subjects
    from iphbench.training.recipe import resolve_recipe
    from iphbench.training.sampling import load_run_slices

    store = PatchStore(prep)
    r = resolve_recipe(cfg.train, parse_style(style).recipe, store.config)
    ctx = r.context_patches_per_subject
    va = load_run_slices(store, fold_subjects(folds, fold, "val"), view, r.skip_empty, ctx,
                         context_fraction=r.context_share if ctx else None, seed=cfg.train.seed)  # fmt: skip
    return va.n


def timing(out: Path, outcome: dict[str, Any], n_val: int) -> RunTiming:
    run = out / "runs" / outcome["style"] / outcome["view"] / f"fold{outcome['fold']}"
    hist = pd.read_csv(run / "history.csv")
    done = json.loads((run / "done.json").read_text())
    slices = hist["slices"].diff().fillna(hist["slices"].iloc[0])
    timed = hist.index[1:] if len(hist) > 1 else hist.index
    train_s = (hist["seconds"] - hist["val_seconds"])[timed]
    loop = float(done["seconds"])
    overhead = max(0.0, (loop - float(hist["seconds"].sum())) / len(hist))
    epoch = float(hist["seconds"][timed].median()) + overhead
    first_extra = (
        max(0.0, float(hist["seconds"].iloc[0] - hist["seconds"][timed].median())) if len(hist) > 1 else 0.0
    )
    return RunTiming(
        outcome["style"], outcome["view"], int(outcome["fold"]), len(timed),
        float(slices[timed].sum() / train_s.sum()), n_val / float(hist["val_seconds"][timed].median()), n_val,
        overhead, float(outcome["seconds"]) - loop + first_extra, epoch, str(done.get("compile", "")),
    )  # fmt: skip


# -- extrapolation ---------------------------------------------------------------------------


def paper_epoch(t: RunTiming, per_subject: float, n: int = PAPER["subjects"]) -> float:
    """Seconds of one paper-recipe epoch of an ``n``-subject fold (extrapolated)."""
    n_train, n_val = fold_sizes(n)
    return n_train * per_subject / t.train_rate + n_val * per_subject / t.val_rate + t.overhead


def iphbench_run(
    t: RunTiming, iph: IphbenchRecipe, val_per_subject: float, n: int = PAPER["subjects"]
) -> float:
    """Seconds of one iphbench-recipe run at the default step budget on an ``n``-subject fold (extrapolated)."""
    _, n_val = fold_sizes(n)
    validations = math.ceil(iph.steps / iph.val_every)
    per_validation = n_val * val_per_subject / t.val_rate + t.overhead
    return t.startup + iph.steps * iph.batch_size / t.train_rate + validations * per_validation


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--reduced", action="store_true", help="the CPU mode (tiny cohort, width 8) even on a GPU"
    )
    ap.add_argument("--subjects", type=int, default=None, help="sample cohort size (GPU 20, CPU 8)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per sampled run (GPU 4, CPU 3)")
    ap.add_argument("--steps-per-epoch", type=int, default=None,
                    help="training steps per epoch (GPU: as many as a 239-subject fold has; CPU 3)")  # fmt: skip
    ap.add_argument("--styles", nargs="*", default=None, help="architectures to sample (default all four)")
    ap.add_argument(
        "--iphbench-styles",
        nargs="*",
        default=["unet"],
        help="architectures whose iphbench recipe is timed ('all')",
    )
    ap.add_argument(
        "--runs-per-device", type=int, nargs="*", default=None, help="N to time (GPU 1 2 4, CPU 1 2)"
    )
    ap.add_argument(
        "--work",
        type=Path,
        default=None,
        help="keep cohort, store and runs here (default: a temporary folder)",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    ap.add_argument(
        "--compile-cache", default=None, help="compile cache folder (default: <work>/compile-cache)"
    )
    ap.add_argument(
        "--budget-s", type=float, default=None, help="skip runs-per-device phases past 60 %% of this"
    )
    args = ap.parse_args()
    plan = replace(make_plan(args), compile_cache=args.compile_cache)
    if args.work is None:
        with tempfile.TemporaryDirectory(prefix="iphbench-grid-") as tmp:
            report(plan, Path(tmp), args.json, args.budget_s)
    else:
        args.work.mkdir(parents=True, exist_ok=True)
        report(plan, args.work, args.json, args.budget_s)


def report(plan: Plan, work: Path, json_path: Path | None, budget_s: float | None = None) -> None:
    """Run the phases, printing each table as soon as its numbers exist (a run stopped by a time
    limit keeps what it printed; ``--json`` is rewritten after each phase)."""
    from iphbench.training.folds import read_folds

    t_start = time.perf_counter()
    print(f"grid_time: {plan.label} ({plan.device}), torch {torch.__version__}, {time.strftime('%Y-%m-%d')}")
    cohort, prep, subjects = make_store(work, plan)
    per_subject = (
        float(subjects["n_lesion_patches"].mean()) * plan.patch
    )  # paper: every slice of a lesion patch
    n_train, n_val = fold_sizes(PAPER["subjects"])
    steps = plan.steps_per_epoch or max(1, round(n_train * per_subject / plan.batch))
    print(f"a 239-subject fold: {n_train} training and {n_val} validation subjects, {n_train * per_subject:,.0f} "
          f"training slices per paper epoch; sampled epochs train {steps} steps of {plan.batch}")  # fmt: skip
    iph_names = [f"{a}+iphbench" for a in plan.iph_styles]
    cells = [(s, VIEWS[i % 3], 0) for i, s in enumerate([*plan.styles, *iph_names])]
    if plan.warm_cache:  # compile every sampled graph once, all at once (the first runs of a grid do this)
        _, wall = run_phase(study(work, "warm", plan, cohort, prep, 1, 2), cells, len(cells))
        print(f"compile-cache warm-up: {len(cells)} runs at once, {wall:.0f} s (measured)")
    cfg = study(work, "sample", plan, cohort, prep, plan.epochs, steps)
    outcomes, wall = run_phase(cfg, cells, 1)
    folds = read_folds(Path(cfg.out) / "folds.csv")
    sample = {o["style"]: timing(Path(cfg.out), o, val_slices(prep, folds, *_cell(o), cfg)) for o in outcomes}
    print(f"sample: {len(cells)} runs one at a time, {wall:.0f} s (measured)\n")
    result: dict[str, Any] = {"plan": asdict(plan), "per_subject_slices": per_subject,
                              "sample": {s: asdict(t) for s, t in sample.items()}}  # fmt: skip
    note = " (CPU, reduced: the extrapolations only show the arithmetic)" if plan.label != "GPU" else ""
    print_sample(sample, plan, per_subject, note)
    paper_h = grid_hours(sample, per_subject, folds, plan, note, result)
    _write(json_path, result)

    # N runs at once (U-Net, paper recipe), on views and folds the sample did not use
    base = sample[plan.styles[0]]
    concurrency: dict[int, dict[str, float]] = {
        1: {"aggregate_rate": base.train_rate, "wall": 0.0, "runs": 1}
    }
    for n in [n for n in plan.runs_per_device if n > 1]:
        if budget_s is not None and time.perf_counter() - t_start > 0.6 * budget_s:
            print(f"N={n}: skipped (--budget-s {budget_s:.0f} nearly spent)")
            continue
        group = [(plan.styles[0], VIEWS[(n - 1) % 3], k) for k in range(1, min(n, 4) + 1)]
        outs, wall = run_phase(cfg, group, n)
        rates = [timing(Path(cfg.out), o, val_slices(prep, folds, *_cell(o), cfg)).train_rate for o in outs]
        concurrency[n] = {"aggregate_rate": sum(rates), "wall": wall, "runs": len(group)}
    print("\n### Runs per device (U-Net, paper recipe; measured)")
    print("| N | runs at once | aggregate train slices/s | speed-up vs N=1 | wall s of the group |")
    print("|---:|---:|---:|---:|---:|")
    for n, c in concurrency.items():
        print(f"| {n} | {c['runs']:.0f} | {c['aggregate_rate']:,.0f} | {c['aggregate_rate'] / base.train_rate:.2f} | "
              f"{c['wall']:.0f} |")  # fmt: skip
    total = sum(paper_h.values())
    best_n = max(concurrency, key=lambda n: concurrency[n]["aggregate_rate"])
    speedup = concurrency[best_n]["aggregate_rate"] / base.train_rate
    print(f"\npaper grid at 239 subjects with N={best_n} runs per device (speed-up {speedup:.2f} measured on U-Net, "
          f"applied to every style): **{total / speedup:.2f} h** (EXTRAPOLATED{note})")  # fmt: skip
    if plan.label == "GPU":
        verdict = "met" if total / speedup <= TARGET_HOURS else "NOT met"
        print(f"target <= {TARGET_HOURS:.0f} h on one GPU: {verdict}")
    result.update(runs_per_device=concurrency, best_n=best_n, paper_grid_hours_best_n=total / speedup)
    _write(json_path, result)
    print(f"\nbench wall time {time.perf_counter() - t_start:.0f} s")


def _cell(o: dict[str, Any]) -> tuple[str, str, int]:
    return o["style"], o["view"], int(o["fold"])


def _write(path: Path | None, result: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(result, indent=1, default=str))


def print_sample(sample: dict[str, RunTiming], plan: Plan, per_subject: float, note: str) -> None:
    print(
        f"### Measured per style{note}: {plan.subjects}-subject sample, width {plan.width}, {plan.patch}³ patches"
    )
    print("| style | run | timed epochs | train slices/s | val slices/s | overhead s/epoch | start-up s | compile "
          "| epoch s (measured) | epochs/h (measured) | epoch s at 239 subjects (extrapolated) |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for s, t in sample.items():
        ext = f"{paper_epoch(t, per_subject):.2f}" if "+" not in s else "–"
        print(f"| {s} | {t.view} fold{t.fold} | {t.epochs} | {t.train_rate:,.0f} | {t.val_rate:,.0f} | {t.overhead:.3f} "
              f"| {t.startup:.1f} | {t.compile} | {t.epoch_seconds:.2f} | {3600 / t.epoch_seconds:,.0f} | {ext} |")  # fmt: skip


def grid_hours(
    sample: dict[str, RunTiming],
    per_subject: float,
    folds: pd.DataFrame,
    plan: Plan,
    note: str,
    result: dict[str, Any],
) -> dict[str, float]:
    """Print (and store in ``result``) the extrapolated paper and iphbench grids, one run at a time."""
    from iphbench.training.folds import fold_subjects

    runs_per_style = PAPER["views"] * PAPER["folds"]
    paper_h = {
        s: runs_per_style * (t.startup + PAPER["epochs"] * paper_epoch(t, per_subject)) / 3600
        for s, t in sample.items()
        if "+" not in s
    }
    print(f"\n### The paper grid at 239 subjects, one run at a time (EXTRAPOLATED{note})")
    print(f"{len(paper_h)} styles × 3 views × 5 folds × 300 epochs, no early stopping (an upper bound); "
          f"{per_subject / plan.patch:.2f} lesion patches per subject as in the sample cohort")  # fmt: skip
    print("| style | hours |\n|---|---:|")
    for s, h in paper_h.items():
        print(f"| {s} | {h:.2f} |")
    print(f"| **all {runs_per_style * len(paper_h)} runs** | **{sum(paper_h.values()):.2f}** |")
    result.update(paper_grid_hours=paper_h, paper_grid_hours_total_n1=sum(paper_h.values()))
    if not plan.iph_styles:
        return paper_h
    default, iph_h = IphbenchRecipe(), {}
    ref_arch = plan.iph_styles[0]
    for arch in plan.styles:
        t = sample.get(f"{arch}+iphbench")
        if t is None:  # scaled from the measured iphbench run by the paper-recipe rate ratio (labelled)
            ref, ratio = sample[f"{ref_arch}+iphbench"], sample[arch].train_rate / sample[ref_arch].train_rate
            t = replace(ref, train_rate=ref.train_rate * ratio, val_rate=ref.val_rate * ratio)
        val_per_subject = t.val_slices / len(fold_subjects(folds, t.fold, "val"))
        iph_h[arch] = runs_per_style * iphbench_run(t, default, val_per_subject) / 3600
    print(f"\n### The iphbench-recipe grid at 239 subjects, one run at a time (EXTRAPOLATED{note}): "
          f"{default.steps} steps × batch {default.batch_size}, validation every {default.val_every} steps")  # fmt: skip
    print("| style | hours | from |\n|---|---:|---|")
    for arch, h in iph_h.items():
        how = (
            "its measured rates"
            if arch in plan.iph_styles
            else f"{ref_arch}+iphbench, scaled by the paper-recipe rates"
        )
        print(f"| {arch}+iphbench | {h:.2f} | {how} |")
    print(f"| **all {runs_per_style * len(iph_h)} runs** | **{sum(iph_h.values()):.2f}** | |")
    result.update(iphbench_grid_hours=iph_h)
    return paper_h


if __name__ == "__main__":
    main()
