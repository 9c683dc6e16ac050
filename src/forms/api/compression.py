"""Compress an in-memory model with the ADMM pipeline of ``forms compress``: :func:`compress`.

It runs the same phases (:func:`forms.compress.core.run_phases`: ADMM rounds, hard projection,
BatchNorm re-estimation, masked retraining, optional distillation, baking) on a copy of the user's
model and data loaders, and returns the compressed copy with its integer layers and the run's
:class:`~forms.compress.result.CompressResult` (:class:`Compressed`). Nothing is written and nothing
is resumable: run folders, checkpoints and resuming are the CLI path's
(:func:`forms.compress.pipeline.compress`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Sized
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from forms.compress.admm import init_state
from forms.compress.constraints import layer_constraints
from forms.compress.core import run_phases
from forms.compress.distill import distillation_criterion
from forms.compress.phases import Criterion, PhaseContext, TrainingBatches, accuracy, training_loader
from forms.compress.result import CompressResult, build_result
from forms.compress.spec import CompressSpec
from forms.errors import ConfigError
from forms.intweights import IntegerLayer
from forms.nn.device import resolve_device
from forms.nn.epoch import place_model
from forms.nn.loader import EpochLoader
from forms.nn.progress import make_progress

DATASET_FIELDS = ("validation_images", "validation_seed", "validation_pool", "train_subset", "test_subset")
"""Spec fields that choose the CLI's data; in memory the loaders do, so they must stay unset (0/None)."""


@dataclass(frozen=True)
class Compressed:
    """A model compressed in memory: the model, its integer layers and what the run measured."""

    model: nn.Module
    """The compressed copy (each mapped weight ``scale * weight_int``), in eval mode, on the spec's device."""
    layers: list[IntegerLayer]
    """Its integer weights, one per Conv2d/Linear, for :func:`forms.to_crossbars`, export and estimate."""
    result: CompressResult
    """Accuracies, constraint checks and crossbar counts, as ``forms compress`` writes to metrics.json
    (``source_checkpoint`` and ``checkpoint`` are empty: nothing was read or written)."""


class LoaderEpochs:
    """A user's DataLoader (any sized iterable of (images, labels) batches) as the phases' training data.

    :meth:`set_epoch` is passed on to the loader's sampler or batch sampler when it has one (e.g. a
    ``DistributedSampler``); otherwise the order of every epoch is the loader's own.
    """

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        """The user's loader: sized and iterable."""

    def set_epoch(self, epoch: int) -> None:
        """Select ``epoch`` on the loader's sampler and batch sampler, if they can."""
        for holder in (getattr(self.loader, "sampler", None), getattr(self.loader, "batch_sampler", None)):
            setter = getattr(holder, "set_epoch", None)
            if setter is not None:
                setter(epoch)

    def __len__(self) -> int:
        """Batches per epoch (the loader's ``len``)."""
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        """The loader's batches as (images, labels); a batch of another form is refused."""
        for batch in self.loader:
            if not isinstance(batch, list | tuple) or len(batch) < 2:
                raise ConfigError(
                    f"train_loader: a batch is a {type(batch).__name__}; it must yield (images, labels) pairs"
                )
            yield batch[0], batch[1]


def training_batches(train_loader: Iterable[Any] | TensorDataset, spec: CompressSpec) -> TrainingBatches:
    """``train_loader`` as training data: a TensorDataset batched, shuffled and shifted as ``forms compress``
    does (:func:`~forms.compress.phases.training_loader`: ``spec.schedule.batch_size``, ``spec.seed``,
    ``spec.schedule.shift`` with uncovered pixels 0), an EpochLoader as it is, any other loader through
    :class:`LoaderEpochs`. ``schedule.shift`` needs a TensorDataset: a loader brings its own augmentation."""
    batches: TrainingBatches
    if isinstance(train_loader, TensorDataset):
        return _nonempty(training_loader(train_loader, spec))
    if spec.schedule.shift:
        raise ConfigError(
            f"spec.schedule.shift: shifts the images of a TensorDataset; a {type(train_loader).__name__} "
            "brings its own augmentation, so leave it 0 (or pass the TensorDataset)"
        )
    if isinstance(train_loader, EpochLoader):
        batches = train_loader
    elif isinstance(train_loader, Sized) and isinstance(train_loader, Iterable):
        batches = LoaderEpochs(train_loader)
    else:
        raise ConfigError(
            f"train_loader: a {type(train_loader).__name__} is not a sized iterable of batches; "
            "pass a torch DataLoader or a TensorDataset"
        )
    return _nonempty(batches)


