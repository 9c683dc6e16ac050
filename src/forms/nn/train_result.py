"""The result of a training run: :class:`TrainResult`, written as ``metrics.json``.

:func:`result_from_history` builds it from the per-epoch records a run keeps in its checkpoint;
:meth:`TrainResult.to_dict` is the exact ``metrics.json`` content and :meth:`TrainResult.from_dict`
reads one back (also one written by an earlier version).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch

from forms.nn.train_spec import TrainSpec

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.json"


@dataclass(frozen=True)
class EpochRecord:
    """One training epoch: mean loss and accuracies over all processes, times, final learning rate."""

    epoch: int
    loss: float
    train_accuracy: float
    test_accuracy: float
    seconds: float
    cpu_seconds: float | None
    """Process CPU seconds; None (and absent from the record) in epochs run before it was measured."""
    eval_seconds: float
    lr: float
    validation_accuracy: float | None = None
    """Accuracy on the held-out training images; None (and absent from the record) without them."""

    def to_dict(self) -> dict[str, Any]:
        """The epoch's record in ``metrics.json`` and in the checkpoint's history."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for optional in ("cpu_seconds", "validation_accuracy"):
            if d[optional] is None:
                del d[optional]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EpochRecord:
        """Inverse of :meth:`to_dict`."""
        return cls(
            epoch=d["epoch"],
            loss=d["loss"],
            train_accuracy=d["train_accuracy"],
            test_accuracy=d["test_accuracy"],
            seconds=d["seconds"],
            cpu_seconds=d.get("cpu_seconds"),
            eval_seconds=d["eval_seconds"],
            lr=d["lr"],
            validation_accuracy=d.get("validation_accuracy"),
        )


def _mean_cpu_seconds(epochs: list[EpochRecord]) -> float:
    """Mean CPU seconds per epoch, counting epochs that did not measure it as 0."""
    return sum(e.cpu_seconds or 0.0 for e in epochs) / len(epochs)


@dataclass(frozen=True)
class TrainResult:
    """What ``forms train`` reports (``metrics.json``): test accuracy of the kept epoch, timings, per-epoch
    records, config."""

    model: str
    dataset: str
    test_accuracy: float
    epochs: int
    seed: int
    train_seconds: float
    mean_epoch_seconds: float
    mean_epoch_cpu_seconds: float
    parameters: int
    world_size: int
    torch_threads: int
    checkpoint: str
    per_epoch: list[EpochRecord]
    config: dict[str, Any]
    """The full :class:`TrainSpec` as JSON."""
    test_images: int | None = None
    """Test images ``test_accuracy`` was measured on (None in metrics written before it was kept)."""
    validation_images: int = 0
    """Training images held out for validation (0: none; the last epoch is kept)."""
    selected_epoch: int | None = None
    """The epoch whose weights the checkpoint keeps: that of best validation accuracy (ties: the later)
    with a hold-out, else the last (None in metrics written before it was kept)."""
    validation_accuracy: float | None = None
    """Validation accuracy of the kept epoch; None without a hold-out."""

    def to_dict(self) -> dict[str, Any]:
        """The ``metrics.json`` content, key for key in the order it is written."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["per_epoch"] = [e.to_dict() for e in self.per_epoch]
        for optional in ("test_images", "selected_epoch", "validation_accuracy"):
            if d[optional] is None:
                del d[optional]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainResult:
        """A result read back from ``metrics.json`` (one written before CPU time was measured included)."""
        per_epoch = [EpochRecord.from_dict(e) for e in d["per_epoch"]]
        derived = ("per_epoch", "mean_epoch_cpu_seconds", *_ADDED)
        plain = {f.name: d[f.name] for f in fields(cls) if f.name not in derived}
        cpu = d.get("mean_epoch_cpu_seconds", _mean_cpu_seconds(per_epoch))
        added = {name: d.get(name, default) for name, default in _ADDED.items()}
        return cls(**plain, mean_epoch_cpu_seconds=cpu, per_epoch=per_epoch, **added)


_ADDED: dict[str, Any] = {
    "test_images": None,
    "validation_images": 0,
    "selected_epoch": None,
    "validation_accuracy": None,
}
"""Fields of :class:`TrainResult` that earlier versions' metrics lack, with the value they read as."""


def selected_epoch(epochs: list[EpochRecord]) -> EpochRecord:
    """The epoch a run keeps: that of best validation accuracy (ties: the later), or the last one."""
    if epochs[-1].validation_accuracy is None:
        return epochs[-1]
    return max(reversed(epochs), key=lambda e: e.validation_accuracy or 0.0)


def result_from_history(
    spec: TrainSpec, history: list[dict[str, Any]], n_params: int, world: int, test_images: int
) -> TrainResult:
    """The result of a run of ``spec`` with per-epoch ``history`` (the checkpoint's records), whose test
    accuracies were measured on ``test_images`` images."""
    epochs = [EpochRecord.from_dict(h) for h in history]
    seconds = sum(e.seconds for e in epochs)
    kept = selected_epoch(epochs)
    return TrainResult(
        model=spec.model,
        dataset=spec.dataset,
        test_accuracy=kept.test_accuracy,
        epochs=len(epochs),
        seed=spec.seed,
        train_seconds=seconds,
        mean_epoch_seconds=seconds / len(epochs),
        mean_epoch_cpu_seconds=_mean_cpu_seconds(epochs),
        parameters=n_params,
        world_size=world,
        torch_threads=torch.get_num_threads(),
        checkpoint=CHECKPOINT_NAME,
        per_epoch=epochs,
        config=spec.model_dump(mode="json"),
        test_images=test_images,
        validation_images=spec.validation_images,
        selected_epoch=kept.epoch,
        validation_accuracy=kept.validation_accuracy,
    )
