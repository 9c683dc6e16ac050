"""FORMS: fine-grained polarized ReRAM-based in-situ computation, as a co-design toolkit.

Subpackages, in the order data flows through them (docs/design.md): ``nn`` (data, models,
training), ``compress`` (ADMM polarization, quantization, pruning), ``sim`` (crossbar mapping and
bit-accurate simulation), ``cost`` (area, power, energy, throughput), ``report``; ``experiments``
and ``cli`` on top. Shared definitions: :mod:`forms.config`, :mod:`forms.geometry`,
:mod:`forms.encoding`, :mod:`forms.intweights`, :mod:`forms.io`.

The in-memory Python API (:mod:`forms.api`) is available here, imported on first use so that
``import forms`` (and ``forms --help``) stays light::

    done = forms.compress(model, train_loader, forms.CompressSpec(), val_loader)  # ADMM, in memory
    layers = forms.project(model, forms.CompressSpec())  # or one-shot, without training
    chip = forms.to_crossbars(model, forms.SimSpec(adc_bits=6), calibration=images, layers=layers)
    est = forms.estimate(model, "forms-8", (3, 32, 32), activity=chip.stats(), layers=layers)
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)

__version__ = "0.1.0"

_LAZY = {
    "compress": "forms.compress",
    "Compressed": "forms.api",
    "project": "forms.api",
    "to_crossbars": "forms.api",
    "to_digital": "forms.api",
    "estimate": "forms.api",
    "export": "forms.api",
    "check": "forms.api",
    "fold_batchnorm": "forms.api",
    "CrossbarModel": "forms.api",
    "CrossbarStats": "forms.api",
    "CompressSpec": "forms.compress.spec",
    "CrossbarSpec": "forms.config",
    "DeviceSpec": "forms.sim.spec",
    "SimSpec": "forms.sim.spec",
}
"""Public names of :mod:`forms` and the module each is imported from on first use.

``compress`` is the subpackage :mod:`forms.compress` itself, which is callable (its docstring says
why): Python binds an imported subpackage as an attribute of ``forms``, so no function could keep the
name.
"""

__all__ = [
    "CompressSpec",
    "Compressed",
    "CrossbarModel",
    "CrossbarSpec",
    "CrossbarStats",
    "DeviceSpec",
    "SimSpec",
    "__version__",
    "check",
    "compress",
    "estimate",
    "export",
    "fold_batchnorm",
    "project",
    "to_crossbars",
    "to_digital",
]

if TYPE_CHECKING:
    from forms.api import (
        Compressed,
        CrossbarModel,
        CrossbarStats,
        check,
        compress,
        estimate,
        export,
        fold_batchnorm,
        project,
        to_crossbars,
        to_digital,
    )
    from forms.compress.spec import CompressSpec
    from forms.config import CrossbarSpec
    from forms.sim.spec import DeviceSpec, SimSpec


def __getattr__(name: str) -> object:
    """Import a public name of :data:`_LAZY` on first use (module ``__getattr__``, PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'forms' has no attribute '{name}'")
    imported = importlib.import_module(module)
    value = imported if module == f"forms.{name}" else getattr(imported, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """Module attributes plus the lazily imported public names."""
    return sorted({*globals(), *_LAZY})
