"""The training phases of compression: ADMM rounds, the hard projection, masked retraining.

- ADMM (:func:`run_admm`): W-step epochs with the rho/2||W - Z + U||^2 penalty, Z- and U-steps, rho
  growth; the W-step and retraining batches are shifted by up to ``schedule.shift`` pixels
  (:func:`training_loader`), never those of BatchNorm re-estimation, validation or test;
- projection (:func:`project`): W <- proj(W), BatchNorm statistics re-estimated, masks frozen;
- masked retraining (:func:`run_retrain`): fixed zero/sign masks and scales, straight-through
  quantizer, cosine-decayed learning rate, optionally a distillation loss; with a validation set the
  epoch of best validation accuracy is kept.

Each phase saves the run's state after every round or epoch through :attr:`PhaseContext.save`, so an
interrupted run of ``forms compress`` resumes where it stopped (in memory, :func:`forms.compress`, it
saves nothing). :func:`forms.compress.core.run_phases` runs them in order. A loss or weight that
becomes NaN or infinite stops the run before that save (:func:`forms.nn.epoch.check_finite`), naming
the round or epoch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from rich.progress import Progress, TaskID
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from forms.compress.admm import ADMMState, grow_rho, penalty_fn, projected_weights, zu_step
from forms.compress.projections import LayerConstraint
from forms.compress.retrain import attach, load_projected, recalibrate_batchnorm
from forms.compress.spec import CompressSpec
from forms.compress.state import projection_state, projections_from_state
from forms.nn import distributed as D
from forms.nn.epoch import check_finite, evaluate, train_epoch
from forms.nn.loader import EpochLoader

Criterion = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``criterion(logits, inputs, labels)``: a loss replacing the cross-entropy (distillation)."""


class TrainingBatches(Protocol):
    """The training data of the phases: (images, labels) batches, their count, and the epoch to draw.

    :class:`forms.nn.loader.EpochLoader` is one; :class:`forms.api.compression.LoaderEpochs` makes one
    of a user's DataLoader.
    """

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields."""

    def __len__(self) -> int:
        """Batches per epoch."""

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        """The batches of the selected epoch."""


def accuracy(model: nn.Module, dataset: Any, spec: CompressSpec, device: torch.device) -> float:
    """Top-1 accuracy of ``model`` on ``dataset``, evaluated in batches of the schedule's size."""
    return evaluate(model, dataset, batch_size=spec.schedule.eval_batch_size, device=device)


def training_loader(
    dataset: TensorDataset, spec: CompressSpec, fill: Sequence[float] | None = None
) -> EpochLoader:
    """This process's shuffled training batches of ``dataset``, in ``spec``'s batch size, drawn from
    ``spec.seed`` and the epoch, each image shifted by up to ``spec.schedule.shift`` pixels (uncovered
    pixels take ``fill``, default 0)."""
    return EpochLoader(
        dataset,
        spec.schedule.batch_size,
        seed=spec.seed,
        shift=spec.schedule.shift,
        fill=fill,
        rank=D.rank(),
        world_size=D.world_size(),
    )


def unaugmented(batches: TrainingBatches) -> TrainingBatches:
    """``batches`` without augmentation (an :class:`EpochLoader`'s shifts and flips), for BatchNorm
    statistics of the images the model will see; any other loader as it is."""
    return batches.without_augmentation() if isinstance(batches, EpochLoader) else batches


def phase_optimizer(
    spec: CompressSpec, model: nn.Module, lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    """The schedule's optimizer (Adam, or SGD with its momentum) over ``model`` at ``lr``."""
    s = spec.schedule
    if s.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=s.momentum, weight_decay=weight_decay)


