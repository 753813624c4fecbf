"""nnU-Net v2 as a reference style of a study: same subjects, folds, protocols, metrics and statistics.

A study whose ``models.names`` holds ``nnunet_3d_fullres`` or ``nnunet_2d`` runs nnU-Net beside
the paper's 2D models (docs/nnunet.md). The stages follow the data's path:

* :mod:`~iphbench.nnunet.export`: the cohort's original scans and masks (not iphbench's
  preprocessing) become an nnU-Net raw dataset under ``<study>/nnunet/raw``;
* :mod:`~iphbench.nnunet.splits`: ``splits_final.json`` from ``folds.csv``, each fold holding out
  exactly the study's test subjects;
* :mod:`~iphbench.nnunet.prepare`: nnU-Net's fingerprint, plans and preprocessing, through its
  Python API, once per study;
* :mod:`~iphbench.nnunet.run`: one fold, a run of the study grid like any other
  (``runs/<style>/<3D|2D>/fold<k>/`` with ``status.json``, ``done.json``, ``error.txt``): train,
  then predict the fold's test subjects;
* :mod:`~iphbench.nnunet.predict`: a trained fold ensemble on any scan (``iphbench predict``).

Scoring is iphbench's own (``iphbench.study.evaluate``): the `full` protocol keeps the
prediction inside the brain mask, the `paper` protocol inside the subject's lesion patches.

nnunetv2 is the optional extra ``iphbench[nnunet]``; nothing here imports it at module level,
so studies, reports and metrics of nnU-Net styles read without it.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

#: nnU-Net configuration trained for each reference style (the styles ``models.names`` accepts).
CONFIGURATIONS: dict[str, str] = {"nnunet_2d": "2d", "nnunet_3d_fullres": "3d_fullres"}
#: ``orientation`` of a style's rows in metrics.csv and its folder under ``runs/<style>/``: it
#: predicts the volume itself (3D network, or 2D network slice by slice), not per view and fused.
ORIENTATIONS: dict[str, str] = {"nnunet_2d": "2D", "nnunet_3d_fullres": "3D"}
#: Each reference style's name in tables and figures.
LABELS: dict[str, str] = {"nnunet_2d": "nnU-Net 2d", "nnunet_3d_fullres": "nnU-Net 3d_fullres"}
#: nnU-Net's dataset id and name inside the study's own nnU-Net folders (never the user's).
DATASET_ID = 501
DATASET_NAME = f"Dataset{DATASET_ID:03d}_iphbench"
#: nnU-Net's default plans (``ExperimentPlanner``) are the ones the study trains with.
PLANS = "nnUNetPlans"
#: nnU-Net's defaults where the study config leaves a setting at None (nnUNetTrainer, v2.8).
DEFAULT_EPOCHS = 1000
DEFAULT_ITERATIONS = 250
DEFAULT_VAL_ITERATIONS = 50
INSTALL_HINT = (
    "pip install 'iphbench[nnunet]' -c constraints/nnunet.txt, with your installed torch pinned as well "
    "(docs/nnunet.md, 'Installing'); 'make install' does both"
)


class NnunetUnavailableError(RuntimeError):
    """nnunetv2 (the ``iphbench[nnunet]`` extra) is not installed."""


def require_nnunet(what: str = "nnU-Net styles") -> str:
    """The installed nnunetv2 version, or :class:`NnunetUnavailableError` naming the extra."""
    try:
        import nnunetv2  # noqa: F401
    except ImportError:
        raise NnunetUnavailableError(
            f"{what} need nnunetv2, the optional extra iphbench[nnunet], which is not installed: {INSTALL_HINT}"
        ) from None
    return nnunet_version() or "unknown"


def nnunet_version() -> str | None:
    """The installed nnunetv2 version, or None."""
    try:
        return importlib.metadata.version("nnunetv2")
    except importlib.metadata.PackageNotFoundError:
        return None


def is_nnunet_style(name: str) -> bool:
    """True for ``nnunet_2d`` and ``nnunet_3d_fullres``."""
    return name in CONFIGURATIONS


def orientation_of(style: str) -> str:
    """``3D`` for nnunet_3d_fullres, ``2D`` for nnunet_2d."""
    return ORIENTATIONS[style]


def configuration_of(style: str) -> str:
    """nnU-Net's configuration name (``3d_fullres``, ``2d``) of a reference style."""
    return CONFIGURATIONS[style]


def nnunet_root(study_dir: str | Path) -> Path:
    """``<study>/nnunet``: nnU-Net's raw, preprocessed and results folders of this study."""
    return Path(study_dir) / "nnunet"


__all__ = [
    "CONFIGURATIONS",
    "DATASET_ID",
    "DATASET_NAME",
    "LABELS",
    "ORIENTATIONS",
    "PLANS",
    "NnunetUnavailableError",
    "configuration_of",
    "is_nnunet_style",
    "nnunet_root",
    "nnunet_version",
    "orientation_of",
    "require_nnunet",
]
