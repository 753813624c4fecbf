"""One metric table (issue 21): labels, table numbers and directions come from
``iphbench.evaluation.scoring.METRICS``, and a metric added there reaches the statistics, the tables
and the report without another edit; the d_H95 policy is applied once per report, where metrics.csv
is loaded."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from _fake_study import FakeStudySpec, make_fake_study
from iphbench.cli import app
from iphbench.evaluation import scoring
from iphbench.evaluation.scoring import Metric, analysed_metrics, metric_info, table_metrics
from iphbench.report import write_report
from iphbench.report.tables import metric_table
from iphbench.stats import MetricsTable, MetricsTableError, load_metrics, load_metrics_table, write_stats
from iphbench.stats import metrics_table as mt

SPEC = FakeStudySpec(sites={"A": 6, "B": 5, "C": 3}, n_free=1, n_volumes=0, protocols=("paper",), seed=11)
#: A metric the paper does not report, computed here from metrics.csv's precision and recall (a real one is
#: computed in evaluation/metrics.py and written by score_prediction, in evaluation/scoring.py).
F2 = Metric("f2", "F2-score", higher_is_better=True, table=5, short_label="F2")


def _with_f2(study: Path) -> pd.DataFrame:
    m = pd.read_csv(study / "metrics.csv")
    p, r = m["precision"].fillna(0.0), m["recall"].fillna(0.0)
    m["f2"] = (5 * p * r / (4 * p + r)).where(4 * p + r > 0, 0.0)
    m.to_csv(study / "metrics.csv", index=False)
    return m


def test_the_papers_metrics_come_from_one_table() -> None:
    assert analysed_metrics() == ("dice", "iou", "hd95_mm")
    assert [(m.name, m.table) for m in table_metrics()] == [("dice", 2), ("iou", 3), ("hd95_mm", 4)]
    hd = metric_info("hd95_mm")
    assert (hd.label, hd.short, hd.heading_html, hd.unit, hd.higher_is_better) == (
        "d_H95 (mm)", "d_H95", "d<sub>H95</sub>", "mm", False,
    )  # fmt: skip
    assert [metric_info(m).short for m in ("dice", "iou")] == ["F-measure", "IoU"]
    other = metric_info("ref_ml")  # any other column: its own name, higher is better, no table
    assert (other.label, other.short, other.table, other.higher_is_better) == ("ref_ml", "ref_ml", None, True)


def test_a_metric_added_to_the_table_reaches_stats_tables_and_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = make_fake_study(tmp_path / "s", SPEC)
    _with_f2(study)
    monkeypatch.setattr(scoring, "METRICS", (*scoring.METRICS, F2))  # the one edit besides computing it

    stats = write_stats(study, mixed=False)
    anova = pd.read_csv(stats / "anova.csv")
    published = anova[anova["test"] == "one-way ANOVA (as published)"]
    assert list(published["metric"]) == ["dice", "iou", "hd95_mm", "f2"]
    assert "f2" in set(pd.read_csv(stats / "regression.csv")["metric"])
    assert "f2" in set(pd.read_csv(stats / "posthoc.csv")["metric"])

    page = write_report(study, pdf=False, mixed=False).read_text(encoding="utf-8")
    assert "<h3>Tables 2-5 (paper protocol)</h3>" in page
    assert "<caption>Table 5: F2 for IPH segmentation, paper protocol" in page
    assert "<h4>F2</h4>" in page and "One-way ANOVA (as published) of the F2 across the 4 styles" in page
    assert (study / "tables" / "table5_f2_paper.md").is_file()
    assert "highest" in (study / "tables" / "table5_f2_paper.md").read_text(encoding="utf-8")

    res = CliRunner().invoke(app, ["stats", str(study), "--no-mixed"], env={"COLUMNS": "240"})
    assert res.exit_code == 0, res.output
    assert "F2-score" in res.output

    # its direction decides the bold cells and the caption
    table = load_metrics_table(study)
    best = metric_table(table, "f2", "paper").best
    monkeypatch.setattr(scoring, "METRICS", (*scoring.METRICS[:-1], Metric("f2", "F2-score", False, table=5)))
    lower = metric_table(table, "f2", "paper")
    assert "lowest" in lower.caption and lower.best != best

    # a metrics.csv written before the metric existed is refused, naming the column to add
    m = pd.read_csv(study / "metrics.csv").drop(columns="f2")
    m.to_csv(study / "metrics.csv", index=False)
    with pytest.raises(MetricsTableError, match="f2"):
        load_metrics(study)


def test_the_hd95_policy_is_applied_once_per_report_and_per_stats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = make_fake_study(tmp_path / "s", SPEC)
    calls: list[str] = []
    apply = mt.apply_hd95_policy

    def counted(df: pd.DataFrame, policy: str = "worst") -> tuple[pd.DataFrame, list[str]]:
        calls.append(policy)
        return apply(df, policy)

    monkeypatch.setattr(mt, "apply_hd95_policy", counted)
    write_stats(study, mixed=False, hd95_when_empty="exclude")
    assert calls == ["exclude"]
    calls.clear()
    page = write_report(study, pdf=False, mixed=False, hd95_when_empty="exclude").read_text(encoding="utf-8")
    assert calls == ["exclude"] and "policy &#x27;exclude&#x27;" in page
    calls.clear()
    assert CliRunner().invoke(app, ["stats", str(study), "--no-mixed"]).exit_code == 0
    assert calls == ["worst"]  # the study's eval.hd95_when_empty


def test_a_policed_table_keeps_its_policy() -> None:
    df = pd.DataFrame(
        {"hd95_mm": [float("nan"), 3.0], "status": ["missed", "ok"], "fov_diagonal_mm": [300.0] * 2}
    )
    table = MetricsTable.of(df, "worst")
    assert table.df["hd95_mm"].tolist() == [300.0, 3.0] and table.hd95_policy == "worst"
    assert MetricsTable.of(table) is table and MetricsTable.of(table, "worst") is table
    with pytest.raises(ValueError, match="already holds d_H95 under policy 'worst'"):
        MetricsTable.of(table, "exclude")
    assert MetricsTable.of(df).hd95_policy == "worst"  # a plain DataFrame: worst by default
