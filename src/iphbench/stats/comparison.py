"""Comparison of the four styles: one-way ANOVA and post-hoc pairwise t-tests (paper section 3.5).

The paper runs a one-way ANOVA of each metric across the four styles (F(3, 952) for 239
subjects × 4 styles) and post-hoc pairwise t-tests with Bonferroni correction. Its analysis was
done in R, whose ``pairwise.t.test`` pools the standard deviation over all groups by default;
:func:`pairwise_unpaired` does the same (``pool_sd=True``) or runs Welch tests (``pool_sd=False``).

Beyond the paper: every subject is scored by every style, so the styles are not independent
samples. :func:`pairwise_paired` runs paired t-tests on the subjects present in both styles,
again with Bonferroni correction.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps


@dataclass
class AnovaResult:
    """One-way ANOVA across styles."""

    metric: str
    f: float  # F statistic
    df_between: int  # k - 1
    df_within: int  # N - k
    p: float
    n_per_style: dict[str, int]  # subjects per style
    means: dict[str, float]  # group means

    @property
    def label(self) -> str:
        """``F(3, 952)``: the statistic's name with both degrees of freedom, as the paper writes it."""
        return f"F({self.df_between}, {self.df_within})"


@dataclass
class PairwiseResult:
    """One post-hoc comparison of two styles."""

    metric: str
    kind: str  # "unpaired" (the paper's) or "paired" (same subjects)
    style_a: str
    style_b: str
    n_a: int  # subjects in a (paired: pairs)
    n_b: int  # subjects in b (paired: pairs)
    mean_diff: float  # mean(a) - mean(b) (paired: mean of the differences)
    t: float
    df: float
    p: float  # uncorrected two-sided p
    p_bonferroni: float  # min(1, p × number of pairs)


def bonferroni(p_values: np.ndarray | list[float], n_comparisons: int | None = None) -> np.ndarray:
    """Bonferroni correction: multiply each p by the number of comparisons and cap at 1.

    Example:
        >>> bonferroni([0.01, 0.2, 0.5]).tolist()
        [0.03, 0.6000000000000001, 1.0]
    """
    p = np.asarray(p_values, dtype=float)
    m = p.size if n_comparisons is None else int(n_comparisons)
    return np.minimum(p * m, 1.0)


def _groups(rows: pd.DataFrame, metric: str, styles: list[str]) -> dict[str, np.ndarray]:
    out = {}
    for s in styles:
        v = rows.loc[rows["style"] == s, metric].astype(float).to_numpy()
        out[s] = v[np.isfinite(v)]
    return out


def one_way_anova(rows: pd.DataFrame, metric: str, styles: list[str]) -> AnovaResult:
    """One-way ANOVA of ``metric`` across ``styles`` from the sums of squares.

    F = (SS_between / (k - 1)) / (SS_within / (N - k)); p from the F(k - 1, N - k) distribution.
    Identical to ``scipy.stats.f_oneway`` on the same groups (tested).

    Raises:
        ValueError: fewer than two styles with data, or no within-group degrees of freedom.
    """
    groups = {s: g for s, g in _groups(rows, metric, styles).items() if g.size > 0}
    if len(groups) < 2:
        raise ValueError(f"ANOVA of {metric} needs at least two styles with data, got {list(groups)}")
    values = list(groups.values())
    all_v = np.concatenate(values)
    n, k = all_v.size, len(values)
    if n - k < 1:
        raise ValueError(
            f"ANOVA of {metric}: {n} values in {k} styles leave no within-group degrees of freedom"
        )
    grand = all_v.mean()
    ss_between = sum(g.size * (g.mean() - grand) ** 2 for g in values)
    ss_within = sum(((g - g.mean()) ** 2).sum() for g in values)
    df_b, df_w = k - 1, n - k
    if ss_within == 0:
        f = float("inf") if ss_between > 0 else float("nan")
    else:
        f = float((ss_between / df_b) / (ss_within / df_w))
    p = float(sps.f.sf(f, df_b, df_w)) if np.isfinite(f) else (0.0 if f == float("inf") else float("nan"))
    return AnovaResult(
        metric=metric,
        f=f,
        df_between=df_b,
        df_within=df_w,
        p=p,
        n_per_style={s: int(g.size) for s, g in groups.items()},
        means={s: float(g.mean()) for s, g in groups.items()},
    )


