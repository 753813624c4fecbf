"""d_H95 time per subject: iphbench vs MONAI vs DeepMind surface-distance on 512x512x40 masks.

Each case is a synthetic lesion (an irregular blob made from an ellipsoid with a smoothed-noise
boundary) at 0.45 x 0.45 x 5 mm and a perturbed "prediction" (shifted, boundary re-drawn with other
noise, optionally a small false-positive blob), both full 512x512x40 bool arrays. The three
implementations run on the same masks in the same process; each gets its input in its natural form,
prepared outside the timed region (numpy bool for iphbench and surface-distance, a (1, 1, X, Y, Z)
torch bool tensor for MONAI, which converts it to float itself). The implementations run
round-robin and each time is the best of the repeats (the least disturbed by other processes).

Usage: ``.venv/bin/python bench/hd95.py [--quick]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from scipy.ndimage import gaussian_filter

SHAPE = (512, 512, 40)
SPACING = (0.45, 0.45, 5.0)


def blob(
    shape: tuple[int, ...],
    spacing: tuple[float, ...],
    centre_mm: tuple[float, ...],
    semi_axes_mm: tuple[float, ...],
    rng: np.random.Generator,
    roughness: float = 0.25,
) -> np.ndarray:
    """An irregular lesion: an ellipsoid whose radius is modulated by smooth noise (bool array)."""
    out = np.zeros(shape, dtype=bool)
    lo = [max(0, int((c - 1.6 * a) / s)) for c, a, s in zip(centre_mm, semi_axes_mm, spacing, strict=True)]
    hi = [
        min(n, int((c + 1.6 * a) / s) + 2)
        for c, a, s, n in zip(centre_mm, semi_axes_mm, spacing, shape, strict=True)
    ]
    grids = np.meshgrid(
        *[
            (np.arange(l_, h_) * s - c) / a
            for l_, h_, s, c, a in zip(lo, hi, spacing, centre_mm, semi_axes_mm, strict=True)
        ],
        indexing="ij",
    )
    r = np.sqrt(sum(g**2 for g in grids))
    noise = gaussian_filter(
        rng.standard_normal(r.shape),
        sigma=[max(1.0, 0.3 * a / s) for a, s in zip(semi_axes_mm, spacing, strict=True)],
    )
    noise /= noise.std() + 1e-12
    out[tuple(slice(l_, h_) for l_, h_ in zip(lo, hi, strict=True))] = r < 1.0 + roughness * noise * 0.5
    return out


def make_case(volume_ml: float, seed: int, false_positive: str = "") -> tuple[np.ndarray, np.ndarray]:
    """(pred, ref) for a lesion of about ``volume_ml``; the prediction is shifted and re-drawn.

    ``false_positive``: "" (none), "near" (a 3 mm blob next to the lesion) or "far" (one on the
    other side of the head, so the crop around both masks is mostly empty space).
    """
    rng = np.random.default_rng(seed)
    # semi-axes a, a, 0.8a in mm so that 4/3 pi a^2 (0.8 a) = volume
    a = (volume_ml * 1000.0 / (4.0 / 3.0 * np.pi * 0.8)) ** (1.0 / 3.0)
    centre = (0.55 * SHAPE[0] * SPACING[0], 0.45 * SHAPE[1] * SPACING[1], 0.5 * SHAPE[2] * SPACING[2])
    ref = blob(SHAPE, SPACING, centre, (a, a, 0.8 * a), rng)
    shifted = (centre[0] + 1.1, centre[1] - 0.7, centre[2] + 1.0)
    pred = blob(SHAPE, SPACING, shifted, (0.95 * a, 1.05 * a, 0.8 * a), rng)
    if false_positive == "near":
        fp_centre = (centre[0] + 2.5 * a, centre[1] + 1.5 * a, centre[2])
        pred |= blob(SHAPE, SPACING, fp_centre, (3.0, 3.0, 3.0), rng)
    elif false_positive == "far":
        fp_centre = (0.2 * SHAPE[0] * SPACING[0], 0.8 * SHAPE[1] * SPACING[1], 0.3 * SHAPE[2] * SPACING[2])
        pred |= blob(SHAPE, SPACING, fp_centre, (3.0, 3.0, 3.0), rng)
    return pred, ref


def _interleaved_times(fns: dict[str, Callable[[], float]], repeats: int) -> dict[str, tuple[float, float]]:
    """Best time (s) and value of each function, run round-robin so that load from other processes
    on a shared machine falls on all of them alike; the minimum is the least disturbed run."""
    values = {k: fn() for k, fn in fns.items()}  # warm-up (imports, caches)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            values[k] = fn()
            times[k].append(time.perf_counter() - t0)
    return {k: (min(times[k]), float(values[k])) for k in fns}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two cases, fewer repeats")
    args = ap.parse_args()

    import surface_distance as sd
    import torch
    from monai.metrics import compute_hausdorff_distance

    from iphbench.evaluation.metrics import hd95, segmentation_metrics

    torch.set_num_threads(1)
    cases = [("small ~1 mL", 1.0, 0, ""), ("large ~60 mL", 60.0, 1, "")]
    if not args.quick:
        cases += [
            ("medium ~15 mL", 15.0, 3, ""),
            ("small ~1 mL + near FP", 1.0, 2, "near"),
            ("large ~60 mL + near FP", 60.0, 4, "near"),
            ("small ~1 mL + far FP", 1.0, 5, "far"),
            ("large ~60 mL + far FP", 60.0, 6, "far"),
        ]
    repeats = 3 if args.quick else 7

    rows = []
    for name, ml, seed, fp in cases:
        pred, ref = make_case(ml, seed, fp)
        pred_t = torch.from_numpy(pred)[None, None]
        ref_t = torch.from_numpy(ref)[None, None]
        box = [
            np.flatnonzero(np.any(pred | ref, axis=tuple(j for j in range(3) if j != i))) for i in range(3)
        ]
        crop_voxels = int(np.prod([ix[-1] - ix[0] + 1 for ix in box]))

        def ours(p: np.ndarray = pred, r: np.ndarray = ref, method: str = "auto") -> float:
            return hd95(p, r, SPACING, method=method)  # type: ignore[arg-type]

        def monai(p: torch.Tensor = pred_t, r: torch.Tensor = ref_t) -> float:
            out = compute_hausdorff_distance(p, r, include_background=True, percentile=95, spacing=SPACING)
            return float(out[0, 0])

        def deepmind(p: np.ndarray = pred, r: np.ndarray = ref) -> float:
            d = sd.compute_surface_distances(r, p, SPACING)
            return float(sd.compute_robust_hausdorff(d, 95))

        res = _interleaved_times(
            {
                "ours": ours,
                "edt": lambda: ours(method="edt"),
                "kdtree": lambda: ours(method="kdtree"),
                "all": lambda p=pred, r=ref: segmentation_metrics(p, r, SPACING).hd95_mm,
                "monai": monai,
                "deepmind": deepmind,
            },
            repeats,
        )
        (t_ours, v_ours), (t_edt, v_edt), (t_kd, v_kd) = res["ours"], res["edt"], res["kdtree"]
        t_all, (t_monai, v_monai), (t_dm, v_dm) = res["all"][0], res["monai"], res["deepmind"]
        assert abs(v_edt - v_ours) < 1e-9 and abs(v_kd - v_ours) < 1e-9, (v_ours, v_edt, v_kd)
        rows.append({
            "case": name,
            "ref mL": f"{ref.sum() * np.prod(SPACING) / 1000:.2f}",
            "pred mL": f"{pred.sum() * np.prod(SPACING) / 1000:.2f}",
            "crop voxels": f"{crop_voxels / 1e3:.0f}k",
            "d_H95 ours (mm)": f"{v_ours:.4f}",
            "MONAI (mm)": f"{v_monai:.4f}",
            "surface-distance (mm)": f"{v_dm:.4f}",
            "ours (ms)": f"{1e3 * t_ours:.1f}",
            "ours EDT / k-d tree (ms)": f"{1e3 * t_edt:.1f} / {1e3 * t_kd:.1f}",
            "all metrics (ms)": f"{1e3 * t_all:.1f}",
            "MONAI (ms)": f"{1e3 * t_monai:.1f}",
            "surface-distance (ms)": f"{1e3 * t_dm:.1f}",
            "speed-up vs fastest": f"{min(t_monai, t_dm) / t_ours:.1f}x",
        })  # fmt: skip

    print(
        f"d_H95 on {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]} masks at {SPACING} mm; best of {repeats} interleaved runs after a warm-up; "
        f"torch 1 thread; {platform.machine()}, {os.cpu_count()} cores\n"
    )
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(r[k] for k in keys) + " |")


if __name__ == "__main__":
    main()
