"""Detection tables of the report (beyond the paper): lesion-wise, and subject-level found / missed.

Built from :class:`iphbench.stats.detection.DetectionSummary` (one per style, for the analysed
orientation and protocol). Two small tables per protocol:

* **Lesion-wise detection**: reference lesions, lesions found, lesion-wise sensitivity, false
  lesions and false lesions per scan, per style;
* **Subject-level detection**: subjects with a hemorrhage found at all (any reference voxel
  predicted) or missed, and, under the ``full`` protocol, lesion-free scans with a false lesion.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import pandas as pd

from iphbench.report.tables import protocol_label
from iphbench.stats.detection import DetectionSummary
from iphbench.stats.formatting import markdown_table, text_frame
from iphbench.stats.metrics_table import display_name


@dataclass
class DetectionTable:
    """One of the two detection tables of a protocol."""

    kind: str  # "lesion" or "subject"
    protocol: str
    orientation: str
    frame: pd.DataFrame  # rows: styles (display names); cells already text
    min_lesion_ml: float | None = None  # eval.lesion_min_ml, when known

    @property
    def caption(self) -> str:
        where = f"{protocol_label(self.protocol)}, {self.orientation}"
        if self.kind == "lesion":
            size = f"{self.min_lesion_ml:g} mL" if self.min_lesion_ml is not None else "eval.lesion_min_ml"
            return (
                f"Lesion-wise detection, {where} (beyond the paper). Lesions are connected components "
                f"(26-connectivity) of at least {size}; a reference lesion is found when a predicted lesion "
                "overlaps it; a false lesion overlaps no reference lesion. Sensitivity = found / reference "
                "lesions; false lesions per scan over every scored scan."
            )
        return (
            f"Subject-level detection, {where} (beyond the paper): a subject with a hemorrhage is found when any "
            "of its reference voxels is predicted, missed otherwise."
            + (
                " Lesion-free scans: how many got at least one false lesion."
                if "Lesion-free scans" in self.frame
                else ""
            )
        )

    def to_markdown(self) -> str:
        return f"**{self.caption}**\n\n" + markdown_table(self.frame, index=True)

    def to_html(self) -> str:
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in self.frame.columns)
        body = "".join(
            f"<tr><th>{html.escape(str(i))}</th>"
            + "".join(f"<td>{html.escape(v)}</td>" for v in row)
            + "</tr>"
            for i, row in zip(self.frame.index, self.frame.to_numpy(), strict=True)
        )
        return (
            f'<div class="table-wrap"><table class="results detection"><caption>{html.escape(self.caption)}'
            f"</caption><thead><tr><th>Style</th>{head}</tr></thead><tbody>{body}</tbody></table></div>"
        )


def detection_tables(
    summaries: list[DetectionSummary], protocol: str, orientation: str, min_lesion_ml: float | None = None
) -> list[DetectionTable]:
    """The lesion-wise and subject-level tables of one protocol; empty when there is nothing to show."""
    if not summaries:
        return []
    names = [display_name(d.style) for d in summaries]
    lesion = pd.DataFrame(
        {
            "Reference lesions": [d.lesions_ref for d in summaries],
            "Found": [d.lesions_hit for d in summaries],
            "Sensitivity": [d.sensitivity for d in summaries],
            "False lesions": [d.lesions_false for d in summaries],
            "False lesions per scan": [d.false_per_scan for d in summaries],
            "Scans": [d.n_scans for d in summaries],
        },
        index=pd.Index(names, name="Style"),
    )
    subject = pd.DataFrame(
        {
            "Subjects with a hemorrhage": [d.n_hemorrhage for d in summaries],
            "Found": [d.subjects_found for d in summaries],
            "Missed": [d.subjects_missed for d in summaries],
        },
        index=pd.Index(names, name="Style"),
    )
    if any(d.n_lesion_free for d in summaries):
        subject["Lesion-free scans"] = [d.n_lesion_free for d in summaries]
        subject["with a false lesion"] = [d.lesion_free_with_false for d in summaries]
    return [
        DetectionTable("lesion", protocol, orientation, text_frame(lesion, digits=3), min_lesion_ml),
        DetectionTable("subject", protocol, orientation, text_frame(subject), min_lesion_ml),
    ]


__all__ = ["DetectionTable", "detection_tables"]
