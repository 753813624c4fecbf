"""Statistics of a study (paper section 3.5): per-style regression, ANOVA, post-hoc tests, mixed model, volume agreement.

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
    DEFAULT_METRICS,
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
from iphbench.stats.formatting import format_num, format_p
from iphbench.stats.metrics_table import (
    METRIC_LABELS,
    STYLE_NAMES,
    MetricsTableError,
    display_name,
    load_metrics,
    ordered_orientations,
    ordered_protocols,
    ordered_styles,
    select_rows,
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
from iphbench.stats.write import save_stats, stats_markdown, stats_tables, write_stats

__all__ = [
    "DEFAULT_METRICS",
    "METRIC_LABELS",
    "POOLED_LEVEL",
    "STYLE_NAMES",
    "AnovaResult",
    "FalsePositiveFree",
    "MetricStats",
    "MetricsTableError",
    "MixedResult",
    "OLSResult",
    "PairwiseResult",
    "ProtocolStats",
    "RowCounts",
    "VolumeAgreement",
    "bonferroni",
    "collect_notes",
    "display_name",
    "false_positive_free",
    "fit_mixed",
    "fit_ols",
    "format_num",
    "format_p",
    "icc_a1",
    "load_metrics",
    "one_way_anova",
    "ordered_orientations",
    "ordered_protocols",
    "ordered_styles",
    "pairwise_paired",
    "pairwise_unpaired",
    "pool_small_sites",
    "residual_normality",
    "run_stats",
    "save_stats",
    "select_rows",
    "stats_markdown",
    "stats_tables",
    "subject_table",
    "volume_agreement",
    "write_stats",
]