def retrain_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Cosine decay from the initial learning rate to 0 over ``total_steps`` batches."""
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))


@dataclass(frozen=True)
class PhaseContext:
    """What every phase of one compression run works on, and how it saves the run's state."""

    model: nn.Module
    constraints: list[LayerConstraint]
    spec: CompressSpec
    loader: TrainingBatches
    test_set: Any
    val_set: Any | None
    device: torch.device
    bar: Progress
    save: Callable[..., None]
    """``save(phase, **entries)``: :meth:`forms.compress.state.StateWriter.save`."""
    validation_seen_by_float_model: bool | None = None
    """Whether the float model may have trained on ``val_set`` (None: no validation set, or unknown)."""

    def accuracy(self, dataset: Any) -> float:
        """The model's current top-1 accuracy on ``dataset``."""
        return accuracy(self.model, dataset, self.spec, self.device)

    def epoch_task(self, description: str) -> TaskID:
        """A progress task for the batches of one epoch."""
        return self.bar.add_task(description, total=len(self.loader), status="")


def run_admm(ctx: PhaseContext, admm: ADMMState, saved: dict[str, Any] | None) -> None:
    """ADMM rounds ``admm.round .. admm_rounds``; saves the state after each round.

    ``saved`` is the state the run resumes from (its optimizer state is restored), or None.
    """
    sched = ctx.spec.schedule
    net = D.wrap_ddp(ctx.model, ctx.device)
    optimizer = phase_optimizer(ctx.spec, ctx.model, sched.lr, sched.weight_decay)
    if saved and saved.get("optimizer") is not None:
        optimizer.load_state_dict(saved["optimizer"])
    task = ctx.bar.add_task("ADMM rounds", total=sched.admm_rounds, completed=admm.round, status="")
    batches = ctx.epoch_task("  W-step epoch")
    for r in range(admm.round, sched.admm_rounds):
        record = _admm_round(ctx, admm, r, (net, optimizer), batches)
        grow_rho(admm, ctx.spec)
        admm.round = r + 1
        admm.history.append(record)
        ctx.save("admm", state_dict=ctx.model.state_dict(), optimizer=optimizer.state_dict())
        ctx.bar.update(
            task,
            advance=1,
            status=f"max ||W-Z||/||W|| {record['residual_max']:.4f} acc {record['accuracy']:.4f}",
        )


def _admm_round(
    ctx: PhaseContext,
    admm: ADMMState,
    r: int,
    trainer: tuple[nn.Module, torch.optim.Optimizer],
    batches: TaskID,
) -> dict[str, Any]:
    """ADMM round ``r`` (0-based): the W-step epochs, then the Z- and U-steps; the round's record."""
    sched = ctx.spec.schedule
    net, optimizer = trainer
    extra = penalty_fn(admm, ctx.device)
    stats = []
    for k in range(sched.round_epochs):
        ctx.loader.set_epoch(r * sched.round_epochs + k)
        ctx.bar.reset(batches, total=len(ctx.loader), description=f"  W-step epoch {k + 1}, round {r + 1}")
        stats.append(
            train_epoch(
                net,
                ctx.loader,
                optimizer,
                extra_loss=extra,
                device=ctx.device,
                progress=ctx.bar,
                task=batches,
            )
        )
        check_finite(ctx.model, stats[-1]["loss"], f"ADMM round {r + 1}, W-step epoch {k + 1}")
    residuals = zu_step(ctx.model, ctx.constraints, ctx.spec, admm)
    return {
        "round": r + 1,
        "rho": admm.rho,
        "loss": stats[-1]["loss"],
        "wstep_epoch_seconds": [s["seconds"] for s in stats],
        "residuals": residuals,
        "residual_max": max(residuals.values()),
        "accuracy": ctx.accuracy(ctx.test_set),
    }


def project(ctx: PhaseContext) -> dict[str, Any]:
    """Hard projection after ADMM; freezes the masks for retraining and returns the retraining state.

    W <- proj(W), BatchNorm statistics re-estimated on training batches, the projected accuracy
    measured, then every mapped weight parametrized by its frozen projection. Saves the state.
    """
    model, constraints = ctx.model, ctx.constraints
    _, projections = projected_weights(model, constraints, ctx.spec)
    load_projected(model, constraints, projections)
    bn_recalibrated = recalibrate_batchnorm(
        model, unaugmented(ctx.loader), ctx.spec.schedule.bn_recalibration_batches, ctx.device
    )
    accuracy_projected = ctx.accuracy(ctx.test_set)
    attach(model, constraints, projections)
    retrain_state: dict[str, Any] = {
        "epoch": 0,
        "history": [],
        "accuracy_projected": accuracy_projected,
        "bn_recalibrated": bn_recalibrated,
        "projections": projection_state(projections),
    }
    ctx.save("retrain", state_dict=model.state_dict(), retrain=retrain_state)
    return retrain_state


