"""Per-site scanner profiles: grid, reconstruction blur, noise, HU calibration and file orientation.

Each site of the synthetic cohort is one scanner protocol (paper section 3.1: 17 sites with
different vendors, slice thickness and reconstruction kernels). A site's profile depends
only on ``(seed, site index)``, never on how many sites or subjects are drawn, so adding a
site leaves the others unchanged. Sites also store their files differently (RAS, LPS,
LAS and a permuted ``SAR`` axis order) so that downstream orientation handling is
exercised; the canonical arrays read back (``iphbench.io.volume``) are identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from nibabel import orientations as ornt_mod
from scipy import ndimage

from iphbench.synth._field import Grid

SIZES: tuple[str, ...] = ("small", "clinical", "tiny")
STORAGE_ORDERS: tuple[str, ...] = (
    "RAS",
    "LPS",
    "SAR",
    "LAS",
)  # site k stores its files in STORAGE_ORDERS[k % 4]
_SITE_STREAM = 101


@dataclass(frozen=True)
class ScannerProfile:
    """One site's scanner and storage habits."""

    site: str  # site name ("A", "B", ...)
    shape: tuple[int, int, int]  # matrix in canonical (x, y, z) order
    spacing: tuple[float, float, float]  # voxel size in mm (x, y, z); z = slice thickness = slice spacing
    noise_sd: float  # quantum noise SD in HU, measured in a homogeneous region
    blur_mm: float  # in-plane reconstruction blur (Gaussian sigma, mm): sharper or softer kernel
    blur_z_mm: float  # through-plane blur (Gaussian sigma, mm) from the slice sensitivity profile
    hu_offset: float  # water calibration offset in HU added to every voxel
    storage: str  # voxel axis order the files are written in (nibabel axis codes, e.g. "LPS")

    @property
    def fov_mm(self) -> tuple[float, float, float]:
        """Field of view in mm along x, y, z."""
        return tuple(n * s for n, s in zip(self.shape, self.spacing, strict=True))  # type: ignore[return-value]


def site_name(index: int) -> str:
    """Spreadsheet-style site names: A..Z, AA, AB, ... (the paper labels its sites A-Q)."""
    name = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        name = chr(ord("A") + rem) + name
    return name


def make_site_profile(seed: int, index: int, size: str = "small") -> ScannerProfile:
    """The scanner profile of site ``index`` for cohort ``seed`` at ``size`` ("small" or "clinical").

    ``small``: about 128×128×64 at ~1.7×1.7×2.5-3 mm (a 1 mL lesion covers ~100+ voxels);
    ``clinical``: 512×512×~40 at ~0.45×0.45×5 mm, as routine head CT; ``tiny``: ~64×64×32 at
    ~3.4×3.4×5 mm, for tests and smoke runs only (a 1 mL bleed is ~17 voxels).
    """
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}: choose one of {', '.join(SIZES)}")
    rng = np.random.default_rng([seed, _SITE_STREAM, index])
    if size == "tiny":  # for tests and smoke runs only: 64×64×32 at ~3.4×3.4×5 mm
        n_xy = int(rng.choice([60, 64]))
        fov = rng.uniform(205.0, 220.0)
        dz = 5.0
        n_z = int(np.clip(round(rng.uniform(150.0, 175.0) / dz), 28, 32))
        noise = rng.uniform(3.0, 8.0)
        blur = rng.uniform(0.3, 0.8)
    elif size == "small":
        n_xy = int(rng.choice([112, 120, 128]))
        fov = rng.uniform(205.0, 220.0)
        dz = float(rng.choice([2.5, 2.75, 3.0]))
        n_z = int(np.clip(round(rng.uniform(150.0, 175.0) / dz), 48, 64))
        noise = rng.uniform(3.0, 8.0)
        blur = rng.uniform(0.3, 0.8)
    else:
        n_xy = 512
        fov = rng.uniform(205.0, 240.0)
        dz = float(rng.choice([4.5, 5.0]))
        n_z = int(np.clip(round(rng.uniform(170.0, 195.0) / dz), 34, 44))
        noise = rng.uniform(3.0, 7.0)
        blur = rng.uniform(0.25, 0.6)
    dxy = round(fov / n_xy, 4)
    return ScannerProfile(
        site=site_name(index),
        shape=(n_xy, n_xy, n_z),
        spacing=(dxy, dxy, dz),
        noise_sd=round(float(noise), 3),
        blur_mm=round(float(blur), 3),
        blur_z_mm=round(0.3 * dz, 3),
        hu_offset=round(float(rng.uniform(-4.0, 4.0)), 2),
        storage=STORAGE_ORDERS[index % len(STORAGE_ORDERS)],
    )


