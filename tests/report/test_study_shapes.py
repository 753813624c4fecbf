"""Every study shape the statistics can meet: metrics.csv → stats → tables → figures → report.

Hypothesis draws study shapes unlike the demo's (1-5 sites, sites with one subject, 1-5 styles
including an nnU-Net reference style with its own ``3D`` orientation, 1-3 views with and without
2.5D, one protocol or two, missing age or sex, a style whose predictions are all empty, every
d_H95 missing, lesion-free subjects at one site only, either d_H95 policy, with and without the
lesion-wise columns), writes the metrics table a study would hold, and runs ``write_stats`` and
``write_report`` on it. Nothing may raise, and every oddity of
the shape must be stated as a note in ``stats/stats.md`` and in ``report.html``.

The number of shapes run is printed in pytest's closing summary (tests/conftest.py).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iphbench.report import write_report
from iphbench.stats import display_name, write_stats
from iphbench.views import FUSED, VIEWS

STYLE_POOL = ("unet", "attention_unet", "fpn", "transunet", "unet+iphbench", "nnunet_3d_fullres")
NNUNET = "nnunet_3d_fullres"
MAX_EXAMPLES = 16  # ~2-3 s per shape on one CPU core: about 45 s for the test


@dataclass(frozen=True)
class Shape:
    """One study shape."""

    site_sizes: tuple[int, ...]  # subjects with a hemorrhage per site
    styles: tuple[str, ...]
    views: tuple[str, ...]  # views of the 2D styles
    fused: bool  # 2.5D rows (only with all three views)
    protocols: tuple[str, ...]
    missing_covariates: bool  # some subjects lack age or sex
    zero_style: str | None  # a style whose every prediction is empty
    no_hd95: bool  # every d_H95 missing (and no fov_diagonal_mm column: an old or damaged table)
    policy: str  # eval.hd95_when_empty: worst or exclude
    lesion_columns: bool  # metrics.csv has lesions_ref, lesions_hit, lesions_false
    free_site: int | None  # the site holding every lesion-free subject (full protocol only)
    mixed_in_report: bool  # which of stats and report fits the mixed models (both would double the time)
    seed: int

    @property
    def key(self) -> str:
        return repr(self)


@st.composite
def shapes(draw: st.DrawFn) -> Shape:
    n_sites = draw(st.integers(1, 5))
    sizes = tuple(draw(st.lists(st.integers(1, 6), min_size=n_sites, max_size=n_sites)))
    styles = tuple(draw(st.lists(st.sampled_from(STYLE_POOL), min_size=1, max_size=5, unique=True)))
    chosen = draw(st.sets(st.sampled_from(VIEWS), min_size=1))
    views = tuple(v for v in VIEWS if v in chosen)
    fused = len(views) == 3 and draw(st.booleans())
    protocols = draw(st.sampled_from([("paper",), ("full",), ("paper", "full")]))
    free_site = draw(st.none() | st.integers(0, n_sites - 1)) if "full" in protocols else None
    return Shape(
        site_sizes=sizes,
        styles=styles,
        views=views,
        fused=fused,
        protocols=protocols,
        missing_covariates=draw(st.booleans()),
        zero_style=draw(st.none() | st.sampled_from(styles)),
        no_hd95=draw(st.booleans()),
        policy=draw(st.sampled_from(["worst", "exclude"])),
        lesion_columns=draw(st.booleans()),
        free_site=free_site,
        mixed_in_report=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


def metrics_table(shape: Shape) -> pd.DataFrame:
    """The metrics.csv a study of this shape would hold (values drawn around a learned model's)."""
    rng = np.random.default_rng(shape.seed)
    subjects = []
    for i, n in enumerate(shape.site_sizes):
        site = "ABCDE"[i]
        for j in range(n):
            age, sex = float(rng.integers(30, 95)), str(rng.choice(["M", "F"]))
            if shape.missing_covariates and j == 0:
                age, sex = (np.nan, sex) if i % 2 == 0 else (age, "")
            subjects.append((f"{site}{j:02d}", site, age, sex, float(rng.lognormal(2.0, 0.9))))
    if shape.free_site is not None:
        site = "ABCDE"[shape.free_site]
        subjects += [(f"{site}free{k}", site, 70.0, "F", 0.0) for k in range(2)]
    rows = []
    for protocol in shape.protocols:
        for style in shape.styles:
            orients = ["3D"] if style == NNUNET else [*shape.views, *([FUSED] if shape.fused else [])]
            for orient in orients:
                for subject, site, age, sex, ref in subjects:
                    if ref == 0 and protocol != "full":
                        continue
                    base = {"subject": subject, "site": site, "age": age, "sex": sex, "fold": 0, "style": style,
                            "orientation": orient, "protocol": protocol, "ref_ml": ref}  # fmt: skip
                    n_les = 1 + int(ref > 10)
                    if style == shape.zero_style:
                        empty = ref == 0
                        rows.append({**base, "dice": float(empty), "iou": float(empty), "hd95_mm": 0.0 if empty else np.nan,
                                     "precision": np.nan, "recall": np.nan if empty else 0.0, "pred_ml": 0.0,
                                     "status": "both_empty" if empty else "missed", "lesions_ref": 0 if empty else n_les,
                                     "lesions_hit": 0, "lesions_false": 0})  # fmt: skip
                        continue
                    if ref == 0:
                        fp = float(max(0.0, rng.normal(0.05, 0.1)))
                        rows.append({**base, "dice": float(fp == 0), "iou": float(fp == 0), "pred_ml": fp,
                                     "hd95_mm": 0.0 if fp == 0 else np.nan, "precision": np.nan, "recall": np.nan,
                                     "status": "both_empty" if fp == 0 else "false_alarm", "lesions_ref": 0,
                                     "lesions_hit": 0, "lesions_false": int(fp > 0)})  # fmt: skip
                        continue
                    f = float(np.clip(0.6 + 0.005 * ref + rng.normal(0, 0.08), 0.05, 0.98))
                    rows.append({**base, "dice": f, "iou": f / (2 - f), "hd95_mm": float(abs(rng.normal(6, 3))),
                                 "precision": f, "recall": f, "pred_ml": ref * float(np.exp(rng.normal(0, 0.2))),
                                 "status": "ok", "lesions_ref": n_les, "lesions_hit": n_les,
                                 "lesions_false": int(rng.random() < 0.2)})  # fmt: skip
    # as evaluate writes it: missed lesions and false alarms hold the worst case under `worst`, NaN under `exclude`
    df = pd.DataFrame(rows).assign(fov_diagonal_mm=383.3)
    if shape.policy == "worst":
        empty = df["status"].isin(["missed", "false_alarm"])
        df.loc[empty, "hd95_mm"] = df.loc[empty, "fov_diagonal_mm"]
    if shape.no_hd95:
        df = df.drop(columns="fov_diagonal_mm").assign(hd95_mm=np.nan)
    if not shape.lesion_columns:
        df = df.drop(columns=["lesions_ref", "lesions_hit", "lesions_false"])
    return df


def write_histories(study: Path, shape: Shape) -> None:
    """history.csv of one run per 2D style: rising validation Dice, flat for the style that predicts nothing."""
    for style in shape.styles:
        if style == NNUNET:
            continue
        val = [0.0, 0.0, 0.01] if style == shape.zero_style else [0.1, 0.4, 0.7]
        run = study / "runs" / style / shape.views[0] / "fold0"
        run.mkdir(parents=True)
        pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1.0, 0.8, 0.7], "val_dice": val}).to_csv(
            run / "history.csv", index=False
        )


