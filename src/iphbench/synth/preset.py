"""Presets of the synthetic cohort: ``standard`` (the original, easy cohort) and ``hard``.

On real head CT the project's models reach a 2.5D Dice of about 0.33, on the standard synthetic
cohort 0.85 (issue 11): the standard cohort flatters models. The ``hard`` preset adds what makes
real non-contrast head CT hard, each item a setting of :class:`HardPreset` that can be switched
off on its own (a probability of 0 or ``False``):

* hyperdense structures that are not the hemorrhage and never in the mask: choroid plexus and
  pineal calcifications, a dense (and sometimes calcified) falx, an irregular inner table with
  skull-base ridges, beam-hardening streaks in the lowest slices;
* low-contrast hemorrhages (45-65 HU against grey matter at ~36-40 HU);
* thick (4.5-5 mm) slices, each the mean of <= 1 mm sub-slices (partial volume);
* small hemorrhages against the cortex;
* other hemorrhage types, left unlabelled: subdural, subarachnoid and intraventricular blood.

Literature values and sources are in ``docs/synthetic.md`` ("Hard preset").

Example:
    >>> preset = resolve_preset("hard")
    >>> preset.partial_volume, resolve_preset("standard") is None
    (True, True)
    >>> import dataclasses
    >>> dataclasses.replace(preset, streaks=False).streaks
    False
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np

from iphbench.synth.scanner import ScannerProfile

PRESETS: tuple[str, ...] = ("standard", "hard")
_HARD_SITE_STREAM = 103


class HardLabel(IntEnum):
    """Label values the hard preset adds to the label map after ``Tissue`` (never in the mask)."""

    CHOROID_CALC = 12  # choroid plexus (glomus) calcification in a ventricle's atrium
    PINEAL_CALC = 13  # pineal calcification, midline behind the third ventricle
    FALX = 14  # the dense falx: a thin dural sheet in the interhemispheric fissure
    FALX_CALC = 15  # calcified plaque on the falx
    SUBDURAL = 16  # subdural blood: an extra-axial crescent along the convexity
    SUBARACHNOID = 17  # subarachnoid blood: in the convexity CSF, sulcal clefts and the fissure
    INTRAVENTRICULAR = 18  # intraventricular blood layering in the dependent (posterior) horns


MIMIC_LABELS: tuple[HardLabel, ...] = (
    HardLabel.CHOROID_CALC,
    HardLabel.PINEAL_CALC,
    HardLabel.FALX,
    HardLabel.FALX_CALC,
)
BLEED_LABELS: tuple[HardLabel, ...] = (HardLabel.SUBDURAL, HardLabel.SUBARACHNOID, HardLabel.INTRAVENTRICULAR)


@dataclass(frozen=True)
class HardPreset:
    """The knobs of the ``hard`` preset; each item switches off on its own (probability 0 or ``False``)."""

    # hyperdense mimics (in every subject, hemorrhage-free ones too; never in the mask)
    choroid_calc_p: float = 0.7  # probability of choroid plexus calcification (atria), per subject
    pineal_calc_p: float = 0.7  # probability of pineal calcification (midline), per subject
    dense_falx: bool = True  # the falx as a thin dense dural sheet (50-80 HU) in the fissure
    falx_calc_p: float = 0.25  # probability of calcified plaques (200-800 HU) on the falx, per subject
    bone_edges: bool = True  # rough inner table; petrous and sphenoid ridges in the low slices
    streaks: bool = True  # beam-hardening streaks (dark and bright) in the slices near the skull base
    # the hemorrhage (the mask)
    lesion_hu: tuple[float, float] | None = (45.0, 65.0)  # clot HU range; None = standard
    juxtacortical_fraction: float = 0.35  # share of hemorrhages placed small, against the cortex
    juxtacortical_ml: tuple[float, float] = (0.3, 6.0)  # their volumes (log-uniform, stratified)
    # acquisition
    slice_mm: tuple[float, ...] | None = (4.5, 5.0)  # slice thicknesses sites draw; None = the size's
    partial_volume: bool = True  # a slice is the mean of sub-slices (box profile), not a point sample
    subslice_mm: float = 1.0  # largest spacing of those sub-slices (their count is odd)
    # other hemorrhage types, hyperdense but unlabelled (the label is IPH only)
    subdural_p: float = 0.2  # probability of a subdural crescent, per hemorrhage subject
    subarachnoid_p: float = 0.3  # probability of subarachnoid blood, per hemorrhage subject
    intraventricular_p: float = 0.35  # probability of intraventricular blood, per hemorrhage subject
    bleeds_in_iph_free: bool = False  # also draw those bleeds in hemorrhage-free subjects

    def __post_init__(self) -> None:
        for name in (
            "choroid_calc_p",
            "pineal_calc_p",
            "falx_calc_p",
            "juxtacortical_fraction",
            "subdural_p",
            "subarachnoid_p",
            "intraventricular_p",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"hard preset: {name} must be within [0, 1], got {value}")
        lo, hi = self.juxtacortical_ml
        if not 0 < lo < hi:
            raise ValueError(
                f"hard preset: juxtacortical_ml must satisfy 0 < low < high, got {self.juxtacortical_ml}"
            )
        if self.lesion_hu is not None and not 40.0 <= self.lesion_hu[0] < self.lesion_hu[1] - 6.0:
            raise ValueError(
                f"hard preset: lesion_hu must be (low, high) with 40 <= low and high - low > 6 HU, got {self.lesion_hu}"
            )
        if self.subslice_mm <= 0:
            raise ValueError(f"hard preset: subslice_mm must be positive, got {self.subslice_mm}")
        if self.slice_mm is not None and (not self.slice_mm or min(self.slice_mm) <= 0):
            raise ValueError(f"hard preset: slice_mm must hold positive thicknesses, got {self.slice_mm}")

    def to_dict(self) -> dict[str, Any]:
        """The knobs as JSON-ready values (tuples as lists), as written to ``synth.json``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def with_options(self, options: dict[str, str]) -> HardPreset:
        """A copy with knobs set from strings (the CLI's ``--hard KEY=VALUE``), e.g. ``{"streaks": "false"}``.

        Raises:
            ValueError: for an unknown knob (the message lists the knobs) or a value that does not parse.
        """
        fields = {f.name: f for f in dataclasses.fields(self)}
        changes: dict[str, Any] = {}
        for key, text in options.items():
            if key not in fields:
                raise ValueError(f"unknown hard-preset setting {key!r}; settings are {', '.join(fields)}")
            changes[key] = _parse_value(key, text, getattr(self, key))
        return dataclasses.replace(self, **changes)


