"""Sensitivity scan and candidate allocations of the per-layer pruning search.

- Scan (:func:`run_scan`): for every prunable layer and every ratio of the grid, that layer alone is
  pruned one-shot (the keep mask of :func:`forms.compress.projections.prune_mask` at that ratio, with
  the run's unit, tile rounding and block; no quantization, polarization nor retraining) and the float
  model's accuracy on the held-out validation images is measured. The record is rewritten atomically
  after each layer, keyed by everything it depends on, so an interrupted scan redoes no finished layer.
- Allocations (:func:`candidate_allocations`): at a tolerance of t points, each layer takes the largest
  ratio whose scan accuracy, and that of every smaller ratio, is within t points of the unpruned
  accuracy. Raising t only raises ratios, so the allocations of the distinct tolerances (the drops the
  scan measured) are nested: each prunes every layer at least as much as the one before.
- Prediction (:func:`predict`): the crossbars and per-weight reduction of an allocation, counted on the
  one-shot projection of the float weights (prune, polarize, quantize, then propagation when the run
  propagates). Trained weights keep the same counts of kept filters and channels, so the prediction
  is the count of the trained model up to rows or columns that training leaves all zero.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from rich.progress import Progress
from torch import nn

from forms.compress.constraints import excluding_option, model_matrices, project_all
from forms.compress.counting import crossbar_report, final_crossbars, reduction
from forms.compress.projections import LayerConstraint, prune_mask
from forms.compress.propagation import channel_links, removed_channels
from forms.compress.spec import CompressSpec
from forms.geometry import matrix_to_weight, weight_to_matrix
from forms.io import read_json, write_json_atomic


@dataclass(frozen=True)
class LayerScan:
    """One layer's scan: validation accuracy with only this layer pruned, per ratio (ascending)."""

    name: str
    """Layer name (module path)."""
    ratios: list[float]
    """Pruning ratios scanned, ascending."""
    accuracies: list[float]
    """Validation accuracy at each ratio, this layer alone pruned."""


