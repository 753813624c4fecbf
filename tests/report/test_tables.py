"""Tables 1-4: layout, bold best per orientation (max for F/IoU, min for d_H95), renderings."""

from __future__ import annotations

import numpy as np
import pandas as pd

from iphbench.report.tables import cohort_table, metric_table, write_tables

STYLES = ["unet", "attention_unet", "fpn", "transunet"]
ORIENTS = ["2.5D", "2DAxi", "2DCor", "2DSag"]  # deliberately not in the paper's order


def _table(best_f: dict[str, str], best_hd: dict[str, str]) -> pd.DataFrame:
    """Three subjects; per orientation the named style gets the highest F and the lowest d_H95."""
    rows = []
    for o in ORIENTS:
        for s in STYLES:
            for k in range(3):
                dice = 0.6 + 0.01 * k + (0.2 if s == best_f[o] else 0.0)
                hd = np.nan if (s == "unet" and k == 0) else 5.0 + k - (3.0 if s == best_hd[o] else 0.0)
                rows.append({"subject": f"s{k}", "site": "A", "age": 70.0, "sex": "M", "style": s, "orientation": o,
                             "protocol": "paper", "dice": dice, "iou": dice / (2 - dice), "hd95_mm": hd,
                             "ref_ml": 5.0, "pred_ml": 5.0})  # fmt: skip
    return pd.DataFrame(rows)


BEST_F = {"2DAxi": "fpn", "2DCor": "unet", "2DSag": "transunet", "2.5D": "attention_unet"}
BEST_HD = {"2DAxi": "attention_unet", "2DCor": "fpn", "2DSag": "unet", "2.5D": "transunet"}


def test_rows_columns_and_bold_best_per_orientation() -> None:
    df = _table(BEST_F, BEST_HD)
    t = metric_table(df, "dice", "paper")
    assert t.orientations == ["2DAxi", "2DCor", "2DSag", "2.5D"]
    assert t.styles == ["attention_unet", "fpn", "transunet", "unet"]  # alphabetical by display name
    assert {o: b for o, b in t.best.items()} == {o: [s] for o, s in BEST_F.items()}
    md = t.to_markdown()
    assert md.count("**0.810 ± 0.010**") == 4  # exactly one bold cell per orientation
    line = next(ln for ln in md.splitlines() if ln.startswith("| 2DCor"))
    assert line.split("|")[5].strip().startswith("**")  # U-Net is the 4th style column
    hd = metric_table(df, "hd95_mm", "paper")
    assert {o: b for o, b in hd.best.items()} == {o: [s] for o, s in BEST_HD.items()}  # lowest wins
    assert hd.n_excluded_nan == 4 and "4 subject-rows" in hd.caption and "mm" in hd.caption
    assert hd.to_latex().count("\\textbf{") == 4
    assert hd.to_html().count('class="best"') == 4
    frame = hd.to_frame()
    assert frame["best"].sum() == 4 and set(frame["n"]) == {2, 3}


def test_ties_are_all_bold() -> None:
    df = _table(BEST_F, BEST_HD)
    df.loc[df["orientation"] == "2DAxi", "dice"] = 0.5
    t = metric_table(df, "dice", "paper")
    assert len(t.best["2DAxi"]) == 4


def test_cohort_table_counts_and_total() -> None:
    subjects = pd.DataFrame({"subject": list("abcde"), "site": ["A", "A", "B", "B", "B"],
                             "age": [60.0, 80.0, 70.0, 70.0, 70.0], "sex": ["M", "F", "M", "M", "F"],
                             "ref_ml": [10.0, 20.0, 5.0, 0.0, 7.0]})  # fmt: skip
    t = cohort_table(subjects)
    assert list(t.frame.columns) == ["A", "B", "Total"]
    assert t.frame.loc["N", "Total"] == "5"
    assert t.frame.loc["Age", "A"] == "70.00 ± 14.14"
    assert t.frame.loc["Male", "B"] == "2 (66.7%)"
    assert t.frame.loc["IPH volume (mL)", "B"] == "6.00 ± 1.41"  # the hemorrhage-free subject is left out
    assert t.n_free == 1 and "hemorrhage-free" in t.caption
    assert "Total" in t.to_markdown() and "\\textbf{Total}" in t.to_latex()


def test_write_tables_writes_every_format(tmp_path) -> None:
    df = _table(BEST_F, BEST_HD)
    paths = write_tables(df, tmp_path)
    names = {p.name for p in paths}
    for stem in ("table1_cohort", "table2_dice_paper", "table3_iou_paper", "table4_hd95_mm_paper"):
        for ext in ("md", "tex", "csv"):
            assert f"{stem}.{ext}" in names and (tmp_path / f"{stem}.{ext}").stat().st_size > 50
