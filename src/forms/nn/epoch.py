"""One pass of a model over data: :func:`train_epoch` (a training epoch) and :func:`evaluate` (accuracy).

Shared by training (:mod:`forms.nn.train`) and compression (ADMM W-steps and masked retraining), with
:func:`place_model`, which puts a model on its device in the memory order a run asks for, and
:func:`check_finite`, which stops a run whose loss or weights became NaN or infinite.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from rich.progress import Progress, TaskID
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from forms.errors import ConfigError
from forms.nn import distributed as D
from forms.nn.loader import EpochLoader


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
    loader: Iterable[tuple[Tensor, Tensor]],
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


def non_finite_tensor(named: Iterable[tuple[str, Tensor]]) -> str | None:
    """The name of the first floating-point tensor of ``named`` holding NaN or an infinity, or None."""
    for name, tensor in named:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def check_finite(model: nn.Module, loss: float, where: str) -> None:
    """Raise :class:`ConfigError` naming ``where`` (e.g. "epoch 3") and the first bad parameter when
    ``loss`` or a parameter of ``model`` is NaN or infinite: training diverged, and every later
    epoch, checkpoint and result would be meaningless."""
    bad = non_finite_tensor(D.unwrap(model).named_parameters())
    if bad is None and math.isfinite(loss):
        return
    what = f"parameter {bad} holds NaN or infinite values" if bad else f"the mean loss is {loss}"
    raise ConfigError(
        f"training diverged in {where}: {what}; nothing of this step was saved. "
        "Lower the learning rate or check the data"
    )
