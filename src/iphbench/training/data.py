"""Training data for one run: the 2D slices of a view, held as tensors and gathered without a DataLoader.

The paper trains separate 2D models on the axial, coronal and sagittal slices of the
64³ lesion patches (section 3.2-3.4). A run's slices (:mod:`iphbench.training.sampling`)
are kept as one tensor; on CUDA it lives on the GPU (bf16 images, uint8 masks) and
batches are gathered there with indices drawn on the device, so no host thread or
DataLoader sits between steps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

log = logging.getLogger(__name__)


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (NumPy SeedSequence), e.g. ``derive_seed(seed, epoch)``."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


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
    subject: Tensor | None = None  # (N,) int32 subject index of each slice (for per-subject validation)
    n_subjects: int = 1  # 1 + the largest subject index (known on the host: validation never asks the GPU)

    @classmethod
    def build(
        cls,
        images: np.ndarray,
        masks: np.ndarray,
        device: torch.device,
        dtype: torch.dtype,
        resident: bool = True,
        channels_last: bool = False,
        subject: np.ndarray | None = None,
    ) -> SliceSet:
        """Move slices to ``device`` when ``resident`` (CUDA) or keep them in (pinned) host memory."""
        img = torch.from_numpy(np.ascontiguousarray(images))
        msk = torch.from_numpy(np.ascontiguousarray(masks))
        subj = None if subject is None else torch.from_numpy(np.ascontiguousarray(subject, dtype=np.int32))
        n_subjects = int(subject.max()) + 1 if subject is not None and len(subject) else 1
        store_dtype = torch.bfloat16 if dtype == torch.bfloat16 else torch.float16
        if device.type == "cuda" and resident:
            img = img.to(device).to(store_dtype)
            msk = msk.to(device)
        else:
            img = img.to(store_dtype)
            if device.type == "cuda":
                img, msk = img.pin_memory(), msk.pin_memory()
        if subj is not None and device.type == "cuda" and resident:
            subj = subj.to(device)
        return cls(img, msk, device, dtype, channels_last, subj, n_subjects)

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


__all__ = ["SliceSet", "derive_seed", "steps_per_epoch"]
