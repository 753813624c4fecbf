"""Model registry: ``@register_model`` and ``list_models`` (timm-style internal machinery).

Each public architecture module defines one factory function, decorated with
:func:`register_model`; the function's name is the model's name. The CLI and the study
config take their choices from :func:`list_models`, so a new architecture only has to be
registered to appear everywhere (and to be picked up by the parametrized model tests).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import TypeVar

from torch import nn

ModelFn = Callable[..., nn.Module]
F = TypeVar("F", bound=ModelFn)

_model_entrypoints: dict[str, ModelFn] = {}
_model_to_module: dict[str, str] = {}


def register_model(fn: F) -> F:
    """Register a model factory under its function name.

    Args:
        fn: A function ``fn(in_channels, classes, width, **kwargs) -> nn.Module``.

    Returns:
        ``fn`` itself, so this works as a decorator.

    Raises:
        ValueError: If a model with the same name is already registered.
    """
    name = fn.__name__
    if name in _model_entrypoints and _model_entrypoints[name] is not fn:
        raise ValueError(
            f"model {name!r} is registered twice (in {_model_to_module[name]} and {fn.__module__})"
        )
    _model_entrypoints[name] = fn
    _model_to_module[name] = fn.__module__
    return fn


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
    try:
        return _model_entrypoints[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; valid models are {list_models()}") from None
