"""The result of a compression run: :class:`CompressResult`, written as ``metrics.json``.

:func:`build_result` assembles it from what the run measured and the baked integer weights;
:meth:`CompressResult.to_dict` is the exact ``metrics.json`` content and
:meth:`CompressResult.from_dict` reads one back (also one written by an earlier version).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch

from forms.compress.admm import ADMMState
from forms.compress.counting import Reduction, crossbar_report, fragment_totals, reduction, sparsity
from forms.compress.projections import LayerConstraint
from forms.compress.spec import CompressSpec
from forms.config import CrossbarSpec
from forms.intweights import IntegerLayer

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.json"


def _field_values(record: Any) -> dict[str, Any]:
    """``{field name: value}`` of a dataclass instance, in field order, nested values as they are."""
    return {f.name: getattr(record, f.name) for f in fields(record)}


@dataclass(frozen=True)
class LayerRecord:
    """One mapped layer's constraint and the integer weights it ended with."""

    name: str
    weight_shape: list[int]
    fragment_size: int
    prune_ratio: float
    sparsity: float
    max_abs_int: int
    prune_unit_ratios: dict[str, float] | None = None
    """The ratio of each pruned unit when they differ ({filter: 0.9, channel: 0.3}); None (and absent
    from the record) when ``prune_ratio`` applies to every unit."""

    def to_dict(self) -> dict[str, Any]:
        """The layer's ``metrics.json`` record."""
        d = _field_values(self)
        if self.prune_unit_ratios is None:
            del d["prune_unit_ratios"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerRecord:
        """Inverse of :meth:`to_dict` (``prune_unit_ratios`` absent in records written before it; every
        other field required, so a damaged record raises KeyError)."""
        values: dict[str, Any] = {
            f.name: d.get(f.name) if f.name == "prune_unit_ratios" else d[f.name] for f in fields(cls)
        }
        return cls(**values)


@dataclass(frozen=True)
class AdmmRound:
    """One ADMM round: rho during it, last W-step loss, epoch times, residuals ||W-Z||/||W||, accuracy."""

    round: int
    rho: float
    loss: float
    wstep_epoch_seconds: list[float]
    residuals: dict[str, float]
    residual_max: float
    accuracy: float

    def to_dict(self) -> dict[str, Any]:
        """The round's ``metrics.json`` record (also its record in the ADMM state)."""
        return _field_values(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AdmmRound:
        """Inverse of :meth:`to_dict`."""
        return cls(**{f.name: d[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class AdmmSummary:
    """The ADMM phase: rounds done, the final rho and one record per round."""

    rounds: int
    final_rho: float
    history: list[AdmmRound]

    def to_dict(self) -> dict[str, Any]:
        """The ``admm`` entry of ``metrics.json``."""
        return {
            "rounds": self.rounds,
            "final_rho": self.final_rho,
            "history": [r.to_dict() for r in self.history],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AdmmSummary:
        """Inverse of :meth:`to_dict`."""
        return cls(d["rounds"], d["final_rho"], [AdmmRound.from_dict(r) for r in d["history"]])

    @classmethod
    def from_state(cls, admm: ADMMState) -> AdmmSummary:
        """The summary of the ADMM phase whose final state is ``admm``."""
        return cls(admm.round, admm.rho, [AdmmRound.from_dict(r) for r in admm.history])


@dataclass(frozen=True)
class RetrainEpoch:
    """One masked-retraining epoch: mean loss, wall seconds, test (and validation) accuracy."""

    epoch: int
    loss: float
    seconds: float
    accuracy: float
    validation_accuracy: float | None = None
    """Accuracy on the held-out training images; None (and absent from the record) without them."""

    def to_dict(self) -> dict[str, Any]:
        """The epoch's ``metrics.json`` record (also its record in the retraining state)."""
        d = _field_values(self)
        if self.validation_accuracy is None:
            del d["validation_accuracy"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RetrainEpoch:
        """Inverse of :meth:`to_dict`."""
        return cls(d["epoch"], d["loss"], d["seconds"], d["accuracy"], d.get("validation_accuracy"))


@dataclass(frozen=True)
class RetrainSummary:
    """The masked-retraining phase: epochs run, their records, and the epoch whose weights were kept."""

    epochs: int
    history: list[RetrainEpoch]
    validation_images: int
    selected_epoch: int
    """The epoch of best validation accuracy with held-out images, else the last epoch."""
    validation_seen_by_float_model: bool | None = None
    """True when the float model may have trained on the validation images (its checkpoint recorded no
    hold-out), False when they are images it held out; None (and absent from the record) without them."""

    def to_dict(self) -> dict[str, Any]:
        """The ``retrain`` entry of ``metrics.json``."""
        d: dict[str, Any] = {
            "epochs": self.epochs,
            "history": [e.to_dict() for e in self.history],
            "validation_images": self.validation_images,
            "selected_epoch": self.selected_epoch,
        }
        if self.validation_seen_by_float_model is not None:
            d["validation_seen_by_float_model"] = self.validation_seen_by_float_model
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RetrainSummary:
        """Inverse of :meth:`to_dict`; a record from before validation hold-outs kept its last epoch."""
        return cls(
            epochs=d["epochs"],
            history=[RetrainEpoch.from_dict(e) for e in d["history"]],
            validation_images=d.get("validation_images", 0),
            selected_epoch=d.get("selected_epoch", d["epochs"]),
            validation_seen_by_float_model=d.get("validation_seen_by_float_model"),
        )

    @classmethod
    def from_state(
        cls, retrain_state: dict[str, Any], validation_images: int, seen_by_float_model: bool | None = None
    ) -> RetrainSummary:
        """The summary of a finished retraining state (its ``best`` epoch, if any, was kept);
        ``seen_by_float_model``: see :attr:`validation_seen_by_float_model`."""
        best = retrain_state.get("best")
        return cls(
            epochs=retrain_state["epoch"],
            history=[RetrainEpoch.from_dict(e) for e in retrain_state["history"]],
            validation_images=validation_images,
            selected_epoch=best["epoch"] if best is not None else retrain_state["epoch"],
            validation_seen_by_float_model=seen_by_float_model if validation_images else None,
        )


_NESTED = ("reduction", "layers", "admm", "retrain")


def _reduction_from_tables(d: dict[str, Any]) -> Reduction:
    """Both reduction counts recomputed from the crossbar tables of a ``metrics.json`` without them (on
    the tables' ``final_encoding``, polarized in tables from before it was kept)."""
    geometry = d["crossbar_geometry"]
    crossbar = CrossbarSpec(
        rows=geometry["rows"],
        cols=geometry["cols"],
        cell_bits=geometry["cell_bits"],
        fragment_size=d["fragment_size"],
    )
    report = {**d["crossbars"], "layers": d["crossbar_layers"]}
    return reduction(report, d["weight_bits"], crossbar)


@dataclass(frozen=True)
class CompressResult:
    """What ``forms compress`` reports (``metrics.json``): accuracies, constraint checks, crossbar counts.

    ``crossbars``, ``crossbar_geometry`` and ``crossbar_layers`` are the tables of
    :func:`forms.compress.counting.crossbar_report` (totals and factors, crossbar size, per layer);
    ``reduction`` holds both reduction counts, physical and per-weight, and the encoding their final
    design uses (:class:`forms.compress.counting.Reduction`: polarized only when no fragment of the
    integer weights holds both signs); ``config`` is the full :class:`CompressSpec` as JSON.
    """

    model: str
    dataset: str
    source_checkpoint: str
    accuracy_before: float
    accuracy_admm: float
    accuracy_projected: float
    accuracy_after: float
    accuracy_drop_points: float
    fragment_size: int
    weight_bits: int
    fragments_total: int
    fragments_mixed_sign: int
    unpolarized_layers: list[str]
    sparsity: float
    crossbars: dict[str, Any]
    crossbar_geometry: dict[str, int]
    crossbar_layers: list[dict[str, Any]]
    reduction: Reduction
    layers: list[LayerRecord]
    admm: AdmmSummary
    retrain: RetrainSummary
    bn_recalibrated: bool
    world_size: int
    torch_threads: int
    checkpoint: str
    config: dict[str, Any]
    test_images: int | None = None
    """Test images every accuracy above was measured on (None in metrics written before it was kept)."""

    def to_dict(self) -> dict[str, Any]:
        """The ``metrics.json`` content, key for key in the order it is written."""
        d = _field_values(self)
        if self.test_images is None:
            del d["test_images"]
        d["reduction"] = self.reduction.to_dict()
        d["layers"] = [layer.to_dict() for layer in self.layers]
        d["admm"] = self.admm.to_dict()
        d["retrain"] = self.retrain.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CompressResult:
        """A result read back from ``metrics.json`` (one written by an earlier version included: its
        reduction counts are recomputed from its crossbar tables)."""
        plain = {f.name: d[f.name] for f in fields(cls) if f.name not in (*_NESTED, "test_images")}
        return cls(
            **plain,
            test_images=d.get("test_images"),
            reduction=Reduction.from_dict(d["reduction"]) if "reduction" in d else _reduction_from_tables(d),
            layers=[LayerRecord.from_dict(layer) for layer in d["layers"]],
            admm=AdmmSummary.from_dict(d["admm"]),
            retrain=RetrainSummary.from_dict(d["retrain"]),
        )


@dataclass(frozen=True)
class RunOutcome:
    """What a compression run measured, apart from its baked integer weights."""

    model: str
    dataset: str
    source_checkpoint: str
    world_size: int
    accuracy_before: float
    accuracy_admm: float
    accuracy_projected: float
    accuracy_after: float
    test_images: int
    bn_recalibrated: bool
    admm: AdmmSummary
    retrain: RetrainSummary


def _layer_records(constraints: list[LayerConstraint], ints: dict[str, torch.Tensor]) -> list[LayerRecord]:
    """One record per constrained layer, of its integer weights ``ints[name]``."""
    return [
        LayerRecord(
            name=c.name,
            weight_shape=list(c.weight_shape),
            fragment_size=c.integer_fragment_size,
            prune_ratio=c.prune_ratio,
            prune_unit_ratios=dict(c.prune_unit_ratios) or None,
            sparsity=float((ints[c.name] == 0).float().mean()),
            max_abs_int=int(ints[c.name].abs().max()),
        )
        for c in constraints
    ]


def build_result(
    spec: CompressSpec, constraints: list[LayerConstraint], layers: list[IntegerLayer], run: RunOutcome
) -> CompressResult:
    """The result of ``run``: its measurements, constraint checks, crossbar counts and factors."""
    ints = {layer.name: layer.weight_int for layer in layers}
    polarized = [c for c in constraints if c.fragment_size is not None]
    r = spec.crossbar.fragment_size
    total, mixed = fragment_totals({c.name: ints[c.name] for c in polarized}, {c.name: r for c in polarized})
    report = crossbar_report(ints, spec.quant.weight_bits, spec.crossbar)
    counts = reduction(report, spec.quant.weight_bits, spec.crossbar)
    per_layer = report.pop("layers")
    geometry = report.pop("crossbar")
    return CompressResult(
        model=run.model,
        dataset=run.dataset,
        source_checkpoint=run.source_checkpoint,
        accuracy_before=run.accuracy_before,
        accuracy_admm=run.accuracy_admm,
        accuracy_projected=run.accuracy_projected,
        accuracy_after=run.accuracy_after,
        accuracy_drop_points=100.0 * (run.accuracy_before - run.accuracy_after),
        fragment_size=r,
        weight_bits=spec.quant.weight_bits,
        fragments_total=total,
        fragments_mixed_sign=mixed,
        unpolarized_layers=[c.name for c in constraints if c.fragment_size is None],
        sparsity=sparsity(ints),
        crossbars=report,
        crossbar_geometry=geometry,
        crossbar_layers=per_layer,
        reduction=counts,
        layers=_layer_records(constraints, ints),
        admm=run.admm,
        retrain=run.retrain,
        bn_recalibrated=run.bn_recalibrated,
        world_size=run.world_size,
        torch_threads=torch.get_num_threads(),
        checkpoint=CHECKPOINT_NAME,
        config=spec.model_dump(mode="json"),
        test_images=run.test_images,
    )
