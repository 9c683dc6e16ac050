"""Cost an in-memory model on an architecture: :func:`estimate`, the library form of ``forms estimate``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import nn

from forms.api.crossbars import CrossbarStats
from forms.cost.activity import Activity, SkipFractions
from forms.cost.arch import ArchSpec, load_arch
from forms.cost.estimate import Estimate
from forms.cost.estimate import estimate as estimate_workload
from forms.cost.layer_shapes import Workload, apply_sparsity, layer_shapes
from forms.intweights import IntegerLayer


def _skip(activity: Activity | CrossbarStats | SkipFractions | None, arch: ArchSpec) -> SkipFractions:
    """The skip figures ``activity`` gives under ``arch``'s zero-skip rule (none on an arch without skip
    logic)."""
    if isinstance(activity, SkipFractions):
        return activity
    if activity is None or arch.zero_skip.rule == "none":
        return SkipFractions()
    if isinstance(activity, CrossbarStats):
        return SkipFractions(activity.activity(arch.zero_skip.rule))
    return SkipFractions(activity)


def estimate(
    model: nn.Module,
    arch: str | Path | ArchSpec,
    input_shape: Sequence[int],
    activity: Activity | CrossbarStats | SkipFractions | None = None,
    layers: Sequence[IntegerLayer] | None = None,
) -> Estimate:
    """Area, power, energy, throughput and efficiency of ``model`` on ``arch`` for one image of
    ``input_shape`` (C, H, W).

    ``arch`` is a preset name (``forms-8``, ``isaac-ce``, ``prime``...), a YAML file or an
    :class:`~forms.cost.arch.ArchSpec`. ``activity`` gives measured zero-skip fractions, e.g. the
    :meth:`~forms.api.CrossbarModel.stats` of a model run on crossbars, or whole
    :class:`~forms.cost.activity.SkipFractions` (e.g. :func:`forms.cost.measured_activity.measured_skip`
    of a packaged measurement); without it, the arch's default fractions apply. With the model's
    integer ``layers`` each layer is costed at its rows and columns holding a non-zero weight (pruned
    ones compacted away); without them it is costed dense.

    >>> import forms
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 30 * 30, 10))
    >>> est = forms.estimate(net, "forms-8", (3, 32, 32))
    >>> est.arch, est.fps > 0, len(est.layers)
    ('forms-8', True, 2)
    """
    spec = arch if isinstance(arch, ArchSpec) else load_arch(arch)
    shapes = layer_shapes(model, input_shape)
    notes = [f"model {type(model).__name__} given in memory, input {'x'.join(map(str, input_shape))}"]
    if layers is None:
        notes.append("dense weights: no integer layers given")
    else:
        shapes, sparsity_notes = apply_sparsity(shapes, layers)
        notes += ["layers costed at the non-zero rows and columns of the integer layers", *sparsity_notes]
    workload = Workload(shapes, type(model).__name__, tuple(notes))
    return estimate_workload(spec, workload, _skip(activity, spec))
