"""A small fake study folder with planted effects, for tests and benchmarks of stats and report.

Nothing here is a result: the numbers are drawn from a model with known effects so that the
statistics can be checked against them. The planted effects (all on the F-measure):

- volume slope: +``volume_slope`` per mL of reference volume (d_H95: −0.08 mm per mL);
- site effect: site ``effect_site`` scores ``site_effect`` higher than the others;
- style effect: U-Net scores ``unet_penalty`` lower than the three other styles;
- orientation: 2DAxi is much worse, 2DCor the best, 2.5D close to 2DCor;
- a subject effect shared by every style (so that paired tests have something to remove);
- a few missed lesions (F = 0, d_H95 = the scan's field-of-view diagonal, as ``evaluate`` writes under
  the default ``worst`` policy) and, under ``full``, hemorrhage-free subjects;
- lesion-wise counts: larger hemorrhages have two lesions, a missed subject finds none, a few scans
  have a false lesion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from iphbench.config import StudyConfig

STYLES = ("unet", "attention_unet", "fpn", "transunet")
ORIENTS = ("2DAxi", "2DCor", "2DSag", "2.5D")
_ORIENT_SHIFT = {"2DAxi": -0.20, "2DCor": 0.03, "2DSag": 0.0, "2.5D": 0.02}


@dataclass
class FakeStudySpec:
    """Size and planted effects of a fake study."""

    sites: dict[str, int] = field(default_factory=lambda: {"A": 14, "B": 2, "C": 10, "D": 1, "E": 9, "F": 8})
    n_free: int = 3  # hemorrhage-free subjects (full protocol only), at site A
    volume_slope: float = 0.006  # F-measure per mL
    effect_site: str = "C"  # site with a planted effect
    site_effect: float = 0.10  # its F-measure offset
    unet_penalty: float = 0.05  # U-Net's F-measure deficit
    noise: float = 0.04  # residual sd of the F-measure
    p_missed: float = 0.03  # share of subject-rows with a missed lesion
    protocols: tuple[str, ...] = ("paper", "full")
    n_volumes: int = 4  # subjects (spread over volume) that get tiny NIfTI images, masks and predictions
    seed: int = 0


def make_fake_study(root: str | Path, spec: FakeStudySpec | None = None, notes: str | None = None) -> Path:
    """Write ``metrics.csv``, ``config.yaml``, ``prep/subjects.csv`` and a few tiny NIfTI volumes under ``root``.

    Returns:
        The study folder ``root``.
    """
    spec = spec or FakeStudySpec()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    subjects = _subjects(spec, rng)
    metrics = _metrics(subjects, spec, rng)
    metrics.to_csv(root / "metrics.csv", index=False)
    cfg = StudyConfig(name="fake-study", cohort=str(root / "cohort.csv"), out=str(root))
    cfg.eval.protocols = list(spec.protocols)
    cfg.save(root / "config.yaml")
    if notes is not None:
        (root / "notes.md").write_text(notes, encoding="utf-8")
    _volumes(root, subjects, metrics, spec, rng)
    return root


def _subjects(spec: FakeStudySpec, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    i = 0
    for site, n in spec.sites.items():
        for _ in range(n):
            i += 1
            rows.append({"subject": f"sub{i:03d}", "site": site, "age": float(np.clip(rng.normal(74, 12), 30, 99).round()),
                         "sex": "M" if rng.random() < 0.53 else "F", "fold": i % 5,
                         "ref_ml": float(np.clip(rng.lognormal(2.0, 0.9), 0.3, 60.0).round(3))})  # fmt: skip
    for _ in range(spec.n_free):
        i += 1
        rows.append({"subject": f"sub{i:03d}", "site": next(iter(spec.sites)), "age": 70.0, "sex": "F",
                     "fold": i % 5, "ref_ml": 0.0})  # fmt: skip
    return pd.DataFrame(rows)


FOV_DIAGONAL_MM = 383.3  # a 512 × 512 × 40 scan of 0.45 × 0.45 × 5 mm voxels


def _metrics(subjects: pd.DataFrame, spec: FakeStudySpec, rng: np.random.Generator) -> pd.DataFrame:
    subj_eff = dict(zip(subjects["subject"], rng.normal(0, 0.04, len(subjects)), strict=True))
    rows = []
    for protocol in spec.protocols:
        for style in STYLES:
            for orient in ORIENTS:
                for s in subjects.itertuples(index=False):
                    if s.ref_ml == 0:
                        if protocol != "full":
                            continue
                        fp = float(max(0.0, rng.normal(0.05, 0.1)))
                        status = "false_alarm" if fp > 0 else "both_empty"
                        rows.append({**s._asdict(), "style": style, "orientation": orient, "protocol": protocol,
                                     "dice": 0.0 if fp > 0 else 1.0, "iou": 0.0 if fp > 0 else 1.0,
                                     "hd95_mm": FOV_DIAGONAL_MM if fp > 0 else 0.0, "precision": np.nan,
                                     "recall": np.nan, "pred_ml": round(fp, 4), "status": status,
                                     "lesions_ref": 0, "lesions_hit": 0, "lesions_false": int(fp > 0.02)})  # fmt: skip
                        continue
                    f = 0.62 + spec.volume_slope * s.ref_ml + _ORIENT_SHIFT[orient] + subj_eff[s.subject]
                    f += spec.site_effect * (s.site == spec.effect_site) - spec.unet_penalty * (
                        style == "unet"
                    )
                    f -= 0.02 * (protocol == "full")
                    f = float(np.clip(f + rng.normal(0, spec.noise), 0.02, 0.99))
                    hd = float(
                        max(0.3, 9.0 - 0.08 * s.ref_ml - 8 * _ORIENT_SHIFT[orient] + rng.normal(0, 1.0))
                    )
                    bias = -0.15 if style == "unet" else 0.05
                    pred = float(s.ref_ml * np.exp(rng.normal(bias, 0.25)))
                    status = "ok"
                    n_les = 1 + int(s.ref_ml > 15)
                    hit = n_les - int(n_les > 1 and rng.random() < 0.3)
                    false = int(rng.random() < (0.3 if style == "unet" else 0.15))
                    if rng.random() < spec.p_missed:
                        f, hd, pred, status, hit, false = 0.0, FOV_DIAGONAL_MM, 0.0, "missed", 0, 0
                    rows.append({**s._asdict(), "style": style, "orientation": orient, "protocol": protocol,
                                 "dice": round(f, 5), "iou": round(f / (2 - f), 5), "hd95_mm": hd,
                                 "precision": round(min(1.0, f + 0.03), 5), "recall": round(max(0.0, f - 0.03), 5),
                                 "pred_ml": round(pred, 4), "status": status, "lesions_ref": n_les,
                                 "lesions_hit": hit, "lesions_false": false})  # fmt: skip
    cols = ["subject", "site", "age", "sex", "fold", "style", "orientation", "protocol", "dice", "iou", "hd95_mm",
            "precision", "recall", "ref_ml", "pred_ml", "status", "fov_diagonal_mm", "lesions_ref", "lesions_hit",
            "lesions_false"]  # fmt: skip
    return pd.DataFrame(rows).assign(fov_diagonal_mm=FOV_DIAGONAL_MM)[cols]


def _ball(shape: tuple[int, int, int], centre: np.ndarray, radius: float) -> np.ndarray:
    grid = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1)
    return (((grid - centre) ** 2).sum(-1) <= radius**2).astype(np.uint8)


def _volumes(
    root: Path, subjects: pd.DataFrame, metrics: pd.DataFrame, spec: FakeStudySpec, rng: np.random.Generator
) -> None:
    shape = (40, 40, 20)
    affine = np.diag([0.9, 0.9, 2.5, 1.0])
    img_dir = root / "images"
    img_dir.mkdir(exist_ok=True)
    pos = subjects[subjects["ref_ml"] > 0].sort_values("ref_ml")
    pick = set(
        pos["subject"].iloc[np.unique(np.linspace(0, len(pos) - 1, spec.n_volumes).round().astype(int))]
    )
    rows = []
    max_ml = float(pos["ref_ml"].max())
    for s in subjects.itertuples(index=False):
        row = {
            "subject": s.subject,
            "site": s.site,
            "age": s.age,
            "sex": s.sex,
            "image": "",
            "mask": "",
            "ref_ml": s.ref_ml,
        }
        if s.subject in pick:
            head = _ball(shape, np.array([20, 20, 10]), 17).astype(np.float32)
            image = np.where(head > 0, 30.0, -1000.0) + rng.normal(0, 4, shape)
            centre = np.array([14.0, 24.0, 9.0])
            radius = 2.0 + 6.0 * (s.ref_ml / max_ml) ** (1 / 3)
            mask = _ball(shape, centre, radius)
            image[mask > 0] = 70.0 + rng.normal(0, 4, int(mask.sum()))
            row["image"] = str((img_dir / f"{s.subject}_ct.nii.gz").resolve())
            row["mask"] = str((img_dir / f"{s.subject}_mask.nii.gz").resolve())
            nib.save(nib.Nifti1Image(image.astype(np.float32), affine), row["image"])
            nib.save(nib.Nifti1Image(mask, affine), row["mask"])
            for protocol in spec.protocols:
                for style in STYLES:
                    for j, orient in enumerate(ORIENTS):
                        jitter = rng.normal(0, 1.0 if orient == "2DAxi" else 0.4, 3)
                        pred = _ball(
                            shape,
                            centre + jitter,
                            radius * (0.8 if style == "unet" else 1.0) + 0.3 * (j == 1),
                        )
                        out = root / "predictions" / protocol / style / f"{s.subject}_{orient}.nii.gz"
                        out.parent.mkdir(parents=True, exist_ok=True)
                        nib.save(nib.Nifti1Image(pred, affine), str(out))
        rows.append(row)
    (root / "prep").mkdir(exist_ok=True)
    pd.DataFrame(rows).to_csv(root / "prep" / "subjects.csv", index=False)
