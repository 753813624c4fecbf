"""``report.html``: one self-contained file with the paper's tables, figures and statistics of a study.

Everything shown is computed from the study folder when the report is written: ``metrics.csv``
(tables, statistics, Fig. 2, Fig. 3, volume agreement), ``prep/subjects.csv`` and
``predictions/`` (Fig. 1), ``config.yaml`` (shown verbatim) and an optional ``notes.md`` (run
settings, shown near the top). Figures are embedded as base64 PNG (also written as PNG and PDF
under ``<study>/figures/``); the CSS is inline; nothing is fetched when the file is opened.
"""

from __future__ import annotations

import datetime as _dt
import html
import importlib.metadata
import logging
import platform
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from iphbench._files import atomic_write_text
from iphbench.config import StudyConfig
from iphbench.evaluation.scoring import metric_info, table_metrics
from iphbench.layout import StudyLayout
from iphbench.report import narrative as nar
from iphbench.report.convergence import convergence_html
from iphbench.report.detection_tables import detection_tables
from iphbench.report.figures import embedded_png
from iphbench.report.protocol_figures import protocol_figures
from iphbench.report.references import describe_references
from iphbench.report.tables import cohort_table, metric_table, protocol_description, write_tables
from iphbench.stats.analysis import ProtocolStats, collect_notes, run_stats
from iphbench.stats.metrics_table import (
    MetricsTable,
    comparison_rows,
    display_name,
    load_metrics_table,
    ordered_protocols,
    subject_table,
)
from iphbench.study.learning import LearningCheck, check_learning

log = logging.getLogger(__name__)

