"""Per-view hemorrhage probabilities for a prepared subject (DESIGN.md, "inference").

A 2D model of one view sees the slices of each selected 64³ patch in that view; its
probabilities are put back into the patches and the patches into the padded canonical
volume. Patches are a non-overlapping grid, so reassembly is exact: a model that returns
its input reproduces the input volume in every view (tested).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from iphbench.preprocessing.patching import extract_patches, scatter_patches
from iphbench.views import from_slices, to_slices


@torch.inference_mode()
def predict_patches(
    models: Sequence[nn.Module],
    patches: np.ndarray,
    view: str,
    device: torch.device,
    batch_size: int = 512,
    amp: bool | None = None,
) -> np.ndarray:
    """Probabilities for a stack of cubic patches with the 2D models of one view.

    Args:
        models: one or more models of ``view`` (several = the fold ensemble: probabilities averaged).
        patches: ``(N, P, P, P)`` normalised intensities.
        view: "2DAxi", "2DCor" or "2DSag".
        device: where to run.
        batch_size: slices per forward pass.
        amp: bf16 autocast; default on for CUDA, off on CPU.

    Returns:
        ``(N, P, P, P)`` float32 probabilities (sigmoid of the logits, averaged over ``models``).
    """
    if patches.ndim != 4:
        raise ValueError(f"expected patches of shape (N, P, P, P), got {patches.shape}")
    n = patches.shape[0]
    if n == 0:
        return np.zeros(patches.shape, dtype=np.float32)
    use_amp = (device.type == "cuda") if amp is None else amp
    src = torch.from_numpy(np.ascontiguousarray(patches))
    if device.type == "cuda":  # one upload; slicing, sigmoid and the ensemble sum then stay on the GPU
        src = src.to(device, non_blocking=True)
    slices = to_slices(src, view)  # (N*S, H, W)
    out = torch.empty(slices.shape, dtype=torch.float32, device=slices.device)
    for i, model in enumerate(models):
        # channels-last: ~1.8x faster inference on CPU too (bench: 32x32 slices, width 8)
        model.eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        for start in range(0, slices.shape[0], batch_size):
            batch = slices[start : start + batch_size].to(
                device=device, dtype=torch.float32, non_blocking=True
            )
            batch = batch.unsqueeze(1).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits = model(batch)
            prob = torch.sigmoid(logits.float())[:, 0]
            target = out[start : start + prob.shape[0]]
            if i == 0:  # the first model writes, the others add: no zero-fill pass
                target.copy_(prob)
            else:
                target.add_(prob)
    if len(models) > 1:
        out /= float(len(models))
    return from_slices(out, view, tuple(patches.shape)).contiguous().cpu().numpy()


def predict_subject_views(
    image: np.ndarray,
    origins: np.ndarray,
    patch_size: int,
    models_by_view: Mapping[str, Sequence[nn.Module]],
    device: torch.device,
    batch_size: int = 512,
    on_view_done: Callable[[str], None] | None = None,
) -> dict[str, np.ndarray]:
    """Probability volumes (padded canonical grid) of each view for one prepared subject.

    Args:
        image: the padded, normalised canonical volume (float16 or float32).
        origins: ``(N, 3)`` patch origins to predict; voxels outside them get probability 0.
        patch_size: cubic patch side.
        models_by_view: view → models of that view (averaged when several).
        device: where to run.
        batch_size: slices per forward pass.
        on_view_done: called with the view name after each view (progress).

    Returns:
        view → float32 probability volume of ``image.shape``.
    """
    patches = extract_patches(image, origins, patch_size)
    result: dict[str, np.ndarray] = {}
    for view, models in models_by_view.items():
        probs = predict_patches(models, patches, view, device, batch_size=batch_size)
        result[view] = scatter_patches(probs, origins, image.shape, dtype=np.float32)
        if on_view_done is not None:
            on_view_done(view)
    return result
