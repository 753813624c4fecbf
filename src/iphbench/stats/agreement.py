"""Volume agreement between predicted and reference hemorrhage volume (beyond the paper).

The paper reads volume agreement off Fig. 2's colours; here it is measured: per style, the mean
bias (predicted − reference, mL), the Bland-Altman 95% limits of agreement (bias ± 1.96 sd),
Pearson's r, an absolute-agreement intraclass correlation ICC(A,1) and the bias per site. Under
the ``full`` protocol, hemorrhage-free subjects report their false-positive volume separately.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps


@dataclass
class SiteBias:
    """Mean volume bias at one site."""

    site: str
    n: int
    bias_ml: float  # mean of predicted − reference (mL)
    sd_ml: float  # sd of the differences (NaN for one subject)


@dataclass
class VolumeAgreement:
    """Agreement of predicted with reference volume for one style."""

    style: str
    n: int  # subjects with a hemorrhage
    mean_ref_ml: float
    mean_pred_ml: float
    bias_ml: float  # mean of predicted − reference
    sd_diff_ml: float  # sd of the differences
    loa_low_ml: float  # bias − 1.96 sd
    loa_high_ml: float  # bias + 1.96 sd
    pearson_r: float
    pearson_p: float
    icc_a1: float  # two-way, absolute agreement, single measure (McGraw & Wong ICC(A,1))
    per_site: list[SiteBias] = field(default_factory=list)


@dataclass
class FalsePositiveFree:
    """False-positive volume on hemorrhage-free subjects for one style (``full`` protocol only)."""

    style: str
    n: int  # hemorrhage-free subjects
    n_with_fp: int  # of which with any predicted voxel
    mean_fp_ml: float
    max_fp_ml: float


def icc_a1(x: np.ndarray, y: np.ndarray) -> float:
    """ICC(A,1) of two measurements of the same subjects (two-way model, absolute agreement).

    ICC = (MSR − MSE) / (MSR + MSE + 2 (MSC − MSE) / n), with rows = subjects, columns = the two methods.

    Example:
        >>> round(icc_a1(np.array([1.0, 2, 3, 4]), np.array([1.0, 2, 3, 4])), 6)
        1.0
    """
    data = np.column_stack([np.asarray(x, float), np.asarray(y, float)])
    n, k = data.shape
    if n < 2:
        return float("nan")
    grand = data.mean()
    ss_rows = k * ((data.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((data.mean(axis=0) - grand) ** 2).sum()
    ss_err = ((data - grand) ** 2).sum() - ss_rows - ss_cols
    msr, msc, mse = ss_rows / (n - 1), ss_cols / (k - 1), ss_err / ((n - 1) * (k - 1))
    den = msr + (k - 1) * mse + k * (msc - mse) / n
    return float((msr - mse) / den) if den > 0 else float("nan")


def volume_agreement(rows: pd.DataFrame, style: str) -> VolumeAgreement:
    """Bland-Altman bias and limits, Pearson r, ICC(A,1) and per-site bias for one style.

    Args:
        rows: rows of one orientation and protocol (hemorrhage-free subjects are left out here).
        style: the style to summarise.
    """
    sub = rows[(rows["style"] == style) & (rows["ref_ml"] > 0)]
    ref = sub["ref_ml"].to_numpy(float)
    pred = sub["pred_ml"].to_numpy(float)
    diff = pred - ref
    n = int(diff.size)
    nan = float("nan")
    bias = float(diff.mean()) if n else nan
    sd = float(diff.std(ddof=1)) if n > 1 else nan
    if n > 2 and np.ptp(ref) > 0 and np.ptp(pred) > 0:
        r, p = sps.pearsonr(pred, ref)
        r, p = float(r), float(p)
    else:
        r, p = nan, nan
    per_site = []
    for site, g in sub.assign(_d=diff).groupby("site", sort=True):
        d = g["_d"].to_numpy(float)
        per_site.append(
            SiteBias(str(site), int(d.size), float(d.mean()), float(d.std(ddof=1)) if d.size > 1 else nan)
        )
    return VolumeAgreement(
        style=style,
        n=n,
        mean_ref_ml=float(ref.mean()) if n else nan,
        mean_pred_ml=float(pred.mean()) if n else nan,
        bias_ml=bias,
        sd_diff_ml=sd,
        loa_low_ml=bias - 1.96 * sd,
        loa_high_ml=bias + 1.96 * sd,
        pearson_r=r,
        pearson_p=p,
        icc_a1=icc_a1(pred, ref),
        per_site=per_site,
    )


def false_positive_free(rows: pd.DataFrame, style: str) -> FalsePositiveFree | None:
    """False-positive mL on hemorrhage-free subjects (``ref_ml == 0``) for one style, or None if there are none."""
    sub = rows[(rows["style"] == style) & (rows["ref_ml"] <= 0)]
    if sub.empty:
        return None
    fp = sub["pred_ml"].to_numpy(float)
    return FalsePositiveFree(style, int(fp.size), int((fp > 0).sum()), float(fp.mean()), float(fp.max()))
