"""Detection per style: lesion-wise sensitivity and false lesions, and subject-level found / missed.

Read from metrics.csv's ``lesions_ref``, ``lesions_hit``, ``lesions_false`` (connected components
matched by overlap, :mod:`iphbench.evaluation.lesions`) and ``recall`` for one orientation and
protocol:

* **lesion-wise sensitivity** = Σ lesions_hit / Σ lesions_ref over the subjects with a hemorrhage;
* **false lesions per scan** = Σ lesions_false / number of scans, over every scored scan (under the
  ``full`` protocol that includes the lesion-free ones, whose false lesions are reported apart too);
* **subject-level detection**: a subject with a hemorrhage is *found* when any of its reference
  voxels is predicted (recall > 0), else *missed*; a lesion-free scan (``full``) is *clean* when no
  false lesion was predicted.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

#: Columns of metrics.csv the detection summary reads.
LESION_COLUMNS: tuple[str, ...] = ("lesions_ref", "lesions_hit", "lesions_false")


@dataclass
class DetectionSummary:
    """Detection of one style in one orientation and protocol."""

    style: str
    n_scans: int  # every scored scan (with and without a hemorrhage)
    n_hemorrhage: int  # scans with a hemorrhage
    lesions_ref: int  # reference lesions (components of at least eval.lesion_min_ml)
    lesions_hit: int  # of which found
    sensitivity: float  # lesions_hit / lesions_ref (NaN when there is no reference lesion)
    lesions_false: int  # predicted lesions overlapping no reference lesion, all scans
    false_per_scan: float  # lesions_false / n_scans
    subjects_found: int  # hemorrhage subjects with any reference voxel predicted (recall > 0)
    subjects_missed: int  # hemorrhage subjects with none
    n_lesion_free: int  # lesion-free scans (full protocol)
    lesion_free_with_false: int  # of which with at least one false lesion


def has_lesion_columns(df: pd.DataFrame) -> bool:
    """True when metrics.csv holds the lesion-wise columns (evaluated by iphbench with lesion detection)."""
    return all(c in df.columns for c in LESION_COLUMNS)


def detection_summary(rows: pd.DataFrame, style: str) -> DetectionSummary | None:
    """Detection of ``style`` over ``rows`` (one orientation and protocol); None when it has no rows."""
    sub = rows[rows["style"] == style]
    if sub.empty:
        return None
    pos = sub[sub["ref_ml"] > 0]
    free = sub[sub["ref_ml"] <= 0]
    ref = int(pd.to_numeric(pos["lesions_ref"], errors="coerce").fillna(0).sum())
    hit = int(pd.to_numeric(pos["lesions_hit"], errors="coerce").fillna(0).sum())
    false = pd.to_numeric(sub["lesions_false"], errors="coerce").fillna(0)
    found = int((pd.to_numeric(pos["recall"], errors="coerce").fillna(0) > 0).sum()) if "recall" in pos else 0
    free_false = pd.to_numeric(free["lesions_false"], errors="coerce").fillna(0)
    return DetectionSummary(
        style=style,
        n_scans=len(sub),
        n_hemorrhage=len(pos),
        lesions_ref=ref,
        lesions_hit=hit,
        sensitivity=hit / ref if ref else float("nan"),
        lesions_false=int(false.sum()),
        false_per_scan=float(false.sum()) / len(sub),
        subjects_found=found,
        subjects_missed=len(pos) - found,
        n_lesion_free=len(free),
        lesion_free_with_false=int((free_false > 0).sum()),
    )


def detection_frame(summaries: list[DetectionSummary]) -> pd.DataFrame:
    """The summaries as a table (one row per style), numbers only."""
    return pd.DataFrame([vars(s) for s in summaries]) if summaries else pd.DataFrame()


__all__ = ["LESION_COLUMNS", "DetectionSummary", "detection_frame", "detection_summary", "has_lesion_columns"]
