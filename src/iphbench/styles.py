"""Styles: what one column of the paper's tables stands for.

The paper compares four *styles* (section 3.3): U-Net, Attention U-Net, FPN and TransUNet, each
trained as 2D models on three views and fused in 2.5D. iphbench adds two kinds of style beside
them, always labelled:

* the same architecture trained with another recipe (``train.recipe``, docs/training.md):
  ``unet`` is U-Net trained exactly as the paper says; ``unet+iphbench`` is U-Net trained with
  iphbench's recipe. Both are their own style in metrics.csv, the statistics, tables and report;
* nnU-Net v2 configurations as reference styles (``nnunet_2d``, ``nnunet_3d_fullres``).

A style's name is also its folder under ``<study>/runs/``. The paper recipe keeps the bare
architecture name so that studies and reports of the paper look as they always did. The names,
labels and colours come from where each kind of style is defined: the model registry
(``iphbench.models``: ``@register_model(label=..., colour=...)``) and the nnU-Net package's table
(``iphbench.nnunet.LABELS``); nothing here lists architectures.

Example:
    >>> parse_style("unet+iphbench").label
    'U-Net (iphbench recipe)'
    >>> [s.name for s in study_styles(["fpn", "unet"], ["paper", "iphbench"])]
    ['fpn', 'fpn+iphbench', 'unet', 'unet+iphbench']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from iphbench.config import RECIPE_NAMES, ConfigError
from iphbench.models import is_model, list_models, model_info
from iphbench.nnunet import LABELS as NNUNET_LABELS
from iphbench.nnunet import ORIENTATIONS as NNUNET_ORIENTATIONS
from iphbench.views import FUSED, VIEWS

#: nnU-Net v2 configurations accepted as reference styles in ``models.names``.
NNUNET_STYLES: tuple[str, ...] = tuple(NNUNET_ORIENTATIONS)
#: Training recipes of the architectures (``train.recipe``).
RECIPES: tuple[str, ...] = RECIPE_NAMES
#: Separates an architecture from a non-paper recipe in a style name.
RECIPE_SEPARATOR = "+"
#: The recipe name of a reference style (it trains with its own framework).
REFERENCE_RECIPE = "nnunet"


@dataclass(frozen=True, order=True)
class Style:
    """One style: an architecture and the recipe that trained it (``nnunet`` for nnU-Net styles)."""

    arch: str  # registry name (unet, ...) or an nnU-Net configuration (nnunet_3d_fullres, ...)
    recipe: str = "paper"  # "paper", "iphbench", or "nnunet" for nnU-Net styles

    @property
    def name(self) -> str:
        """The style's name in metrics.csv and its folder under ``runs/``."""
        if self.recipe in ("paper", REFERENCE_RECIPE):
            return self.arch
        return f"{self.arch}{RECIPE_SEPARATOR}{self.recipe}"

    @property
    def backend(self) -> str:
        """Which backend trains, evaluates and predicts it (``iphbench.study.backends``)."""
        return "nnunet" if self.recipe == REFERENCE_RECIPE else "models"

    @property
    def is_reference(self) -> bool:
        """A reference style (nnU-Net), shown after the paper's styles and compared with them."""
        return self.recipe == REFERENCE_RECIPE

    @property
    def label(self) -> str:
        """Display name: ``"U-Net"``, ``"U-Net (iphbench recipe)"``, ``"nnU-Net 3d_fullres"``."""
        base = arch_label(self.arch)
        return base if self.recipe in ("paper", REFERENCE_RECIPE) else f"{base} ({self.recipe} recipe)"

    @property
    def colour(self) -> str | None:
        """The architecture's registered colour (None: figures pick the next default colour)."""
        return model_info(self.arch).colour if is_model(self.arch) else None

    def run_views(self, views: Sequence[str]) -> list[str]:
        """The ``<view>`` folders of its runs: the study's views, or a reference style's own (3D, 2D)."""
        own = NNUNET_ORIENTATIONS.get(self.arch) if self.is_reference else None
        return [own] if own else [v for v in VIEWS if v in views]

    def orientations(self, views: Sequence[str]) -> list[str]:
        """Its orientations in metrics.csv: each view trained, plus 2.5D when all three are; a
        reference style only its own."""
        run_views = self.run_views(views)
        if self.is_reference or not all(v in run_views for v in VIEWS):
            return run_views
        return [*run_views, FUSED]

    def __str__(self) -> str:
        return self.name


