"""Models by name: a zoo name (:mod:`forms.nn.models`) or the import path of a user's factory.

``--model`` (and a checkpoint's ``model.name``) is either a zoo name such as ``lenet5`` or
``package.module:factory``: any importable callable returning an ``nn.Module``. The factory is called
with those of the keyword arguments ``in_channels``, ``num_classes`` and ``image_size`` that its
signature names (all of them when it takes ``**kwargs``), so one factory can adapt to the data;
a factory without such parameters is called with none. The module must be importable by the
process that rebuilds the model (install it, or put its folder on ``PYTHONPATH``).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from forms.errors import ConfigError
from forms.nn.models import MODEL_NAMES, build_model, model_kwargs

MODEL_CHOICES = f"one of {', '.join(MODEL_NAMES)}, or package.module:factory"
"""What ``--model`` accepts, for help texts and error messages."""


def is_import_path(name: str) -> bool:
    """Whether model ``name`` is a ``package.module:factory`` import path rather than a zoo name."""
    return ":" in name


def check_model_name(name: str) -> None:
    """Raise :class:`ConfigError` unless ``name`` is a zoo name or has the form ``module:attribute``."""
    if is_import_path(name):
        module, _, attribute = name.partition(":")
        if not module or not attribute or ":" in attribute:
            raise ConfigError(f"model '{name}': an import path must read package.module:factory")
    elif name not in MODEL_NAMES:
        raise ConfigError(f"unknown model '{name}'; choose {MODEL_CHOICES}")


def load_factory(path: str) -> Callable[..., Any]:
    """The callable that import path ``package.module:factory`` names (dots allowed after the colon).

    Raises :class:`ConfigError` naming the module or attribute when the module cannot be imported,
    lacks the attribute, or the attribute is not callable.
    """
    check_model_name(path)
    module_name, _, attribute = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # an import runs user code: any error means "not importable"
        raise ConfigError(
            f"model '{path}': cannot import module '{module_name}' ({type(exc).__name__}: {exc}); "
            "install it or add its folder to PYTHONPATH"
        ) from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"model '{path}': module '{module_name}' has no attribute '{attribute}'")
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(
            f"model '{path}': '{attribute}' is a {type(target).__name__}, not a callable that returns "
            "an nn.Module"
        )
    return target


def _factory_kwargs(factory: Callable[..., Any], values: dict[str, int]) -> dict[str, int]:
    """Those of ``values`` that ``factory`` accepts as keyword arguments."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature: call them without arguments
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return dict(values)
    named = {p.name for p in parameters if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
    return {k: v for k, v in values.items() if k in named}


def make_model(name: str, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """A fresh model ``name`` (zoo name or import path) for these inputs and classes.

    Zoo names go to :func:`forms.nn.models.build_model`; an import path's factory is called as the
    module docstring says. Raises :class:`ConfigError` for an unknown name, a factory that cannot be
    loaded, raises, or returns something other than an ``nn.Module``.
    """
    if not is_import_path(name):
        return build_model(name, in_channels, num_classes, image_size)
    factory = load_factory(name)
    try:
        model = factory(**_factory_kwargs(factory, model_kwargs(in_channels, num_classes, image_size)))
    except Exception as exc:  # user code: report, do not crash with a traceback
        raise ConfigError(f"model '{name}': the factory raised {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"model '{name}': the factory returned a {type(model).__name__}, expected an nn.Module"
        )
    return model
