"""Intensity window and min-max normalisation (paper section 3.2).

"Intensity normalization was carried out in two steps: (1) we cropped the intensity from -30 to
100 Hounsfield units (HU); (2) we performed min-max normalization, mapping the image intensities
to the range [0.0, 1.0]." The min-max uses the fixed window bounds, not each scan's own minimum
and maximum, so the same HU maps to the same value on every scan and every site.

Example:
    >>> import numpy as np
    >>> window_normalize(np.array([-1000.0, -30.0, 35.0, 100.0, 2000.0]))
    array([0. , 0. , 0.5, 1. , 1. ], dtype=float32)
"""

from __future__ import annotations

import numpy as np


def window_normalize(
    image: np.ndarray,
    hu_min: float = -30.0,
    hu_max: float = 100.0,
    out_min: float = 0.0,
    out_max: float = 1.0,
    brain: np.ndarray | None = None,
    dtype: np.dtype | type = np.float32,
) -> np.ndarray:
    """Clip HU to ``[hu_min, hu_max]`` and map that window linearly onto ``[out_min, out_max]``.

    Args:
        image: CT values in HU.
        hu_min: lower clip (paper: -30 HU); maps to ``out_min``.
        hu_max: upper clip (paper: 100 HU); maps to ``out_max``.
        out_min: value of ``hu_min`` after normalisation (paper: 0).
        out_max: value of ``hu_max`` after normalisation (paper: 1).
        brain: optional brain mask; voxels outside it are set to 0 (skull stripping).
        dtype: floating dtype of the result.

    Returns:
        The normalised image, same shape as ``image``.
    """
    if not hu_max > hu_min:
        raise ValueError(f"the HU window must have hu_max > hu_min, got [{hu_min}, {hu_max}]")
    work = np.clip(np.asarray(image, dtype=np.float32), hu_min, hu_max)
    work -= np.float32(hu_min)
    work *= np.float32((out_max - out_min) / (hu_max - hu_min))
    work += np.float32(out_min)
    # float32 rounding of the window may overshoot an end by an ulp (found by hypothesis): clip to it
    np.clip(work, min(out_min, out_max), max(out_min, out_max), out=work)
    if brain is not None:
        if brain.shape != work.shape:
            raise ValueError(f"brain mask shape {brain.shape} does not match image shape {work.shape}")
        work[brain == 0] = 0
    return work.astype(dtype, copy=False)


__all__ = ["window_normalize"]
