"""`iphbench synth`: write a synthetic multi-site NCCT cohort (scans, masks, cohort.csv)."""

from __future__ import annotations

import csv
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from iphbench.cli._app import app, console, fail

if TYPE_CHECKING:
    from rich.table import Table

    from iphbench.synth import HardPreset

# the hard preset's per-subject columns summarised after the table: (what, cohort.csv column synth_<col>_ml)
_HARD_ITEMS = (
    ("choroid plexus calcification", "choroid_calc"),
    ("pineal calcification", "pineal_calc"),
    ("falx calcification", "falx_calc"),
    ("subdural blood", "subdural"),
    ("subarachnoid blood", "subarachnoid"),
    ("intraventricular blood", "intraventricular"),
)


@app.command(
    "synth",
    help="Write a synthetic multi-site NCCT cohort with hemorrhages: NIfTI scans, masks and cohort.csv.",
)
def synth_cmd(
    subjects: int = typer.Option(24, "--subjects", "-n", min=1, help="Number of subjects."),
    sites: int = typer.Option(
        4, "--sites", "-k", min=1, help="Number of sites (scanner profiles); each gets ≥1 subject."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (created)."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed writes byte-identical files."),
    size: str = typer.Option(
        "small",
        "--size",
        help="small (~128×128×64, ~1.7×1.7×2.75 mm), clinical (512×512×~40, ~0.45×0.45×5 mm) or tiny (64×64×32, tests only).",
    ),
    healthy_fraction: float = typer.Option(
        0.0, "--healthy-fraction", min=0.0, max=1.0, help="Share of hemorrhage-free subjects."
    ),
    workers: int = typer.Option(
        1, "--workers", "-w", min=1, help="Parallel processes (the output does not depend on it)."
    ),
    preset: str = typer.Option(
        "standard",
        "--preset",
        help="standard (the original cohort) or hard (calcifications, dense falx, skull base and streaks, "
        "low-contrast clots, 5 mm slices with partial volume, small juxtacortical bleeds, unlabelled "
        "subdural/subarachnoid/intraventricular blood). See docs/synthetic.md.",
    ),
    hard_options: list[str] = typer.Option(
        [],
        "--hard",
        help="Set one knob of the hard preset, KEY=VALUE (repeatable), e.g. --hard streaks=false "
        "--hard subdural_p=0.5 --hard lesion_hu=none.",
    ),
) -> None:
    knobs = _preset_knobs(subjects, sites, size, preset, hard_options)
    csv_path, seconds = _generate(out, subjects, sites, seed, size, healthy_fraction, workers, knobs)
    with open(csv_path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    console.print(_site_table(rows, size, preset))
    if preset == "hard":
        console.print(_hard_summary(rows))
    n_healthy = sum(1 for r in rows if not r["target_ml"])
    console.print(f"{n_healthy} hemorrhage-free subject(s); wrote {csv_path} in {seconds:.1f} s")


def _preset_knobs(
    subjects: int, sites: int, size: str, preset: str, hard_options: list[str]
) -> str | HardPreset:
    """Check the options (exit code 2 with the reason) and return the preset: its name, or the hard knobs."""
    from iphbench.synth import PRESETS, HardPreset
    from iphbench.synth.scanner import SIZES

    if size not in SIZES:
        raise fail(f"--size must be one of {', '.join(SIZES)}, got {size!r}", code=2)
    if preset not in PRESETS:
        raise fail(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}", code=2)
    if hard_options and preset != "hard":
        raise fail("--hard sets knobs of the hard preset: add --preset hard", code=2)
    knobs: str | HardPreset = preset
    if preset == "hard":
        pairs = {}
        for item in hard_options:
            key, sep, value = item.partition("=")
            if not sep:
                raise fail(f"--hard takes KEY=VALUE, got {item!r}", code=2)
            pairs[key.strip()] = value
        try:
            knobs = HardPreset().with_options(pairs)
        except ValueError as exc:
            raise fail(str(exc), code=2) from None
    if subjects < sites:
        raise fail(
            f"--subjects {subjects} cannot fill --sites {sites}: each site needs at least one subject", code=2
        )
    return knobs


def _generate(
    out: Path,
    subjects: int,
    sites: int,
    seed: int,
    size: str,
    healthy_fraction: float,
    workers: int,
    knobs: str | HardPreset,
) -> tuple[Path, float]:
    """Write the cohort under a progress bar; return cohort.csv's path and the seconds it took."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from iphbench.synth import generate_cohort

    start = time.perf_counter()
    with Progress(
        TextColumn("synth"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("subjects", total=subjects)
        csv_path = generate_cohort(
            out,
            n_subjects=subjects,
            n_sites=sites,
            seed=seed,
            size=size,
            healthy_fraction=healthy_fraction,
            workers=workers,
            preset=knobs,
            progress=lambda _subject: bar.advance(task),
        )
    return csv_path, time.perf_counter() - start


def _site_table(rows: list[dict[str, str]], size: str, preset: str) -> Table:
    """One row per site: its subjects, scanner profile and range of hemorrhage volumes."""
    from rich.table import Table

    per_site = Counter(r["site"] for r in rows)
    table = Table(
        title=f"synthetic cohort: {len(rows)} subjects, {len(per_site)} sites ({size}, {preset} preset)"
    )
    for col in ("site", "N", "matrix", "mm", "noise HU", "blur mm", "offset HU", "axes", "lesion mL"):
        table.add_column(col)
    for site in sorted(per_site):
        srows = [r for r in rows if r["site"] == site]
        first = srows[0]
        vols = [float(r["lesion_ml"]) for r in srows if r["target_ml"]]
        vol_txt = f"{min(vols):.2f}-{max(vols):.1f}" if vols else "-"
        spacing = f"{float(first['synth_spacing_x']):.2f}×{float(first['synth_spacing_z']):.2f}"
        table.add_row(
            site,
            str(len(srows)),
            first["synth_matrix"],
            spacing,
            first["synth_noise_sd"],
            first["synth_blur_mm"],
            first["synth_hu_offset"],
            first["synth_storage"],
            vol_txt,
        )
    return table


def _hard_summary(rows: list[dict[str, str]]) -> str:
    """How many subjects got each item of the hard preset, and how many juxtacortical bleeds."""
    has = {name: sum(1 for r in rows if float(r[f"synth_{col}_ml"] or 0) > 0) for name, col in _HARD_ITEMS}
    juxta = sum(1 for r in rows if r["synth_juxtacortical"] == "1")
    return (
        "hard preset: "
        + ", ".join(f"{v} with {k}" for k, v in has.items())
        + f"; {juxta} juxtacortical bleed(s)"
    )
