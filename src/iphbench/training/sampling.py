"""What a run trains and validates on, and the order it sees it in.

:func:`load_run_slices` reads a run's patches from the patch store and cuts them into slices
of its view, remembering for each slice its subject and whether it came from a lesion-free
*context* patch. Two recipes use it differently (docs/training.md):

* ``paper``: the lesion patches only (section 3.2), every slice kept, and each epoch a
  shuffled pass over them (:class:`PermutationSampler`);
* ``iphbench``: all-zero slices (padding, outside the brain) dropped; lesion-free brain
  patches added as context, in training and in validation; and batches composed by share
  (:class:`BalancedSampler`): a set share of slices holding lesion, a set share of context
  slices, the rest from the other slices of lesion patches.

Each epoch's indices come from a generator seeded by ``(seed, epoch)`` on the device that
holds the slices, so an epoch never depends on what ran before it and a resumed run is exact.
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

from iphbench.training.data import derive_seed
from iphbench.views import to_slices

log = logging.getLogger(__name__)


class PatchSource(Protocol):
    """What a run needs from ``iphbench.preprocessing.store.PatchStore``."""

    def patches(
        self, subjects: Sequence[str], mode: str, max_per_subject: int | None = None, seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray, Any]: ...


@dataclass
class RunSlices:
    """Slices of one view: images float16 (N, H, W), masks uint8, and where each slice came from."""

    images: np.ndarray
    masks: np.ndarray
    subject: np.ndarray  # int32 (N,): index into ``subjects``
    context: np.ndarray  # bool (N,): the slice comes from a lesion-free context patch
    subjects: list[str]

    @property
    def n(self) -> int:
        return len(self.images)

    def take(self, keep: np.ndarray) -> RunSlices:
        return RunSlices(
            self.images[keep], self.masks[keep], self.subject[keep], self.context[keep], self.subjects
        )

    def summary(self) -> str:
        lesion = int(self.masks.reshape(self.n, -1).any(1).sum()) if self.n else 0
        return f"{self.n} slices ({lesion} with lesion, {int(self.context.sum())} context)"


def _slices(store: PatchSource, subjects: Sequence[str], view: str, mode: str, **kw: Any) -> RunSlices:
    images, masks, table = store.patches(list(subjects), mode, **kw)
    index = {s: i for i, s in enumerate(subjects)}
    patch_subject = np.asarray([index[str(s)] for s in table["subject"]], dtype=np.int32)
    img = np.ascontiguousarray(to_slices(np.asarray(images, dtype=np.float16), view)) if len(images) else None
    msk = np.ascontiguousarray(to_slices(np.asarray(masks, dtype=np.uint8), view)) if len(masks) else None
    if img is None or msk is None:
        empty = np.zeros(0, dtype=np.int32)
        return RunSlices(
            np.zeros((0, 1, 1), np.float16),
            np.zeros((0, 1, 1), np.uint8),
            empty,
            empty.astype(bool),
            list(subjects),
        )
    per_patch = len(img) // len(patch_subject)
    subject = np.repeat(patch_subject, per_patch)
    return RunSlices(img, msk, subject, np.full(len(img), mode == "context"), list(subjects))


def load_run_slices(
    store: PatchSource,
    subjects: Sequence[str],
    view: str,
    skip_empty: bool = False,
    context_patches_per_subject: int = 0,
    context_fraction: float | None = None,
    seed: int = 0,
) -> RunSlices:
    """The slices of ``view`` from the lesion patches of ``subjects`` and, optionally, their context patches.

    Args:
        skip_empty: drop slices whose image is all zero (padding, outside the brain).
        context_patches_per_subject: lesion-free brain patches read per subject (0 = none).
        context_fraction: if set, keep only as many context slices as make up this share of all
            slices (drawn with ``seed``; used for validation sets of a fixed composition).
        seed: seed of the context patches' and slices' choice.

    Raises:
        ValueError: no subjects, or no slice at all to train or validate on.
    """
    if not subjects:
        raise ValueError("no subjects given: a run needs training and validation subjects")
    parts = [_slices(store, subjects, view, "lesion")]
    if context_patches_per_subject > 0:
        parts.append(
            _slices(store, subjects, view, "context", max_per_subject=context_patches_per_subject, seed=seed)
        )
    parts = [p for p in parts if p.n]
    if not parts:
        shown = f"{list(subjects)[:5]}{'...' if len(subjects) > 5 else ''}"
        raise ValueError(
            f"subjects {shown} hold no lesion patches; check their masks in the cohort, or the folds"
        )
    out = RunSlices(
        np.concatenate([p.images for p in parts]),
        np.concatenate([p.masks for p in parts]),
        np.concatenate([p.subject for p in parts]),
        np.concatenate([p.context for p in parts]),
        list(subjects),
    )
    if skip_empty:
        out = out.take(np.asarray(out.images.reshape(out.n, -1).any(1)))
    if context_fraction is not None and out.context.any():
        out = _limit_context(out, context_fraction, seed)
    if out.n == 0:
        raise ValueError(f"the {view} slices of subjects {list(subjects)[:5]} are all empty")
    return out


def _limit_context(data: RunSlices, fraction: float, seed: int) -> RunSlices:
    ctx = np.flatnonzero(data.context)
    n_other = data.n - len(ctx)
    want = len(ctx) if fraction >= 1 else round(n_other * fraction / (1 - fraction))
    if want >= len(ctx):
        return data
    rng = np.random.default_rng(derive_seed(seed, 0xC0))
    keep = np.ones(data.n, dtype=bool)
    keep[rng.choice(ctx, size=len(ctx) - want, replace=False)] = False
    return data.take(keep)


# -- samplers ---------------------------------------------------------------------------------


class PermutationSampler:
    """The paper recipe's order: concatenated shuffles of all slices (each seen once per pass)."""

    def __init__(self, n: int, batch_size: int, seed: int, device: torch.device) -> None:
        self.n, self.batch, self.seed, self.device = n, min(batch_size, n), seed, device

    def indices(self, epoch: int, steps: int) -> Tensor:
        """``steps × batch`` slice indices of one epoch (drawn on the device, seeded by ``(seed, epoch)``)."""
        gen = torch.Generator(device=self.device)
        gen.manual_seed(derive_seed(self.seed, epoch, 0x51CE))
        need = steps * self.batch
        perms = [
            torch.randperm(self.n, generator=gen, device=self.device) for _ in range(math.ceil(need / self.n))
        ]
        return (perms[0] if len(perms) == 1 else torch.cat(perms))[:need]


