"""A missed lesion cannot flatter a style (issue 12): the d_H95 policy, common subjects, the paper's F(3, 952)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iphbench.report.narrative import describe_posthoc
from iphbench.report.tables import metric_table
from iphbench.stats import apply_hd95_policy, run_stats

STYLES = ["attention_unet", "fpn", "transunet", "unet"]
FOV = 383.3  # mm: the diagonal of a 512 × 512 × 40 scan at 0.45 × 0.45 × 5 mm


def _reviewers_case(finder: str = "fpn", n: int = 40, n_small: int = 10, seed: int = 0) -> pd.DataFrame:
    """Four styles identical (up to 0.05 mm) except that ``finder`` also finds ``n_small`` small lesions
    (d_H95 12 mm) that the other three miss: they get d_H95 NaN and status ``missed`` (as metrics.csv
    holds them under the ``exclude`` policy), with the scan's field-of-view diagonal beside."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        small = i < n_small
        base_hd = float(rng.uniform(1.0, 6.0))
        ref = 0.5 if small else float(rng.uniform(5, 40))
        for style in STYLES:
            found = not small or style == finder
            rows.append({
                "subject": f"s{i:02d}", "site": "ABCD"[i % 4], "age": 50.0 + i, "sex": "MF"[(i // 4) % 2],
                "style": style, "orientation": "2.5D", "protocol": "paper", "ref_ml": ref,
                "pred_ml": ref if found else 0.0, "dice": (0.5 if small else 0.8) if found else 0.0,
                "iou": 0.5 if found else 0.0,
                "hd95_mm": (12.0 if small else base_hd + float(rng.normal(0, 0.05))) if found else np.nan,
                "status": "ok" if found else "missed", "fov_diagonal_mm": FOV,
            })  # fmt: skip
    return pd.DataFrame(rows)


def test_the_style_that_finds_more_lesions_ranks_better_under_worst() -> None:
    df = _reviewers_case()
    res = run_stats(df, mixed=False)  # default policy: worst
    hd = res.metrics["hd95_mm"]
    assert hd.counts.worst_case == 30 and hd.counts.nan_metric == 0 and hd.counts.not_common == 0
    # every style is averaged over the same 40 subjects: the ANOVA keeps its degrees of freedom
    assert hd.anova is not None and hd.anova.label == "F(3, 156)"
    means = hd.anova.means
    assert min(means, key=means.__getitem__) == "fpn" and means["fpn"] < 10 < means["unet"]
    table = metric_table(df, "hd95_mm", "paper")
    assert (
        table.best["2.5D"] == ["fpn"]
        and "policy 'worst'" in table.caption
        and "30 subject-rows" in table.caption
    )
    # as published (unpaired t-tests), the finder is now better than each of the others
    published = describe_posthoc(hd, "unpaired")
    for other in ("Attention U-Net", "Trans U-Net", "U-Net"):
        assert f"FPN better than {other} (Δ = " in published
    # on the same subjects the ten missed lesions are the only difference: the RM ANOVA sees it, its
    # residuals are not normal (ten huge differences), so Friedman and Wilcoxon tests are used, and every
    # paired difference favours the finder (their ranks ignore how large the ten differences are)
    same = hd.same_subjects
    assert same is not None and same.n_subjects == 40 and same.rm_anova is not None and same.rm_anova.p < 0.05
    assert not same.normal and same.friedman is not None and same.posthoc_test == "Wilcoxon signed-rank test"
    for t in same.posthoc:
        if "fpn" in (t.style_a, t.style_b):
            assert (t.mean_diff < 0) == (t.style_a == "fpn"), t
    # no test calls the finder worse, as the reviewer's run did
    assert "better than FPN" not in published + describe_posthoc(hd, "paired")


def test_under_exclude_the_comparison_uses_the_common_subjects_and_says_so() -> None:
    df = _reviewers_case()
    res = run_stats(df, mixed=False, hd95_when_empty="exclude")
    hd = res.metrics["hd95_mm"]
    assert hd.counts.nan_metric == 30 and hd.counts.not_common == 10  # FPN's ten extra subjects
    assert hd.anova is not None and hd.anova.label == "F(3, 116)"  # 4 styles × 30 common subjects
    assert set(hd.anova.n_per_style.values()) == {30}
    note = next(n for n in hd.notes if n.startswith("comparisons use the"))
    assert (
        note
        == "comparisons use the 30 subjects scored by all 4 compared styles (10 subject-rows of other subjects left out)"
    )
    # identical styles on the same subjects: nothing differs, and FPN is not called worse
    assert hd.anova.p > 0.05 and all(t.p_bonferroni > 0.05 for t in [*hd.unpaired, *hd.paired])
    table = metric_table(df, "hd95_mm", "paper", hd95_when_empty="exclude")
    assert table.show_n and table.cell("2.5D", "fpn").endswith("(n = 40)")
    assert table.cell("2.5D", "unet").endswith("(n = 30)") and "policy 'exclude'" in table.caption


def test_policy_is_idempotent_and_old_tables_without_the_diagonal_are_noted() -> None:
    df = _reviewers_case()
    once, _ = apply_hd95_policy(df, "worst")
    twice, _ = apply_hd95_policy(once, "worst")
    pd.testing.assert_frame_equal(once, twice)
    assert (once.loc[once["status"] == "missed", "hd95_mm"] == FOV).all()
    back, _ = apply_hd95_policy(once, "exclude")
    assert back.loc[back["status"] == "missed", "hd95_mm"].isna().all()
    _, notes = apply_hd95_policy(df.drop(columns="fov_diagonal_mm"), "worst")
    assert "30 missed-lesion or false-alarm rows have no field-of-view diagonal" in notes[0]
    with pytest.raises(ValueError, match="worst"):
        apply_hd95_policy(df, "zero")


def _paper_layout(n_subjects: int = 239, missed_per_style: int = 0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for style in STYLES:
        missed = (
            set(rng.choice(n_subjects, missed_per_style, replace=False).tolist())
            if missed_per_style
            else set()
        )
        for i in range(n_subjects):
            m = i in missed
            f = 0.0 if m else float(np.clip(rng.normal(0.8 - 0.05 * (style == "unet"), 0.1), 0, 1))
            rows.append({
                "subject": f"s{i:03d}", "site": "ABCDEFGHIJKLMNOPQ"[i % 17], "age": float(40 + i % 50),
                "sex": "MF"[(i // 17) % 2], "style": style, "orientation": "2.5D", "protocol": "paper",
                "ref_ml": float(1 + i % 40), "pred_ml": 0.0 if m else float(1 + i % 40), "dice": f, "iou": f / (2 - f),
                "hd95_mm": np.nan if m else float(abs(rng.normal(2.5, 4))), "status": "missed" if m else "ok",
                "fov_diagonal_mm": FOV,
            })  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize("missed", [0, 5])
def test_the_papers_f_3_952_holds_under_the_default_policy(missed: int) -> None:
    """4 styles × 239 subjects give F(3, 952) for every metric, also when some lesions are missed."""
    res = run_stats(_paper_layout(missed_per_style=missed), mixed=False)
    for metric in ("dice", "iou", "hd95_mm"):
        ms = res.metrics[metric]
        assert ms.anova is not None and ms.anova.label == "F(3, 952)", metric
        assert ms.same_subjects is not None and ms.same_subjects.rm_anova is not None
        assert ms.same_subjects.rm_anova.label == "F(3, 714)"  # (4 − 1) × (239 − 1)
    # the published layout is lost as soon as a lesion is missed and such rows are excluded
    if missed:
        ex = run_stats(_paper_layout(missed_per_style=missed), mixed=False, hd95_when_empty="exclude")
        assert ex.metrics["hd95_mm"].anova.label != "F(3, 952)"  # type: ignore[union-attr]
