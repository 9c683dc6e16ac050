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

    def to_dict(self) -> dict[str, Any]:
        """The epoch's record in ``metrics.json`` and in the checkpoint's history."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.cpu_seconds is None:
            del d["cpu_seconds"]
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
        )


def _mean_cpu_seconds(epochs: list[EpochRecord]) -> float:
    """Mean CPU seconds per epoch, counting epochs that did not measure it as 0."""
    return sum(e.cpu_seconds or 0.0 for e in epochs) / len(epochs)


@dataclass(frozen=True)
class TrainResult:
    """What ``forms train`` reports (``metrics.json``): final accuracy, timings, per-epoch records, config."""

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

    def to_dict(self) -> dict[str, Any]:
        """The ``metrics.json`` content, key for key in the order it is written."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["per_epoch"] = [e.to_dict() for e in self.per_epoch]
        if self.test_images is None:
            del d["test_images"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainResult:
        """A result read back from ``metrics.json`` (one written before CPU time was measured included)."""
        per_epoch = [EpochRecord.from_dict(e) for e in d["per_epoch"]]
        derived = ("per_epoch", "mean_epoch_cpu_seconds", "test_images")
        plain = {f.name: d[f.name] for f in fields(cls) if f.name not in derived}
        cpu = d.get("mean_epoch_cpu_seconds", _mean_cpu_seconds(per_epoch))
        return cls(**plain, mean_epoch_cpu_seconds=cpu, per_epoch=per_epoch, test_images=d.get("test_images"))


def result_from_history(
    spec: TrainSpec, history: list[dict[str, Any]], n_params: int, world: int, test_images: int
) -> TrainResult:
    """The result of a run of ``spec`` with per-epoch ``history`` (the checkpoint's records), whose test
    accuracies were measured on ``test_images`` images."""
    epochs = [EpochRecord.from_dict(h) for h in history]
    seconds = sum(e.seconds for e in epochs)
    return TrainResult(
        model=spec.model,
        dataset=spec.dataset,
        test_accuracy=epochs[-1].test_accuracy,
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
    )