def pairwise_unpaired(
    rows: pd.DataFrame, metric: str, styles: list[str], pool_sd: bool = True
) -> list[PairwiseResult]:
    """Post-hoc unpaired t-tests between every pair of styles with Bonferroni correction (the paper's).

    Args:
        rows: subject-level rows of every style.
        metric: outcome column.
        styles: styles to compare, in display order.
        pool_sd: True (R's ``pairwise.t.test`` default) uses the standard deviation pooled over all
            styles with N - k degrees of freedom; False runs Welch's test per pair.
    """
    groups = {s: g for s, g in _groups(rows, metric, styles).items() if g.size > 0}
    names = list(groups)
    pairs = list(itertools.combinations(names, 2))
    if not pairs:
        return []
    values = list(groups.values())
    n_all = sum(g.size for g in values)
    df_pool = n_all - len(values)
    s2_pool = sum(((g - g.mean()) ** 2).sum() for g in values) / df_pool if df_pool > 0 else float("nan")
    raw: list[tuple[str, str, float, float, float, float]] = []
    for a, b in pairs:
        ga, gb = groups[a], groups[b]
        diff = float(ga.mean() - gb.mean())
        if pool_sd:
            se = float(np.sqrt(s2_pool * (1 / ga.size + 1 / gb.size)))
            t = diff / se if se > 0 else float("nan")
            df = float(df_pool)
            p = float(2 * sps.t.sf(abs(t), df)) if np.isfinite(t) else float("nan")
        else:
            res = sps.ttest_ind(ga, gb, equal_var=False)
            t, p, df = float(res.statistic), float(res.pvalue), _welch_df(ga, gb)
        raw.append((a, b, diff, t, df, p))
    adj = bonferroni([r[5] for r in raw], len(pairs))
    return [
        PairwiseResult(metric, "unpaired", a, b, groups[a].size, groups[b].size, diff, t, df, p, float(pa))
        for (a, b, diff, t, df, p), pa in zip(raw, adj, strict=True)
    ]


def _welch_df(a: np.ndarray, b: np.ndarray) -> float:
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    den = va**2 / (a.size - 1) + vb**2 / (b.size - 1)
    return float((va + vb) ** 2 / den) if den > 0 else float("nan")


def pairwise_paired(rows: pd.DataFrame, metric: str, styles: list[str]) -> list[PairwiseResult]:
    """Post-hoc paired t-tests on the subjects scored by both styles, with Bonferroni correction.

    Beyond the paper: the same subjects are segmented by every style, so the paired test removes
    the between-subject variance (lesion size, site) that dominates the unpaired comparison.
    A subject enters a pair only when both of its values are finite.
    """
    wide = rows.pivot_table(index="subject", columns="style", values=metric, aggfunc="first")
    names = [s for s in styles if s in wide.columns]
    pairs = list(itertools.combinations(names, 2))
    raw = []
    for a, b in pairs:
        both = wide[[a, b]].dropna()
        d = (both[a] - both[b]).to_numpy(dtype=float)
        if d.size >= 2 and np.ptp(d) > 0:
            res = sps.ttest_rel(both[a].to_numpy(float), both[b].to_numpy(float))
            t, p = float(res.statistic), float(res.pvalue)
        elif d.size >= 1 and np.all(d == 0):
            t, p = 0.0, 1.0
        else:
            t, p = float("nan"), float("nan")
        raw.append((a, b, d, t, p))
    adj = bonferroni([r[4] for r in raw], len(pairs)) if raw else np.array([])
    return [
        PairwiseResult(metric, "paired", a, b, d.size, d.size, float(d.mean()) if d.size else float("nan"),
                       t, float(d.size - 1), p, float(pa))
        for (a, b, d, t, p), pa in zip(raw, adj, strict=True)
    ]  # fmt: skip
