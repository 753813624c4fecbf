"""Comparisons on the same subjects: repeated-measures ANOVA, or Friedman and Wilcoxon tests (beyond the paper).

Every subject is segmented by every style, so the styles are repeated measures of the same
subjects, not independent samples. The paper's one-way ANOVA and unpaired t-tests (kept, labelled
"as published", :mod:`iphbench.stats.comparison`) leave the between-subject variance (lesion size,
site) in the error term. Here, on the subjects that every compared style scored:

1. a **repeated-measures ANOVA** (subjects × styles, one observation per cell): ``F = MS_styles /
   MS_error`` with ``(k − 1, (n − 1)(k − 1))`` degrees of freedom; equal to statsmodels'
   ``AnovaRM`` (tested);
2. **Shapiro–Wilk** on its residuals ``y_ij − ȳ_i· − ȳ_·j + ȳ``;
3. if normality is not rejected (p ≥ alpha): post-hoc **paired t-tests** (``scipy.stats.ttest_rel``)
   with Bonferroni correction; if it is rejected: the **Friedman** test
   (``scipy.stats.friedmanchisquare``; it needs three styles or more) as the omnibus test and
   post-hoc **Wilcoxon signed-rank** tests (``scipy.stats.wilcoxon``, zero differences dropped as
   Wilcoxon did) with Bonferroni correction.

Every result names the test that produced its p value (``test``), so the report can say it.

Example:
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"subject": [1, 1, 2, 2, 3, 3, 4, 4], "style": ["a", "b"] * 4,
    ...                      "dice": [0.8, 0.7, 0.6, 0.55, 0.9, 0.8, 0.7, 0.66]})
    >>> r = same_subject_comparison(rows, "dice", ["a", "b"])
    >>> r.omnibus.label, r.n_subjects
    ('F(1, 3)', 4)
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

from iphbench.stats.comparison import PairwiseResult, bonferroni

ALPHA = 0.05

RM_ANOVA = "repeated-measures ANOVA"
FRIEDMAN = "Friedman test"
PAIRED_T = "paired t-test"
WILCOXON = "Wilcoxon signed-rank test"


@dataclass
class OmnibusResult:
    """One omnibus test across styles on the same subjects."""

    test: str  # RM_ANOVA or FRIEDMAN
    stat: float  # F or chi²
    df_num: float  # k − 1
    df_den: float | None  # (n − 1)(k − 1) for the ANOVA; None for Friedman
    p: float

    @property
    def label(self) -> str:
        """``F(3, 714)`` or ``χ²(3)``."""
        if self.df_den is None:
            return f"χ²({self.df_num:g})"
        return f"F({self.df_num:g}, {self.df_den:g})"


@dataclass
class SameSubjects:
    """Comparison of the styles on the subjects every one of them scored."""

    metric: str
    styles: list[str]  # compared styles, display order
    n_subjects: int  # complete subjects (a value for every compared style)
    rm_anova: OmnibusResult | None  # always attempted
    shapiro_w: float  # Shapiro–Wilk on the RM-ANOVA residuals (NaN when not computable)
    shapiro_p: float
    normal: bool  # normality not rejected at alpha: paired t post-hoc; else Friedman + Wilcoxon
    friedman: OmnibusResult | None  # when normality is rejected and there are three styles or more
    posthoc: list[PairwiseResult]  # paired t or Wilcoxon, Bonferroni-corrected
    notes: list[str] = field(default_factory=list)

    @property
    def omnibus(self) -> OmnibusResult | None:
        """The omnibus test the post-hoc tests follow: Friedman when normality is rejected, else the RM ANOVA."""
        return self.friedman if (not self.normal and self.friedman is not None) else self.rm_anova

    @property
    def posthoc_test(self) -> str:
        return PAIRED_T if self.normal else WILCOXON


def complete_subjects(rows: pd.DataFrame, metric: str, styles: list[str]) -> pd.DataFrame:
    """Subject × style table of ``metric`` holding only subjects with a finite value for every style."""
    wide = rows.pivot_table(index="subject", columns="style", values=metric, aggfunc="first")
    wide = wide.reindex(columns=[s for s in styles if s in wide.columns])
    return wide.dropna(axis=0, how="any")


def rm_anova(wide: pd.DataFrame) -> tuple[OmnibusResult, np.ndarray]:
    """Repeated-measures ANOVA of a complete subjects × styles table, and its residuals.

    Raises:
        ValueError: fewer than two subjects or two styles.
    """
    y = wide.to_numpy(float)
    n, k = y.shape
    if n < 2 or k < 2:
        raise ValueError(f"a repeated-measures ANOVA needs two subjects and two styles, got {n} and {k}")
    grand = y.mean()
    subj, style = y.mean(axis=1, keepdims=True), y.mean(axis=0, keepdims=True)
    resid = y - subj - style + grand
    ss_style = n * float(((style - grand) ** 2).sum())
    ss_err = float((resid**2).sum())
    df1, df2 = k - 1, (n - 1) * (k - 1)
    if ss_err <= 1e-12 * max(ss_style, 1e-300):
        f = float("inf") if ss_style > 0 else float("nan")
        p = 0.0 if ss_style > 0 else float("nan")
    else:
        f = (ss_style / df1) / (ss_err / df2)
        p = float(sps.f.sf(f, df1, df2))
    return OmnibusResult(RM_ANOVA, float(f), df1, df2, p), resid.ravel()


def _pairs(wide: pd.DataFrame, test: str, metric: str) -> list[PairwiseResult]:
    names = list(wide.columns)
    pairs = list(itertools.combinations(names, 2))
    raw = []
    for a, b in pairs:
        x, y = wide[a].to_numpy(float), wide[b].to_numpy(float)
        d = x - y
        if not np.any(d != 0):
            stat, p = 0.0, 1.0  # identical on every subject: no difference to test
        elif test == PAIRED_T:
            res = sps.ttest_rel(x, y)
            stat, p = float(res.statistic), float(res.pvalue)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter(
                    "ignore"
                )  # scipy warns that exact p needs no ties; the normal approximation is used
                res = sps.wilcoxon(x, y)
            stat, p = float(res.statistic), float(res.pvalue)
        raw.append((a, b, d, stat, p))
    adj = bonferroni([r[4] for r in raw], len(pairs)) if raw else np.array([])
    kind = "paired" if test == PAIRED_T else "wilcoxon"
    return [
        PairwiseResult(metric, kind, str(a), str(b), d.size, d.size, float(d.mean()), stat, float(d.size - 1), p, float(pa))
        for (a, b, d, stat, p), pa in zip(raw, adj, strict=True)
    ]  # fmt: skip


def same_subject_comparison(
    rows: pd.DataFrame, metric: str, styles: list[str], alpha: float = ALPHA
) -> SameSubjects:
    """RM ANOVA, residual normality, then paired t or Friedman + Wilcoxon (module docstring).

    Args:
        rows: subject-level rows (columns subject, style, ``metric``) of one orientation and protocol.
        metric: the outcome column.
        styles: styles to compare, in display order; styles without any value are left out (noted).
        alpha: significance level of the Shapiro–Wilk test that chooses the post-hoc tests.
    """
    notes: list[str] = []
    have = [s for s in styles if rows.loc[rows["style"] == s, metric].notna().any()]
    if len(have) < len(styles):
        gone = [s for s in styles if s not in have]
        notes.append(f"style(s) {', '.join(gone)} have no {metric} value and are not compared")
    wide = complete_subjects(rows, metric, have)
    n = len(wide)
    empty = SameSubjects(metric, have, n, None, float("nan"), float("nan"), True, None, [], notes)
    if len(have) < 2 or n < 2:
        notes.append(
            f"a same-subject comparison needs two styles and two complete subjects, got {len(have)} and {n}"
        )
        return empty
    rm, resid = rm_anova(wide)
    w, p_sw = float("nan"), float("nan")
    if resid.size >= 3 and np.ptp(resid) > 1e-12:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns that p may be inaccurate for N > 5000
            res = sps.shapiro(resid)
        w, p_sw = float(res.statistic), float(res.pvalue)
    normal = not (np.isfinite(p_sw) and p_sw < alpha)
    friedman = None
    if not normal and len(have) >= 3:
        cols = [wide[s].to_numpy(float) for s in wide.columns]
        try:
            chi2, p_f = sps.friedmanchisquare(*cols)
            friedman = OmnibusResult(FRIEDMAN, float(chi2), len(have) - 1, None, float(p_f))
        except ValueError as exc:
            notes.append(f"Friedman test not computed: {exc}")
    elif not normal:
        notes.append("with two styles the Wilcoxon signed-rank test is the comparison (Friedman needs three)")
    posthoc = _pairs(wide, PAIRED_T if normal else WILCOXON, metric)
    return SameSubjects(metric, have, n, rm, w, p_sw, normal, friedman, posthoc, notes)


__all__ = [
    "FRIEDMAN",
    "PAIRED_T",
    "RM_ANOVA",
    "WILCOXON",
    "OmnibusResult",
    "SameSubjects",
    "complete_subjects",
    "rm_anova",
    "same_subject_comparison",
]
