"""The in-memory Python API, re-exported from :mod:`forms`: any PyTorch CNN in a few lines.

- :func:`compress`: the ADMM pipeline of ``forms compress`` on a copy of a model, with the user's data
  loaders; returns the model, its integer layers and the run's metrics (:class:`Compressed`).
- :func:`project`: prune, polarize and quantize a model's Conv2d/Linear weights in place (one-shot,
  no training); returns its integer layers.
- :func:`fold_batchnorm`: Conv2d -> BatchNorm2d pairs folded into the convolution's integer layer
  (per-channel scale and bias), for a chip without a BatchNorm unit.
- :func:`to_crossbars` / :func:`to_digital`: a copy of the model running on simulated crossbars
  (:class:`CrossbarModel`, whose ``stats()`` are :class:`CrossbarStats`), and back.
- :func:`estimate`: area, power, energy and throughput on an architecture preset or spec.
- :func:`export` / :func:`check`: the ``.npz`` of ``forms export`` and its constraint check.
"""

from forms.api.batchnorm import fold_batchnorm
from forms.api.compression import Compressed, compress
from forms.api.cost import estimate
from forms.api.crossbars import CrossbarModel, CrossbarStats, to_crossbars, to_digital
from forms.api.files import check, export
from forms.api.project import project

__all__ = [
    "Compressed",
    "CrossbarModel",
    "CrossbarStats",
    "check",
    "compress",
    "estimate",
    "export",
    "fold_batchnorm",
    "project",
    "to_crossbars",
    "to_digital",
]
