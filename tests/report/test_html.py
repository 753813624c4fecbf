"""report.html: one self-contained file holding every table and figure, statistics in words, config, versions."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd

from iphbench.report import write_report


def test_report_holds_every_table_and_figure(fake_study: Path) -> None:
    path = write_report(fake_study, pdf=False)
    assert path == fake_study / "report.html"
    text = path.read_text(encoding="utf-8")
    # self-contained: no external scripts, stylesheets or images
    assert not re.search(r"<(script|link)\b", text)
    assert not re.search(r'src="(?!data:image/png;base64,)', text)
    # Table 1 once, Tables 2-4 once per protocol, each caption naming its protocol
    assert text.count("<caption>Table 1:") == 1
    for n, name in ((2, "F-measure"), (3, "IoU"), (4, "d_H95")):
        assert f"<caption>Table {n}: {name} for IPH segmentation, paper protocol" in text
        assert f"<caption>Table {n}: {name} for IPH segmentation, full protocol" in text
    # Fig. 1, 2, 3 and the volume agreement per protocol, embedded
    for p in ("paper", "full"):
        for fig in ("Figure 1", "Figure 2", "Figure 3", "Figure V"):
            assert f"<figcaption>{fig} ({p} protocol" in text
    assert text.count('src="data:image/png;base64,') == 8
    # statistics in words, with both degrees of freedom
    assert re.search(
        r"One-way ANOVA \(as published\) of the F-measure across the 4 styles found .*F\(3, \d+\) = \d", text
    )
    assert "Bonferroni" in text and "random intercept per site" in text and "reference volume" in text
    # every site its own level (eq. 6) by default; the one-subject site is noted
    assert "site as a fixed effect)" in text and "pooled small sites" not in text
    assert "site(s) D have a single subject with a hemorrhage" in text
    # same-subject comparisons beside the published ones, and the test behind every p value
    assert re.search(r"On the same \d+ subjects \(beyond the paper\), a repeated-measures ANOVA", text)
    assert "Shapiro–Wilk on its residuals" in text
    for p_value in re.findall(r"\(Δ = [0-9.]+, ([^,]+), Bonferroni p", text):
        assert p_value in ("unpaired t", "paired t", "Wilcoxon")
    assert "every p value names its test" in text
    # d_H95 policy stated (worst by default) and the detection tables (beyond the paper)
    assert "take the worst-case d_H95, the diagonal of the scan&#x27;s field of view" in text
    for p in ("paper", "full"):
        assert f"<caption>Lesion-wise detection, {p} protocol" in text
        assert f"<caption>Subject-level detection, {p} protocol" in text
    assert (fake_study / "tables" / "table_detection_lesion_paper.md").is_file()
    assert "Hemorrhage-free subjects" in text  # full protocol false positives
    # run notes near the top, config and software versions at the end
    assert text.index("reduced") < text.index("Table 1:")
    assert "<strong>reduced</strong>" in text and "**" not in text  # the notes' Markdown is rendered
    assert "name: fake-study" in text and "statsmodels" in text and "numpy" in text
    assert (fake_study / "figures" / "fig2_age_vs_f_paper.png").is_file()
    assert (fake_study / "tables" / "table2_dice_full.tex").is_file()


def test_models_that_did_not_learn_get_the_banner_and_learned_ones_do_not(
    fake_study: Path, tmp_path: Path
) -> None:
    learned = write_report(fake_study, out=tmp_path / "learned.html", pdf=False).read_text(encoding="utf-8")
    assert 'class="banner"' not in learned  # the fake study's styles score F ≈ 0.6-0.8
    study = tmp_path / "untrained"
    shutil.copytree(fake_study, study)
    m = pd.read_csv(study / "metrics.csv")
    m["dice"] *= 0.1  # best 2.5D mean F ≈ 0.07, as in the issue
    m.loc[m["ref_ml"] == 0, "pred_ml"] = 10_000.0  # ten litres of false positives per lesion-free scan
    m.to_csv(study / "metrics.csv", index=False)
    text = write_report(study, pdf=False).read_text(encoding="utf-8")
    banner = text[text.index('class="banner"') : text.index("</div>", text.index('class="banner"'))]
    assert text.index('class="banner"') < text.index("Key results") < text.index("Table 1:")
    assert "These results are not meaningful: the models did not learn." in banner
    assert "is below 0.2" in banner and "10000 mL" in banner and "eval.learning_check" in banner
    assert "<caption>Table 2:" in text and "One-way ANOVA" in text  # the statistics are still there, under it


def test_exclude_policy_shows_n_per_cell_and_compares_common_subjects(
    fake_study: Path, tmp_path: Path
) -> None:
    text = write_report(fake_study, out=tmp_path / "exclude.html", pdf=False, hd95_when_empty="exclude")
    page = text.read_text(encoding="utf-8")
    table4 = page[page.index("<caption>Table 4:") : page.index("</table>", page.index("<caption>Table 4:"))]
    assert "policy &#x27;exclude&#x27;" in table4 and "each cell shows its n" in table4
    assert len(re.findall(r"\(n = \d+\)", table4)) == 16  # 4 orientations × 4 styles
    assert "comparisons use the" in page and "scored by all 4 compared styles" in page
