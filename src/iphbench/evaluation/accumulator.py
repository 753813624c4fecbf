"""Accumulating per-subject segmentation metrics, a thin layer on the pure functions of ``metrics``.

As MONAI's metric classes sit on its ``compute_*`` functions, :class:`MetricAccumulator` only
collects :class:`~iphbench.evaluation.metrics.SegmentationMetrics` rows with their labels, counts the
empty-mask cases ("missed", "false_alarm", "both_empty"; never dropped) and summarises them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from iphbench.evaluation.metrics import STATUSES, SegmentationMetrics, segmentation_metrics

log = logging.getLogger(__name__)


class MetricAccumulator:
    """Collects per-subject :class:`SegmentationMetrics` with labels, as MONAI's metric classes do.

    A thin layer on :func:`segmentation_metrics`: it keeps every row (nothing is dropped), counts
    the empty-mask cases and summarises mean ± sd over the rows where a metric is defined.

    Example:
        >>> import numpy as np
        >>> acc = MetricAccumulator()
        >>> ref = np.zeros((8, 8), bool); ref[2:5, 2:5] = True
        >>> _ = acc.add(ref, ref, (1.0, 1.0), subject="s1")
        >>> _ = acc.add(np.zeros_like(ref), ref, (1.0, 1.0), subject="s2")
        >>> acc.counts["missed"], len(acc)
        (1, 2)
    """

    def __init__(self, percentile: float = 95.0) -> None:
        self.percentile = percentile  # Hausdorff percentile used by add()
        self._items: list[tuple[dict[str, object], SegmentationMetrics]] = []

    def add(
        self, pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], **labels: object
    ) -> SegmentationMetrics:
        """Compute the metrics of one subject and keep them with ``labels`` (subject, style, ...)."""
        m = segmentation_metrics(pred, ref, spacing, percentile=self.percentile)
        self.append(m, **labels)
        return m

    def append(self, metrics: SegmentationMetrics, **labels: object) -> None:
        """Keep already computed metrics with their labels."""
        clash = set(labels) & set(metrics.as_dict())
        if clash:
            raise ValueError(f"label name(s) {sorted(clash)} clash with metric fields; rename them")
        self._items.append((dict(labels), metrics))
        if metrics.status != "ok":
            log.debug("subject %s: %s", labels.get("subject", "?"), metrics.status)

    def __len__(self) -> int:
        return len(self._items)

    def reset(self) -> None:
        """Forget every row."""
        self._items.clear()

    @property
    def counts(self) -> dict[str, int]:
        """Number of rows per status ("ok", "both_empty", "missed", "false_alarm")."""
        out: dict[str, int] = dict.fromkeys(STATUSES, 0)
        for _, m in self._items:
            out[m.status] += 1
        return out

    def records(self) -> list[dict[str, object]]:
        """One dict per added subject: its labels then the metric fields."""
        return [{**labels, **m.as_dict()} for labels, m in self._items]

    def aggregate(self) -> dict[str, float | int]:
        """Mean and sample sd (ddof=1) of each metric over the rows where it is defined (not NaN).

        Returns keys ``n``, the status counts, and for each of dice, iou, precision, recall, hd95_mm:
        ``<name>_mean``, ``<name>_sd`` and ``<name>_n`` (rows that entered the mean). Missed and
        false-alarm subjects count in Dice/IoU (as 0) but not in d_H95 (NaN): ``hd95_mm_n`` says how many did.
        """
        out: dict[str, float | int] = {"n": len(self._items), **self.counts}
        for name in ("dice", "iou", "precision", "recall", "hd95_mm"):
            v = np.array([getattr(m, name) for _, m in self._items], dtype=np.float64)
            v = v[~np.isnan(v)]
            out[f"{name}_n"] = int(v.size)
            out[f"{name}_mean"] = float(v.mean()) if v.size else math.nan
            out[f"{name}_sd"] = float(v.std(ddof=1)) if v.size > 1 else math.nan
        return out

    def to_frame(self) -> pd.DataFrame:
        """The rows as a pandas DataFrame."""
        return pd.DataFrame(self.records())
