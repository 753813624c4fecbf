"""Statistics of a study (paper section 3.5): per-style regression, ANOVA and post-hoc tests as published,
same-subject comparisons, mixed model, volume agreement, lesion-wise detection.

Example:
    >>> from iphbench.stats import write_stats  # doctest: +SKIP
    >>> write_stats("study")  # doctest: +SKIP
    PosixPath('study/stats')
"""

from __future__ import annotations

from iphbench.stats.agreement import (
    FalsePositiveFree,
    VolumeAgreement,
    false_positive_free,
    icc_a1,
    volume_agreement,
)
from iphbench.stats.analysis import (
    MetricStats,
    ProtocolStats,
    RowCounts,
    collect_notes,
    run_stats,
)
from iphbench.stats.comparison import (
    AnovaResult,
    PairwiseResult,
    bonferroni,
    one_way_anova,
    pairwise_paired,
    pairwise_unpaired,
)
from iphbench.stats.detection import DetectionSummary, detection_summary, has_lesion_columns
from iphbench.stats.formatting import format_cell, format_num, format_p, markdown_table, text_frame
from iphbench.stats.metrics_table import (
    HD95_POLICIES,
    Comparison,
    MetricsTable,
    MetricsTableError,
    apply_hd95_policy,
    common_subjects,
    comparison_rows,
    display_name,
    headline_orientation,
    load_metrics,
    load_metrics_table,
    ordered_orientations,
    ordered_protocols,
    ordered_styles,
    select_rows,
    study_hd95_policy,
    subject_table,
)
from iphbench.stats.regression import (
    POOLED_LEVEL,
    MixedResult,
    OLSResult,
    fit_mixed,
    fit_ols,
    pool_small_sites,
    residual_normality,
)
from iphbench.stats.repeated import OmnibusResult, SameSubjects, same_subject_comparison
from iphbench.stats.write import save_stats, stats_markdown, stats_tables, write_stats

__all__ = [
    "HD95_POLICIES",
    "POOLED_LEVEL",
    "AnovaResult",
    "Comparison",
    "DetectionSummary",
    "FalsePositiveFree",
    "MetricStats",
    "MetricsTable",
    "MetricsTableError",
    "MixedResult",
    "OLSResult",
    "OmnibusResult",
    "PairwiseResult",
    "ProtocolStats",
    "RowCounts",
    "SameSubjects",
    "VolumeAgreement",
    "apply_hd95_policy",
    "bonferroni",
    "collect_notes",
    "common_subjects",
    "comparison_rows",
    "detection_summary",
    "display_name",
    "false_positive_free",
    "fit_mixed",
    "fit_ols",
    "format_cell",
    "format_num",
    "format_p",
    "has_lesion_columns",
    "headline_orientation",
    "icc_a1",
    "load_metrics",
    "load_metrics_table",
    "markdown_table",
    "one_way_anova",
    "ordered_orientations",
    "ordered_protocols",
    "ordered_styles",
    "pairwise_paired",
    "pairwise_unpaired",
    "pool_small_sites",
    "residual_normality",
    "run_stats",
    "same_subject_comparison",
    "save_stats",
    "select_rows",
    "stats_markdown",
    "stats_tables",
    "study_hd95_policy",
    "subject_table",
    "text_frame",
    "volume_agreement",
    "write_stats",
]
