"""Training data for one run: the 2D slices of a view, held as tensors and sampled without a DataLoader.

The paper trains separate 2D models on the axial, coronal and sagittal slices of the
64³ lesion patches (section 3.2-3.4). Here the patches of a fold's subjects are read once
from the patch store, cut into slices of the run's view (``iphbench.views.to_slices``)
and kept as one tensor. On CUDA that tensor lives on the GPU (bf16 images, uint8 masks)
and batches are gathered there with indices from a ``torch.Generator`` on the device, so
no host thread or DataLoader sits between steps.

Each epoch's order is a permutation drawn from a generator seeded by ``(seed, epoch)``:
it does not depend on anything that happened before, which makes a resumed run exact.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from iphbench.views import to_slices

log = logging.getLogger(__name__)


class PatchSource(Protocol):
    """What the trainer needs from ``iphbench.preprocessing.store.PatchStore``."""

    def patches(self, subjects: Sequence[str], mode: str) -> tuple[np.ndarray, np.ndarray, Any]: ...


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (NumPy SeedSequence), e.g. ``derive_seed(seed, epoch)``."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def load_view_slices(
    store: PatchSource, subjects: Sequence[str], view: str, mode: str = "lesion"
) -> tuple[np.ndarray, np.ndarray]:
    """Slices of ``view`` from the ``mode`` patches of ``subjects``: images float16 (N, H, W), masks uint8.

    Raises:
        ValueError: when the subjects hold no patch of that mode (nothing to train or validate on).
    """
    if not subjects:
        raise ValueError("no subjects given: a run needs training and validation subjects")
    images, masks, _ = store.patches(list(subjects), mode)
    if len(images) == 0:
        raise ValueError(
            f"subjects {list(subjects)[:5]}{'...' if len(subjects) > 5 else ''} hold no {mode!r} patches; "
            "check their masks in the cohort, or the folds"
        )
    img = np.ascontiguousarray(to_slices(np.asarray(images, dtype=np.float16), view))
    msk = np.ascontiguousarray(to_slices(np.asarray(masks, dtype=np.uint8), view))
    return img, msk


@dataclass
class SliceSet:
    """Slices of one view as tensors, with batch gathering on the compute device.

    Attributes:
        images: (N, H, W) image slices (bf16 on CUDA with bf16 training, else float16).
        masks: (N, H, W) uint8 {0, 1}.
        device: the compute device batches are delivered to.
        dtype: dtype of delivered image batches (bf16 or float32).
        channels_last: deliver batches in channels-last memory format.
    """

    images: Tensor
    masks: Tensor
    device: torch.device
    dtype: torch.dtype
    channels_last: bool = False

    @classmethod
    def build(
        cls,
        images: np.ndarray,
        masks: np.ndarray,
        device: torch.device,
        dtype: torch.dtype,
        resident: bool = True,
        channels_last: bool = False,
    ) -> SliceSet:
        """Move slices to ``device`` when ``resident`` (CUDA) or keep them in (pinned) host memory."""
        img = torch.from_numpy(np.ascontiguousarray(images))
        msk = torch.from_numpy(np.ascontiguousarray(masks))
        store_dtype = torch.bfloat16 if dtype == torch.bfloat16 else torch.float16
        if device.type == "cuda" and resident:
            img = img.to(device).to(store_dtype)
            msk = msk.to(device)
        else:
            img = img.to(store_dtype)
            if device.type == "cuda":
                img, msk = img.pin_memory(), msk.pin_memory()
        return cls(img, msk, device, dtype, channels_last)

    @property
    def n(self) -> int:
        return int(self.images.shape[0])

    @property
    def index_device(self) -> torch.device:
        """Where batch indices must live (the device that holds the slices)."""
        return self.images.device

    def _deliver(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        x = x.to(self.device, non_blocking=True).unsqueeze(1).to(self.dtype)
        y = y.to(self.device, non_blocking=True).unsqueeze(1)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def batch(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """Gather slices ``index`` as ``(B, 1, H, W)`` images (``dtype``) and uint8 masks on the device."""
        return self._deliver(self.images[index], self.masks[index])

    def chunk(self, start: int, stop: int) -> tuple[Tensor, Tensor]:
        """Contiguous slices ``start:stop`` as a batch (for validation, in order)."""
        return self._deliver(self.images[start:stop], self.masks[start:stop])

    def nbytes(self) -> int:
        return int(self.images.numel() * self.images.element_size() + self.masks.numel())


def steps_per_epoch(n: int, batch_size: int, steps: int | None) -> int:
    """Steps of one epoch: ``steps`` if given, else one pass over full batches (at least one)."""
    if steps is not None:
        if steps < 1:
            raise ValueError(f"steps_per_epoch must be at least 1, got {steps}")
        return steps
    return max(1, n // batch_size)


def epoch_indices(n: int, batch_size: int, steps: int, seed: int, epoch: int, device: torch.device) -> Tensor:
    """Sample order of one epoch: concatenated permutations of ``range(n)`` seeded by ``(seed, epoch)``.

    Drawn on ``device`` by a generator there (CUDA generators differ from CPU ones, so an
    exact resume needs the same device type). Long enough for ``steps`` batches of
    ``min(batch_size, n)`` indices.
    """
    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(seed, epoch, 0x51CE))
    need = steps * min(batch_size, n)
    perms = [torch.randperm(n, generator=gen, device=device) for _ in range(math.ceil(need / n))]
    return perms[0] if len(perms) == 1 else torch.cat(perms)


__all__ = ["PatchSource", "SliceSet", "derive_seed", "epoch_indices", "load_view_slices", "steps_per_epoch"]
