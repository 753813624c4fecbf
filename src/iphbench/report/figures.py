"""The paper's figures (matplotlib, Agg): Fig. 2, Fig. 3 and the volume agreement; Fig. 1 is in ``overlays``.

- Fig. 2 (paper section 4): age vs F-measure per style; marker size = predicted volume; colour from
  red (under-estimated) through green (correct) to blue (over-estimated), from log2(pred / ref volume).
- Fig. 3: box plots of F-measure per site and style, N per site in the tick labels.
- Volume agreement (beyond the paper): predicted vs reference mL with the identity line, and
  Bland-Altman (mean vs difference, bias and bias ± 1.96 sd).

Every figure is a pure function of the metrics table returning a ``Figure``; :func:`save_figure`
writes it as PNG and PDF and :func:`embedded_png` puts a PNG into the report. A style's colour is its
architecture's registered colour (:func:`iphbench.styles.style_colour`), else matplotlib's next one.
"""

from __future__ import annotations

import base64
import html
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LinearSegmentedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from iphbench._files import atomic_path
from iphbench.stats.agreement import volume_agreement
from iphbench.stats.metrics_table import at_orientation, display_name, ordered_styles
from iphbench.styles import parse_style, style_colour

log = logging.getLogger(__name__)

#: red (under-estimated) → green (correct) → blue (over-estimated), as the paper's Fig. 2.
VOLUME_CMAP = LinearSegmentedColormap.from_list("under_correct_over", ["#d32f2f", "#43a047", "#1e88e5"])
LOG_RATIO_LIMIT = 2.0  # colour scale saturates at 4× over- or under-estimation


def figure_colour(style: str, j: int) -> str:
    """The colour of the ``j``-th style of a figure: its architecture's registered colour
    (:func:`iphbench.styles.style_colour`), else matplotlib's ``C{j}``.

    Only a paper-recipe style takes the registered colour; a recipe variant (``unet+iphbench``) is a
    column of its own and takes ``C{j}``, as an nnU-Net or unknown style does.
    """
    registered = style_colour(style) if parse_style(style).recipe == "paper" else None
    return registered or f"C{j}"


def _rows(df: pd.DataFrame, orientation: str, protocol: str) -> pd.DataFrame:
    sub = df[at_orientation(df, orientation) & (df["protocol"] == protocol) & (df["ref_ml"] > 0)]
    if sub.empty:
        raise ValueError(
            f"no subjects with a hemorrhage for protocol {protocol!r}, orientation {orientation!r}"
        )
    return sub


def _grid(n: int) -> tuple[int, int]:
    cols = 2 if n == 4 else min(n, 3)
    return (int(np.ceil(n / cols)), cols)


def volume_log_ratio(pred_ml: np.ndarray, ref_ml: np.ndarray) -> np.ndarray:
    """log2(pred / ref), clipped to ±``LOG_RATIO_LIMIT`` (an empty prediction is the most under-estimated)."""
    pred = np.asarray(pred_ml, float)
    ref = np.asarray(ref_ml, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.log2(pred / ref)
    return np.clip(
        np.nan_to_num(r, nan=0.0, neginf=-LOG_RATIO_LIMIT, posinf=LOG_RATIO_LIMIT),
        -LOG_RATIO_LIMIT,
        LOG_RATIO_LIMIT,
    )


def figure_age_vs_f(df: pd.DataFrame, orientation: str = "2.5D", protocol: str = "paper") -> Figure:
    """Fig. 2: age (x) vs F-measure (y) per style; size = predicted volume, colour = under/over-estimation."""
    sub = _rows(df, orientation, protocol)
    styles = ordered_styles(sub["style"].unique())
    nr, nc = _grid(len(styles))
    fig, axes = plt.subplots(
        nr, nc, figsize=(4.6 * nc + 1.2, 3.6 * nr + 0.8), sharex=True, sharey=True, squeeze=False
    )
    norm = Normalize(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)
    max_pred = max(float(sub["pred_ml"].max()), 1e-6)

    def size(ml: np.ndarray) -> np.ndarray:
        return 8 + 220 * np.sqrt(np.clip(np.asarray(ml, float), 0, None) / max_pred)

    for ax, style in zip(axes.flat, styles, strict=False):
        g = sub[sub["style"] == style]
        ax.scatter(g["age"], g["dice"], s=size(g["pred_ml"].to_numpy()), c=volume_log_ratio(g["pred_ml"], g["ref_ml"]),
                   cmap=VOLUME_CMAP, norm=norm, alpha=0.75, edgecolors="k", linewidths=0.3)  # fmt: skip
        ax.set_title(f"{display_name(style)} (n = {len(g)})", fontsize=11)
        ax.grid(alpha=0.3)
        ax.set_ylim(-0.03, 1.03)
    for ax in axes.flat[len(styles) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("Age (years)")
    for ax in axes[:, 0]:
        ax.set_ylabel("F-measure")
    fig.suptitle(f"Age vs F-measure, {orientation}, {protocol} protocol", fontsize=12)
    fig.tight_layout(rect=(0, 0.07, 0.84, 0.96))
    cax = fig.add_axes((0.865, 0.2, 0.018, 0.6))
    cb = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=VOLUME_CMAP), cax=cax)
    cb.set_ticks([-2, -1, 0, 1, 2], labels=["≤ ¼×", "½×", "1×", "2×", "≥ 4×"])
    cb.set_label("predicted / reference volume\n(red under-, green correct, blue over-estimated)")
    refs = [v for v in (1.0, 10.0, 50.0) if v <= max_pred * 1.5] or [max_pred]
    handles = [Line2D([], [], marker="o", ls="", color="grey", markersize=float(np.sqrt(size(np.array([v]))[0])),
                      label=f"{v:g} mL") for v in refs]  # fmt: skip
    fig.legend(handles=handles, title="predicted volume", loc="lower center", ncol=len(handles), frameon=False,
               bbox_to_anchor=(0.45, 0.0))  # fmt: skip
    return fig


