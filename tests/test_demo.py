"""The demo end to end in a reduced setting (the full demo is `make demo`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from iphbench.demo import DemoSettings, pass_mark
from iphbench.demo.run import run_demo
from iphbench.study.summary import study_learning_check


@pytest.mark.slow
def test_demo_runs_end_to_end_and_reports_honestly(tmp_path: Path) -> None:
    settings = DemoSettings(
        subjects=6, sites=2, size="tiny", folds=2, width=4, epochs=1, steps_per_epoch=2, batch_size=8,
        models=["unet", "fpn"],
    )  # fmt: skip
    stages: list[str] = []
    result = run_demo(tmp_path / "demo", settings, on_stage=stages.append)

    study = tmp_path / "demo" / "study"
    assert result.report == study / "report.html" and result.report.stat().st_size > 50_000
    html = result.report.read_text(encoding="utf-8")
    for caption in ("Table 1:", "Table 2:", "Table 3:", "Table 4:", "Figure 1", "Figure 2", "Figure 3"):
        assert caption in html
    # the headline figure is computed from metrics.csv, not canned
    m = pd.read_csv(study / "metrics.csv")
    fused = m[(m["orientation"] == "2.5D") & (m["protocol"] == "paper")].groupby("style")["dice"].mean()
    assert result.best_style == fused.idxmax() and result.best_dice == pytest.approx(fused.max())
    assert set(m["protocol"]) == {"paper", "full"} and set(m["style"]) == {"unet", "fpn", "unet+iphbench"}
    # both recipes for U-Net, their learning curves, and the same budget of slices for each
    assert "U-Net (iphbench recipe)" in html and "Training and convergence" in html
    assert (study / "figures" / "learning_curves.png").is_file()
    slices = {
        style: pd.read_csv(study / "runs" / style / "2DAxi" / "fold0" / "history.csv")["slices"].iloc[-1]
        for style in ("unet", "unet+iphbench")
    }
    assert slices["unet"] == slices["unet+iphbench"] == 2 * 8
    # two optimisation steps cannot learn: the demo must say it failed, in its notes and the report
    notes = (study / "notes.md").read_text()
    assert "reduced" in notes and "width 4" in notes
    assert result.pass_mark == pass_mark("hard") == 0.40  # the default preset is the hard one
    if result.best_dice < result.pass_mark:
        assert not result.learned and "FAILED" in notes and "FAILED" in html
    # ... and the report opens with the learning-check banner (issue 16): these models did not learn
    check = study_learning_check(study)
    assert (
        not check.meaningful and 'class="banner"' in html and check.headline() in html.replace("&#x27;", "'")
    )
    assert [s.split()[0] for s in stages if s[:1].isdigit()] == ["1/5", "2/5", "3/5", "4/5", "5/5"]
