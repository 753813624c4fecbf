"""Preprocessing (paper section 3.2): brain extraction, HU window, optional resampling, padding, patches.

Public API (docs/preprocessing.md):
    prepare_volume, restore, PreparedSubject, PrepMeta    one scan in memory and its way back
    iphbench.preprocessing.brain                          extract_brain, get_extractor ("ct", "synthstrip", "none")
    iphbench.preprocessing.patching                       pad_to_multiple, patch_origins, select_patches, ...
    iphbench.preprocessing.store                          PatchStore, prepare_store (the on-disk patch store)
"""

from __future__ import annotations

from iphbench.preprocessing.brain import extract_brain, get_extractor, list_extractors
from iphbench.preprocessing.intensity import window_normalize
from iphbench.preprocessing.pipeline import (
    PreparedSubject,
    PrepMeta,
    check_prep_config,
    prepare_volume,
    restore,
)

__all__ = [
    "PrepMeta",
    "PreparedSubject",
    "check_prep_config",
    "extract_brain",
    "get_extractor",
    "list_extractors",
    "prepare_volume",
    "restore",
    "window_normalize",
]
