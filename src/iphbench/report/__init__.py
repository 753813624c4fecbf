"""The paper's tables and figures and the self-contained HTML report of a study.

Example:
    >>> from iphbench.report import write_report  # doctest: +SKIP
    >>> write_report("study")  # doctest: +SKIP
    PosixPath('study/report.html')
"""

from __future__ import annotations

from iphbench.report.figures import (
    figure_age_vs_f,
    figure_site_boxplots,
    figure_volume_agreement,
    save_figure,
    volume_log_ratio,
)
from iphbench.report.html import software_versions, write_report
from iphbench.report.overlays import figure_overlays, load_case, pick_cases
from iphbench.report.tables import CohortTable, MetricTable, cohort_table, metric_table, write_tables

__all__ = [
    "CohortTable",
    "MetricTable",
    "cohort_table",
    "figure_age_vs_f",
    "figure_overlays",
    "figure_site_boxplots",
    "figure_volume_agreement",
    "load_case",
    "metric_table",
    "pick_cases",
    "save_figure",
    "software_versions",
    "volume_log_ratio",
    "write_report",
    "write_tables",
]
