"""Resumable, deterministic (optionally data-parallel) training of zoo models.

Entry point: :func:`train` ``(spec, out_dir, resume=False)`` -> :class:`TrainResult`. It writes
``out_dir/checkpoint.pt`` atomically after every epoch (model, optimizer, scheduler, epoch, seed,
config, RNG state, history, the hold-out) and ``out_dir/metrics.json`` at the end.

Hold-out: with ``validation_images`` N, N training images (:class:`forms.nn.holdout.Holdout`) take no
part in training; every epoch's validation accuracy is recorded, and the finished checkpoint keeps
the weights of the epoch of best validation accuracy (ties: the later). The checkpoint records the
hold-out (``holdout`` entry), and compression validates on the same images.

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
from typing import Any

import torch
from rich.progress import Progress, TaskID
from torch import nn
from torch.utils.data import TensorDataset

from forms.errors import CheckpointError, ConfigError
from forms.io import remove_orphan_temp_files, write_json_atomic
from forms.nn import distributed as D
from forms.nn.checkpoint import save_checkpoint
from forms.nn.data import background_value, load_dataset
from forms.nn.epoch import check_finite, evaluate, evaluate_counts, place_model, train_epoch
from forms.nn.holdout import HOLDOUT_KEY, Holdout, split_train
from forms.nn.loader import EpochLoader, epoch_seed, shift_images
from forms.nn.models import build_model
from forms.nn.progress import make_progress
from forms.nn.train_result import CHECKPOINT_NAME, METRICS_NAME, TrainResult, result_from_history
from forms.nn.train_resume import checkpoint_to_resume
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


@dataclass(frozen=True)
class TrainData:
    """The training, held-out validation (None without a hold-out) and test sets of a run."""

    train: TensorDataset
    validation: TensorDataset | None
    test: TensorDataset
    holdout: Holdout
    """Which training images are held out (recorded in the checkpoint)."""


def load_train_test(spec: TrainSpec) -> TrainData:
    """The (possibly subset) training, validation and test sets ``spec`` describes."""
    kw: dict[str, Any] = {"data_dir": spec.data_dir, "pad_to": spec.pad_to, "channels": spec.channels}
    full = load_dataset(spec.dataset, "train", **kw)
    holdout = spec.holdout(len(full))
    train_set, val_set = split_train(full, holdout.pool, holdout)
    test_set = _subset(load_dataset(spec.dataset, "test", **kw), spec.test_subset)
    return TrainData(train_set, val_set, test_set, holdout)


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
    holdout: Holdout
    history: list[dict[str, Any]] = field(default_factory=list)
    start_epoch: int = 0
    best: dict[str, Any] | None = None
    """With a hold-out: the epoch of best validation accuracy so far, its accuracy and weights."""


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


def _resume(run: _Run, ckpt: dict[str, Any], ckpt_path: Path) -> None:
    """Continue ``run`` from the checked training checkpoint ``ckpt`` (read from ``ckpt_path``)."""
    try:
        run.model.load_state_dict(ckpt["state_dict"])
        run.optimizer.load_state_dict(ckpt["optimizer"])
        run.scheduler.load_state_dict(ckpt["scheduler"])
        _restore_rng(ckpt["rng"])
        run.history = list(ckpt["history"])
        run.start_epoch = int(ckpt["epoch"])
        run.best = ckpt.get("best") or _latest_as_best(run)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"cannot resume {ckpt_path}: its saved training state is damaged ({type(exc).__name__}: {exc}); "
            "delete it to train from the start, or choose another --out"
        ) from None


def _eval_loader(spec: TrainSpec, dataset: TensorDataset) -> EpochLoader:
    """This process's share of ``dataset`` in order, for evaluation (no sample counted twice)."""
    return EpochLoader(
        dataset, spec.eval_batch_size, shuffle=False, rank=D.rank(), world_size=D.world_size(), wrap=False
    )


def _accuracy_all(run: _Run, loader: EpochLoader) -> float:
    """Top-1 accuracy of ``run.model`` over every process's share of ``loader``."""
    correct, total = evaluate_counts(run.model, loader, device=run.device)
    correct_all, total_all = D.all_reduce_sum([correct, total], run.device)
    return correct_all / total_all


def _epoch_record(
    run: _Run, epoch: int, stats: dict[str, float], evals: tuple[EpochLoader, EpochLoader | None]
) -> dict[str, Any]:
    """Evaluate after epoch ``epoch`` on the (test, validation or None) loaders ``evals``; its record:
    loss and accuracies over all processes, times, lr."""
    eval_start = time.perf_counter()
    test_loader, val_loader = evals
    n = stats["samples"]
    loss_sum, seen, hits = D.all_reduce_sum(
        [stats["loss"] * n, n, stats["train_accuracy"] * n],
        run.device,
    )
    record = {
        "epoch": epoch + 1,
        "loss": loss_sum / seen,
        "train_accuracy": hits / seen,
        "test_accuracy": _accuracy_all(run, test_loader),
        "seconds": stats["seconds"],
        "cpu_seconds": stats["cpu_seconds"],
        "eval_seconds": 0.0,
        "lr": run.optimizer.param_groups[0]["lr"],
    }
    if val_loader is not None:
        record["validation_accuracy"] = _accuracy_all(run, val_loader)
        if run.best is None or record["validation_accuracy"] >= run.best["validation_accuracy"]:
            run.best = _latest_as_best(run, record)
    record["eval_seconds"] = time.perf_counter() - eval_start
    return record


