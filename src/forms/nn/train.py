"""Resumable, deterministic (optionally data-parallel) training of zoo models.

Entry point: :func:`train` ``(spec, out_dir, resume=False)``. It writes ``out_dir/checkpoint.pt``
atomically after every epoch (model, optimizer, scheduler, epoch, seed, config, RNG state, history)
and ``out_dir/metrics.json`` at the end.

Determinism: the initial weights come from ``seed``; every epoch's data order, augmentation and
dropout come from generators seeded with ``(seed, epoch)`` only. So a run stopped after epoch k and
resumed with ``resume=True`` replays exactly the epochs an uninterrupted run would have, and reaches
bit-identical final weights (same machine, thread count and world size).

Building blocks reused by compression (ADMM retraining): :class:`~forms.nn.loader.EpochLoader`,
:func:`train_epoch` (with an ``extra_loss(model)`` term), :func:`evaluate`,
:func:`build_optimizer`, :func:`build_scheduler`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from rich.progress import Progress, TaskID
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from forms.config import Spec
from forms.errors import ConfigError
from forms.io import write_json_atomic
from forms.nn import distributed as D
from forms.nn.checkpoint import load_checkpoint, save_checkpoint
from forms.nn.data import DATASET_NAMES, background_value, dataset_info, input_shape, load_dataset
from forms.nn.loader import EpochLoader, epoch_seed, shift_images
from forms.nn.models import MODEL_NAMES, build_model, model_kwargs
from forms.nn.progress import make_progress

__all__ = [
    "EpochLoader",
    "TrainSpec",
    "build_optimizer",
    "build_scheduler",
    "epoch_seed",
    "evaluate",
    "evaluate_counts",
    "place_model",
    "shift_images",
    "train",
    "train_epoch",
]

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.json"
EXECUTION_KEYS = ("data_dir", "device", "channels_last")
"""Spec fields that say where and how a run executes, not what it computes: a resumption may change them."""
CHANNELS_LAST_DOC = (
    "Keep 4-D weights, and so convolution activations, in channels-last (NHWC) memory order. On a 2-core "
    "AMD EPYC CPU a ResNet-20 training epoch (batch 128, 32x32) took 20% less time at 1 thread and 18% "
    "less at 2 (docs/benchmarks.md, section memory-format). Results agree to float rounding, not bit "
    "for bit; a resumed run may switch it."
)


class TrainSpec(Spec):
    """Everything that defines a training run; stored in the checkpoint and checked on resume."""

    model: str = Field("lenet5", description=f"Zoo model: one of {', '.join(MODEL_NAMES)}.")
    dataset: str = Field("mnist", description=f"Dataset: one of {', '.join(DATASET_NAMES)}.")
    epochs: int = Field(10, ge=1, le=10_000, description="Number of passes over the training set.")
    batch_size: int = Field(128, ge=1, description="Global mini-batch size (split across processes).")
    optimizer: Literal["sgd", "adam"] = Field("sgd", description="SGD (with momentum) or Adam.")
    lr: float = Field(0.05, gt=0, description="Peak learning rate (OneCycle max_lr; cosine/constant start).")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (OneCycle cycles it 0.85..this).")
    nesterov: bool = Field(True, description="Nesterov momentum for SGD.")
    weight_decay: float = Field(5e-4, ge=0, description="L2 weight decay.")
    schedule: Literal["onecycle", "cosine", "constant"] = Field(
        "onecycle", description="Learning-rate schedule, stepped every batch."
    )
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Cross-entropy label smoothing.")
    shift: int = Field(0, ge=0, le=8, description="Random-translation augmentation: max shift in pixels.")
    flip: bool = Field(False, description="Random horizontal-flip augmentation (for natural images).")
    pad_to: int | None = Field(None, ge=1, description="Zero-pad images to this square side (e.g. 32).")
    channels: int | None = Field(None, ge=1, description="Repeat grey images to this many channels.")
    seed: int = Field(0, ge=0, description="Seed of initial weights, data order, augmentation, dropout.")
    eval_batch_size: int = Field(
        128,
        ge=1,
        description="Batch size for test-set evaluation. 128 because on CPU larger batches are slower: "
        "ResNet-20 inference at 1 thread took 14.3 s per 2,000 images at batch 1000 vs 7.2 s at 128 "
        "(activations fall out of cache); raise it on a GPU.",
    )
    train_subset: int | None = Field(None, ge=1, description="Use only the first N training images.")
    test_subset: int | None = Field(None, ge=1, description="Use only the first N test images.")
    data_dir: str | None = Field(None, description="Data root (default: $FORMS_DATA or ~/.cache/forms/data).")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where to train.")
    channels_last: bool = Field(False, description=CHANNELS_LAST_DOC)

    @model_validator(mode="after")
    def _known_names(self) -> TrainSpec:
        if self.model not in MODEL_NAMES:
            raise ValueError(f"unknown model '{self.model}'; choose one of: {', '.join(MODEL_NAMES)}")
        if self.dataset not in DATASET_NAMES:
            raise ValueError(f"unknown dataset '{self.dataset}'; choose one of: {', '.join(DATASET_NAMES)}")
        return self

    def build_model(self) -> nn.Module:
        """A freshly initialised model for this dataset's (padded, channel-repeated) inputs."""
        return build_model(self.model, **self.model_kwargs())

    def model_kwargs(self) -> dict[str, int]:
        """``build_model`` keyword arguments for this spec's data."""
        c, side, _ = input_shape(self.dataset, self.pad_to, self.channels)
        return model_kwargs(c, dataset_info(self.dataset).num_classes, side)

    def data_record(self) -> dict[str, Any]:
        """The checkpoint's ``data`` entry."""
        return {"dataset": self.dataset, "pad_to": self.pad_to, "channels": self.channels}