def restore_projection(ctx: PhaseContext, saved: dict[str, Any]) -> dict[str, Any]:
    """Re-attach the frozen projections and weights of a run saved in retraining; its retraining state."""
    retrain_state: dict[str, Any] = saved["retrain"]
    attach(ctx.model, ctx.constraints, projections_from_state(retrain_state["projections"]))
    ctx.model.load_state_dict(saved["state_dict"])
    return retrain_state


def run_retrain(
    ctx: PhaseContext,
    retrain_state: dict[str, Any],
    saved: dict[str, Any] | None,
    criterion: Criterion | None = None,
) -> None:
    """Masked retraining epochs ``retrain_state['epoch'] .. retrain_epochs``; saves after each epoch.

    With a validation set, every epoch's validation accuracy is recorded and
    ``retrain_state['best']`` keeps the epoch number, accuracy and weights of the best one so far
    (ties: the later epoch). ``criterion`` replaces the cross-entropy (knowledge distillation,
    :mod:`forms.compress.distill`). ``saved`` is the state the run resumes from, or None.
    """
    sched = ctx.spec.schedule
    net = D.wrap_ddp(ctx.model, ctx.device)
    decay = sched.weight_decay if sched.retrain_weight_decay is None else sched.retrain_weight_decay
    optimizer = phase_optimizer(ctx.spec, ctx.model, sched.retrain_lr, decay)
    scheduler = retrain_scheduler(optimizer, sched.retrain_epochs * len(ctx.loader))
    if saved and saved["phase"] == "retrain" and saved.get("optimizer") is not None:
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
    task = ctx.bar.add_task(
        "masked retraining", total=sched.retrain_epochs, completed=retrain_state["epoch"], status=""
    )
    batches = ctx.epoch_task("  retraining epoch")
    for e in range(retrain_state["epoch"], sched.retrain_epochs):
        ctx.loader.set_epoch(sched.admm_rounds * sched.round_epochs + e)
        ctx.bar.reset(batches, total=len(ctx.loader), description=f"  retraining epoch {e + 1}")
        start = time.perf_counter()
        stats = train_epoch(
            net,
            ctx.loader,
            optimizer,
            scheduler=scheduler,
            device=ctx.device,
            progress=ctx.bar,
            task=batches,
            criterion=criterion,
        )
        check_finite(ctx.model, stats["loss"], f"retraining epoch {e + 1}")
        record = _retrain_record(ctx, e, stats["loss"], time.perf_counter() - start, retrain_state)
        retrain_state["history"].append(record)
        retrain_state["epoch"] = e + 1
        ctx.save(
            "retrain",
            state_dict=ctx.model.state_dict(),
            optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(),
            retrain=retrain_state,
        )
        ctx.bar.update(task, advance=1, status=f"loss {record['loss']:.4f} acc {record['accuracy']:.4f}")


def _retrain_record(
    ctx: PhaseContext, e: int, loss: float, seconds: float, retrain_state: dict[str, Any]
) -> dict[str, Any]:
    """Evaluate after retraining epoch ``e`` (0-based), keep its weights if best; the epoch's record."""
    record: dict[str, Any] = {
        "epoch": e + 1,
        "loss": loss,
        "seconds": seconds,
        "accuracy": ctx.accuracy(ctx.test_set),
    }
    if ctx.val_set is not None:
        record["validation_accuracy"] = ctx.accuracy(ctx.val_set)
        best = retrain_state.get("best")
        if best is None or record["validation_accuracy"] >= best["validation_accuracy"]:
            retrain_state["best"] = {
                "epoch": e + 1,
                "validation_accuracy": record["validation_accuracy"],
                "state_dict": {k: v.detach().clone() for k, v in ctx.model.state_dict().items()},
            }
    return record