PACKAGES = (
    "iphbench",
    "torch",
    "numpy",
    "scipy",
    "pandas",
    "statsmodels",
    "matplotlib",
    "nibabel",
    "SimpleITK",
)

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;line-height:1.5;color:#1d1d1f;
margin:0;background:#f6f7f9}
main{max-width:1120px;margin:0 auto;padding:24px 32px 64px;background:#fff;box-shadow:0 0 12px rgba(0,0,0,.06)}
h1{font-size:1.7em;margin:.2em 0 .1em}h2{font-size:1.35em;margin-top:2em;border-bottom:2px solid #e3e6ea;padding-bottom:.2em}
h3{font-size:1.1em;margin-top:1.6em}.sub{color:#555;margin:0 0 1em}
.badge{display:inline-block;padding:.1em .55em;border-radius:.8em;font-size:.85em;font-weight:600;margin-right:.4em}
.badge.paper{background:#e3f2fd;color:#0d47a1}.badge.full{background:#fff3e0;color:#e65100}
.note{background:#fffbea;border-left:4px solid #f2c94c;padding:.6em 1em;margin:1em 0}
.banner{background:#fdecea;border-left:6px solid #c62828;padding:.7em 1.1em;margin:1em 0;color:#5f1010}
.key{background:#eef7ee;border-left:4px solid #43a047;padding:.6em 1em;margin:1em 0}
.table-wrap{overflow-x:auto;margin:1em 0}
table{border-collapse:collapse;font-size:.92em;font-variant-numeric:tabular-nums}
caption{caption-side:top;text-align:left;font-size:.92em;color:#333;padding:.3em 0 .6em;max-width:1050px}
th,td{border-bottom:1px solid #e3e6ea;padding:.35em .7em;text-align:center;white-space:nowrap}
thead th{border-bottom:2px solid #9aa3ad;background:#f7f8fa}tbody th{text-align:left;font-weight:600}
td.best{background:#eef7ee}
figure{margin:1.5em 0;text-align:center}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{text-align:left;font-size:.92em;color:#333;margin-top:.4em}
pre{background:#f7f8fa;border:1px solid #e3e6ea;padding:.8em;overflow-x:auto;font-size:.85em}
ul.stats li{margin:.35em 0}
"""


def software_versions() -> dict[str, str]:
    """Python and the versions of the packages behind the results (``not installed`` when absent)."""
    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _badge(protocol: str) -> str:
    return f'<span class="badge {html.escape(protocol)}">{html.escape(protocol)} protocol</span>'


def _inline_md(text: str) -> str:
    """Escape, then render **bold** and `code` (the only inline Markdown the notes use)."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def _notes_html(text: str) -> str:
    """A tiny Markdown subset: paragraphs, '- ' bullet lists, **bold** and `code`; everything escaped."""
    blocks = []
    for para in text.strip().split("\n\n"):
        lines = [ln.strip() for ln in para.splitlines() if ln.strip()]
        if lines and all(ln.startswith(("- ", "* ")) for ln in lines):
            blocks.append("<ul>" + "".join(f"<li>{_inline_md(ln[2:])}</li>" for ln in lines) + "</ul>")
        elif lines:
            blocks.append("<p>" + _inline_md(" ".join(ln.lstrip("# ") for ln in lines)) + "</p>")
    return "\n".join(blocks)


def _stats_section(ps: ProtocolStats) -> str:
    parts = []
    for metric, ms in ps.metrics.items():
        items = [
            nar.describe_anova(ms),
            nar.describe_posthoc(ms, "unpaired"),
            nar.describe_same_subjects(ms),
            nar.describe_posthoc(ms, "paired"),
            nar.describe_regression(ms),
            nar.describe_normality(ms),
            nar.describe_mixed(ms),
        ]
        lis = "".join(f"<li>{html.escape(t)}</li>" for t in items if t)
        parts.append(f"<h4>{metric_info(metric).heading_html}</h4><ul class='stats'>{lis}</ul>")
    return "\n".join(parts)


def _key_results(frames: dict[str, pd.DataFrame], stats: list[ProtocolStats]) -> str:
    items = []
    for ps in stats:
        rows = frames[ps.protocol]
        rows = rows[(rows["ref_ml"] > 0) & rows["dice"].notna()]
        if rows.empty:
            items.append(
                f"<li>{_badge(ps.protocol)} no subject with a hemorrhage: no F-measure to report.</li>"
            )
            continue
        g = rows.groupby("style")["dice"]
        mean, sd, n = g.mean(), g.std(ddof=1), g.size()
        best = str(mean.idxmax())
        sd_text = f"{sd[best]:.3f}" if pd.notna(sd[best]) else "n/a"
        items.append(
            f"<li>{_badge(ps.protocol)} best {html.escape(ps.orientation)} mean F-measure: "
            f"<strong>{html.escape(_styled(best, ps))} {mean[best]:.3f} ± {sd_text}</strong> over {int(n[best])} "
            f"subjects. {html.escape(nar.describe_anova(ps.metrics['dice']))} "
            f"{html.escape(nar.describe_same_subjects(ps.metrics['dice']))}</li>"
        )
    return f'<div class="key"><strong>Key results</strong><ul>{"".join(items)}</ul></div>'


def _styled(style: str, ps: ProtocolStats) -> str:
    """Display name, with the orientation of its rows when it differs from the compared one (nnU-Net's 3D)."""
    own = ps.style_orientations.get(style, ps.orientation)
    return display_name(style) + (f" ({own})" if own != ps.orientation else "")


def _policy_sentence(policy: str) -> str:
    if policy == "exclude":
        return (
            "d_H95 of a missed lesion or a false alarm is undefined and excluded (policy 'exclude'): d_H95 cells "
            "show their n and comparisons use the subjects every compared style scored."
        )
    return (
        "d_H95 of a missed lesion or a false alarm is the diagonal of the scan's field of view (policy 'worst', as "
        "MetricsReloaded and BraTS), so every style is averaged over the same subjects."
    )


def _tests_sentence() -> str:
    return (
        "Styles are compared as published (one-way ANOVA, unpaired t-tests with Bonferroni correction) and on the "
        "same subjects (repeated-measures ANOVA with paired t-tests, or the Friedman test with Wilcoxon "
        "signed-rank tests when its residuals are not normal); every p value names its test."
    )


def _banner(check: LearningCheck) -> str:
    if check.meaningful:
        return ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in check.lines())
    return (
        f'<div class="banner" role="alert"><strong>{html.escape(check.headline())}</strong><ul>{items}</ul>'
        f"<p>{html.escape(check.explanation())}</p></div>"
    )


@dataclass
class _Analysis:
    """What the report shows, computed once from the study folder."""

    study: Path
    cfg: StudyConfig | None  # None: no readable config.yaml
    table: MetricsTable  # metrics.csv with the d_H95 policy applied, read by everything below
    stats: list[ProtocolStats]  # one per protocol, in order
    frames: dict[str, pd.DataFrame]  # protocol → the rows compared (key results, Fig. 2, 3 and V)
    check: LearningCheck

    @property
    def name(self) -> str:
        return self.cfg.name if self.cfg is not None else self.study.name

    @property
    def min_lesion_ml(self) -> float | None:
        return self.cfg.eval.lesion_min_ml if self.cfg is not None else None


def _analyse(
    study: Path, orientation: str | None, min_site_n: int, mixed: bool, hd95_when_empty: str | None
) -> _Analysis:
    """Load metrics.csv with its d_H95 policy (once) and compute the statistics and the compared rows."""
    table = load_metrics_table(study, hd95_when_empty)
    cfg = StudyLayout(study).config_or_none()
    protocols = ordered_protocols(table.df["protocol"].unique())
    stats = [run_stats(table, orientation, p, min_site_n=min_site_n, mixed=mixed) for p in protocols]
    frames = {p: comparison_rows(table.df, p, orientation).rows for p in protocols}
    check = check_learning(table.df, study, cfg.eval.learning_check if cfg is not None else None)
    return _Analysis(study, cfg, table, stats, frames, check)


def _write_tables(a: _Analysis, tables_dir: Path) -> None:
    """Tables 1-4 and the detection tables as files under ``<study>/tables/``."""
    write_tables(a.table, tables_dir)
    for ps in a.stats:
        for t in detection_tables(ps.detection, ps.protocol, ps.orientation, a.min_lesion_ml):
            stem = f"table_detection_{t.kind}_{ps.protocol}"
            atomic_write_text(tables_dir / f"{stem}.md", t.to_markdown())
            atomic_write_text(tables_dir / f"{stem}.csv", t.frame.to_csv())


def _opening(a: _Analysis, layout: StudyLayout, formats: tuple[str, ...]) -> tuple[list[str], str]:
    """The top of the report (title, protocols and policy, learning banner, run notes, convergence warnings,
    key results, reference styles) and the training section, which goes at the end."""
    now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    protocols = [ps.protocol for ps in a.stats]
    h = [f"<h1>IPH segmentation benchmark: {html.escape(a.name)}</h1>"]
    h.append(
        f'<p class="sub">Study folder <code>{html.escape(str(a.study.resolve()))}</code>, report written {now}. '
        f"Reproduces Duarte et al., MIDL 2026 (tables 1-4, figures 1-3, section 3.5 statistics). Protocols: "
        + "; ".join(f"{_badge(p)} {html.escape(protocol_description(p))}" for p in protocols)
        + f". {html.escape(_policy_sentence(a.table.hd95_policy))} {html.escape(_tests_sentence())}</p>"
    )
    h.append(_banner(a.check))
    h.extend(f'<p class="note">Learning check: {html.escape(note)}</p>' for note in a.check.notes)
    if layout.notes_md.is_file():
        notes = _notes_html(layout.notes_md.read_text(encoding="utf-8"))
        h.append(f'<div class="note"><strong>Run settings</strong>{notes}</div>')
    training, not_converged = convergence_html(a.study, formats)
    h.extend(f'<p class="note"><strong>Not converged.</strong> {html.escape(w)}</p>' for w in not_converged)
    h.append(_key_results(a.frames, a.stats))
    if refs := describe_references(a.study, a.table.df):  # nnU-Net reference styles: version and settings
        items = "".join(f"<li>{html.escape(t)}</li>" for t in refs)
        h.append(f'<div class="note"><strong>nnU-Net reference styles</strong><ul>{items}</ul></div>')
    return h, training


def _tables_heading() -> str:
    """``Tables 2-4``: the numbers of the metric table's tables."""
    numbers = [m.table for m in table_metrics() if m.table is not None]
    if len(numbers) == 1:
        return f"Table {numbers[0]}"
    return f"Tables {numbers[0]}-{numbers[-1]}" if numbers else "Tables"


def _protocol_section(a: _Analysis, k: int, ps: ProtocolStats, formats: tuple[str, ...]) -> list[str]:
    """Section ``k`` of one protocol: Tables 2-4, detection, statistics in words, volume agreement, figures."""
    p = ps.protocol
    h = [f"<h2>{k}. Results, {html.escape(p)} protocol ({html.escape(protocol_description(p))})</h2>"]
    h.append(f"<h3>{_tables_heading()} ({html.escape(p)} protocol)</h3>")
    h.extend(metric_table(a.table, m.name, p).to_html() for m in table_metrics())
    dets = detection_tables(ps.detection, p, ps.orientation, a.min_lesion_ml)
    if dets:
        h.append(
            f"<h3>Detection ({html.escape(p)} protocol, {html.escape(ps.orientation)}, beyond the paper)</h3>"
        )
        h.extend(t.to_html() for t in dets)
    sites = f"{ps.n_sites} site" + ("s" if ps.n_sites != 1 else "")
    h.append(
        f"<h3>Statistics ({html.escape(p)} protocol, {html.escape(ps.orientation)}, {ps.n_subjects} subjects, "
        f"{sites})</h3>"
    )
    h.append(_stats_section(ps))
    pnotes = collect_notes(ps)
    if pnotes:
        h.append("<p><em>How the models were kept estimable:</em></p><ul>")
        h.append("".join(f"<li>{html.escape(n)}</li>" for n in pnotes) + "</ul>")
    h.append(f"<h3>Volume agreement ({html.escape(p)} protocol, beyond the paper)</h3>")
    h.append(f"<p>{html.escape(nar.describe_agreement(ps.agreement))}</p>")
    fp = nar.describe_false_positive_free(ps.false_positive_free)
    if fp:
        h.append(f"<p>{html.escape(fp)}</p>")
    figs, problems = protocol_figures(a.table.df, a.frames[p], a.study, p, ps.orientation, formats)
    h.append(f"<h3>Figures ({html.escape(p)} protocol)</h3>")
    h.extend(f'<p class="note">{html.escape(msg)}</p>' for msg in problems)
    h.extend(
        f"<figure>{embedded_png(f.png)}<figcaption>{html.escape(f.caption)}</figcaption></figure>"
        for f in figs
    )
    return h


def _closing(layout: StudyLayout) -> list[str]:
    """The configuration (config.yaml verbatim) and the software versions."""
    cfg_path = layout.config_yaml
    cfg_text = (
        cfg_path.read_text(encoding="utf-8") if cfg_path.is_file() else "(no config.yaml in the study folder)"
    )
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in software_versions().items()
    )
    return [
        "<h2>Configuration</h2>",
        f"<pre>{html.escape(cfg_text)}</pre>",
        "<h2>Software</h2>",
        f'<div class="table-wrap"><table>{rows}</table></div>',
    ]


def _page(name: str, parts: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>iphbench report: {html.escape(name)}</title><style>{CSS}</style></head>"
        "<body><main>\n" + "\n".join(parts) + "\n</main></body></html>\n"
    )


def write_report(
    study_dir: str | Path,
    out: str | Path | None = None,
    orientation: str | None = None,
    min_site_n: int = 1,
    pdf: bool = True,
    mixed: bool = True,
    hd95_when_empty: str | None = None,
) -> Path:
    """Write the study's self-contained HTML report (default ``<study>/report.html``).

    Args:
        study_dir: the study folder (must hold ``metrics.csv``).
        out: output file; None = ``<study>/report.html``.
        orientation: the orientation analysed by the statistics and Fig. 2-3; None = 2.5D (or a single
            view when there is no 2.5D), with nnU-Net reference styles beside it (docs/report.md).
        min_site_n: sites with fewer subjects are pooled in the fixed-effect regressions; 1 (default)
            keeps every site its own level, as the paper's eq. 6.
        pdf: also write each figure as PDF under ``<study>/figures/`` (PNG is always written and embedded).
        mixed: also fit the random-site-intercept mixed models (the slowest part of the statistics).
        hd95_when_empty: d_H95 of a missed lesion or false alarm, ``worst`` or ``exclude``; None = the
            study's ``eval.hd95_when_empty`` (``worst`` without a config.yaml).

    Returns:
        The path of the report.
    """
    study = Path(study_dir)
    layout = StudyLayout(study)
    a = _analyse(study, orientation, min_site_n, mixed, hd95_when_empty)
    out_path = Path(out) if out is not None else layout.report_html
    formats = ("png", "pdf") if pdf else ("png",)
    _write_tables(a, layout.tables_dir)
    h, training = _opening(a, layout, formats)
    h.append("<h2>1. Cohort</h2>")
    h.append(cohort_table(subject_table(a.table.df)).to_html())
    for k, ps in enumerate(a.stats, start=2):
        h.extend(_protocol_section(a, k, ps, formats))
    h.append(training)
    h.extend(_closing(layout))
    atomic_write_text(out_path, _page(a.name, h))
    log.info("report written to %s", out_path)
    return out_path
