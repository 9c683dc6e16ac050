"""ADMM compression (polarize, quantize, prune), and ``forms.compress(...)``, the in-memory entry point.

This package is callable: ``forms.compress(model, train_loader, spec, val_loader=None)`` runs
:func:`forms.api.compression.compress` (the ADMM pipeline on a copy of an in-memory model; see its
docstring), while ``forms.compress.spec``, ``forms.compress.pipeline`` and the other modules import as
usual. A package and a function cannot share the name ``forms.compress`` otherwise: Python binds every
imported subpackage as an attribute of its parent, replacing any function of that name.

Modules: :mod:`~forms.compress.spec` (settings), :mod:`~forms.compress.projections` and
:mod:`~forms.compress.constraints` (the constraint sets), :mod:`~forms.compress.admm`,
:mod:`~forms.compress.phases`, :mod:`~forms.compress.retrain` and :mod:`~forms.compress.core` (the
pipeline in memory), :mod:`~forms.compress.pipeline` and :mod:`~forms.compress.state` (the checkpoint
path of ``forms compress``, resumable), :mod:`~forms.compress.result`, :mod:`~forms.compress.export`.
"""

from __future__ import annotations

import inspect
import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    """The module type of :mod:`forms.compress`: calling the package runs the in-memory compression."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """:func:`forms.api.compression.compress` (imported on first call: the package itself stays light)."""
        from forms.api.compression import compress

        return compress(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        """The signature of :func:`forms.api.compression.compress` (what ``inspect`` and notebooks show)."""
        from forms.api.compression import compress

        return inspect.signature(compress)


sys.modules[__name__].__class__ = _CallablePackage