@dataclass(frozen=True)
class Scan:
    """The sensitivity scan of a model: unpruned accuracy on the scan images and one record per layer."""

    key: str
    """Content key of everything the scan depends on (float weights, settings, images)."""
    images: int
    """Validation images the scan measured on."""
    base_accuracy: float
    """Accuracy with no layer pruned (projection only)."""
    layers: list[LayerScan]
    """One record per prunable layer."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON record (also the resumable scan file)."""
        return {
            "key": self.key,
            "images": self.images,
            "base_accuracy": self.base_accuracy,
            "layers": [vars(layer) for layer in self.layers],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scan:
        """Inverse of :meth:`to_dict`."""
        return cls(d["key"], d["images"], d["base_accuracy"], [LayerScan(**layer) for layer in d["layers"]])


def prunable(constraints: list[LayerConstraint], spec: CompressSpec) -> list[LayerConstraint]:
    """The constraints of the layers ``spec`` allows to prune (first/last only with their options)."""
    last = len(constraints) - 1
    return [c for i, c in enumerate(constraints) if excluding_option(i, last, spec) is None]


@torch.no_grad()
def pruned_alone(model: nn.Module, constraint: LayerConstraint, ratio: float) -> torch.Tensor:
    """Prune one layer of ``model`` in place to ``ratio`` (its mask alone); return its original weight."""
    weight = model.get_submodule(constraint.name).weight
    assert isinstance(weight, torch.Tensor)
    original = weight.detach().clone()
    matrix = weight_to_matrix(original.cpu(), constraint.groups)
    keep = prune_mask(
        matrix, ratio, constraint.prune_granularity, constraint.prune_block, constraint.prune_tile
    )
    weight.copy_(matrix_to_weight(matrix * keep, original.shape).to(weight))
    return original


def scan_layer(
    model: nn.Module, constraint: LayerConstraint, ratios: list[float], measure: Callable[[], float]
) -> LayerScan:
    """Accuracy (``measure()``) of ``model`` with ``constraint``'s layer alone pruned at each ratio."""
    weight = model.get_submodule(constraint.name).weight
    assert isinstance(weight, torch.Tensor)
    accuracies = []
    for ratio in ratios:
        original = pruned_alone(model, constraint, ratio)
        try:
            accuracies.append(measure())
        finally:
            with torch.no_grad():
                weight.copy_(original)
    return LayerScan(constraint.name, list(ratios), accuracies)


def run_scan(
    model: nn.Module,
    layers: list[LayerConstraint],
    ratios: list[float],
    measure: tuple[Callable[[], float], int],
    record: tuple[Path, str],
    bar: Progress,
) -> Scan:
    """The scan of ``layers`` (see the module doc), resumed from the file ``record[0]`` when it holds
    the key ``record[1]``; the file is rewritten after each layer. ``measure = (accuracy, images)``:
    the accuracy of the model as it is now, on that many images."""
    path, key = record
    accuracy, images = measure
    saved = Scan.from_dict(read_json(path, "scan record")) if path.is_file() else None
    if saved is not None and saved.key != key:
        saved = None
    base = saved.base_accuracy if saved else accuracy()
    done = {layer.name: layer for layer in saved.layers} if saved else {}
    task = bar.add_task(
        "sensitivity scan", total=len(layers) * len(ratios), completed=len(done) * len(ratios), status=""
    )
    results = []
    for constraint in layers:
        layer = done.get(constraint.name) or scan_layer(model, constraint, ratios, accuracy)
        results.append(layer)
        if constraint.name not in done:
            bar.update(task, advance=len(ratios), status=f"{constraint.name}: {_accuracy_line(layer)}")
            write_json_atomic(Scan(key, images, base, results).to_dict(), path)
    return Scan(key, images, base, results)


def _accuracy_line(layer: LayerScan) -> str:
    """'0.5:0.991 0.7:0.985 ...' of one layer's scan."""
    return " ".join(f"{r:g}:{a:.3f}" for r, a in zip(layer.ratios, layer.accuracies, strict=True))


def allocation_at(scan: Scan, tolerance: float) -> dict[str, float]:
    """Per-layer ratios at ``tolerance`` points (see the module doc); layers that take 0 are omitted."""
    ratios = {}
    for layer in scan.layers:
        chosen = 0.0
        for ratio, acc in zip(layer.ratios, layer.accuracies, strict=True):
            if (scan.base_accuracy - acc) * 100 > tolerance + 1e-9:
                break
            chosen = ratio
        if chosen > 0:
            ratios[layer.name] = chosen
    return ratios


def candidate_allocations(scan: Scan) -> list[tuple[float, dict[str, float]]]:
    """(tolerance, ratios) of every distinct allocation, least pruned first (tolerance 0 first)."""
    drops = sorted(
        {max(0.0, (scan.base_accuracy - a) * 100) for layer in scan.layers for a in layer.accuracies}
    )
    out: list[tuple[float, dict[str, float]]] = []
    for tolerance in [0.0, *drops]:
        ratios = allocation_at(scan, tolerance)
        if not out or ratios != out[-1][1]:
            out.append((tolerance, ratios))
    return out


def relax(
    ratios: dict[str, float], grid: list[float], fits: Callable[[dict[str, float]], bool]
) -> dict[str, float]:
    """``ratios`` with each layer's ratio, in turn, lowered to the smallest of 0 and the ``grid`` ratios
    below it for which ``fits`` (e.g. within a crossbar budget) still holds: a least pruned allocation
    that still fits, found greedily. Layers that end at 0 are omitted."""
    out = dict(ratios)
    for name, current in ratios.items():
        for ratio in [0.0, *(r for r in grid if r < current)]:
            lowered = {**out, name: ratio} if ratio > 0 else {k: v for k, v in out.items() if k != name}
            if fits(lowered):
                out = lowered
                break
    return out


@dataclass(frozen=True)
class Prediction:
    """Counts of an allocation on the one-shot projection of the float weights."""

    crossbars: int
    """Final crossbars of the usable design (whole crossbars per layer; polarized where fragments allow)."""
    per_weight_total: float
    """Per-weight total reduction (pruning x quantization x polarization)."""
    empty_layers: int
    """Mapped layers left without a non-zero weight (the network then computes a constant: a
    filter-pruned layer whose kept filters all feed rows the next layer pruned, and so on)."""


def predict(
    model: nn.Module, constraints: list[LayerConstraint], spec: CompressSpec, ratios: dict[str, float]
) -> Prediction:
    """The counts of ``ratios`` (see the module doc): project, propagate when ``spec`` does, count."""
    allocated = [replace(c, prune_ratio=ratios.get(c.name, 0.0)) for c in constraints]
    projections = project_all(model_matrices(model, allocated), allocated, spec)
    ints = {name: p.weight_int for name, p in projections.items()}
    if spec.prune.propagate:
        ints = removed_channels(ints, channel_links(model))
    report = crossbar_report(ints, spec.quant.weight_bits, spec.crossbar)
    counts = reduction(report, spec.quant.weight_bits, spec.crossbar)
    empty = sum(1 for w in ints.values() if not bool(w.ne(0).any()))
    return Prediction(final_crossbars(report), counts.per_weight.total, empty)
