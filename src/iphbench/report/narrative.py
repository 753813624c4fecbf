"""The statistics in words, generated from the numbers (paper section 4 style).

Each function turns one part of :class:`iphbench.stats.ProtocolStats` into a sentence or a short
paragraph, e.g. "One-way ANOVA found a significant difference between styles (F(3, 92) = 4.10,
p = 0.009)". Significance uses the paper's alpha = 0.05. Nothing here is canned: a sentence
states whatever the numbers say, including "no significant difference".
"""

from __future__ import annotations

import math

from iphbench.evaluation.scoring import metric_info
from iphbench.stats.agreement import FalsePositiveFree, VolumeAgreement
from iphbench.stats.analysis import MetricStats
from iphbench.stats.formatting import format_num, format_p
from iphbench.stats.metrics_table import display_name
from iphbench.stats.regression import SINGLE_SITE_NOTE, OLSResult

ALPHA = 0.05


def _label(metric: str) -> str:
    return metric_info(metric).short


def describe_anova(ms: MetricStats) -> str:
    """One sentence on the paper's one-way ANOVA across styles (labelled "as published")."""
    a = ms.anova
    if a is None:
        return f"No one-way ANOVA of the {_label(ms.metric)} could be computed."
    verdict = "a significant difference" if a.p < ALPHA else "no significant difference"
    n = len(a.n_per_style)
    return (
        f"One-way ANOVA (as published) of the {_label(ms.metric)} across the {n} styles found {verdict} "
        f"({a.label} = {a.f:.3f}, {format_p(a.p)})."
    )


def describe_same_subjects(ms: MetricStats) -> str:
    """The comparison on the same subjects: RM ANOVA, its residuals' normality, Friedman when they are not normal."""
    ss = ms.same_subjects
    if ss is None or ss.rm_anova is None:
        return ""
    rm = ss.rm_anova
    verdict = "a significant difference" if rm.p < ALPHA else "no significant difference"
    text = (
        f"On the same {ss.n_subjects} subjects (beyond the paper), a repeated-measures ANOVA (subjects × styles) "
        f"found {verdict} ({rm.label} = {rm.stat:.3f}, {format_p(rm.p)})."
    )
    if not math.isfinite(ss.shapiro_p):
        return (
            text + " Shapiro–Wilk could not test its residuals (too few or all equal); paired t-tests follow."
        )
    sw = f"Shapiro–Wilk on its residuals: W = {ss.shapiro_w:.3f}, {format_p(ss.shapiro_p)}"
    if ss.normal:
        return text + f" {sw}, normality not rejected, so paired t-tests follow."
    text += f" {sw}: normality rejected, so rank tests are used"
    fr = ss.friedman
    if fr is not None:
        fv = "a significant difference" if fr.p < ALPHA else "no significant difference"
        text += f": the Friedman test found {fv} ({fr.label} = {fr.stat:.3f}, {format_p(fr.p)})"
    return text + ", followed by Wilcoxon signed-rank tests."


