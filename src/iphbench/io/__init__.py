"""Reading scans and masks into canonical ``Volume`` objects and writing results back aligned."""

from __future__ import annotations

from iphbench.io.volume import SourceGrid, Volume, VolumeReadError, canonicalize, read_nifti, write_nifti_like

__all__ = ["SourceGrid", "Volume", "VolumeReadError", "canonicalize", "read_nifti", "write_nifti_like"]
