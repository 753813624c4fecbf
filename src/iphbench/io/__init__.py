"""Reading scans and masks into canonical ``Volume`` objects and writing results back aligned.

Public API (docs/io.md):
    read_volume, read_mask, write_mask_like   scans and masks in NIfTI, NRRD, MHA or DICOM series folders
    iphbench.io.cohort                        load_cohort, validate_cohort (cohort manifest)
    iphbench.io.nnunet                        import_nnunet (nnU-Net v2 raw dataset → cohort.csv)
    write_dicom_seg                           a mask of a DICOM-series scan as DICOM SEG (``dicom`` extra)
"""

from __future__ import annotations

from iphbench.io.cohort import CohortError, Issue, ValidationReport, load_cohort, validate_cohort
from iphbench.io.mask import MaskError, binarize_mask, grid_mismatch, read_mask, write_mask_like
from iphbench.io.read import detect_format, read_volume
from iphbench.io.seg import SegWriteError, write_dicom_seg
from iphbench.io.volume import (
    SourceGrid,
    Volume,
    VolumeReadError,
    canonicalize,
    check_voxels,
    read_nifti,
    write_nifti_like,
)

__all__ = [
    "CohortError",
    "Issue",
    "MaskError",
    "SegWriteError",
    "SourceGrid",
    "ValidationReport",
    "Volume",
    "VolumeReadError",
    "binarize_mask",
    "canonicalize",
    "check_voxels",
    "detect_format",
    "grid_mismatch",
    "load_cohort",
    "read_mask",
    "read_nifti",
    "read_volume",
    "validate_cohort",
    "write_dicom_seg",
    "write_mask_like",
    "write_nifti_like",
]