class BalancedSampler:
    """Batches of a fixed composition: ``foreground_share`` lesion slices, ``context_share`` context
    slices, the rest other slices of lesion patches; each part drawn uniformly with replacement.

    A part with no slice to draw from gives its share to the others (the lesion-patch
    background first), so every batch is full. With both shares 0 a batch is drawn uniformly
    from all slices.
    """

    def __init__(
        self,
        data: RunSlices,
        batch_size: int,
        foreground_share: float,
        context_share: float,
        seed: int,
        device: torch.device,
    ) -> None:
        has_lesion = data.masks.reshape(data.n, -1).any(1)
        pools = {
            "lesion": np.flatnonzero(has_lesion & ~data.context),
            "context": np.flatnonzero(data.context),
            "background": np.flatnonzero(~has_lesion & ~data.context),
        }
        if foreground_share == 0 and context_share == 0:
            pools = {"all": np.arange(data.n)}
            want = {"all": batch_size}
        else:
            n_fg = round(batch_size * foreground_share)
            n_ctx = round(batch_size * context_share)
            want = {"lesion": n_fg, "context": n_ctx, "background": batch_size - n_fg - n_ctx}
        self.counts = _redistribute(want, {k: len(v) for k, v in pools.items()})
        self.pools = {k: torch.from_numpy(pools[k]).to(device) for k in self.counts if self.counts[k] > 0}
        self.batch, self.seed, self.device = batch_size, seed, device

    def indices(self, epoch: int, steps: int) -> Tensor:
        gen = torch.Generator(device=self.device)
        gen.manual_seed(derive_seed(self.seed, epoch, 0xBA1))
        parts = [
            pool[torch.randint(len(pool), (steps, self.counts[name]), generator=gen, device=self.device)]
            for name, pool in self.pools.items()
        ]
        return torch.cat(parts, dim=1).reshape(-1)


def _redistribute(want: dict[str, int], available: dict[str, int]) -> dict[str, int]:
    counts = {k: (v if available[k] > 0 else 0) for k, v in want.items()}
    missing = sum(want.values()) - sum(counts.values())
    for k in ("background", "lesion", "context", "all"):
        if missing and available.get(k, 0) > 0:
            counts[k] += missing
            missing = 0
    if missing:
        raise ValueError("no slices to sample from")
    return counts


__all__ = ["BalancedSampler", "PatchSource", "PermutationSampler", "RunSlices", "load_run_slices"]