def _nonempty(batches: TrainingBatches) -> TrainingBatches:
    """``batches``, refused when they hold none."""
    if len(batches) == 0:
        raise ConfigError("train_loader: it holds no batches")
    return batches


def _check_arguments(model: Any, spec: Any, val_loader: Any) -> None:
    """Raise :class:`ConfigError` naming the first argument :func:`compress` cannot use."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model: expected a torch.nn.Module, got a {type(model).__name__}")
    if not isinstance(spec, CompressSpec):
        raise ConfigError(
            f"spec: expected a forms.CompressSpec, got a {type(spec).__name__}; "
            "build one with forms.CompressSpec.model_validate({...})"
        )
    if val_loader is not None and isinstance(val_loader, Sized) and len(val_loader) == 0:
        raise ConfigError("val_loader: it holds no batches")
    for name in DATASET_FIELDS:
        if getattr(spec, name) not in (0, None):
            raise ConfigError(
                f"spec.{name}: chooses the data of forms compress; in memory the loaders do, so leave it "
                "unset (accuracies are measured on val_loader, and the last retraining epoch is kept)"
            )


def compress(
    model: nn.Module,
    train_loader: Iterable[Any] | TensorDataset,
    spec: CompressSpec,
    val_loader: Iterable[Any] | TensorDataset | None = None,
    *,
    progress: bool = False,
) -> Compressed:
    """Compress a copy of ``model`` under ``spec`` with the ADMM pipeline of ``forms compress``.

    ``train_loader`` feeds the W-steps, the BatchNorm re-estimation and the masked retraining: a
    DataLoader (its own batches and order; give it a seeded ``generator`` for a reproducible run) or a
    TensorDataset (batched by ``spec.schedule.batch_size`` and shuffled from ``spec.seed`` exactly as
    ``forms compress`` does, which then gives the same integers as the CLI on the same data).
    Accuracies are measured on ``val_loader`` (or, without one, on ``train_loader``), and the last
    retraining epoch is kept. Training runs on ``spec.device``; with ``spec.schedule.distill_weight`` the
    retraining distils ``model`` itself. ``model`` is not touched. Raises :class:`~forms.errors.ConfigError`
    naming a bad argument, :class:`~forms.errors.UnsupportedLayerError` naming a layer the mapping
    cannot place.

    >>> import torch, forms
    >>> from torch import nn
    >>> from torch.utils.data import TensorDataset
    >>> data = TensorDataset(torch.randn(64, 16), torch.randint(0, 4, (64,)))
    >>> spec = forms.CompressSpec.model_validate({"crossbar": {"fragment_size": 4}, "device": "cpu",
    ...     "schedule": {"admm_rounds": 1, "retrain_epochs": 1, "batch_size": 32}})
    >>> done = forms.compress(nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4)), data, spec)
    >>> done.result.fragments_mixed_sign, [layer.name for layer in done.layers]
    (0, ['0', '2'])
    """
    _check_arguments(model, spec, val_loader)
    spec = spec.model_copy(update={"validation_images": 0})  # as resolved by forms compress: no hold-out
    train = training_batches(train_loader, spec)
    device = resolve_device(spec.device)
    student = place_model(copy.deepcopy(model), device, spec.channels_last)
    constraints = layer_constraints(student, spec)
    measured = val_loader if val_loader is not None else train
    before = accuracy(student, measured, spec, device)
    admm = init_state(student, constraints, spec)
    with make_progress(progress) as bar:
        ctx = PhaseContext(student, constraints, spec, train, measured, None, device, bar, _no_save)
        phases = run_phases(ctx, admm, before, criterion=_distillation(model, spec, device))
    dataset = "val_loader" if val_loader is not None else "train_loader (no val_loader given)"
    outcome = phases.outcome(type(model).__name__, dataset, "", 1, before)
    result = replace(build_result(spec, constraints, phases.layers, outcome), checkpoint="")
    return Compressed(student.eval(), phases.layers, result)


def _no_save(phase: str, **entries: Any) -> None:
    """In memory the phases' state is not saved (nothing resumes)."""


def _distillation(model: nn.Module, spec: CompressSpec, device: torch.device) -> Criterion | None:
    """The retraining loss distilling a copy of the float ``model``, or None without distillation."""
    sched = spec.schedule
    if sched.distill_weight <= 0:
        return None
    teacher = place_model(copy.deepcopy(model), device, spec.channels_last)
    return distillation_criterion(teacher, sched.distill_weight, sched.distill_temperature)
