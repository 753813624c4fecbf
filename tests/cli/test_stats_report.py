"""`iphbench stats` and `iphbench report` through Typer's CliRunner."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from _fake_study import FakeStudySpec, make_fake_study
from iphbench.cli import app

runner = CliRunner()
SPEC = FakeStudySpec(sites={"A": 6, "B": 5, "C": 2}, n_free=1, n_volumes=0, protocols=("paper",), seed=2)


def test_stats_prints_key_results_and_writes_tables(tmp_path: Path) -> None:
    study = make_fake_study(tmp_path / "s", SPEC)
    res = runner.invoke(
        app, ["stats", str(study), "--protocol", "paper", "--no-mixed"], env={"COLUMNS": "240"}
    )
    assert res.exit_code == 0, res.output
    assert "F(3, " in res.output and "Bonferroni" in res.output and "slope" in res.output
    text = " ".join(res.output.split())
    assert "site as a fixed effect" in text and "pooled" not in text  # eq. 6: every site its own level
    assert "repeated-measures ANOVA" in text and "as published" in text
    anova = pd.read_csv(study / "stats" / "anova.csv")
    published = anova[anova["test"] == "one-way ANOVA (as published)"]
    assert list(published["metric"]) == ["dice", "iou", "hd95_mm"] and (anova["df_between"] == 3).all()
    assert set(anova["test"]) >= {"one-way ANOVA (as published)", "repeated-measures ANOVA"}
    post = pd.read_csv(study / "stats" / "posthoc.csv")
    assert post["test"].notna().all() and "unpaired t-test (as published)" in set(post["test"])
    pooled = runner.invoke(
        app, ["stats", str(study), "--protocol", "paper", "--no-mixed", "--min-site-n", "3"]
    )
    assert pooled.exit_code == 0 and "pooled" in pooled.output  # the option, and the output says it was used
    bad = runner.invoke(app, ["stats", str(study), "--hd95-when-empty", "zero"])
    assert bad.exit_code == 2 and "worst" in bad.output


def test_stats_accepts_the_study_yaml_and_rejects_bad_input(tmp_path: Path) -> None:
    study = make_fake_study(tmp_path / "s", SPEC)
    res = runner.invoke(app, ["stats", str(study / "config.yaml"), "--no-mixed", "--orientation", "2DCor"])
    assert res.exit_code == 0, res.output
    assert "2DCor" in res.output
    assert runner.invoke(app, ["stats", str(tmp_path / "missing")]).exit_code != 0
    bad = runner.invoke(app, ["stats", str(study), "--protocol", "full"])
    assert bad.exit_code == 2 and "full" in bad.output
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["stats", str(tmp_path / "empty")])
    assert res.exit_code == 1 and "metrics.csv" in res.output


def test_report_writes_a_self_contained_file(tmp_path: Path) -> None:
    study = make_fake_study(tmp_path / "s", SPEC)
    out = tmp_path / "r.html"
    res = runner.invoke(app, ["report", str(study), "-o", str(out), "--no-pdf"])
    assert res.exit_code == 0, res.output
    text = out.read_text(encoding="utf-8")
    assert "<caption>Table 2:" in text and "Figure 1 (paper protocol) is absent" in text
    assert text.count('src="data:image/png;base64,') == 3
    assert "report written" in res.output


def test_single_site_study_stats_and_report_say_the_site_term_was_dropped(tmp_path: Path) -> None:
    # issue 16: every subject at one site left NaN in the regression table and `stats` crashed under pandas 3
    one_site = FakeStudySpec(sites={"A": 12}, n_free=2, n_volumes=0, seed=4)
    study = make_fake_study(tmp_path / "s", one_site)
    res = runner.invoke(app, ["stats", str(study)])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "site term dropped: the cohort has one site" in text
    assert "mixed model (random intercept per site) was skipped" in text
    reg = pd.read_csv(study / "stats" / "regression.csv")
    assert not reg["term"].str.startswith("site").any() and reg["site_reference"].isna().all()
    assert "n/a" in (study / "stats" / "stats.md").read_text()  # the missing reference site, written as n/a
    out = tmp_path / "r.html"
    res = runner.invoke(app, ["report", str(study), "-o", str(out), "--no-pdf"])
    assert res.exit_code == 0, res.output
    page = out.read_text(encoding="utf-8")
    assert "the site term (Sitename in eq. 6) was dropped" in page
    assert "site term dropped: the cohort has one site" in page
    assert "site as a fixed effect" not in page  # the report never claims a term it did not fit
    assert "1 site)" in page and 'class="banner"' not in page