def _latest_as_best(run: _Run, record: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The current weights as the best epoch: that of ``record`` (default: the last in the history), or
    None without a hold-out or history."""
    record = record or (run.history[-1] if run.history else None)
    if record is None or "validation_accuracy" not in record:
        return None
    weights = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
    accuracy = record["validation_accuracy"]
    return {"epoch": record["epoch"], "validation_accuracy": accuracy, "state_dict": weights}


def _save_epoch(run: _Run, epoch: int, ckpt_path: Path, keep_best: bool = False) -> None:
    """Checkpoint ``run`` after epoch ``epoch`` (rank 0 writes; every rank waits). The best epoch's
    weights are saved beside the current ones while they differ; with ``keep_best`` (the run is
    finished) they replace them."""
    spec, best = run.spec, run.best
    best_apart = best is not None and best["epoch"] != epoch + 1
    weights = best["state_dict"] if keep_best and best is not None else run.model.state_dict()
    if D.is_main():
        save_checkpoint(
            {
                "stage": "float",
                "model": {"name": spec.model, "kwargs": spec.model_kwargs()},
                "state_dict": weights,
                "optimizer": run.optimizer.state_dict(),
                "scheduler": run.scheduler.state_dict(),
                "epoch": epoch + 1,
                "seed": spec.seed,
                "config": spec.model_dump(mode="json"),
                "data": spec.data_record(),
                HOLDOUT_KEY: run.holdout.to_dict(),
                "best": best if best_apart and not keep_best else None,
                "selected_epoch": best["epoch"] if keep_best and best is not None else epoch + 1,
                "rng": _rng_state(),
                "history": run.history,
                "world_size": D.world_size(),
            },
            ckpt_path,
        )
    D.barrier()


def _train_epochs(run: _Run, data: TrainData, ckpt_path: Path, progress: bool) -> None:
    """Train epochs ``run.start_epoch .. spec.epochs``, checkpointing after each; with a hold-out, the
    finished checkpoint keeps the weights of the epoch of best validation accuracy."""
    spec = run.spec
    ddp_model = D.wrap_ddp(run.model, run.device)
    evals = (
        _eval_loader(spec, data.test),
        _eval_loader(spec, data.validation) if data.validation is not None else None,
    )
    with make_progress(enabled=progress and D.is_main()) as bar:
        epochs_task = bar.add_task(
            f"{spec.model}/{spec.dataset}", total=spec.epochs, completed=run.start_epoch, status=""
        )
        batch_task = bar.add_task("  epoch", total=len(run.loader), status="")
        for epoch in range(run.start_epoch, spec.epochs):
            record = _one_epoch(run, ddp_model, epoch, evals, (bar, batch_task))
            check_finite(run.model, record["loss"], f"epoch {epoch + 1}")
            run.history.append(record)
            _save_epoch(run, epoch, ckpt_path, keep_best=epoch + 1 == spec.epochs)
            bar.update(
                epochs_task,
                advance=1,
                status=f"loss {record['loss']:.4f}  test acc {record['test_accuracy']:.4f}"
                + (
                    f"  val acc {record['validation_accuracy']:.4f}"
                    if "validation_accuracy" in record
                    else ""
                ),
            )


def _one_epoch(
    run: _Run,
    ddp_model: nn.Module,
    epoch: int,
    evals: tuple[EpochLoader, EpochLoader | None],
    task: tuple[Progress, TaskID],
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
    return _epoch_record(run, epoch, stats, evals)


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
    saved = checkpoint_to_resume(spec, out, resume)
    data = load_train_test(spec)

    torch.manual_seed(spec.seed)
    model = place_model(spec.build_model(), device, spec.channels_last)
    optimizer = build_optimizer(spec, model)
    loader = _train_loader(spec, data.train)
    scheduler = build_scheduler(spec, optimizer, len(loader))
    run = _Run(spec, device, model, optimizer, scheduler, loader, data.holdout)
    if saved is not None:
        _resume(run, saved, ckpt_path)
    if D.is_main():
        remove_orphan_temp_files(out, (CHECKPOINT_NAME, METRICS_NAME))
    _train_epochs(run, data, ckpt_path, progress)
    if not run.history:
        raise ConfigError(f"{ckpt_path} holds no epoch history; train again without --resume")
    result = result_from_history(
        spec, run.history, sum(p.numel() for p in model.parameters()), world, len(data.test)
    )
    if D.is_main():
        write_json_atomic(result.to_dict(), out / METRICS_NAME)
    D.barrier()
    return result
