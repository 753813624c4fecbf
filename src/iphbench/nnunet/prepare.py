"""nnU-Net's study-level steps, once per study before its folds train: export, plan, preprocess, split.

``run_study`` calls :func:`prepare_nnunet` after the patch store and ``folds.csv`` exist and
before any run is handed to an executor, in the driver process, so folds running in parallel
(several GPUs, a Ray cluster) never race on these files. Each step is skipped when its output
is there: ``<study>/nnunet/prepared.json`` records the nnunetv2 version, the exported cases
and the configurations already preprocessed; a change of cases or version redoes the
fingerprint, plans and preprocessing. ``splits_final.json`` is rewritten from ``folds.csv``
every time (cheap, and never stale).

nnU-Net's own Python API does the work (``nnunetv2.experiment_planning.plan_and_preprocess_api``:
``extract_fingerprint_dataset``, ``plan_experiment_dataset`` with the default
``ExperimentPlanner``, ``preprocess_dataset``), inside :func:`iphbench.nnunet._env.nnunet_environment`.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from iphbench._files import atomic_write_json
from iphbench.config import StudyConfig
from iphbench.nnunet import DATASET_ID, PLANS, configuration_of, require_nnunet
from iphbench.nnunet._env import folders, nnunet_environment
from iphbench.nnunet.export import export_dataset
from iphbench.nnunet.splits import make_splits, write_splits

log = logging.getLogger(__name__)


class NnunetPrepareError(RuntimeError):
    """nnU-Net could not plan or preprocess the study's dataset."""


def prepare_nnunet(
    config: StudyConfig, subjects: pd.DataFrame, folds: pd.DataFrame, styles: Sequence[str]
) -> dict[str, Any]:
    """Export, fingerprint, plan and preprocess for ``styles``, and write the split file.

    Args:
        config: the study config (``out``, ``prep.mask_labels``, ``nnunet``).
        subjects: the patch store's subjects table (subject, image, mask, ...).
        folds: the study's folds table.
        styles: the nnU-Net styles to prepare (``nnunet_3d_fullres``, ``nnunet_2d``).

    Returns:
        The content of ``prepared.json``.
    """
    version = require_nnunet()
    study = Path(config.out)
    where = folders(study)
    in_study = subjects[subjects["subject"].astype(str).isin(set(folds["subject"].astype(str)))]
    t0 = time.perf_counter()
    cases = export_dataset(study, in_study, config.prep.mask_labels)
    marker = where.root / "prepared.json"
    state = _read(marker)
    if state.get("cases") != sorted(cases.values()) or state.get("nnunetv2") != version:
        if state:
            log.info("nnU-Net: cases or nnunetv2 version changed; planning and preprocessing again")
        shutil.rmtree(where.dataset_preprocessed, ignore_errors=True)
        state = {"nnunetv2": version, "cases": sorted(cases.values()), "configurations": [], "seconds": {}}
    state["seconds"]["export"] = round(time.perf_counter() - t0, 2)
    workers = config.nnunet.preprocessing_workers
    plans_file = where.dataset_preprocessed / f"{PLANS}.json"
    # the planner sets torch's threads from nnUNet_n_proc_DA (and fails on 0): give it the workers
    with nnunet_environment(study, augmentation_workers=workers, log_path=where.root / "prepare.log"):
        from nnunetv2.experiment_planning.plan_and_preprocess_api import (
            extract_fingerprint_dataset,
            plan_experiment_dataset,
            preprocess_dataset,
        )

        if not plans_file.is_file():
            t0 = time.perf_counter()
            log.info("nnU-Net: fingerprint and plans of %d cases", len(cases))
            extract_fingerprint_dataset(
                DATASET_ID, num_processes=workers, check_dataset_integrity=False, clean=True,
                verbose=False, show_progress_bar=False,
            )  # fmt: skip
            plan_experiment_dataset(DATASET_ID)
            state["seconds"]["plan"] = round(time.perf_counter() - t0, 2)
        plans = json.loads(plans_file.read_text(encoding="utf-8"))
        for style in styles:
            configuration = configuration_of(style)
            if configuration in state["configurations"]:
                continue
            if configuration not in plans.get("configurations", {}):
                raise NnunetPrepareError(
                    f"nnU-Net planned no {configuration!r} configuration for this dataset ({plans_file} has "
                    f"{sorted(plans.get('configurations', {}))}); remove {style} from models.names"
                )
            t0 = time.perf_counter()
            log.info("nnU-Net: preprocessing %s", configuration)
            preprocess_dataset(
                DATASET_ID, PLANS, configurations=[configuration], num_processes=[workers], verbose=False,
                show_progress_bar=False,
            )  # fmt: skip
            state["configurations"].append(configuration)
            state["seconds"][f"preprocess_{configuration}"] = round(time.perf_counter() - t0, 2)
            atomic_write_json(marker, state)
    write_splits(
        make_splits(folds, cases, config.nnunet.train_on_val),
        where.dataset_preprocessed / "splits_final.json",
    )
    atomic_write_json(marker, state)
    return state


def _read(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


__all__ = ["NnunetPrepareError", "prepare_nnunet"]
