"""Time the statistics and the HTML report on fake studies of the paper's size (239 subjects, 17 sites).

Usage: .venv/bin/python bench/stats_report.py [--quick]

The fake study has planted effects (tests/_fake_study.py); its numbers are not results.
Prints a Markdown table: wall seconds for run_stats (with and without the mixed model), the
figures + report, the report's size, and checks that the ANOVA has the paper's F(3, 952) layout.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

from iphbench.report import write_report
from iphbench.stats import load_metrics, run_stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _fake_study import FakeStudySpec, make_fake_study  # the tests' fake study (not shipped in the package)

PAPER_SITES = {
    "A": 54,
    "B": 2,
    "C": 40,
    "D": 8,
    "E": 9,
    "F": 7,
    "G": 8,
    "H": 6,
    "I": 5,
    "J": 28,
    "K": 11,
    "L": 9,
    "M": 16,
    "N": 26,
    "O": 3,
    "P": 5,
    "Q": 2,
}  # fmt: skip  (paper Table 1, N = 239)


def _time(fn, repeat: int = 1) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a 48-subject study instead of the paper's 239")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    sites = {"A": 14, "B": 2, "C": 12, "D": 1, "E": 10, "F": 9} if args.quick else PAPER_SITES
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for protocols in (("paper",), ("paper", "full")):
            spec = FakeStudySpec(
                sites=sites, n_free=0 if protocols == ("paper",) else 10, protocols=protocols, n_volumes=4
            )
            study = make_fake_study(Path(tmp) / "-".join(protocols), spec)
            df = load_metrics(study)
            t_no_mixed, _ = _time(lambda df=df: run_stats(df, mixed=False), repeat=2)
            t_mixed, res = _time(lambda df=df: run_stats(df, mixed=True))
            t_report, path = _time(lambda study=study: write_report(study))
            anova = res.metrics["dice"].anova  # type: ignore[attr-defined]
            rows.append((sum(sites.values()), len(sites), "+".join(protocols), len(df), anova.label, t_no_mixed, t_mixed,
                         t_mixed / t_no_mixed, t_report, path.stat().st_size / 1e6))  # type: ignore[union-attr]  # fmt: skip
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print()
    print("| subjects | sites | protocols | metrics rows | ANOVA df | run_stats no mixed (s) | run_stats with mixed (s) "
          "| mixed / no mixed | write_report (s) | report.html (MB) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]:.2f} | {r[6]:.2f} | {r[7]:.1f}× | {r[8]:.1f} | {r[9]:.2f} |"
        )


if __name__ == "__main__":
    main()