def describe_posthoc(ms: MetricStats, kind: str = "unpaired") -> str:
    """Post-hoc pairwise tests with Bonferroni correction: the significant pairs, then the range of the others.

    ``kind`` ``unpaired``: the paper's unpaired t-tests (as published); ``paired``: the tests on the same
    subjects that follow the RM ANOVA (paired t-tests) or the Friedman test (Wilcoxon signed-rank tests).
    Every p names its test.
    """
    tests = ms.unpaired if kind == "unpaired" else ms.paired
    if not tests:
        return ""
    if kind == "unpaired":
        what, test = "Post-hoc unpaired t-tests (pooled sd, as published)", "unpaired t"
    elif tests[0].kind == "wilcoxon":
        what, test = "Wilcoxon signed-rank tests on the same subjects (beyond the paper)", "Wilcoxon"
    else:
        what, test = "Paired t-tests on the same subjects (beyond the paper)", "paired t"
    better_high = metric_info(ms.metric).higher_is_better
    sig, rest = [], []
    for t in tests:
        if t.p_bonferroni < ALPHA:
            a, b = (t.style_a, t.style_b) if (t.mean_diff > 0) == better_high else (t.style_b, t.style_a)
            sig.append(
                f"{display_name(a)} better than {display_name(b)} (Δ = {abs(t.mean_diff):.3f}, {test}, "
                f"Bonferroni {format_p(t.p_bonferroni)})"
            )
        else:
            rest.append(t.p_bonferroni)
    text = f"{what} with Bonferroni correction over {len(tests)} pairs: "
    if sig:
        text += "; ".join(sig) + ". "
    else:
        text += "no pair differed significantly. "
    shown = "all corrected p = 1" if rest and min(rest) >= 1 else f"{test} p ≥ {min(rest, default=1.0):.3f}"
    if sig and rest:
        pairs = "pair" if len(rest) == 1 else "pairs"
        text += f"The other {len(rest)} {pairs} did not differ ({shown})."
    elif rest and not sig:
        text = text.rstrip(". ") + f" ({shown})."
    return text.strip()


_TERM_WORDS = {"ref_ml": "volume", "age": "age", "sex": "sex", "site": "site"}


def _terms(formula: str) -> list[str]:
    rhs = formula.split("~", 1)[1] if "~" in formula else ""
    out = []
    for part in (p.strip() for p in rhs.split("+")):
        name = part[2:].split(",")[0].split(")")[0] if part.startswith("C(") else part
        if name in _TERM_WORDS:
            out.append(name)
    return out


def model_terms(ols: list[OLSResult]) -> str:
    """The right-hand side of the regressions as fitted, in words: only terms that were in the models.

    ``volume + age + sex + site (site as a fixed effect)`` when every model had them all; a term
    absent from some models is marked, and a site term absent from all of them is said to be dropped.

    Example:
        >>> from iphbench.stats.regression import Normality
        >>> o = OLSResult("fpn", "dice", "dice ~ ref_ml + age + C(sex)", 9, 0.5, 0.4, [],
        ...               Normality(9, 1, 1, 0, 0), None, notes=[SINGLE_SITE_NOTE])
        >>> model_terms([o])
        'volume + age + sex (site term dropped: the cohort has one site)'
    """
    fitted = [_terms(o.formula) for o in ols]
    names = [t for t in _TERM_WORDS if any(t in f for f in fitted)]
    words = []
    for t in names:
        everywhere = all(t in f for f in fitted)
        n_in = sum(t in f for f in fitted)
        words.append(
            _TERM_WORDS[t] if everywhere else f"{_TERM_WORDS[t]} (in {n_in} of {len(fitted)} models)"
        )
    text = " + ".join(words) if words else "1 (intercept only)"
    if "site" in names:
        pooled = sorted({p for o in ols for p in o.pooled_sites})
        how = f"; small sites {', '.join(pooled)} pooled into one level" if pooled else ""
        text += f" (site as a fixed effect{how})"
    elif any(SINGLE_SITE_NOTE in o.notes for o in ols):
        text += " (site term dropped: the cohort has one site)"
    else:
        text += " (site term dropped: a single site level remained after pooling)"
    return text


