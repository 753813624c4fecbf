"""Styles: what one column of the paper's tables stands for.

The paper compares four *styles* (section 3.3): U-Net, Attention U-Net, FPN and TransUNet, each
trained as 2D models on three views and fused in 2.5D. iphbench adds two kinds of style beside
them, always labelled:

* the same architecture trained with another recipe (``train.recipe``, docs/training.md):
  ``unet`` is U-Net trained exactly as the paper says; ``unet+iphbench`` is U-Net trained with
  iphbench's recipe. Both are their own style in metrics.csv, the statistics, tables and report;
* nnU-Net v2 configurations as reference styles (``nnunet_2d``, ``nnunet_3d_fullres``).

A style's name is also its folder under ``<study>/runs/``. The paper recipe keeps the bare
architecture name so that studies and reports of the paper look as they always did.

Example:
    >>> parse_style("unet+iphbench").label
    'U-Net (iphbench recipe)'
    >>> [s.name for s in study_styles(["fpn", "unet"], ["paper", "iphbench"])]
    ['fpn', 'fpn+iphbench', 'unet', 'unet+iphbench']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

#: The paper's four architectures (registry names, section 3.3).
ARCHITECTURES: tuple[str, ...] = ("unet", "attention_unet", "fpn", "transunet")
#: nnU-Net v2 configurations accepted as reference styles in ``models.names``.
NNUNET_STYLES: tuple[str, ...] = ("nnunet_2d", "nnunet_3d_fullres")
#: The one orientation of each nnU-Net style's rows in metrics.csv: it predicts the volume itself
#: (3D network, or 2D network slice by slice), not per view and fused.
NNUNET_ORIENTATIONS: dict[str, str] = {"nnunet_2d": "2D", "nnunet_3d_fullres": "3D"}
#: Training recipes of the four architectures (``train.recipe``).
RECIPES: tuple[str, ...] = ("paper", "iphbench")
#: Separates an architecture from a non-paper recipe in a style name.
RECIPE_SEPARATOR = "+"

ARCH_LABELS: dict[str, str] = {
    "unet": "U-Net",
    "attention_unet": "Attention U-Net",
    "fpn": "FPN",
    "transunet": "Trans U-Net",
    "nnunet_2d": "nnU-Net 2d",
    "nnunet_3d_fullres": "nnU-Net 3d_fullres",
}


@dataclass(frozen=True, order=True)
class Style:
    """One style: an architecture and the recipe that trained it (``nnunet`` for nnU-Net styles)."""

    arch: str  # registry name (unet, ...) or an nnU-Net configuration (nnunet_3d_fullres, ...)
    recipe: str = "paper"  # "paper", "iphbench", or "nnunet" for nnU-Net styles

    @property
    def name(self) -> str:
        """The style's name in metrics.csv and its folder under ``runs/``."""
        if self.recipe in ("paper", "nnunet"):
            return self.arch
        return f"{self.arch}{RECIPE_SEPARATOR}{self.recipe}"

    @property
    def label(self) -> str:
        """Display name: ``"U-Net"``, ``"U-Net (iphbench recipe)"``, ``"nnU-Net 3d_fullres"``."""
        base = ARCH_LABELS.get(self.arch, self.arch)
        return base if self.recipe in ("paper", "nnunet") else f"{base} ({self.recipe} recipe)"

    @property
    def is_nnunet(self) -> bool:
        return self.recipe == "nnunet"

    def __str__(self) -> str:
        return self.name


def parse_style(name: str) -> Style:
    """The :class:`Style` behind a name of metrics.csv or a ``runs/`` folder.

    Unknown architectures are kept as they are (a metrics.csv may come from elsewhere);
    an unknown recipe after ``+`` is kept too, and labelled with its name.
    """
    name = str(name)
    if name in NNUNET_STYLES:
        return Style(name, "nnunet")
    arch, sep, recipe = name.partition(RECIPE_SEPARATOR)
    return Style(arch, recipe if sep and recipe else "paper")


def style_label(name: str) -> str:
    """Display name of a style name (``"attention_unet+iphbench"`` → ``"Attention U-Net (iphbench recipe)"``)."""
    return parse_style(name).label


def style_sort_key(name: str) -> tuple[int, str, int, str]:
    """Order of styles in tables: the architectures alphabetically by label (the paper's column
    order), each followed by its other recipes; nnU-Net reference styles last."""
    s = parse_style(name)
    recipe_rank = RECIPES.index(s.recipe) if s.recipe in RECIPES else len(RECIPES)
    base = ARCH_LABELS.get(s.arch, s.arch).lower()
    return (1 if s.is_nnunet else 0, base, recipe_rank, s.recipe)


def ordered_style_names(names: Iterable[object]) -> list[str]:
    """Distinct style names in table order (:func:`style_sort_key`)."""
    return sorted({str(n) for n in names}, key=style_sort_key)


def study_styles(
    names: Sequence[str], recipes: Sequence[str], recipe_models: Mapping[str, Sequence[str]] | None = None
) -> list[Style]:
    """The styles of a study: every architecture in ``names`` once per recipe, nnU-Net styles once.

    Args:
        names: ``models.names`` of the study (architectures and nnU-Net configurations).
        recipes: ``train.recipe`` as a list (``paper``, ``iphbench`` or both).
        recipe_models: ``train.recipe_models``: a recipe listed here trains only these architectures.
    """
    only = dict(recipe_models or {})
    out: list[Style] = []
    for name in names:
        if name in NNUNET_STYLES:
            out.append(Style(name, "nnunet"))
        else:
            out.extend(Style(name, r) for r in recipes if r not in only or name in only[r])
    return sorted(dict.fromkeys(out), key=lambda s: style_sort_key(s.name))


__all__ = [
    "ARCHITECTURES",
    "ARCH_LABELS",
    "NNUNET_ORIENTATIONS",
    "NNUNET_STYLES",
    "RECIPES",
    "RECIPE_SEPARATOR",
    "Style",
    "ordered_style_names",
    "parse_style",
    "study_styles",
    "style_label",
    "style_sort_key",
]
