"""Benchmark and sanity report of the synthetic cohort (`iphbench synth`).

Measures: wall time of a 24-subject, 4-site `small` cohort (workers 1 vs 2, same process),
one `clinical` subject, then from the written files: noise SD per site (air in the corners)
vs configured, rendered vs target hemorrhage volume, hemorrhage contrast-to-noise ratio, and
a learnability floor: Dice of a plain threshold rule (3×3×3 median, HU >= 48) inside (a) a
crude image-only brain mask and (b) the phantom's true intracranial mask eroded by 2 voxels
(skull partial volume makes a 1-2 voxel bright rim at the brain edge; (b) shows the
hemorrhage contrast itself). Subjects are re-rendered in memory to get the label maps, and
checked to equal the files.

Then standard vs hard preset side by side (issue 11): two cohorts of the same size with a quarter
hemorrhage-free (24 subjects, 4 sites, `small`, seed 0), generation time per subject, and on each
the same threshold rule: Dice on hemorrhage subjects, false-positive mL on hemorrhage-free
subjects and outside the mask on all, where the false positives lie (by the phantom's label), the
clot's contrast-to-noise ratio, and lesion retention by the `ct` brain extractor that `prepare` uses.

With `--ablation`, also the hard preset with one group of items switched off at a time (what each
group costs the threshold rule).

Usage:
    .venv/bin/python bench/synth_cohort.py [--quick] [--presets-only] [--ablation]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from iphbench.io.volume import read_nifti
from iphbench.preprocessing.brain import extract_brain
from iphbench.synth import HardLabel, HardPreset, generate_cohort, plan_cohort, synthesize_subject
from iphbench.synth.phantom import INTRACRANIAL, Tissue


def _brain_mask(img: np.ndarray) -> np.ndarray:
    """Crude image-only brain mask: soft-tissue HU inside the skull, largest component, eroded."""
    soft = (img > -20) & (img < 100)
    skull = ndimage.binary_dilation(img > 300, iterations=1)
    parts, n = ndimage.label(soft & ~skull)
    if n == 0:
        return soft
    sizes = ndimage.sum(np.ones_like(parts), parts, index=range(1, n + 1))
    brain = parts == (int(np.argmax(sizes)) + 1)
    return ndimage.binary_erosion(ndimage.binary_fill_holes(brain), iterations=1)


def _threshold_dice(img: np.ndarray, mask: np.ndarray, brain: np.ndarray) -> float:
    pred = (ndimage.median_filter(img.astype(np.float32), 3) >= 48.0) & brain
    inter = float((pred & (mask > 0)).sum())
    denom = float(pred.sum() + (mask > 0).sum())
    return 1.0 if denom == 0 else 2 * inter / denom


def _threshold_rule(img: np.ndarray, brain: np.ndarray) -> np.ndarray:
    return (ndimage.median_filter(img.astype(np.float32), 3) >= 48.0) & brain


_FP_WHERE = (
    ("calcification", (HardLabel.CHOROID_CALC, HardLabel.PINEAL_CALC, HardLabel.FALX_CALC)),
    ("dense falx", (HardLabel.FALX,)),
    ("subdural", (HardLabel.SUBDURAL,)),
    ("subarachnoid", (HardLabel.SUBARACHNOID,)),
    ("intraventricular", (HardLabel.INTRAVENTRICULAR,)),
    ("bone / skull edge", (Tissue.BONE, Tissue.DIPLOE, Tissue.SOFT, Tissue.FAT, Tissue.AIR)),
    ("CSF", (Tissue.CSF, Tissue.VENTRICLE)),
    ("oedema", (Tissue.EDEMA,)),
    ("parenchyma", (Tissue.GREY, Tissue.WHITE, Tissue.DEEP_GREY)),
    ("hemorrhage voxel outside the mask (partial volume)", (Tissue.HEMORRHAGE,)),
)


def _preset_run(out: Path, n: int, preset: str | HardPreset) -> dict[str, object]:
    """Generate one cohort with ``preset`` and measure the threshold rule, contrast and brain extraction on it."""
    t0, c0 = time.perf_counter(), time.process_time()
    csv_path = generate_cohort(
        out, n_subjects=n, n_sites=4, seed=0, size="small", healthy_fraction=0.25, preset=preset
    )
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    specs = {
        sp.subject: sp for sp in plan_cohort(n, 4, seed=0, size="small", healthy_fraction=0.25, preset=preset)
    }
    res: dict[str, list[float]] = {
        k: []
        for k in (
            "dice",
            "dice_small",
            "fp_free",
            "fp_free_parts",
            "fp_lesion",
            "cnr",
            "retention",
            "hu",
            "dice_ct",
            "fp_free_ct",
            "fp_free_parts_ct",
        )
    }
    where: dict[str, float] = {}
    where_ct: dict[str, float] = {}
    shapes = set()
    for r in rows:
        image = read_nifti(csv_path.parent / r["image"])
        img = image.array
        mask = read_nifti(csv_path.parent / r["mask"], dtype=np.uint8).array > 0
        shapes.add(
            f"{r['synth_matrix']} @ {float(r['synth_spacing_x']):.2f}×{float(r['synth_spacing_z']):.2f} mm"
        )
        scan = synthesize_subject(specs[r["subject"]])
        assert np.array_equal(scan.mask > 0, mask), f"{r['subject']}: file differs from re-render"
        voxel_ml = scan.grid.voxel_ml
        pred = _threshold_rule(img, _brain_mask(img))
        fp = pred & ~mask
        brain = extract_brain(image, "ct").astype(bool)  # what `prepare` keeps for a model
        pred_ct = _threshold_rule(img, brain)
        fp_ct = pred_ct & ~mask
        for name, labels in _FP_WHERE:
            inside = np.isin(scan.labels, [int(t) for t in labels])
            where[name] = where.get(name, 0.0) + float((fp & inside).sum()) * voxel_ml
            where_ct[name] = where_ct.get(name, 0.0) + float((fp_ct & inside).sum()) * voxel_ml
        if r["target_ml"]:
            inter = float((pred & mask).sum())
            dice = 2 * inter / float(pred.sum() + mask.sum())
            res["dice"].append(dice)
            if float(r["lesion_ml"]) < 2.0:
                res["dice_small"].append(dice)
            res["fp_lesion"].append(float(fp.sum()) * voxel_ml)
            core = ndimage.binary_erosion(mask)
            core = core if core.any() else mask
            ring = ndimage.binary_dilation(mask, iterations=4) & ~ndimage.binary_dilation(mask, iterations=2)
            ring &= np.isin(
                scan.labels, [int(t) for t in (Tissue.GREY, Tissue.WHITE, Tissue.DEEP_GREY, Tissue.EDEMA)]
            )
            ring &= ~ndimage.binary_dilation(
                ~np.isin(scan.labels, [int(t) for t in INTRACRANIAL]), iterations=2
            )
            res["cnr"].append(
                (float(img[core].mean()) - float(img[ring].mean())) / float(r["synth_noise_sd"])
            )
            res["hu"].append(float(r["lesion_hu"]))
            res["retention"].append(float((brain & mask).sum()) / float(mask.sum()))
            res["dice_ct"].append(2 * float((pred_ct & mask).sum()) / float(pred_ct.sum() + mask.sum()))
        else:
            res["fp_free"].append(float(fp.sum()) * voxel_ml)
            res["fp_free_parts"].append(float(ndimage.label(fp)[1]))
            res["fp_free_ct"].append(float(fp_ct.sum()) * voxel_ml)
            res["fp_free_parts_ct"].append(float(ndimage.label(fp_ct)[1]))
    return {
        "wall": wall,
        "cpu": cpu,
        "n": n,
        "rows": rows,
        "res": res,
        "where": where,
        "where_ct": where_ct,
        "shapes": sorted(shapes),
    }


def _presets_report(tmp: Path, n: int) -> None:
    runs = {preset: _preset_run(tmp / f"preset_{preset}", n, preset) for preset in ("standard", "hard")}
    n_free = len(runs["standard"]["res"]["fp_free"])  # type: ignore[index]
    print(
        f"\n## standard vs hard preset: {n} subjects ({n - n_free} with a hemorrhage, {n_free} without), 4 sites, size small, seed 0\n"
    )

    def ms(v: list[float]) -> str:
        return f"{np.mean(v):.3f} ± {np.std(v):.3f}" if v else "n/a"

    table = [
        ("grids", lambda r: "; ".join(r["shapes"])),
        ("generation wall s / subject (workers=1)", lambda r: f"{r['wall'] / r['n']:.2f}"),
        ("generation CPU s / subject", lambda r: f"{r['cpu'] / r['n']:.2f}"),
        ("threshold-rule Dice, hemorrhage subjects (mean ± sd)", lambda r: ms(r["res"]["dice"])),
        ("threshold-rule Dice, median", lambda r: f"{np.median(r['res']['dice']):.3f}"),
        (
            "threshold-rule Dice, bleeds < 2 mL (n)",
            lambda r: f"{ms(r['res']['dice_small'])} ({len(r['res']['dice_small'])})",
        ),
        (
            "false-positive mL per hemorrhage-free subject (mean / max)",
            lambda r: f"{np.mean(r['res']['fp_free']):.2f} / {np.max(r['res']['fp_free']):.2f}",
        ),
        (
            "false-positive connected parts per hemorrhage-free subject (mean / max)",
            lambda r: f"{np.mean(r['res']['fp_free_parts']):.1f} / {np.max(r['res']['fp_free_parts']):.0f}",
        ),
        (
            "false-positive mL outside the mask, hemorrhage subjects (mean)",
            lambda r: f"{np.mean(r['res']['fp_lesion']):.2f}",
        ),
        (
            "clot clean HU (mean, range)",
            lambda r: f"{np.mean(r['res']['hu']):.1f} ({min(r['res']['hu']):.1f}–{max(r['res']['hu']):.1f})",
        ),
        (
            "clot CNR vs surrounding parenchyma (min / median)",
            lambda r: f"{min(r['res']['cnr']):.1f} / {np.median(r['res']['cnr']):.1f}",
        ),
        (
            "same rule inside the `ct` brain mask of `prepare`: Dice (mean ± sd)",
            lambda r: ms(r["res"]["dice_ct"]),
        ),
        (
            "same rule inside the `ct` brain mask: FP mL / parts per hemorrhage-free subject (mean)",
            lambda r: f"{np.mean(r['res']['fp_free_ct']):.2f} / {np.mean(r['res']['fp_free_parts_ct']):.1f}",
        ),
        (
            "lesion retention by the `ct` brain extractor (worst subject)",
            lambda r: f"{100 * min(r['res']['retention']):.2f} %",
        ),
    ]
    print("| quantity | standard | hard |")
    print("|---|---|---|")
    for name, fn in table:
        print(f"| {name} | {fn(runs['standard'])} | {fn(runs['hard'])} |")
    print(
        "\n| where the rule's false positives lie (mL over the cohort; label of the phantom) "
        "| standard | hard | standard, `ct` brain mask | hard, `ct` brain mask |"
    )
    print("|---|---|---|---|---|")
    for name, _ in _FP_WHERE:
        vals = [runs[p][key].get(name, 0.0) for key in ("where", "where_ct") for p in ("standard", "hard")]  # type: ignore[union-attr]
        print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in vals) + " |")
    hard_rows = runs["hard"]["rows"]
    counts = {
        col: sum(1 for r in hard_rows if float(r[col] or 0) > 0)  # type: ignore[union-attr]
        for col in (
            "synth_choroid_calc_ml",
            "synth_pineal_calc_ml",
            "synth_falx_calc_ml",
            "synth_subdural_ml",
            "synth_subarachnoid_ml",
            "synth_intraventricular_ml",
        )
    }
    juxta = sum(1 for r in hard_rows if r["synth_juxtacortical"] == "1")  # type: ignore[index]
    print(
        f"\nHard cohort: subjects with {', '.join(f'{k[6:-3]} {v}' for k, v in counts.items())}; juxtacortical bleeds {juxta}."
    )


_ABLATIONS: tuple[tuple[str, dict[str, object]], ...] = (
    (
        "calcifications and dense falx off",
        {"choroid_calc_p": 0.0, "pineal_calc_p": 0.0, "falx_calc_p": 0.0, "dense_falx": False},
    ),
    ("bone edges off", {"bone_edges": False}),
    ("streaks off", {"streaks": False}),
    ("standard clot HU (lesion_hu off)", {"lesion_hu": None}),
    (
        "site slices, point-sampled (slice_mm and partial_volume off)",
        {"slice_mm": None, "partial_volume": False},
    ),
    ("no juxtacortical bleeds", {"juxtacortical_fraction": 0.0}),
    ("no unlabelled bleeds", {"subdural_p": 0.0, "subarachnoid_p": 0.0, "intraventricular_p": 0.0}),
)


def _ablation_report(tmp: Path, n: int) -> None:
    print(f"\n## hard preset, one group of items off at a time ({n} subjects, 4 sites, small, seed 0)\n")
    print(
        "| hard preset variant | threshold-rule Dice (mean ± sd) | Dice < 2 mL | FP mL / hemorrhage-free subject | FP mL outside mask / hemorrhage subject |"
    )
    print("|---|---|---|---|---|")
    variants: list[tuple[str, HardPreset]] = [("all items on (default)", HardPreset())]
    variants += [(name, dataclasses.replace(HardPreset(), **changes)) for name, changes in _ABLATIONS]  # type: ignore[arg-type]
    for k, (name, preset) in enumerate(variants):
        r = _preset_run(tmp / f"ablation{k}", n, preset)["res"]
        small = f"{np.mean(r['dice_small']):.3f}" if r["dice_small"] else "n/a"  # type: ignore[index]
        print(
            f"| {name} | {np.mean(r['dice']):.3f} ± {np.std(r['dice']):.3f} | {small} "  # type: ignore[index]
            f"| {np.mean(r['fp_free']):.2f} | {np.mean(r['fp_lesion']):.2f} |",  # type: ignore[index]
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="8 subjects, no workers comparison, no clinical subject"
    )
    parser.add_argument("--presets-only", action="store_true", help="only the standard vs hard comparison")
    parser.add_argument("--ablation", action="store_true", help="also the hard preset with item groups off")
    args = parser.parse_args()
    n = 8 if args.quick else 24
    if args.presets_only:
        with tempfile.TemporaryDirectory() as tmp:
            _presets_report(Path(tmp), n)
            if args.ablation:
                _ablation_report(Path(tmp), n)
        return

    with tempfile.TemporaryDirectory() as tmp:
        times = {}
        t0, c0 = time.perf_counter(), time.process_time()
        csv_path = generate_cohort(Path(tmp) / "w1", n_subjects=n, n_sites=4, seed=0, workers=1)
        times["workers=1"] = (time.perf_counter() - t0, time.process_time() - c0)
        if not args.quick:
            t0, c0 = time.perf_counter(), time.process_time()
            generate_cohort(Path(tmp) / "w2", n_subjects=n, n_sites=4, seed=0, workers=2)
            times["workers=2"] = (time.perf_counter() - t0, time.process_time() - c0)

        print(f"## synth: {n} subjects, 4 sites, size small (seed 0)\n")
        print("| run | wall s | wall s / subject | CPU s of this process |")
        print("|---|---|---|---|")
        for k, (wall, cpu) in times.items():
            print(f"| {k} | {wall:.2f} | {wall / n:.3f} | {cpu:.2f} |")
        if not args.quick:
            spec = plan_cohort(1, 1, seed=0, size="clinical")[0]
            t0, c0 = time.perf_counter(), time.process_time()
            scan = synthesize_subject(spec)
            t_clin, c_clin = time.perf_counter() - t0, time.process_time() - c0
            print(
                f"| clinical subject {scan.grid.shape} (render only) | {t_clin:.2f} | {t_clin:.3f} | {c_clin:.2f} |"
            )

        with open(csv_path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        site_rows: dict[str, list[float]] = {}
        cfg: dict[str, dict[str, str]] = {}
        vol_err, cnr, dice, dice_oracle, hu_in = [], [], [], [], []
        specs = {sp.subject: sp for sp in plan_cohort(n, 4, seed=0)}
        for r in rows:
            img = read_nifti(csv_path.parent / r["image"]).array
            mask = read_nifti(csv_path.parent / r["mask"], dtype=np.uint8).array
            site_rows.setdefault(r["site"], []).append(float(img[:8, :8, :].std()))
            cfg[r["site"]] = r
            if r["target_ml"]:
                vol_err.append(abs(float(r["lesion_ml"]) / float(r["target_ml"]) - 1))
                core = ndimage.binary_erosion(mask > 0)
                core = core if core.any() else mask > 0
                ring = ndimage.binary_dilation(mask > 0, iterations=4) & ~ndimage.binary_dilation(
                    mask > 0, iterations=2
                )
                ring &= (img > 15) & (img < 45)
                noise = float(r["synth_noise_sd"])
                cnr.append((float(img[core].mean()) - float(img[ring].mean())) / noise)
                hu_in.append(float(np.median(img[core])))
                dice.append(_threshold_dice(img, mask, _brain_mask(img)))
                scan = synthesize_subject(specs[r["subject"]])
                assert np.array_equal(scan.mask, mask), f"{r['subject']}: file differs from re-render"
                intra = np.isin(scan.labels, [int(t) for t in INTRACRANIAL])
                dice_oracle.append(_threshold_dice(img, mask, ndimage.binary_erosion(intra, iterations=2)))

        print(
            "\n| site | N | matrix | spacing mm | noise SD configured | noise SD measured (air) | storage |"
        )
        print("|---|---|---|---|---|---|---|")
        for site, sds in sorted(site_rows.items()):
            c = cfg[site]
            spacing = f"{float(c['synth_spacing_x']):.2f}×{float(c['synth_spacing_y']):.2f}×{float(c['synth_spacing_z']):.2f}"
            print(
                f"| {site} | {len(sds)} | {c['synth_matrix']} | {spacing} | {float(c['synth_noise_sd']):.2f} "
                f"| {np.mean(sds):.2f} | {c['synth_storage']} |"
            )

        vols = [float(r["lesion_ml"]) for r in rows if r["target_ml"]]
        print("\n| quantity | value |")
        print("|---|---|")
        print(f"| hemorrhage volume range mL | {min(vols):.2f} – {max(vols):.1f} |")
        print(f"| max relative error, rendered vs target volume | {max(vol_err):.3%} |")
        print(f"| median HU inside hemorrhage core (mean over subjects) | {np.mean(hu_in):.1f} |")
        print(
            f"| hemorrhage CNR vs surrounding parenchyma (min / median) | {min(cnr):.1f} / {np.median(cnr):.1f} |"
        )
        small = [v < 2 for v in vols]
        for name, d in (("image-only brain mask", dice), ("true brain eroded 2 voxels", dice_oracle)):
            d_small = np.mean([x for x, s in zip(d, small, strict=True) if s]) if any(small) else float("nan")
            print(
                f"| threshold-rule Dice, {name}: all (mean ± sd) / < 2 mL | "
                f"{np.mean(d):.3f} ± {np.std(d):.3f} / {d_small:.3f} |"
            )
        _presets_report(Path(tmp), n)
        if args.ablation:
            _ablation_report(Path(tmp), n)


if __name__ == "__main__":
    main()
