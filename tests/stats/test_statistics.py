"""Statistics on tables with planted effects (paper section 3.5)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from _fake_study import FakeStudySpec, make_fake_study
from iphbench.stats import (
    POOLED_LEVEL,
    bonferroni,
    collect_notes,
    fit_ols,
    icc_a1,
    load_metrics,
    one_way_anova,
    pairwise_paired,
    pairwise_unpaired,
    pool_small_sites,
    run_stats,
    select_rows,
    write_stats,
)

STYLES = ["attention_unet", "fpn", "transunet", "unet"]


def _planted(n_per_site: int = 25, seed: int = 1) -> pd.DataFrame:
    """Subject-level rows: dice = 0.6 + 0.01 * ref_ml + 0.15 at site C − 0.08 for U-Net + noise."""
    rng = np.random.default_rng(seed)
    rows = []
    subjects = [(f"s{site}{i}", site) for site in "ABCD" for i in range(n_per_site)]
    info = {s: (rng.uniform(1, 30), rng.normal(70, 10), rng.choice(["M", "F"])) for s, _ in subjects}
    for style in STYLES:
        for subj, site in subjects:
            ref, age, sex = info[subj]
            y = 0.6 + 0.01 * ref + 0.15 * (site == "C") - 0.08 * (style == "unet") + rng.normal(0, 0.05)
            rows.append({"subject": subj, "site": site, "age": age, "sex": sex, "style": style, "orientation": "2.5D",
                         "protocol": "paper", "dice": y, "iou": y / (2 - y), "hd95_mm": 10 - 0.2 * ref + rng.normal(0, 1),
                         "ref_ml": ref, "pred_ml": ref * 1.1, "status": "ok"})  # fmt: skip
    return pd.DataFrame(rows)


def test_ols_recovers_volume_slope_and_site_effect() -> None:
    df = _planted()
    rows = select_rows(df, "dice", "2.5D", "paper").rows
    res = fit_ols(rows[rows["style"] == "fpn"], "dice", "fpn")
    vol, site_c, site_b = res.coefficient("ref_ml"), res.coefficient("site[C]"), res.coefficient("site[B]")
    assert vol is not None and site_c is not None and site_b is not None
    assert vol.estimate > 0 and vol.p < 0.05 and abs(vol.estimate - 0.01) < 0.003
    assert site_c.estimate > 0 and site_c.p < 0.05 and abs(site_c.estimate - 0.15) < 0.05
    assert site_b.p > 0.001  # no planted effect at B
    assert res.n == 100 and 0 < res.r2 <= 1
    # hd95 slope planted negative
    hd = fit_ols(select_rows(df, "hd95_mm", "2.5D", "paper").rows.query("style == 'fpn'"), "hd95_mm", "fpn")
    coef = hd.coefficient("ref_ml")
    assert coef is not None and coef.estimate < 0 and coef.p < 0.05
    assert 0 < res.normality.shapiro_p <= 1 and np.isfinite(res.normality.skew)


def test_anova_equals_scipy_f_oneway() -> None:
    df = _planted()
    res = one_way_anova(df, "dice", STYLES)
    groups = [df.loc[df["style"] == s, "dice"].to_numpy() for s in STYLES]
    ref = sps.f_oneway(*groups)
    assert res.f == pytest.approx(float(ref.statistic), rel=1e-10)
    assert res.p == pytest.approx(float(ref.pvalue), rel=1e-8, abs=1e-300)
    assert (res.df_between, res.df_within) == (3, 4 * 100 - 4)
    assert res.label == "F(3, 396)"
    assert res.p < 0.05  # U-Net is planted worse


def test_anova_degrees_of_freedom_match_the_paper_layout() -> None:
    # 239 subjects × 4 styles gives F(3, 952), as in the paper
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"style": np.repeat(STYLES, 239), "dice": rng.random(956)})
    assert one_way_anova(df, "dice", STYLES).label == "F(3, 952)"


def test_bonferroni_multiplies_by_number_of_pairs_and_caps_at_one() -> None:
    np.testing.assert_allclose(bonferroni([0.001, 0.01, 0.3]), [0.003, 0.03, 0.9])
    assert bonferroni([0.2, 0.5], n_comparisons=6).tolist() == [1.0, 1.0]
    df = _planted()
    pw = pairwise_unpaired(df, "dice", STYLES)
    assert len(pw) == 6
    for r in pw:
        assert r.p_bonferroni == pytest.approx(min(1.0, 6 * r.p))
    # the Welch variant agrees with scipy pair by pair
    welch = pairwise_unpaired(df, "dice", STYLES, pool_sd=False)
    a = df.loc[df["style"] == "fpn", "dice"]
    b = df.loc[df["style"] == "unet", "dice"]
    w = next(r for r in welch if (r.style_a, r.style_b) == ("fpn", "unet"))
    assert w.p == pytest.approx(float(sps.ttest_ind(a, b, equal_var=False).pvalue))
    # the planted U-Net deficit is found; the advanced styles do not differ
    assert all(r.p_bonferroni < 0.05 for r in pw if "unet" in (r.style_a, r.style_b))
    assert all(r.p_bonferroni > 0.05 for r in pw if "unet" not in (r.style_a, r.style_b))


def test_paired_tests_use_the_same_subjects() -> None:
    df = _planted()
    pw = pairwise_paired(df, "dice", STYLES)
    r = next(r for r in pw if (r.style_a, r.style_b) == ("fpn", "unet"))
    wide = df.pivot_table(index="subject", columns="style", values="dice")
    ref = sps.ttest_rel(wide["fpn"], wide["unet"])
    assert r.n_a == 100 and r.p == pytest.approx(float(ref.pvalue))
    assert r.mean_diff == pytest.approx(0.08, abs=0.03)
    assert r.p_bonferroni == pytest.approx(min(1.0, 6 * r.p))


def test_small_sites_are_pooled_and_single_site_drops_the_term() -> None:
    labels, pooled = pool_small_sites(pd.Series(["A"] * 5 + ["B"] + ["C", "C"] + ["D"] * 3), 3)
    assert pooled == ["B", "C"] and (labels == POOLED_LEVEL).sum() == 3
    df = _planted(n_per_site=8)
    # shrink site D to one subject and site B to two
    keep = ~df["subject"].isin([f"sD{i}" for i in range(1, 8)] + [f"sB{i}" for i in range(2, 8)])
    res = run_stats(df[keep], min_site_n=3)
    fpn = next(o for o in res.metrics["dice"].ols if o.style == "fpn")
    assert fpn.pooled_sites == ["B", "D"]
    assert fpn.coefficient(f"site[{POOLED_LEVEL}]") is not None
    assert any("pooled" in n for n in collect_notes(res))
    one_site = df[df["site"] == "A"]
    res1 = run_stats(one_site)
    o = res1.metrics["dice"].ols[0]
    assert not any(c.term.startswith("site") for c in o.coefficients)
    assert any("single site" in n for n in res1.notes)
    assert res1.metrics["dice"].mixed == []


def test_missed_lesions_take_the_worst_case_or_are_excluded_and_counted(tmp_path) -> None:
    study = make_fake_study(tmp_path / "s", FakeStudySpec(p_missed=0.1, n_volumes=0, seed=3))
    df = load_metrics(study)
    sel = df.query("orientation == '2.5D' and protocol == 'full' and ref_ml > 0")
    n_missed = int((sel["status"] == "missed").sum())
    assert (
        n_missed > 0
        and (sel.loc[sel["status"] == "missed", "hd95_mm"] == sel["fov_diagonal_mm"].iloc[0]).all()
    )
    worst = run_stats(df, protocol="full", mixed=False)  # default policy: worst
    hd = worst.metrics["hd95_mm"]
    assert hd.counts.nan_metric == 0 and hd.counts.worst_case == n_missed and hd.counts.not_common == 0
    assert any("take the worst-case" in n for n in hd.notes)
    excl = run_stats(df, protocol="full", mixed=False, hd95_when_empty="exclude")
    hx = excl.metrics["hd95_mm"]
    assert hx.counts.nan_metric == n_missed and hx.counts.not_common > 0
    common = hx.same_subjects.n_subjects if hx.same_subjects else 0
    assert hx.counts.used == 4 * common  # every style compared on the same subjects
    assert any("comparisons use the" in n and "scored by all 4 compared styles" in n for n in hx.notes)
    assert worst.metrics["hd95_mm"].counts.hemorrhage_free == 3 * 4
    assert worst.metrics["dice"].counts.nan_metric == 0
    assert len(worst.false_positive_free) == 4 and worst.false_positive_free[0].n == 3


def test_mixed_model_recovers_site_variance() -> None:
    from iphbench.stats import fit_mixed

    df = _planted(n_per_site=20)
    rows = df[df["style"] == "fpn"]
    m = fit_mixed(rows, "dice", "fpn")
    assert m is not None and m.n_sites == 4 and m.n == 80
    vol = next(c for c in m.coefficients if c.term == "ref_ml")
    assert vol.estimate > 0 and vol.p < 0.05
    assert m.icc_site > 0.3  # site C's +0.15 against sd 0.05 noise


def test_volume_agreement_and_icc() -> None:
    df = _planted()
    res = run_stats(df, mixed=False)
    va = res.agreement[0]
    ref = df.query("style == @va.style")["ref_ml"]
    assert va.bias_ml == pytest.approx(0.1 * ref.mean())
    assert va.loa_low_ml < va.bias_ml < va.loa_high_ml
    assert va.pearson_r == pytest.approx(1.0)
    assert len(va.per_site) == 4
    x = np.array([1.0, 2, 3, 4, 5])
    assert icc_a1(x, x) == pytest.approx(1.0)
    assert icc_a1(x, x + 2) < icc_a1(x, x + 0.1) < 1.0


def test_write_stats_writes_tables_and_strict_json(tmp_path) -> None:
    study = make_fake_study(tmp_path / "s", FakeStudySpec(n_volumes=0))
    out = write_stats(study)
    for name in (
        "regression",
        "anova",
        "posthoc",
        "mixed",
        "normality",
        "volume_agreement",
        "volume_by_site",
    ):
        assert (out / f"{name}.csv").stat().st_size > 0
    anova = pd.read_csv(out / "anova.csv")
    assert set(anova["protocol"]) == {"paper", "full"} and set(anova["metric"]) == {"dice", "iou", "hd95_mm"}
    summary = json.loads(
        (out / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}")
    )
    assert summary[0]["protocol"] == "paper"
    md = (out / "stats.md").read_text()
    assert "Protocol `paper`" in md and "Protocol `full`" in md


def test_site_term_is_eq_6_by_default_and_pooling_is_an_option_that_is_said() -> None:
    df = _planted(n_per_site=8)
    keep = ~df["subject"].isin([f"sD{i}" for i in range(1, 8)] + [f"sB{i}" for i in range(2, 8)])
    default = run_stats(df[keep], mixed=False)  # every site its own level, as the paper's eq. 6
    fpn = next(o for o in default.metrics["dice"].ols if o.style == "fpn")
    assert fpn.pooled_sites == [] and fpn.coefficient("site[B]") is not None and fpn.coefficient("site[D]")
    assert not any("pooled" in n for n in collect_notes(default))
    assert any("site(s) D have a single subject with a hemorrhage" in n for n in default.notes)
    pooled = run_stats(df[keep], mixed=False, min_site_n=3)
    assert any(
        "pooled into one 'pooled small sites' level" in n and "min_site_n" in n for n in collect_notes(pooled)
    )


def test_repeated_measures_anova_equals_statsmodels_and_rank_tests_follow_non_normal_residuals() -> None:
    from statsmodels.stats.anova import AnovaRM

    from iphbench.stats import same_subject_comparison

    df = _planted(n_per_site=10)
    res = same_subject_comparison(df, "dice", STYLES)
    ref = AnovaRM(df, "dice", "subject", within=["style"]).fit().anova_table.loc["style"]
    assert res.rm_anova is not None and res.rm_anova.stat == pytest.approx(float(ref["F Value"]), rel=1e-9)
    assert res.rm_anova.p == pytest.approx(float(ref["Pr > F"]), rel=1e-6, abs=1e-300)
    assert res.rm_anova.label == "F(3, 117)" and res.n_subjects == 40
    assert res.normal and res.friedman is None and {t.kind for t in res.posthoc} == {"paired"}
    wide = df.pivot_table(index="subject", columns="style", values="dice")
    t = next(t for t in res.posthoc if (t.style_a, t.style_b) == ("fpn", "unet"))
    assert t.p == pytest.approx(float(sps.ttest_rel(wide["fpn"], wide["unet"]).pvalue))
    # heavy-tailed differences: Shapiro–Wilk rejects, Friedman and Wilcoxon take over (scipy's values)
    skewed = df.copy()
    rng = np.random.default_rng(3)
    skewed["dice"] = skewed["dice"] + rng.standard_cauchy(len(skewed)) * 0.05
    res = same_subject_comparison(skewed, "dice", STYLES)
    assert not res.normal and res.shapiro_p < 0.05 and res.friedman is not None
    wide = skewed.pivot_table(index="subject", columns="style", values="dice")[STYLES]
    assert res.friedman.p == pytest.approx(float(sps.friedmanchisquare(*[wide[s] for s in STYLES]).pvalue))
    assert res.friedman.label == "χ²(3)" and {t.kind for t in res.posthoc} == {"wilcoxon"}
    w = next(t for t in res.posthoc if (t.style_a, t.style_b) == ("fpn", "unet"))
    assert w.p == pytest.approx(float(sps.wilcoxon(wide["fpn"], wide["unet"]).pvalue))
    assert w.p_bonferroni == pytest.approx(min(1.0, 6 * w.p))