def _parse_value(key: str, text: str, current: Any) -> Any:
    low = text.strip().lower()
    if isinstance(current, bool):
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"hard-preset setting {key} takes true/false, got {text!r}")
    if low in ("none", "off") and key in ("lesion_hu", "slice_mm"):
        return None
    try:
        if key in ("lesion_hu", "juxtacortical_ml", "slice_mm"):
            return tuple(float(x) for x in text.replace(";", ",").split(","))
        return float(text)
    except ValueError:
        raise ValueError(f"hard-preset setting {key}: cannot read {text!r} as a number or list") from None


def resolve_preset(preset: str | HardPreset | None) -> HardPreset | None:
    """``None`` for the standard preset, the hard preset's knobs otherwise.

    Raises:
        ValueError: for an unknown preset name (the message lists the presets).
    """
    if preset is None or isinstance(preset, HardPreset):
        return preset
    if preset == "standard":
        return None
    if preset == "hard":
        return HardPreset()
    raise ValueError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")


def hard_site_profile(profile: ScannerProfile, seed: int, index: int, preset: HardPreset) -> ScannerProfile:
    """Site ``index``'s scanner under the hard preset: thick slices, box slice profile when averaging.

    A site whose slices are thinner than every ``preset.slice_mm`` takes one of them (drawn from its
    own stream) and keeps its craniocaudal coverage; with ``partial_volume`` the slice profile is the
    box of sub-slice averaging, so no Gaussian through-plane blur is added (``blur_z_mm`` 0).
    """
    dz = profile.spacing[2]
    n_z = profile.shape[2]
    if preset.slice_mm is not None and dz < min(preset.slice_mm) - 1e-6:
        rng = np.random.default_rng([seed, _HARD_SITE_STREAM, index])
        new_dz = float(rng.choice(np.asarray(preset.slice_mm, dtype=float)))
        n_z = max(8, round(n_z * dz / new_dz))
        dz = new_dz
    blur_z = 0.0 if preset.partial_volume else round(0.3 * dz, 3)
    return dataclasses.replace(
        profile,
        shape=(profile.shape[0], profile.shape[1], n_z),
        spacing=(profile.spacing[0], profile.spacing[1], dz),
        blur_z_mm=blur_z,
    )


def subslices(slice_mm: float, partial_volume: bool, max_step_mm: float = 1.0) -> int:
    """Sub-slices averaged per slice: the odd count whose spacing is at most ``max_step_mm`` (1 when off).

    Odd, so that the middle sub-slice lies at the slice centre, where the standard cohort samples.
    """
    if not partial_volume:
        return 1
    k = int(np.ceil(slice_mm / max_step_mm - 1e-9))
    return k if k % 2 == 1 else k + 1
