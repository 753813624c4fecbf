"""Fixtures of the synthetic-cohort tests: one small cohort and a few rendered subjects, made once."""

from __future__ import annotations

from pathlib import Path

import pytest

from iphbench.synth import SubjectSpec, SyntheticScan, generate_cohort, make_site_profile, synthesize_subject


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six tiny subjects on three sites (one hemorrhage-free); returns the cohort.csv path."""
    out = tmp_path_factory.mktemp("synth_cohort")
    return generate_cohort(out, n_subjects=6, n_sites=3, seed=3, healthy_fraction=0.2, size="tiny")


@pytest.fixture(scope="session")
def lesion_scan() -> SyntheticScan:
    """One old subject with a 20 mL hemorrhage on a small-size site."""
    profile = make_site_profile(seed=5, index=0, size="small")
    return synthesize_subject(SubjectSpec("t001", index=2, seed=5, profile=profile, lesion_ml=20.0))
