"""Resumable, deterministic (optionally data-parallel) training of zoo models.

Entry point: :func:`train` ``(spec, out_dir, resume=False)`` -> :class:`TrainResult`. It writes
``out_dir/checkpoint.pt`` atomically after every epoch (model, optimizer, scheduler, epoch, seed,
config, RNG state, history) and ``out_dir/metrics.json`` at the end.

Determinism: the initial weights come from ``seed``; every epoch's data order, augmentation and
dropout come from generators seeded with ``(seed, epoch)`` only. So a run stopped after epoch k and
resumed with ``resume=True`` replays exactly the epochs an uninterrupted run would have, and reaches
bit-identical final weights (same machine, thread count and world size).

Building blocks reused by compression (ADMM retraining), re-exported here:
:class:`~forms.nn.loader.EpochLoader`, :func:`~forms.nn.epoch.train_epoch` (with an
``extra_loss(model)`` term), :func:`~forms.nn.epoch.evaluate`, :func:`build_optimizer`,
:func:`build_scheduler`. The spec lives in :mod:`forms.nn.train_spec`, the result in
:mod:`forms.nn.train_result`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import torch
from rich.progress import Progress, TaskID
from torch import nn
from torch.utils.data import TensorDataset

from forms.errors import CheckpointError, ConfigError
from forms.io import remove_orphan_temp_files, write_json_atomic
from forms.nn import distributed as D
from forms.nn.checkpoint import (
    describe_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from forms.nn.data import background_value, load_dataset
from forms.nn.epoch import check_finite, evaluate, evaluate_counts, place_model, train_epoch
from forms.nn.loader import EpochLoader, epoch_seed, shift_images
from forms.nn.models import build_model
from forms.nn.progress import make_progress
from forms.nn.train_result import CHECKPOINT_NAME, METRICS_NAME, TrainResult, result_from_history
from forms.nn.train_spec import CHANNELS_LAST_DOC, EXECUTION_KEYS, TrainSpec

__all__ = [
    "CHANNELS_LAST_DOC",
    "CHECKPOINT_NAME",
    "EXECUTION_KEYS",
    "METRICS_NAME",
    "EpochLoader",
    "TrainResult",
    "TrainSpec",
    "build_model",
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
    """The first ``n`` samples of ``ds`` (all of them when ``n`` is None)."""
    return ds if n is None else TensorDataset(*(t[:n] for t in ds.tensors))


def load_train_test(spec: TrainSpec) -> tuple[TensorDataset, TensorDataset]:
    """The (possibly subset) training and test sets ``spec`` describes."""
    kw: dict[str, Any] = {"data_dir": spec.data_dir, "pad_to": spec.pad_to, "channels": spec.channels}
    train_set = _subset(load_dataset(spec.dataset, "train", **kw), spec.train_subset)
    test_set = _subset(load_dataset(spec.dataset, "test", **kw), spec.test_subset)
    return train_set, test_set


def _config_differences(saved: dict[str, Any], spec: TrainSpec) -> list[str]:
    """The fields (execution keys aside) where the saved config and ``spec`` differ, as messages."""
    current = spec.model_dump(mode="json")
    keys = sorted((set(saved) | set(current)) - set(EXECUTION_KEYS))
    return [
        f"{k}: checkpoint {saved.get(k)!r} vs now {current.get(k)!r}"
        for k in keys
        if saved.get(k) != current.get(k)
    ]


def _rng_state() -> dict[str, Any]:
    """The global torch (and CUDA) random generator states."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`_rng_state`."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class _Run:
    """The objects of one training run, and the epochs it has completed."""

    spec: TrainSpec
    device: torch.device
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loader: EpochLoader
    history: list[dict[str, Any]] = field(default_factory=list)
    start_epoch: int = 0


def _train_loader(spec: TrainSpec, train_set: TensorDataset) -> EpochLoader:
    """This process's share of the shuffled, augmented training batches."""
    return EpochLoader(
        train_set,
        spec.batch_size,
        seed=spec.seed,
        shift=spec.shift,
        flip=spec.flip,
        fill=background_value(spec.dataset, spec.channels),
        rank=D.rank(),
        world_size=D.world_size(),
    )


TRAINING_KEYS = ("optimizer", "scheduler", "rng", "history", "epoch", "config")
"""Checkpoint entries a training run saves after every epoch and needs to resume."""