def allocate_sites(n_subjects: int, n_sites: int, seed: int) -> list[int]:
    """Unequal subjects per site (log-normal shares, like the paper's 2-54), each site at least one.

    Raises:
        ValueError: if there are fewer subjects than sites.
    """
    if n_sites < 1:
        raise ValueError(f"n_sites must be at least 1, got {n_sites}")
    if n_subjects < n_sites:
        raise ValueError(
            f"{n_subjects} subjects cannot fill {n_sites} sites: each site needs at least one subject"
        )
    rng = np.random.default_rng([seed, _SITE_STREAM + 1, n_sites])
    share = rng.lognormal(0.0, 0.8, n_sites)
    extra = (n_subjects - n_sites) * share / share.sum()
    counts = np.floor(extra).astype(int)
    order = np.argsort(-(extra - counts), kind="stable")
    counts[order[: n_subjects - n_sites - counts.sum()]] += 1
    return [int(c) + 1 for c in counts]


def grid_for(profile: ScannerProfile) -> Grid:
    """The site's canonical grid, centred in x and y, z from 0 at the lowest slice."""
    nx, ny, _ = profile.shape
    sx, sy, _ = profile.spacing
    origin = (-(nx - 1) * sx / 2.0, -(ny - 1) * sy / 2.0, 0.0)
    return Grid(shape=profile.shape, spacing=profile.spacing, origin=origin)


def apply_scanner(hu: np.ndarray, profile: ScannerProfile, rng: np.random.Generator) -> np.ndarray:
    """Turn a clean HU map into the site's reconstructed image (float32 HU).

    Adds the calibration offset, blurs with the reconstruction kernel (in-plane) and slice
    profile (through-plane), and adds noise with the kernel's texture, scaled so that its SD
    is exactly ``profile.noise_sd`` HU.
    """
    sigma = tuple(
        s_mm / sp
        for s_mm, sp in zip(
            (profile.blur_mm, profile.blur_mm, profile.blur_z_mm), profile.spacing, strict=True
        )
    )
    out = ndimage.gaussian_filter(
        hu.astype(np.float32) + np.float32(profile.hu_offset), sigma, mode="nearest"
    )
    noise = rng.standard_normal(hu.shape, dtype=np.float32)
    noise = ndimage.gaussian_filter(noise, (sigma[0], sigma[1], 0.0), mode="wrap")
    noise *= np.float32(profile.noise_sd / float(noise.std()))
    return out + noise


def to_storage(array: np.ndarray, affine: np.ndarray, storage: str) -> tuple[np.ndarray, np.ndarray]:
    """Reorder a canonical RAS+ array into the voxel order ``storage`` (e.g. "LPS"), with its affine.

    The world positions are unchanged: reading the result back canonically gives ``array``
    and ``affine`` again.
    """
    transform = ornt_mod.ornt_transform(
        ornt_mod.axcodes2ornt(("R", "A", "S")), ornt_mod.axcodes2ornt(tuple(storage))
    )
    data = np.ascontiguousarray(ornt_mod.apply_orientation(array, transform))
    new_affine = affine @ ornt_mod.inv_ornt_aff(transform, array.shape)
    return data, new_affine
