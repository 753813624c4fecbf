"""Synthetic multi-site NCCT cohort with intraparenchymal hemorrhages (DESIGN.md, issue 2 item 5).

Stands in for the paper's private 17-site data (section 3.1) so every stage runs end to end:
a head phantom with realistic HU (``phantom``), lobulated hemorrhages with an oedema rim
(``lesion``), per-site scanner effects and file orientations (``scanner``), one subject
(``subject``; ``render`` picks the standard or hard renderer) and the cohort writer (``cohort``). The ``hard`` preset (``preset``, ``hard``,
``mimics``, ``bleeds``, ``artifacts``) makes the cohort hard the ways real scans are. See
``docs/synthetic.md``.

Example:
    >>> from iphbench.synth import generate_cohort
    >>> csv_path = generate_cohort("/tmp/cohort", n_subjects=8, n_sites=2, seed=1)  # doctest: +SKIP
"""

from __future__ import annotations

from iphbench.synth.cohort import COHORT_COLUMNS, HARD_COLUMNS, generate_cohort, lesion_volumes, plan_cohort
from iphbench.synth.phantom import TISSUE_HU, HeadAnatomy, Tissue, draw_head, render_head
from iphbench.synth.preset import PRESETS, HardLabel, HardPreset, resolve_preset
from iphbench.synth.render import synthesize_subject
from iphbench.synth.scanner import ScannerProfile, allocate_sites, make_site_profile
from iphbench.synth.subject import SubjectSpec, SyntheticScan

__all__ = [
    "COHORT_COLUMNS",
    "HARD_COLUMNS",
    "PRESETS",
    "TISSUE_HU",
    "HardLabel",
    "HardPreset",
    "HeadAnatomy",
    "ScannerProfile",
    "SubjectSpec",
    "SyntheticScan",
    "Tissue",
    "allocate_sites",
    "draw_head",
    "generate_cohort",
    "lesion_volumes",
    "make_site_profile",
    "plan_cohort",
    "render_head",
    "resolve_preset",
    "synthesize_subject",
]
