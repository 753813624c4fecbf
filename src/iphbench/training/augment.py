"""Batch augmentation on the compute device for the ``iphbench`` recipe (docs/training.md).

Every change is drawn per slice but applied to the whole batch at once with tensor
operations (no per-sample Python loop), from a ``torch.Generator`` on the batch's device,
so a run's augmentations are fixed by its seed and epoch and a resumed run is exact.

Spatial (image and mask together): random in-plane flips, a small rotation and an isotropic
zoom as one affine warp (``affine_grid``/``grid_sample``; the mask with nearest neighbour).
Intensity (image only, inside the brain where the windowed image is > 0): the windowed
values are mapped back to HU, given an HU scale and offset as a scanner's calibration would
(different sites differ by a few HU), Gaussian noise in HU, mapped through the window again
(values clipped by the window stay clipped), then a gamma and a Gaussian blur of random width
(a reconstruction kernel's sharpness). Outside the brain the image stays 0, as prepared.

Example:
    >>> import torch
    >>> aug = Augmentation(hu_per_unit=130.0, hu_min=-30.0)
    >>> x, y = torch.rand(8, 1, 32, 32), (torch.rand(8, 1, 32, 32) > 0.9).to(torch.uint8)
    >>> gx, gy = aug(x, y, torch.Generator().manual_seed(0))
    >>> gx.shape == x.shape and gy.dtype == torch.uint8
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from iphbench.config import IphbenchRecipe

_RECIPE = IphbenchRecipe()  # the defaults live in the study config; this class only reads them


@dataclass(frozen=True)
class Augmentation:
    """Settings of the batch augmentation; a range of 0 (or ``flip=False``) switches that change off.

    Attributes:
        hu_per_unit: HU per unit of the windowed image (``hu_max − hu_min`` for a [0, 1] window).
        hu_min: the HU that maps to 0.
        p: probability that a slice gets the rotation, zoom and intensity changes.
    """

    hu_per_unit: float
    hu_min: float
    flip: bool = _RECIPE.flip
    rotate_deg: float = _RECIPE.rotate_deg
    scale: float = _RECIPE.scale
    hu_offset: float = _RECIPE.hu_offset
    hu_scale: float = _RECIPE.hu_scale
    gamma: float = _RECIPE.gamma
    noise_hu: float = _RECIPE.noise_hu
    blur_sigma: float = _RECIPE.blur_sigma
    p: float = _RECIPE.augment_p

    @property
    def spatial(self) -> bool:
        return self.rotate_deg > 0 or self.scale > 0

    @property
    def intensity(self) -> bool:
        return any(v > 0 for v in (self.hu_offset, self.hu_scale, self.gamma, self.noise_hu, self.blur_sigma))

    @property
    def enabled(self) -> bool:
        return self.p > 0 and (self.flip or self.spatial or self.intensity)

    def __call__(self, x: Tensor, y: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """Augment a batch: ``x`` (B, 1, H, W) images, ``y`` (B, 1, H, W) uint8 masks; same shapes and dtypes out."""
        if not self.enabled:
            return x, y
        dtype, memory = x.dtype, _memory_format(x)
        b = x.shape[0]
        active = _uniform(b, gen, x.device) < self.p
        xf = x.float()
        if self.flip:
            xf, y = _random_flips(xf, y, gen)
        if self.spatial:
            xf, y = self._warp(xf, y, active, gen)
        if self.intensity:
            xf = self._intensity(xf, active, gen)
        return xf.to(dtype).contiguous(memory_format=memory), y

    # -- spatial -------------------------------------------------------------------------
    def _warp(self, x: Tensor, y: Tensor, active: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        b = x.shape[0]
        angle = (_uniform(b, gen, x.device) * 2 - 1) * math.radians(self.rotate_deg) * active
        zoom = 1 + (_uniform(b, gen, x.device) * 2 - 1) * self.scale * active
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom  # output→input: rotate back, shrink
        zero = torch.zeros_like(cos)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        y = F.grid_sample(y.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
        return x, y.to(torch.uint8)

    # -- intensity -----------------------------------------------------------------------
    def _intensity(self, x: Tensor, active: Tensor, gen: torch.Generator) -> Tensor:
        b, dev = x.shape[0], x.device
        brain = x > 0
        per = active.view(b, 1, 1, 1).float()

        def draw(half_range: float) -> Tensor:  # uniform in ±half_range, 0 for inactive slices
            return ((_uniform(b, gen, dev) * 2 - 1) * half_range).view(b, 1, 1, 1) * per

        hu = x * self.hu_per_unit + self.hu_min
        hu = hu * (1 + draw(self.hu_scale)) + draw(self.hu_offset)
        if self.noise_hu > 0:
            sd = (_uniform(b, gen, dev) * self.noise_hu).view(b, 1, 1, 1) * per
            hu = hu + torch.randn(x.shape, generator=gen, device=dev) * sd
        out = ((hu - self.hu_min) / self.hu_per_unit).clamp(0.0, 1.0)
        if self.gamma > 0:
            out = out.clamp_min(1e-6).pow(torch.exp(draw(self.gamma)))
        if self.blur_sigma > 0:
            out = _gaussian_blur(out, _uniform(b, gen, dev) * self.blur_sigma * active, self.blur_sigma)
        return torch.where(brain, out, torch.zeros_like(out))


def _uniform(n: int, gen: torch.Generator, device: torch.device) -> Tensor:
    return torch.rand(n, generator=gen, device=device)


def _memory_format(x: Tensor) -> torch.memory_format:
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def _random_flips(x: Tensor, y: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Flip each slice along each in-plane axis with probability 0.5 (image and mask alike)."""
    b = x.shape[0]
    for dim in (2, 3):
        flip = (_uniform(b, gen, x.device) < 0.5).view(b, 1, 1, 1)
        x = torch.where(flip, x.flip(dim), x)
        y = torch.where(flip, y.flip(dim), y)
    return x, y


def _gaussian_blur(x: Tensor, sigma: Tensor, max_sigma: float) -> Tensor:
    """Separable Gaussian blur with one ``sigma`` (pixels) per slice; sigma 0 leaves a slice as it is."""
    b, c, h, w = x.shape
    radius = max(1, math.ceil(3 * max_sigma))
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    s = sigma.to(x.dtype).clamp_min(1e-3).view(b, 1)
    kernel = torch.exp(-0.5 * (offsets.view(1, -1) / s) ** 2)
    kernel = kernel / kernel.sum(1, keepdim=True)  # (B, K); sigma → 0 gives a delta
    flat = x.reshape(1, b * c, h, w)
    k = kernel.repeat_interleave(c, 0)
    flat = F.conv2d(
        F.pad(flat, (radius, radius, 0, 0), mode="replicate"), k.view(b * c, 1, 1, -1), groups=b * c
    )
    flat = F.conv2d(
        F.pad(flat, (0, 0, radius, radius), mode="replicate"), k.view(b * c, 1, -1, 1), groups=b * c
    )
    return flat.reshape(b, c, h, w)


__all__ = ["Augmentation"]