def _refuse_to_overwrite(ckpt_path: Path) -> NoReturn:
    """Raise :class:`ConfigError` saying what the existing ``ckpt_path`` holds and how to keep it."""
    try:
        ckpt = load_checkpoint(ckpt_path)
    except CheckpointError:
        held, fix = f"a {ckpt_path.name} that is not a readable FORMS checkpoint", "choose another --out"
    else:
        is_run = ckpt["stage"] == "float"
        held = describe_checkpoint(ckpt)
        fix = "pass --resume to continue it, or choose another --out" if is_run else "choose another --out"
    raise ConfigError(f"{ckpt_path.parent} already holds {held}; training there would overwrite it: {fix}")


def _checkpoint_to_resume(spec: TrainSpec, out: Path, resume: bool) -> dict[str, Any] | None:
    """The training checkpoint in ``out`` to continue, or None to start afresh; refuses, before any work,
    a folder whose files a run would overwrite (without ``resume``) or cannot continue (with it)."""
    ckpt_path, metrics_path = out / CHECKPOINT_NAME, out / METRICS_NAME
    if ckpt_path.exists() and not resume:
        _refuse_to_overwrite(ckpt_path)
    if not ckpt_path.exists():
        if metrics_path.exists():
            raise ConfigError(
                f"{out} holds a {METRICS_NAME} but no {CHECKPOINT_NAME}: it is not a training run, and "
                "training there would overwrite that file; choose another --out"
            )
        return None
    ckpt = load_checkpoint(ckpt_path)
    if ckpt["stage"] != "float":
        raise CheckpointError(
            f"cannot resume {ckpt_path}: it holds {describe_checkpoint(ckpt)}, not a training run; "
            "choose another --out"
        )
    missing = [k for k in TRAINING_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(
            f"cannot resume {ckpt_path}: it lacks the training state ({', '.join(missing)}) that "
            "`forms train` saves after every epoch; choose another --out"
        )
    diffs = _config_differences(ckpt["config"] if isinstance(ckpt["config"], dict) else {}, spec)
    if diffs:
        raise ConfigError(
            f"cannot resume {ckpt_path}: its config differs ({'; '.join(diffs)}); "
            "use the same options or a new --out directory"
        )
    return ckpt


def _resume(run: _Run, ckpt: dict[str, Any], ckpt_path: Path) -> None:
    """Continue ``run`` from the checked training checkpoint ``ckpt`` (read from ``ckpt_path``)."""
    try:
        run.model.load_state_dict(ckpt["state_dict"])
        run.optimizer.load_state_dict(ckpt["optimizer"])
        run.scheduler.load_state_dict(ckpt["scheduler"])
        _restore_rng(ckpt["rng"])
        run.history = list(ckpt["history"])
        run.start_epoch = int(ckpt["epoch"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"cannot resume {ckpt_path}: its saved training state is damaged ({type(exc).__name__}: {exc}); "
            "delete it to train from the start, or choose another --out"
        ) from None


def _epoch_record(run: _Run, epoch: int, stats: dict[str, float], test_loader: EpochLoader) -> dict[str, Any]:
    """Evaluate after epoch ``epoch``; its record: loss and accuracies over all processes, times, lr."""
    eval_start = time.perf_counter()
    correct, total = evaluate_counts(run.model, test_loader, device=run.device)
    n = stats["samples"]
    loss_sum, seen, hits = D.all_reduce_sum(
        [stats["loss"] * n, n, stats["train_accuracy"] * n],
        run.device,
    )
    correct_all, total_all = D.all_reduce_sum([correct, total], run.device)
    return {
        "epoch": epoch + 1,
        "loss": loss_sum / seen,
        "train_accuracy": hits / seen,
        "test_accuracy": correct_all / total_all,
        "seconds": stats["seconds"],
        "cpu_seconds": stats["cpu_seconds"],
        "eval_seconds": time.perf_counter() - eval_start,
        "lr": run.optimizer.param_groups[0]["lr"],
    }


def _save_epoch(run: _Run, epoch: int, ckpt_path: Path) -> None:
    """Checkpoint ``run`` after epoch ``epoch`` (rank 0 writes; every rank waits)."""
    spec = run.spec
    if D.is_main():
        save_checkpoint(
            {
                "stage": "float",
                "model": {"name": spec.model, "kwargs": spec.model_kwargs()},
                "state_dict": run.model.state_dict(),
                "optimizer": run.optimizer.state_dict(),
                "scheduler": run.scheduler.state_dict(),
                "epoch": epoch + 1,
                "seed": spec.seed,
                "config": spec.model_dump(mode="json"),
                "data": spec.data_record(),
                "rng": _rng_state(),
                "history": run.history,
                "world_size": D.world_size(),
            },
            ckpt_path,
        )
    D.barrier()


def _train_epochs(run: _Run, test_set: TensorDataset, ckpt_path: Path, progress: bool) -> None:
    """Train epochs ``run.start_epoch .. spec.epochs``, checkpointing after each."""
    spec = run.spec
    ddp_model = D.wrap_ddp(run.model, run.device)
    test_loader = EpochLoader(
        test_set, spec.eval_batch_size, shuffle=False, rank=D.rank(), world_size=D.world_size(), wrap=False
    )
    with make_progress(enabled=progress and D.is_main()) as bar:
        epochs_task = bar.add_task(
            f"{spec.model}/{spec.dataset}", total=spec.epochs, completed=run.start_epoch, status=""
        )
        batch_task = bar.add_task("  epoch", total=len(run.loader), status="")
        for epoch in range(run.start_epoch, spec.epochs):
            record = _one_epoch(run, ddp_model, epoch, test_loader, (bar, batch_task))
            check_finite(run.model, record["loss"], f"epoch {epoch + 1}")
            run.history.append(record)
            _save_epoch(run, epoch, ckpt_path)
            bar.update(
                epochs_task,
                advance=1,
                status=f"loss {record['loss']:.4f}  test acc {record['test_accuracy']:.4f}",
            )


def _one_epoch(
    run: _Run, ddp_model: nn.Module, epoch: int, test_loader: EpochLoader, task: tuple[Progress, TaskID]
) -> dict[str, Any]:
    """Train epoch ``epoch`` (0-based) and evaluate; return its history record."""
    spec, (bar, batch_task) = run.spec, task
    run.loader.set_epoch(epoch)
    torch.manual_seed(epoch_seed(spec.seed, epoch, 2))  # dropout and any other global draws
    bar.reset(batch_task, total=len(run.loader), description=f"  epoch {epoch + 1}")
    stats = train_epoch(
        ddp_model,
        run.loader,
        run.optimizer,
        scheduler=run.scheduler,
        device=run.device,
        label_smoothing=spec.label_smoothing,
        progress=bar,
        task=batch_task,
    )
    return _epoch_record(run, epoch, stats, test_loader)


def train(spec: TrainSpec, out_dir: str | Path, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train ``spec.model`` on ``spec.dataset``; checkpoint every epoch; return the result (``metrics.json``).

    With ``resume=True`` and an existing ``out_dir/checkpoint.pt`` from the same config, training
    continues after its last completed epoch (a finished run returns at once). Without it, a folder
    that already holds a checkpoint or metrics is refused (:class:`ConfigError`), as is, with it, one
    that holds no training run (:class:`CheckpointError`); both before any work. A NaN or infinite
    loss or weight stops the run (:class:`ConfigError` naming the epoch). Under torchrun the
    processes train one DistributedDataParallel model; only rank 0 writes files and draws progress.
    """
    device = D.init_from_env(spec.device)
    world = D.world_size()
    if spec.batch_size % world:
        raise ConfigError(f"batch size {spec.batch_size} must be divisible by the {world} processes")
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT_NAME
    saved = _checkpoint_to_resume(spec, out, resume)
    train_set, test_set = load_train_test(spec)

    torch.manual_seed(spec.seed)
    model = place_model(spec.build_model(), device, spec.channels_last)
    optimizer = build_optimizer(spec, model)
    loader = _train_loader(spec, train_set)
    run = _Run(spec, device, model, optimizer, build_scheduler(spec, optimizer, len(loader)), loader)
    if saved is not None:
        _resume(run, saved, ckpt_path)
    if D.is_main():
        remove_orphan_temp_files(out, (CHECKPOINT_NAME, METRICS_NAME))
    _train_epochs(run, test_set, ckpt_path, progress)
    if not run.history:
        raise ConfigError(f"{ckpt_path} holds no epoch history; train again without --resume")
    result = result_from_history(
        spec, run.history, sum(p.numel() for p in model.parameters()), world, len(test_set)
    )
    if D.is_main():
        write_json_atomic(result.to_dict(), out / METRICS_NAME)
    D.barrier()
    return result