def expected_notes(shape: Shape) -> list[tuple[str, ...]]:
    """For each oddity of the shape, phrases of which at least one must appear in the output."""
    n_sites = len(shape.site_sizes)
    two_d = [s for s in shape.styles if s != NNUNET]
    out: list[tuple[str, ...]] = []
    if n_sites == 1:
        out.append(("single site",))
    if n_sites > 1 and 1 in shape.site_sizes:
        out.append(("have a single subject with a hemorrhage",))
    if len(shape.styles) == 1:
        out.append(("only one style",))
    if not shape.fused or not two_d:
        out.append(("there are no 2.5D rows",))
    if NNUNET in shape.styles and two_d:
        out.append(("compared with its own 3D predictions",))
    if shape.missing_covariates:
        out.append(("without age or sex",))
    if shape.no_hd95:
        out.append(("no subject-row has a d_H95",))
        if shape.zero_style is not None and shape.policy == "worst":
            out.append(("have no field-of-view diagonal",))
    elif shape.zero_style is not None:
        out.append(
            ("take the worst-case",) if shape.policy == "worst" else ("missed lesions or false alarms",)
        )
    if not shape.lesion_columns:
        out.append(("no lesion-wise columns",))
    if shape.free_site is not None:
        out.append(("hemorrhage-free",))
    return out


@pytest.mark.slow
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(shape=shapes())
def test_every_study_shape_runs_to_a_report_with_its_oddities_noted(
    shape: Shape, tmp_path_factory: pytest.TempPathFactory, shape_log: list[str]
) -> None:
    shape_log.append(shape.key)
    study = tmp_path_factory.mktemp("shape") / "study"
    study.mkdir()
    metrics_table(shape).to_csv(study / "metrics.csv", index=False)
    write_histories(study, shape)

    stats_dir = write_stats(study, mixed=not shape.mixed_in_report, hd95_when_empty=shape.policy)
    report = write_report(study, pdf=False, mixed=shape.mixed_in_report, hd95_when_empty=shape.policy)

    md = (stats_dir / "stats.md").read_text(encoding="utf-8")
    page = html.unescape(report.read_text(encoding="utf-8"))
    for protocol in shape.protocols:
        assert f"Table 2: F-measure for IPH segmentation, {protocol} protocol" in page
        assert (study / "tables" / f"table4_hd95_mm_{protocol}.md").is_file()
        assert (f"Lesion-wise detection, {protocol} protocol" in page) == shape.lesion_columns
    assert f"policy '{shape.policy}'" in page and f"policy '{shape.policy}'" in md
    for phrases in expected_notes(shape):
        assert any(p in page for p in phrases), f"report lacks a note {phrases} for {shape}"
        if phrases != ("hemorrhage-free",):  # the table captions say it; stats.md has no tables 2-4
            assert any(p in md for p in phrases), f"stats.md lacks a note {phrases} for {shape}"
    if shape.zero_style is not None:  # a style that predicts nothing did not learn: the banner names it
        banner = page[page.index('class="banner"') : page.index("</div>", page.index('class="banner"'))]
        assert display_name(shape.zero_style) in banner
        assert "did not learn" in md or "not meaningful" in md
    else:
        assert 'class="banner"' not in page