def arch_label(arch: str) -> str:
    """An architecture's or reference style's label; the name itself when it is neither."""
    if is_model(arch):
        return model_info(arch).label
    return NNUNET_LABELS.get(arch, arch)


def parse_style(name: str) -> Style:
    """The :class:`Style` behind a name of metrics.csv or a ``runs/`` folder.

    Unknown architectures are kept as they are (a metrics.csv may come from elsewhere);
    an unknown recipe after ``+`` is kept too, and labelled with its name.
    """
    name = str(name)
    if name in NNUNET_STYLES:
        return Style(name, REFERENCE_RECIPE)
    arch, sep, recipe = name.partition(RECIPE_SEPARATOR)
    return Style(arch, recipe if sep and recipe else "paper")


def style_label(name: str) -> str:
    """Display name of a style name (``"attention_unet+iphbench"`` → ``"Attention U-Net (iphbench recipe)"``)."""
    return parse_style(name).label


def style_colour(name: str) -> str | None:
    """A style's colour in figures: its architecture's registered colour, or None."""
    return parse_style(name).colour


def style_sort_key(name: str) -> tuple[int, str, int, str]:
    """Order of styles in tables: the architectures alphabetically by label (the paper's column
    order), each followed by its other recipes; nnU-Net reference styles last."""
    s = parse_style(name)
    recipe_rank = RECIPES.index(s.recipe) if s.recipe in RECIPES else len(RECIPES)
    return (1 if s.is_reference else 0, arch_label(s.arch).lower(), recipe_rank, s.recipe)


def ordered_style_names(names: Iterable[object]) -> list[str]:
    """Distinct style names in table order (:func:`style_sort_key`)."""
    return sorted({str(n) for n in names}, key=style_sort_key)


def known_names() -> list[str]:
    """What ``models.names`` accepts: the registered architectures and the nnU-Net reference styles."""
    return [*list_models(), *NNUNET_STYLES]


def study_styles(
    names: Sequence[str], recipes: Sequence[str], recipe_models: Mapping[str, Sequence[str]] | None = None
) -> list[Style]:
    """The styles of a study: every architecture in ``names`` once per recipe, nnU-Net styles once.

    Args:
        names: ``models.names`` of the study (architectures and nnU-Net configurations).
        recipes: ``train.recipe`` as a list (``paper``, ``iphbench`` or both).
        recipe_models: ``train.recipe_models``: a recipe listed here trains only these architectures.

    Raises:
        ConfigError: a name is neither a registered architecture nor an nnU-Net style.
    """
    unknown = [n for n in names if n not in NNUNET_STYLES and not is_model(n)]
    if unknown:
        raise ConfigError(f"unknown models {unknown} in models.names; valid models are {known_names()}")
    only = dict(recipe_models or {})
    out: list[Style] = []
    for name in names:
        if name in NNUNET_STYLES:
            out.append(Style(name, REFERENCE_RECIPE))
        else:
            out.extend(Style(name, r) for r in recipes if r not in only or name in only[r])
    return sorted(dict.fromkeys(out), key=lambda s: style_sort_key(s.name))


__all__ = [
    "NNUNET_ORIENTATIONS",
    "NNUNET_STYLES",
    "RECIPES",
    "RECIPE_SEPARATOR",
    "Style",
    "arch_label",
    "known_names",
    "ordered_style_names",
    "parse_style",
    "study_styles",
    "style_colour",
    "style_label",
    "style_sort_key",
]