def _batches(data: TensorDataset | DataLoader | EpochLoader, batch_size: int) -> Any:
    """Iterate (x, y) batches of a dataset, loader, or EpochLoader (datasets in order, unshuffled)."""
    if isinstance(data, TensorDataset):
        return EpochLoader(data, batch_size, shuffle=False)
    return data


@torch.no_grad()
def evaluate_counts(
    model: nn.Module,
    data: TensorDataset | DataLoader | EpochLoader,
    batch_size: int = 1000,
    device: torch.device | None = None,
) -> tuple[int, int]:
    """(correct, total) top-1 predictions of ``model`` (switched to eval mode) over ``data``."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = total = 0
    for x, y in _batches(data, batch_size):
        pred = model(x.to(device)).argmax(1)
        correct += int((pred == y.to(device)).sum())
        total += len(y)
    model.train(was_training)
    return correct, total


def evaluate(
    model: nn.Module,
    data: TensorDataset | DataLoader | EpochLoader,
    batch_size: int = 1000,
    device: torch.device | None = None,
) -> float:
    """Top-1 accuracy in [0, 1] of ``model`` on a dataset or loader of (images, labels)."""
    correct, total = evaluate_counts(model, data, batch_size, device)
    if total == 0:
        raise ConfigError("cannot evaluate on an empty dataset")
    return correct / total


def place_model(model: nn.Module, device: torch.device, channels_last: bool = False) -> nn.Module:
    """``model`` moved to ``device``; with ``channels_last``, its 4-D tensors in channels-last memory order.

    Convolutions with channels-last weights return channels-last activations, so the whole forward
    and backward pass runs in that order; inputs need no conversion.
    """
    model = model.to(device)
    if not channels_last:
        return model
    return model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # missing from the stubs


def train_epoch(
    model: nn.Module,
    loader: EpochLoader | DataLoader,
    optimizer: torch.optim.Optimizer,
    extra_loss: Callable[[nn.Module], Tensor] | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    device: torch.device | None = None,
    label_smoothing: float = 0.0,
    progress: Progress | None = None,
    task: TaskID | None = None,
    criterion: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None,
) -> dict[str, float]:
    """One pass over ``loader``: cross-entropy (+ ``extra_loss(unwrapped model)``), backward, step.

    ``criterion(logits, inputs, labels)``, when given, replaces the cross-entropy (e.g. a
    distillation loss; ``label_smoothing`` then does not apply). The scheduler (if any) is stepped
    after every batch. Returns this process's mean loss (of the cross-entropy or criterion part),
    training accuracy, sample count, wall seconds and process CPU seconds (all threads; on a shared
    machine it shows the work done, independent of waiting for a core).
    """
    device = device or next(model.parameters()).device
    plain = D.unwrap(model)
    model.train()
    start, cpu_start = time.perf_counter(), time.process_time()
    loss_sum = 0.0
    correct = seen = 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits = model(x)
        if criterion is not None:
            loss = criterion(logits, x, y)
        else:
            loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
        total = loss + extra_loss(plain) if extra_loss is not None else loss
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        loss_sum += float(loss.detach()) * len(y)
        correct += int((logits.detach().argmax(1) == y).sum())
        seen += len(y)
        if progress is not None and task is not None:
            progress.update(task, advance=1, status=f"loss {loss_sum / seen:.4f}")
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    return {
        "loss": loss_sum / max(seen, 1),
        "train_accuracy": correct / max(seen, 1),
        "samples": float(seen),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
    }


def build_optimizer(spec: TrainSpec, model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer ``spec`` names over ``model``'s parameters."""
    if spec.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.SGD(
        model.parameters(),
        lr=spec.lr,
        momentum=spec.momentum,
        nesterov=spec.nesterov and spec.momentum > 0,
        weight_decay=spec.weight_decay,
    )