def describe_regression(ms: MetricStats) -> str:
    """The volume slope per style and any site with a significant fixed effect (paper section 4)."""
    if not ms.ols:
        return f"No regression of the {_label(ms.metric)} could be fitted."
    slopes = []
    for o in ms.ols:
        c = o.coefficient("ref_ml")
        if c is not None:
            slopes.append(f"{display_name(o.style)}: {format_num(c.estimate, 4)} per mL, {format_p(c.p)}")
    sig = [c for o in ms.ols if (c := o.coefficient("ref_ml")) is not None and c.p < ALPHA]
    signs = sorted({"positive" if c.estimate > 0 else "negative" for c in sig})
    n_sig = len(sig)
    head = (
        f"Linear regression {_label(ms.metric)} ~ {model_terms(ms.ols)}, one model "
        f"per style, n = {', '.join(str(o.n) for o in ms.ols)}: "
    )
    if not slopes:
        return (
            head
            + "the volume term was dropped from every model (all subjects have the same reference volume)."
        )
    if n_sig:
        head += f"the reference volume had a significant {'/'.join(signs)} association in {n_sig} of {len(ms.ols)} styles ("
    else:
        head += "the reference volume had no significant association in any style ("
    text = head + "; ".join(slopes) + ")."
    sites = []
    for o in ms.ols:
        for c in o.coefficients:
            if c.term.startswith("site[") and c.p < ALPHA:
                sites.append(
                    f"{c.term[5:-1]} in {display_name(o.style)} ({c.estimate:+.3f}, {format_p(c.p)})"
                )
    ref = next((o.site_reference for o in ms.ols if o.site_reference), None)
    if sites:
        text += f" Sites differing from the reference site {ref}: " + "; ".join(sites) + "."
    elif ref:
        text += f" No site differed significantly from the reference site {ref}."
    r2 = [o.r2 for o in ms.ols]
    text += f" R² ranged from {min(r2):.2f} to {max(r2):.2f}."
    return text


def describe_normality(ms: MetricStats) -> str:
    """Residual normality of the per-style regressions (Shapiro-Wilk, skewness, kurtosis)."""
    if not ms.ols:
        return ""
    bad = [o for o in ms.ols if o.normality.shapiro_p < ALPHA]
    skews = [o.normality.skew for o in ms.ols]
    text = (
        f"Shapiro-Wilk tests on the regression residuals rejected normality in {len(bad)} of {len(ms.ols)} styles "
        f"(skewness {min(skews):+.2f} to {max(skews):+.2f})."
    )
    if bad:
        text += " Their p-values are approximate; the paired tests and the mixed model are less sensitive to this."
    return text


def describe_mixed(ms: MetricStats) -> str:
    """The random-site-intercept mixed model (beyond the paper)."""
    if not ms.mixed:
        return ""
    parts = []
    for m in ms.mixed:
        c = next((c for c in m.coefficients if c.term == "ref_ml"), None)
        slope = f"volume {format_num(c.estimate, 4)} per mL ({format_p(c.p)}), " if c is not None else ""
        flag = "" if m.converged else " (did not converge: indicative only)"
        parts.append(f"{display_name(m.style)}: {slope}site share of variance {m.icc_site:.2f}{flag}")
    return (
        f"A linear mixed model with a random intercept per site ({ms.mixed[0].n_sites} sites, no pooling) gave: "
        + "; ".join(parts)
        + "."
    )


def describe_agreement(agreement: list[VolumeAgreement]) -> str:
    """Bland-Altman bias and limits, Pearson r and ICC per style."""
    parts = [
        f"{display_name(a.style)}: bias {a.bias_ml:+.2f} mL (95% limits {a.loa_low_ml:.2f} to {a.loa_high_ml:.2f}), "
        f"r = {a.pearson_r:.3f}, ICC(A,1) = {a.icc_a1:.3f}"
        for a in agreement
    ]
    return "Predicted minus reference volume: " + "; ".join(parts) + "." if parts else ""


def describe_false_positive_free(fps: list[FalsePositiveFree]) -> str:
    """False-positive volume on hemorrhage-free subjects (full protocol)."""
    if not fps:
        return ""
    parts = [
        f"{display_name(f.style)}: {f.n_with_fp} of {f.n} with any false positive, mean {f.mean_fp_ml:.3f} mL, "
        f"max {f.max_fp_ml:.3f} mL"
        for f in fps
    ]
    return "Hemorrhage-free subjects (no reference lesion): " + "; ".join(parts) + "."
