"""Integer layers held in memory to the ``.npz`` of ``forms export``, and checked as ``forms check`` does.

The file layout and every constraint check are :mod:`forms.compress.export`'s; :func:`check` on
in-memory layers writes them to a temporary file and checks that, so the numpy-only check a reader
of the file would run is the one applied.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from forms.compress.export import CheckReport, check_npz, write_npz
from forms.config import CrossbarSpec
from forms.intweights import IntegerLayer


def export(layers: Sequence[IntegerLayer], out: str | Path, crossbar: CrossbarSpec) -> Path:
    """Write ``layers`` to the ``.npz`` ``out`` (atomically) for crossbars of ``crossbar``; return its path.

    The metadata records ``crossbar``'s fragment size (R) and geometry and the widest layer's weight
    bits; the file reads back with ``numpy.load`` alone.

    >>> import forms, tempfile, pathlib
    >>> from torch import nn
    >>> spec = forms.CompressSpec.model_validate({"crossbar": {"fragment_size": 4}})
    >>> layers = forms.project(nn.Sequential(nn.Linear(16, 8)), spec)
    >>> path = forms.export(layers, pathlib.Path(tempfile.mkdtemp()) / "model.npz", spec.crossbar)
    >>> forms.check(path).ok
    True
    """
    meta = {
        "fragment_size": crossbar.fragment_size,
        "weight_bits": max(layer.weight_bits for layer in layers),
        "crossbar_rows": crossbar.rows,
        "crossbar_cols": crossbar.cols,
    }
    return write_npz(layers, meta, out)


def check(target: str | Path | Sequence[IntegerLayer], crossbar: CrossbarSpec | None = None) -> CheckReport:
    """Check an exported ``.npz`` (a path) or in-memory integer layers against the FORMS constraints.

    For layers, ``crossbar`` (default ``CrossbarSpec()``) gives R and the geometry they must satisfy.
    Every broken constraint is a violation in the report (``report.ok`` is False), never an exception.

    >>> import torch, forms
    >>> from forms.intweights import IntegerLayer
    >>> mixed = torch.tensor([[[1], [-1], [0], [0]]])  # Linear(4, 1): one fragment of R=4, both signs
    >>> layer = IntegerLayer("fc", mixed, torch.tensor(0.1), (1, 4), weight_bits=4, fragment_size=4)
    >>> forms.check([layer], forms.CrossbarSpec(fragment_size=4)).violations
    ["layer 'fc': 1 fragments of R=4 rows hold both signs"]
    """
    if isinstance(target, str | Path):
        return check_npz(target)
    with tempfile.TemporaryDirectory() as folder:
        report = check_npz(export(target, Path(folder) / "layers.npz", crossbar or CrossbarSpec()))
    report.path = "in-memory integer layers"
    return report