def build_scheduler(
    spec: TrainSpec, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-batch learning-rate schedule over ``spec.epochs * steps_per_epoch`` steps."""
    total = spec.epochs * steps_per_epoch
    if spec.schedule == "onecycle":
        cycle = spec.optimizer == "adam" or spec.momentum > 0
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=spec.lr,
            total_steps=total,
            cycle_momentum=cycle,
            base_momentum=min(0.85, spec.momentum) if spec.optimizer == "sgd" else 0.85,
            max_momentum=spec.momentum if spec.optimizer == "sgd" else 0.95,
        )
    if spec.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def _subset(ds: TensorDataset, n: int | None) -> TensorDataset:
    return ds if n is None else TensorDataset(*(t[:n] for t in ds.tensors))


def load_train_test(spec: TrainSpec) -> tuple[TensorDataset, TensorDataset]:
    """The (possibly subset) training and test sets ``spec`` describes."""
    kw: dict[str, Any] = {"data_dir": spec.data_dir, "pad_to": spec.pad_to, "channels": spec.channels}
    train_set = _subset(load_dataset(spec.dataset, "train", **kw), spec.train_subset)
    test_set = _subset(load_dataset(spec.dataset, "test", **kw), spec.test_subset)
    return train_set, test_set


def _config_differences(saved: dict[str, Any], spec: TrainSpec) -> list[str]:
    current = spec.model_dump(mode="json")
    keys = sorted((set(saved) | set(current)) - set(EXECUTION_KEYS))
    return [
        f"{k}: checkpoint {saved.get(k)!r} vs now {current.get(k)!r}"
        for k in keys
        if saved.get(k) != current.get(k)
    ]


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def metrics_from_history(
    spec: TrainSpec, history: list[dict[str, Any]], n_params: int, world: int
) -> dict[str, Any]:
    """The ``metrics.json`` content of a run with per-epoch ``history``."""
    return {
        "model": spec.model,
        "dataset": spec.dataset,
        "test_accuracy": history[-1]["test_accuracy"],
        "epochs": len(history),
        "seed": spec.seed,
        "train_seconds": sum(h["seconds"] for h in history),
        "mean_epoch_seconds": sum(h["seconds"] for h in history) / len(history),
        "mean_epoch_cpu_seconds": sum(h.get("cpu_seconds", 0.0) for h in history) / len(history),
        "parameters": n_params,
        "world_size": world,
        "torch_threads": torch.get_num_threads(),
        "checkpoint": CHECKPOINT_NAME,
        "per_epoch": history,
        "config": spec.model_dump(mode="json"),
    }


def train(
    spec: TrainSpec, out_dir: str | Path, resume: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Train ``spec.model`` on ``spec.dataset``; checkpoint every epoch; return the metrics dict.

    With ``resume=True`` and an existing ``out_dir/checkpoint.pt`` from the same config, training
    continues after its last completed epoch (a finished run returns at once). Under torchrun the
    processes train one DistributedDataParallel model; only rank 0 writes files and draws progress.
    """
    device = D.init_from_env(spec.device)
    world, rank_ = D.world_size(), D.rank()
    if spec.batch_size % world:
        raise ConfigError(f"batch size {spec.batch_size} must be divisible by the {world} processes")
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT_NAME
    train_set, test_set = load_train_test(spec)

    torch.manual_seed(spec.seed)
    model = place_model(spec.build_model(), device, spec.channels_last)
    optimizer = build_optimizer(spec, model)
    loader = EpochLoader(
        train_set,
        spec.batch_size,
        seed=spec.seed,
        shift=spec.shift,
        flip=spec.flip,
        fill=background_value(spec.dataset, spec.channels),
        rank=rank_,
        world_size=world,
    )
    scheduler = build_scheduler(spec, optimizer, len(loader))
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if resume and ckpt_path.is_file():
        ckpt = load_checkpoint(ckpt_path)
        diffs = _config_differences(ckpt.get("config", {}), spec)
        if diffs:
            raise ConfigError(
                f"cannot resume {ckpt_path}: its config differs ({'; '.join(diffs)}); "
                "use the same options or a new --out directory"
            )
        model.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        _restore_rng(ckpt["rng"])
        history = list(ckpt["history"])
        start_epoch = int(ckpt["epoch"])
    ddp_model = D.wrap_ddp(model, device)
    test_loader = EpochLoader(
        test_set, spec.eval_batch_size, shuffle=False, rank=rank_, world_size=world, wrap=False
    )

    with make_progress(enabled=progress and D.is_main()) as bar:
        epochs_task = bar.add_task(
            f"{spec.model}/{spec.dataset}", total=spec.epochs, completed=start_epoch, status=""
        )
        batch_task = bar.add_task("  epoch", total=len(loader), status="")
        for epoch in range(start_epoch, spec.epochs):
            loader.set_epoch(epoch)
            torch.manual_seed(epoch_seed(spec.seed, epoch, 2))  # dropout and any other global draws
            bar.reset(batch_task, total=len(loader), description=f"  epoch {epoch + 1}")
            stats = train_epoch(
                ddp_model, loader, optimizer, None, scheduler, device, spec.label_smoothing, bar, batch_task
            )
            eval_start = time.perf_counter()
            correct, total = evaluate_counts(model, test_loader, device=device)
            n = stats["samples"]
            loss_sum, seen, hits = D.all_reduce_sum(
                [stats["loss"] * n, n, stats["train_accuracy"] * n],
                device,
            )
            correct_all, total_all = D.all_reduce_sum([correct, total], device)
            record = {
                "epoch": epoch + 1,
                "loss": loss_sum / seen,
                "train_accuracy": hits / seen,
                "test_accuracy": correct_all / total_all,
                "seconds": stats["seconds"],
                "cpu_seconds": stats["cpu_seconds"],
                "eval_seconds": time.perf_counter() - eval_start,
                "lr": optimizer.param_groups[0]["lr"],
            }
            history.append(record)
            if D.is_main():
                save_checkpoint(
                    {
                        "stage": "float",
                        "model": {"name": spec.model, "kwargs": spec.model_kwargs()},
                        "state_dict": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "epoch": epoch + 1,
                        "seed": spec.seed,
                        "config": spec.model_dump(mode="json"),
                        "data": spec.data_record(),
                        "rng": _rng_state(),
                        "history": history,
                        "world_size": world,
                    },
                    ckpt_path,
                )
            D.barrier()
            bar.update(
                epochs_task,
                advance=1,
                status=f"loss {record['loss']:.4f}  test acc {record['test_accuracy']:.4f}",
            )
    if not history:
        raise ConfigError(f"{ckpt_path} holds no epoch history; train again without --resume")
    metrics = metrics_from_history(spec, history, sum(p.numel() for p in model.parameters()), world)
    if D.is_main():
        write_json_atomic(metrics, out / METRICS_NAME)
    D.barrier()
    return metrics
