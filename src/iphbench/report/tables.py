"""The paper's tables: Table 1 (cohort per site) and Tables 2-4 (F-measure, IoU, d_H95 per orientation × style).

Each table is built from ``metrics.csv`` only (nothing canned) and renders to Markdown, LaTeX,
CSV and HTML. Tables 2-4 follow the paper's layout (section 4): rows 2DAxi, 2DCor, 2DSag, 2.5D;
columns the styles in alphabetical order of display name; cells mean ± sd; the best style per
orientation in bold (highest F-measure / IoU, lowest d_H95; ties are all bold). One set per
protocol, and every caption names its protocol.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from iphbench._files import atomic_write_text
from iphbench.evaluation.scoring import metric_info, table_metrics
from iphbench.stats.formatting import text_labels
from iphbench.stats.metrics_table import (
    EMPTY_STATUSES,
    MetricsTable,
    display_name,
    ordered_orientations,
    ordered_protocols,
    ordered_styles,
    reference_note,
    select_rows,
    subject_table,
)

PROTOCOL_LABELS = {
    "paper": "paper protocol (lesion patches only, as published)",
    "full": "full protocol (every brain patch; false positives count)",
}


def protocol_label(protocol: str) -> str:
    """Human description of an evaluation protocol, e.g. ``paper protocol (lesion patches only, as published)``."""
    return PROTOCOL_LABELS.get(protocol, f"protocol {protocol}")


def protocol_description(protocol: str) -> str:
    """The parenthesised part of :func:`protocol_label`: what the protocol scores."""
    label = protocol_label(protocol)
    return label[label.find("(") + 1 : -1] if "(" in label else label


@dataclass
class MetricTable:
    """One of Tables 2-4 for one protocol."""

    metric: str  # dice, iou or hd95_mm
    protocol: str
    orientations: list[str]  # rows
    styles: list[str]  # columns (internal names, display order)
    mean: pd.DataFrame  # orientation × style
    sd: pd.DataFrame
    n: pd.DataFrame  # subjects behind each cell
    best: dict[str, list[str]]  # orientation → best style(s)
    n_excluded_nan: int  # subject-rows without a value (missed lesion / false alarm), excluded from the means
    n_hemorrhage_free: int  # subject-rows of hemorrhage-free subjects, excluded (reported apart)
    digits: int = 3
    hd95_policy: str = "worst"  # d_H95 of a missed lesion or false alarm: "worst" or "exclude"
    n_worst_case: int = 0  # subject-rows holding the worst-case d_H95 (policy "worst")

    @property
    def show_n(self) -> bool:
        """Each cell shows its n when the cells' n differ, and always for d_H95 under ``exclude``."""
        filled = [int(v) for v in self.n.to_numpy().ravel() if v > 0]
        return (self.metric == "hd95_mm" and self.hd95_policy == "exclude") or len(set(filled)) > 1

    @property
    def number(self) -> int:
        """Its number in the paper (the metric table's ``table``); 0 for a metric without one."""
        return metric_info(self.metric).table or 0

    @property
    def caption(self) -> str:
        """Caption naming the protocol and what was excluded."""
        info = metric_info(self.metric)
        unit = f" Values in {info.unit}." if info.unit else ""
        rule = "highest" if info.higher_is_better else "lowest"
        filled = sorted({int(v) for v in self.n.to_numpy().ravel() if v > 0})
        over = (
            "subjects per orientation and style; each cell shows its n"
            if self.show_n
            else f"the {filled[0] if filled else 0} subjects with a hemorrhage"
        )
        text = (
            f"Table {self.number}: {info.short} for IPH segmentation, "
            f"{protocol_label(self.protocol)}. Mean ± standard deviation over {over}.{unit} "
            f"The best style per orientation ({rule}) is in bold."
        )
        if self.metric == "hd95_mm" and self.hd95_policy == "worst":
            text += (
                f" Missed lesions and false alarms ({self.n_worst_case} subject-rows) take the worst-case d_H95, "
                "the diagonal of the scan's field of view (policy 'worst', as MetricsReloaded and BraTS), so every "
                "style is averaged over the same subjects."
            )
        if self.n_excluded_nan:
            why = (
                "a missed lesion or a false alarm (policy 'exclude')"
                if self.metric == "hd95_mm" and self.hd95_policy == "exclude"
                else "no value in metrics.csv"
            )
            text += f" {self.n_excluded_nan} subject-rows with {why} are excluded from the means."
        if self.n_hemorrhage_free:
            text += (
                f" {self.n_hemorrhage_free} subject-rows of hemorrhage-free subjects are reported separately."
            )
        note = reference_note(self.styles)
        if note:
            text += f" Reference rows: {note}; they are scored on the same subjects, folds and protocol."
        return text

    def cell(self, orientation: str, style: str) -> str:
        m, s = self.mean.loc[orientation, style], self.sd.loc[orientation, style]
        if not np.isfinite(m):
            return "n/a"
        sd = f"{s:.{self.digits}f}" if np.isfinite(s) else "n/a"
        n = f" (n = {int(self.n.loc[orientation, style])})" if self.show_n else ""
        return f"{m:.{self.digits}f} ± {sd}{n}"

    def to_markdown(self) -> str:
        head = "| Orientation | " + " | ".join(display_name(s) for s in self.styles) + " |"
        lines = [f"**{self.caption}**", "", head, "|---|" + "---|" * len(self.styles)]
        for o in self.orientations:
            cells = [
                f"**{self.cell(o, s)}**" if s in self.best.get(o, []) else self.cell(o, s)
                for s in self.styles
            ]
            lines.append(f"| {o} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def to_latex(self) -> str:
        cols = "l" + "c" * len(self.styles)
        lines = [
            "\\begin{table}[t]",
            "\\centering",
            f"\\caption{{{_latex_escape(self.caption)}}}",
            f"\\begin{{tabular}}{{{cols}}}",
            "\\hline",
            "Orientation & " + " & ".join(_latex_escape(display_name(s)) for s in self.styles) + " \\\\",
            "\\hline",
        ]
        for o in self.orientations:
            cells = []
            for s in self.styles:
                c = _latex_escape(self.cell(o, s))
                cells.append(f"\\textbf{{{c}}}" if s in self.best.get(o, []) else c)
            lines.append(f"{o} & " + " & ".join(cells) + " \\\\")
        lines += ["\\hline", "\\end{tabular}", "\\end{table}"]
        return "\n".join(lines) + "\n"

    def to_frame(self) -> pd.DataFrame:
        """Long CSV form: one row per orientation × style with mean, sd, n, the formatted cell and a best flag."""
        rows = []
        for o in self.orientations:
            for s in self.styles:
                rows.append({"protocol": self.protocol, "metric": self.metric, "orientation": o, "style": s,
                             "style_name": display_name(s), "mean": self.mean.loc[o, s], "sd": self.sd.loc[o, s],
                             "n": int(self.n.loc[o, s]), "cell": self.cell(o, s),
                             "best": s in self.best.get(o, [])})  # fmt: skip
        return pd.DataFrame(rows)

    def to_html(self) -> str:
        head = "".join(f"<th>{html.escape(display_name(s))}</th>" for s in self.styles)
        body = []
        for o in self.orientations:
            cells = []
            for s in self.styles:
                c = html.escape(self.cell(o, s))
                cells.append(
                    f'<td class="best"><strong>{c}</strong></td>'
                    if s in self.best.get(o, [])
                    else f"<td>{c}</td>"
                )
            body.append(f"<tr><th>{html.escape(o)}</th>{''.join(cells)}</tr>")
        return (
            f'<div class="table-wrap"><table class="results"><caption>{html.escape(self.caption)}</caption>'
            f"<thead><tr><th>Orientation</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        )


def metric_table(
    df: MetricsTable | pd.DataFrame,
    metric: str,
    protocol: str,
    digits: int = 3,
    hd95_when_empty: str | None = None,
) -> MetricTable:
    """Build Table 2 (``dice``), 3 (``iou``) or 4 (``hd95_mm``) for one protocol from the metrics table.

    ``df`` is the table with its d_H95 policy applied (:class:`iphbench.stats.metrics_table.MetricsTable`),
    or the rows of metrics.csv, to which ``hd95_when_empty`` (None = ``worst``) is applied here; the
    caption states the policy.

    Raises:
        ValueError: no rows for ``protocol``; an unknown policy.
    """
    table = MetricsTable.of(df, hd95_when_empty)
    sub = table.df[table.df["protocol"] == protocol]
    if sub.empty:
        raise ValueError(f"metrics.csv has no rows for protocol {protocol!r}")
    orients = ordered_orientations(sub["orientation"].unique())
    styles = ordered_styles(sub["style"].unique())
    mean = pd.DataFrame(np.nan, index=orients, columns=styles)
    sd, n = mean.copy(), pd.DataFrame(0, index=orients, columns=styles)
    n_nan = n_free = n_worst = 0
    for o in orients:
        sel = select_rows(sub, metric, o, protocol, covariates=False, references=False)
        n_nan += sel.n_nan
        n_free += sel.n_hemorrhage_free
        if metric == "hd95_mm" and "status" in sel.rows:
            n_worst += int(sel.rows["status"].isin(EMPTY_STATUSES).sum())
        for s, g in sel.rows.groupby("style"):
            v = g[metric].to_numpy(float)
            mean.loc[o, s] = v.mean()
            sd.loc[o, s] = v.std(ddof=1) if v.size > 1 else np.nan
            n.loc[o, s] = v.size
    higher = metric_info(metric).higher_is_better
    best: dict[str, list[str]] = {}
    for o in orients:
        rounded = mean.loc[o].round(digits)
        if rounded.notna().sum() > 1:  # a row with one style (nnU-Net's 3D) has nothing to be best against
            target = rounded.max() if higher else rounded.min()
            best[o] = [s for s in styles if rounded[s] == target]
    return MetricTable(
        metric,
        protocol,
        orients,
        styles,
        mean,
        sd,
        n,
        best,
        n_nan,
        n_free,
        digits,
        table.hd95_policy,
        n_worst,
    )


@dataclass
class CohortTable:
    """Table 1: demographic and clinical characteristics per site, with a Total column."""

    frame: pd.DataFrame  # rows N, Age, Male, IPH volume (mL) [, No IPH]; columns sites + Total (strings)
    n_free: int = 0  # hemorrhage-free subjects (in N, not in the volume statistics)
    notes: list[str] = field(default_factory=list)

    @property
    def caption(self) -> str:
        text = (
            "Table 1: Demographic and clinical characteristics of the cohort per site. Age (years) and IPH "
            "volume (mL = cm³) as mean ± standard deviation; Male as the count of male subjects with the share "
            "in parentheses; N is the number of subjects."
        )
        if self.n_free:
            text += f" {self.n_free} hemorrhage-free subjects count in N but not in the IPH volume."
        return text

    def chunks(self, width: int = 6) -> list[pd.DataFrame]:
        """Column blocks of at most ``width`` sites (the last block ends with Total), as the paper lays it out."""
        cols = list(self.frame.columns)
        return [self.frame[cols[i : i + width]] for i in range(0, len(cols), width)]

    def to_markdown(self, width: int = 6) -> str:
        parts = [f"**{self.caption}**\n"]
        for block in self.chunks(width):
            lines = ["| | " + " | ".join(block.columns) + " |", "|---|" + "---|" * len(block.columns)]
            lines += [
                f"| {idx} | " + " | ".join(row) + " |"
                for idx, row in zip(block.index, block.to_numpy(), strict=True)
            ]
            parts.append("\n".join(lines) + "\n")
        return "\n".join(parts)

    def to_latex(self) -> str:
        blocks = []
        for block in self.chunks(6):
            lines = [f"\\begin{{tabular}}{{l{'c' * len(block.columns)}}}", "\\hline",
                     " & " + " & ".join(f"\\textbf{{{_latex_escape(c)}}}" for c in block.columns) + " \\\\", "\\hline"]  # fmt: skip
            for idx, row in zip(block.index, block.to_numpy(), strict=True):
                cells = [_latex_escape(v) for v in row]
                lines.append(f"{_latex_escape(idx)} & " + " & ".join(cells) + " \\\\")
            lines += ["\\hline", "\\end{tabular}"]
            blocks.append("\n".join(lines))
        body = "\n\\\\[1ex]\n".join(blocks)
        return f"\\begin{{table}}[t]\n\\centering\n\\caption{{{_latex_escape(self.caption)}}}\n{body}\n\\end{{table}}\n"

    def to_html(self, width: int = 9) -> str:
        parts = []
        for k, block in enumerate(self.chunks(width)):
            cap = f"<caption>{html.escape(self.caption)}</caption>" if k == 0 else ""
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in block.columns)
            body = "".join(
                f"<tr><th>{html.escape(str(i))}</th>"
                + "".join(f"<td>{html.escape(v)}</td>" for v in row)
                + "</tr>"
                for i, row in zip(block.index, block.to_numpy(), strict=True)
            )
            parts.append(f'<div class="table-wrap"><table class="cohort">{cap}<thead><tr><th></th>{head}</tr></thead>'
                         f"<tbody>{body}</tbody></table></div>")  # fmt: skip
        return "\n".join(parts)


def _mean_sd(v: pd.Series) -> str:
    v = v.dropna().astype(float)
    if v.empty:
        return "n/a"
    sd = f"{v.std(ddof=1):.2f}" if v.size > 1 else "n/a"
    return f"{v.mean():.2f} ± {sd}"


def cohort_table(subjects: pd.DataFrame) -> CohortTable:
    """Table 1 from a one-row-per-subject frame (columns site, age, sex, ref_ml; see ``subject_table``)."""
    cols: dict[str, list[str]] = {}
    groups = [(str(s), g) for s, g in subjects.groupby("site", sort=True)] + [("Total", subjects)]
    n_free = int((subjects["ref_ml"] <= 0).sum())
    for name, g in groups:
        male = sum(s.strip().upper()[:1] == "M" for s in text_labels(g["sex"]))
        col = [str(len(g)), _mean_sd(g["age"]), f"{male} ({100 * male / len(g):.1f}%)",
               _mean_sd(g.loc[g["ref_ml"] > 0, "ref_ml"])]  # fmt: skip
        if n_free:
            col.append(str(int((g["ref_ml"] <= 0).sum())))
        cols[name] = col
    index = ["N", "Age", "Male", "IPH volume (mL)"] + (["No IPH (N)"] if n_free else [])
    return CohortTable(pd.DataFrame(cols, index=index), n_free=n_free)


def write_tables(
    df: MetricsTable | pd.DataFrame, out_dir: str | Path, hd95_when_empty: str | None = None
) -> list[Path]:
    """Write Table 1 and Tables 2-4 of every protocol as ``.md``, ``.tex`` and ``.csv`` under ``out_dir``.

    ``df`` and ``hd95_when_empty`` as :func:`metric_table`; the tables are those of the metric table
    (:func:`iphbench.evaluation.scoring.table_metrics`).
    """
    table = MetricsTable.of(df, hd95_when_empty)
    out = Path(out_dir)
    written: list[Path] = []

    def put(name: str, text: str) -> None:
        atomic_write_text(out / name, text)
        written.append(out / name)

    t1 = cohort_table(subject_table(table.df))
    put("table1_cohort.md", t1.to_markdown())
    put("table1_cohort.tex", t1.to_latex())
    put("table1_cohort.csv", t1.frame.to_csv())
    for protocol in ordered_protocols(table.df["protocol"].unique()):
        for m in table_metrics():
            t = metric_table(table, m.name, protocol)
            stem = f"table{t.number}_{m.name}_{protocol}"
            put(f"{stem}.md", t.to_markdown())
            put(f"{stem}.tex", t.to_latex())
            put(f"{stem}.csv", t.to_frame().to_csv(index=False))
    return written


def _latex_escape(text: str) -> str:
    for a, b in (
        ("\\", "\\textbackslash{}"),
        ("&", "\\&"),
        ("%", "\\%"),
        ("_", "\\_"),
        ("#", "\\#"),
        ("±", "$\\pm$"),
        ("³", "$^3$"),
    ):
        text = text.replace(a, b)
    return text