def figure_site_boxplots(df: pd.DataFrame, orientation: str = "2.5D", protocol: str = "paper") -> Figure:
    """Fig. 3: box plots of F-measure per site (x) and style (colour); N per site in the tick labels."""
    sub = _rows(df, orientation, protocol)
    styles = ordered_styles(sub["style"].unique())
    sites = sorted(sub["site"].unique())
    n_site = sub.groupby("site")["subject"].nunique()
    width = 0.8 / len(styles)
    fig, ax = plt.subplots(figsize=(max(7.0, 0.75 * len(sites) * max(1, len(styles)) / 2 + 2.5), 4.6))
    for j, style in enumerate(styles):
        data = [sub.loc[(sub["style"] == style) & (sub["site"] == s), "dice"].to_numpy(float) for s in sites]
        pos = np.arange(len(sites)) - 0.4 + width * (j + 0.5)
        c = figure_colour(style, j)
        bp = ax.boxplot(data, positions=pos, widths=width * 0.85, patch_artist=True, manage_ticks=False,
                        flierprops={"markersize": 3, "markerfacecolor": c, "markeredgecolor": c})  # fmt: skip
        for box in bp["boxes"]:
            box.set_facecolor(c)
            box.set_alpha(0.65)
        for med in bp["medians"]:
            med.set_color("k")
    ax.set_xticks(np.arange(len(sites)), [f"{s}\n(N={int(n_site[s])})" for s in sites])
    ax.set_xlim(-0.6, len(sites) - 0.4)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("Site")
    ax.set_ylabel("F-measure")
    ax.grid(axis="y", alpha=0.3)
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=figure_colour(s, j), alpha=0.65) for j, s in enumerate(styles)
    ]
    ax.legend(handles, [display_name(s) for s in styles], ncol=len(styles), loc="upper center",
              bbox_to_anchor=(0.5, -0.2), frameon=False)  # fmt: skip
    ax.set_title(f"F-measure per site and style, {orientation}, {protocol} protocol")
    fig.tight_layout()
    return fig


def figure_volume_agreement(df: pd.DataFrame, orientation: str = "2.5D", protocol: str = "paper") -> Figure:
    """Predicted vs reference volume (top) and Bland-Altman (bottom) per style."""
    sub = _rows(df, orientation, protocol)
    styles = ordered_styles(sub["style"].unique())
    fig, axes = plt.subplots(2, len(styles), figsize=(3.5 * len(styles) + 0.5, 7.0), squeeze=False)
    hi = float(max(sub["ref_ml"].max(), sub["pred_ml"].max())) * 1.05
    for j, style in enumerate(styles):
        g = sub[sub["style"] == style]
        ref, pred = g["ref_ml"].to_numpy(float), g["pred_ml"].to_numpy(float)
        c = figure_colour(style, j)
        va = volume_agreement(sub, style)
        ax = axes[0, j]
        ax.plot([0, hi], [0, hi], "k--", lw=1, label="identity")
        ax.scatter(ref, pred, s=14, color=c, alpha=0.7, edgecolors="none")
        ax.set_xlim(0, hi)
        ax.set_ylim(0, hi)
        ax.set_aspect("equal")
        ax.set_title(f"{display_name(style)}\nr = {va.pearson_r:.3f}, ICC = {va.icc_a1:.3f}", fontsize=10)
        ax.set_xlabel("Reference volume (mL)")
        ax.grid(alpha=0.3)
        ax = axes[1, j]
        if j:
            ax.sharey(axes[1, 0])  # one difference scale, so the styles' spreads compare at a glance
        mean, diff = (pred + ref) / 2, pred - ref
        ax.scatter(mean, diff, s=14, color=c, alpha=0.7, edgecolors="none")
        ax.axhline(0, color="grey", lw=0.8)
        ax.axhline(va.bias_ml, color="k", lw=1.2, label=f"bias {va.bias_ml:+.2f} mL")
        for lim in (va.loa_low_ml, va.loa_high_ml):
            ax.axhline(lim, color="k", lw=1, ls="--")
        ax.set_title(
            f"bias {va.bias_ml:+.2f} mL, LoA [{va.loa_low_ml:.2f}, {va.loa_high_ml:.2f}]", fontsize=9
        )
        ax.set_xlabel("Mean of predicted and reference (mL)")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("Predicted volume (mL)")
    axes[1, 0].set_ylabel("Predicted − reference (mL)")
    fig.suptitle(
        f"Volume agreement, {orientation}, {protocol} protocol (dashed: identity / bias ± 1.96 sd)",
        fontsize=11,
    )
    fig.tight_layout()
    return fig


def save_figure(
    fig: Figure, out_dir: str | Path, stem: str, dpi: int = 130, formats: tuple[str, ...] = ("png", "pdf")
) -> tuple[Path, ...]:
    """Write ``<stem>.png`` and ``<stem>.pdf`` (or the given ``formats``) under ``out_dir`` and close the figure.

    Returns:
        The written paths, in the order of ``formats``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    try:
        for fmt in formats:
            path = out / f"{stem}.{fmt}"
            with atomic_path(path, suffix=f".{fmt}") as tmp:
                fig.savefig(tmp, dpi=dpi, format=fmt)
            paths.append(path)
    finally:
        plt.close(fig)
    return tuple(paths)


def embedded_png(path: Path) -> str:
    """An ``<img>`` holding the PNG at ``path`` as base64, so the report needs no other file."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'
