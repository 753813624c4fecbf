"""Model registry: ``@register_model`` and ``list_models`` (timm-style internal machinery).

Each public architecture module defines one factory function, decorated with
:func:`register_model`; the function's name is the model's name, and what the rest of iphbench
shows of the model travels with its registration (:class:`ModelInfo`: its label in tables, its
colour in figures, its default settings). The study config, the CLI, the styles of a study, the
report and the parametrized model tests all take their choices from here, so a new architecture
is its own module plus one line in ``iphbench/models/__init__.py`` that imports it.

Example:
    >>> from iphbench.models import model_info
    >>> model_info("attention_unet").label
    'Attention U-Net'
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    from torch import nn

ModelFn = Callable[..., "nn.Module"]
F = TypeVar("F", bound=ModelFn)


@dataclass(frozen=True)
class ModelInfo:
    """What iphbench knows of a registered model besides how to build it."""

    name: str  # the factory's name: models.names, runs/<name>/, metrics.csv's style
    label: str  # shown in tables, figures and the report ("U-Net")
    colour: str | None = None  # its colour in figures (matplotlib colour); None = the next default one
    defaults: Mapping[str, Any] = field(default_factory=dict)  # settings create_model passes unless given
    module: str = ""  # where it is defined


_model_entrypoints: dict[str, ModelFn] = {}
_model_info: dict[str, ModelInfo] = {}


@overload
def register_model(fn: F) -> F: ...


@overload
def register_model(
    fn: None = None, *, label: str | None = None, colour: str | None = None, **defaults: Any
) -> Callable[[F], F]: ...


def register_model(
    fn: F | None = None, *, label: str | None = None, colour: str | None = None, **defaults: Any
) -> F | Callable[[F], F]:
    """Register a model factory under its function name, with what is shown of it.

    Use as ``@register_model`` or ``@register_model(label="U-Net", colour="#9467bd", depth=4)``.

    Args:
        fn: A function ``fn(in_channels, classes, width, **kwargs) -> nn.Module``.
        label: Its name in tables and figures; default the function's name.
        colour: Its colour in figures; default matplotlib's next colour.
        **defaults: Settings ``create_model`` passes to ``fn`` unless the caller gives them.

    Returns:
        ``fn`` itself (or a decorator that registers and returns it).

    Raises:
        ValueError: If a model with the same name is already registered.
    """

    def register(f: F) -> F:
        name = f.__name__
        if name in _model_entrypoints and _model_entrypoints[name] is not f:
            raise ValueError(
                f"model {name!r} is registered twice (in {_model_info[name].module} and {f.__module__})"
            )
        _model_entrypoints[name] = f
        _model_info[name] = ModelInfo(name, label or name, colour, dict(defaults), f.__module__)
        return f

    return register(fn) if fn is not None else register


def list_models(pattern: str = "*") -> list[str]:
    """Names of the registered models matching a shell-style pattern, sorted.

    Example:
        >>> from iphbench.models import list_models
        >>> list_models("*unet")
        ['attention_unet', 'transunet', 'unet']
    """
    return sorted(n for n in _model_entrypoints if fnmatch.fnmatchcase(n, pattern))


def is_model(name: str) -> bool:
    """Whether ``name`` is a registered model."""
    return name in _model_entrypoints


def model_entrypoint(name: str) -> ModelFn:
    """The factory function registered under ``name``.

    Raises:
        KeyError: If no model has that name; the message lists the valid names.
    """
    return _registered(_model_entrypoints, name)


def model_info(name: str) -> ModelInfo:
    """The label, colour and defaults registered with ``name``.

    Raises:
        KeyError: If no model has that name; the message lists the valid names.
    """
    return _registered(_model_info, name)


def _registered(table: dict[str, Any], name: str) -> Any:
    if name not in table:
        raise KeyError(f"unknown model {name!r}; valid models are {list_models()}")
    return table[name]


def unregister_model(name: str) -> None:
    """Remove a registration (a plug-in or test model); unknown names are ignored."""
    _model_entrypoints.pop(name, None)
    _model_info.pop(name, None)
