"""Benchmark and sanity report of the synthetic cohort (`iphbench synth`).

Measures: wall time of a 24-subject, 4-site `small` cohort (workers 1 vs 2, same process),
one `clinical` subject, then from the written files: noise SD per site (air in the corners)
vs configured, rendered vs target hemorrhage volume, hemorrhage contrast-to-noise ratio, and
a learnability floor: Dice of a plain threshold rule (3×3×3 median, HU >= 48) inside (a) a
crude image-only brain mask and (b) the phantom's true intracranial mask eroded by 2 voxels
(skull partial volume makes a 1-2 voxel bright rim at the brain edge; (b) shows the
hemorrhage contrast itself). Subjects are re-rendered in memory to get the label maps, and
checked to equal the files.

Usage:
    .venv/bin/python bench/synth_cohort.py [--quick]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from iphbench.io.volume import read_nifti
from iphbench.synth import generate_cohort, plan_cohort, synthesize_subject
from iphbench.synth.phantom import INTRACRANIAL


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="8 subjects, no workers comparison, no clinical subject"
    )
    args = parser.parse_args()
    n = 8 if args.quick else 24

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


if __name__ == "__main__":
    main()
