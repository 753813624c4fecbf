"""Per-style regression of a performance metric on volume, age, sex and site (paper section 3.5, eq. 6).

The paper fits, for each segmentation style, ``PM ~ IPH.vol + Age + Sex + Sitename`` with site as a
fixed effect. :func:`fit_ols` does that with statsmodels; :func:`fit_mixed` fits the site-robust
alternative (beyond the paper): the same fixed effects with a random intercept per site.

Sites: by default every site is its own level, as the paper's eq. 6 (``Sitename``). A site with one
subject then fits that subject exactly (its residual is zero and it informs no other estimate), and
two subjects give a near-degenerate contrast; pooling small sites is an option (``min_site_n`` > 1:
sites with fewer subjects become one level, ``POOLED_LEVEL``), and the output says when it was used.
A cohort left with a single site level drops the site term, with a note. The mixed model keeps
every site as it is: a random intercept shrinks small sites towards the mean by itself.

Units: ``ref_ml`` is in mL, so the volume slope is per mL; the paper's IPH.vol was in mm³ (its
slopes, e.g. 1.778e-6 for U-Net's F-measure, are per mm³ and equal ours divided by 1000).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats as sps
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from iphbench.stats.formatting import text_labels

log = logging.getLogger(__name__)

POOLED_LEVEL = "pooled small sites"
#: The note of every regression fitted on a single-site cohort (the report quotes it).
SINGLE_SITE_NOTE = "one site only: the site term (Sitename in eq. 6) was dropped"


@dataclass
class Coefficient:
    """One term of a fitted model."""

    term: str  # "Intercept", "ref_ml", "age", "sex[M]", "site[B]", ...
    estimate: float  # coefficient
    se: float  # standard error
    stat: float  # t (OLS) or z (mixed model)
    p: float  # two-sided p-value
    ci_low: float  # 95% confidence interval, lower bound
    ci_high: float  # 95% confidence interval, upper bound


@dataclass
class Normality:
    """Residual normality of a fitted model (paper section 3.5: 'tests of residual normality')."""

    n: int  # residuals tested
    shapiro_w: float  # Shapiro-Wilk W (NaN when n < 3)
    shapiro_p: float  # Shapiro-Wilk p-value
    skew: float  # sample skewness
    excess_kurtosis: float  # Fisher kurtosis (0 for a normal distribution)


@dataclass
class OLSResult:
    """Fixed-effect regression of one metric for one style (paper eq. 6)."""

    style: str
    metric: str
    formula: str  # the formula actually fitted (terms dropped for lack of variation are absent)
    n: int  # subjects in the fit
    r2: float
    adj_r2: float
    coefficients: list[Coefficient]
    normality: Normality
    site_reference: str | None  # the site level absorbed in the intercept (the largest site)
    pooled_sites: list[str] = field(default_factory=list)  # sites pooled into POOLED_LEVEL
    notes: list[str] = field(default_factory=list)  # what was done to keep the model estimable

    def coefficient(self, term: str) -> Coefficient | None:
        """The coefficient named ``term``, or None when it was not in the model."""
        return next((c for c in self.coefficients if c.term == term), None)


@dataclass
class MixedResult:
    """Linear mixed model: fixed ref_ml, age and sex, random intercept per site (beyond the paper)."""

    style: str
    metric: str
    n: int  # subjects
    n_sites: int  # site groups
    converged: bool  # False when statsmodels warned or failed; the numbers are then only indicative
    coefficients: list[Coefficient]
    site_variance: float  # variance of the random site intercept
    residual_variance: float  # residual variance
    icc_site: float  # site_variance / (site_variance + residual_variance): share of variance due to site
    notes: list[str] = field(default_factory=list)


def pool_small_sites(sites: pd.Series, min_site_n: int = 3) -> tuple[pd.Series, list[str]]:
    """Replace sites with fewer than ``min_site_n`` rows by :data:`POOLED_LEVEL`.

    Returns:
        The new site labels and the sorted list of sites that were pooled.

    Example:
        >>> s = pd.Series(["A", "A", "A", "B", "C", "C", "C"])
        >>> pool_small_sites(s, 3)[1]
        ['B']
    """
    counts = sites.value_counts()
    small = sorted(str(s) for s in counts[counts < min_site_n].index)
    return sites.where(~sites.isin(small), POOLED_LEVEL), small


def residual_normality(residuals: np.ndarray) -> Normality:
    """Shapiro-Wilk, skewness and excess kurtosis of model residuals."""
    r = np.asarray(residuals, dtype=float)
    r = r[np.isfinite(r)]
    n = int(r.size)
    if n < 3 or float(np.ptp(r)) == 0.0:
        return Normality(n, float("nan"), float("nan"), float("nan"), float("nan"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns that p may be inaccurate for n > 5000
        w, p = sps.shapiro(r)
    return Normality(n, float(w), float(p), float(sps.skew(r)), float(sps.kurtosis(r)))


def _coefficients(
    params: pd.Series, bse: pd.Series, stat: pd.Series, p: pd.Series, ci: pd.DataFrame
) -> list[Coefficient]:
    out = []
    for term in params.index:
        out.append(
            Coefficient(
                term=_pretty_term(str(term)),
                estimate=float(params[term]),
                se=float(bse[term]),
                stat=float(stat[term]),
                p=float(p[term]),
                ci_low=float(ci.loc[term].iloc[0]),
                ci_high=float(ci.loc[term].iloc[1]),
            )
        )
    return out


def _pretty_term(term: str) -> str:
    # statsmodels writes "C(site, Treatment(reference='A'))[T.B]"; show "site[B]"
    for name in ("site", "sex"):
        if term.startswith(f"C({name}"):
            level = term.split("[T.", 1)[1].rstrip("]") if "[T." in term else term
            return f"{name}[{level}]"
    return term


def _design(
    rows: pd.DataFrame, metric: str, min_site_n: int
) -> tuple[pd.DataFrame, list[str], list[str], list[str]]:
    """Build the model frame and right-hand-side terms, dropping terms with no variation."""
    data = pd.DataFrame(
        {
            "y": rows[metric].astype(float).to_numpy(),
            "ref_ml": rows["ref_ml"].astype(float).to_numpy(),
            "age": rows["age"].astype(float).to_numpy(),
            "sex": text_labels(rows["sex"]),
            "site": text_labels(rows["site"]),
        }
    )
    notes: list[str] = []
    terms: list[str] = []
    for name in ("ref_ml", "age"):
        if data[name].nunique() > 1:
            terms.append(name)
        else:
            notes.append(f"{name} has a single value in these rows; its term was dropped")
    if data["sex"].nunique() > 1:
        terms.append("C(sex, Treatment(reference='F'))" if "F" in set(data["sex"]) else "C(sex)")
    else:
        notes.append(f"all subjects have sex {data['sex'].iloc[0]}; the sex term was dropped")
    n_sites = int(data["site"].nunique())
    data["site"], pooled = pool_small_sites(data["site"], min_site_n)
    if pooled:
        notes.append(
            f"sites with fewer than {min_site_n} subjects ({', '.join(pooled)}) were pooled into one "
            f"'{POOLED_LEVEL}' level for the fixed-effect model (option min_site_n; the paper's eq. 6 keeps "
            "every site its own level)"
        )
    if data["site"].nunique() > 1:
        counts = data["site"].value_counts()
        ref = sorted(counts[counts == counts.max()].index)[0]
        terms.append(f"C(site, Treatment(reference={ref!r}))")
    elif n_sites == 1:
        notes.append(SINGLE_SITE_NOTE)
    else:
        notes.append("after pooling small sites a single site level remains: the site term was dropped")
    return data, terms, pooled, notes


def fit_ols(rows: pd.DataFrame, metric: str, style: str = "", min_site_n: int = 1) -> OLSResult:
    """Fit ``metric ~ ref_ml + age + C(sex) + C(site)`` by OLS (paper eq. 6, site as a fixed effect).

    Args:
        rows: subject-level rows of one style (from :func:`iphbench.stats.metrics_table.select_rows`).
        metric: the outcome column.
        style: label stored in the result.
        min_site_n: sites with fewer subjects are pooled (module docstring); 1 keeps every site (eq. 6).

    Returns:
        Coefficients with SE, t, p and 95% CI; n, R², residual normality, and notes on pooled or dropped terms.

    Raises:
        ValueError: fewer subjects than parameters (the message names the style and metric).
    """
    data, terms, pooled, notes = _design(rows, metric, min_site_n)
    formula = "y ~ " + (" + ".join(terms) if terms else "1")
    model = smf.ols(formula, data=data)
    n_params = int(model.exog.shape[1])
    if len(data) <= n_params:
        raise ValueError(
            f"{style or 'style'} / {metric}: {len(data)} subjects cannot fit {n_params} parameters "
            f"({formula}); add subjects, or pool small sites (min_site_n, e.g. --min-site-n 3)"
        )
    if int(np.linalg.matrix_rank(model.exog)) < n_params:
        notes.append(
            "the design is rank-deficient (a term is a combination of others, e.g. sex or age fixed by site): "
            "the estimates of those terms are not unique"
        )
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # the rank deficiency is noted above; statsmodels also warns on R² of 0/0
        fit = model.fit()
        r2, adj_r2 = float(fit.rsquared), float(fit.rsquared_adj)  # NaN or -inf when the outcome is constant
    site_ref = next((t.split("reference=", 1)[1][1:-3] for t in terms if t.startswith("C(site")), None)
    shown = formula.replace("y ~", f"{metric} ~")
    return OLSResult(
        style=style,
        metric=metric,
        formula=shown,
        n=int(fit.nobs),
        r2=r2,
        adj_r2=adj_r2,
        coefficients=_coefficients(fit.params, fit.bse, fit.tvalues, fit.pvalues, fit.conf_int()),
        normality=residual_normality(np.asarray(fit.resid)),
        site_reference=site_ref,
        pooled_sites=pooled,
        notes=notes,
    )


def fit_mixed(rows: pd.DataFrame, metric: str, style: str = "") -> MixedResult | None:
    """Fit ``metric ~ ref_ml + age + C(sex)`` with a random intercept per site (statsmodels MixedLM, REML).

    Beyond the paper: site as a random rather than fixed effect, so sites with one or two subjects
    need no pooling. Returns None (with a log message) when there is a single site. Convergence
    warnings and fitting failures are caught and reported in ``notes`` / ``converged``.
    """
    data, terms, _, notes = _design(rows, metric, min_site_n=1)
    data["site"] = text_labels(rows["site"])
    n_sites = int(data["site"].nunique())
    if n_sites < 2:
        log.info("%s / %s: one site only; no mixed model", style, metric)
        return None
    fixed = [t for t in terms if not t.startswith("C(site")]
    notes = [n for n in notes if "site" not in n]
    formula = "y ~ " + (" + ".join(fixed) if fixed else "1")
    model = smf.mixedlm(formula, data=data, groups=data["site"])
    fit = None
    messages: list[str] = []
    hessian: list[str] = []
    # statsmodels' default optimiser often stops short on few groups; try others before giving up.
    for method in ("lbfgs", "bfgs", "powell", "nm"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                attempt = model.fit(reml=True, method=method)
            except (np.linalg.LinAlgError, ValueError) as exc:
                messages = [str(exc)]
                continue
        msgs = [str(w.message).splitlines()[0] for w in caught if issubclass(w.category, ConvergenceWarning)]
        fit = attempt
        hessian = [m for m in msgs if "Hessian" in m]
        # "MLE on the boundary" only says the site variance may be zero; that is checked from the estimate below
        messages = [m for m in msgs if "boundary" not in m and "Hessian" not in m]
        if not messages and bool(getattr(attempt, "converged", True)):
            break
    if fit is None:
        return MixedResult(
            style, metric, len(data), n_sites, False, [], float("nan"), float("nan"), float("nan"),
            [*notes, f"the mixed model could not be fitted: {'; '.join(messages)}"],
        )  # fmt: skip
    converged = not messages and bool(getattr(fit, "converged", True))
    if not converged:
        detail = "; ".join(dict.fromkeys(messages)) or "optimiser did not converge"
        notes.append(f"MixedLM did not converge ({detail}); its numbers are only indicative")
    if hessian:
        notes.append(
            "the Hessian is not positive definite at the estimate: standard errors may be unreliable"
        )
    fe = fit.fe_params.index
    ci = fit.conf_int().loc[fe]
    site_var = float(np.asarray(fit.cov_re)[0, 0])
    resid_var = float(fit.scale)
    total = site_var + resid_var
    if site_var < 1e-6 * max(total, 1e-300):
        notes.append("the site variance is estimated at or near zero (boundary): no detectable site effect")
    return MixedResult(
        style=style,
        metric=metric,
        n=int(fit.nobs),
        n_sites=n_sites,
        converged=converged,
        coefficients=_coefficients(fit.fe_params, fit.bse[fe], fit.tvalues[fe], fit.pvalues[fe], ci),
        site_variance=site_var,
        residual_variance=resid_var,
        icc_site=site_var / total if total > 0 else float("nan"),
        notes=notes,
    )
