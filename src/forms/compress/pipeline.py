"""Library entry point of compression: :func:`compress` (float checkpoint -> compressed checkpoint).

Stages: evaluate the float model; ADMM rounds (W-step epochs with the rho/2||W - Z + U||^2 penalty,
Z- and U-steps, rho growth); hard projection (W <- proj(W), BatchNorm statistics re-estimated);
masked retraining (fixed zero/sign masks and scales, straight-through quantizer, cosine-decayed
learning rate, optionally distilling the float model; with ``validation_images`` the epoch of best
accuracy on held-out training images is kept); bake (integer weights, plain weights = scale *
integer). Writes, atomically, ``out/checkpoint.pt`` (stage "compressed") and ``out/metrics.json``.

Resumable: after every ADMM round and every retraining epoch the whole state (weights, Z, U, rho,
round, optimizer, frozen masks) is saved to ``out/compress_state.pt``; ``resume=True`` continues
from it, and returns the finished metrics at once when the run is complete. Every input is checked
(checkpoint, model, data, spec) before anything is written.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.progress import Progress
from torch import Tensor, nn

from forms.compress.admm import ADMMState, grow_rho, init_state, penalty_fn, projected_weights, zu_step
from forms.compress.constraints import layer_constraints
from forms.compress.counting import crossbar_report, fragment_totals, sparsity
from forms.compress.distill import distillation_criterion
from forms.compress.projections import LayerConstraint, Projection
from forms.compress.retrain import attach, bake, load_projected, recalibrate_batchnorm
from forms.compress.spec import CompressSpec
from forms.errors import CheckpointError, ConfigError
from forms.intweights import IntegerLayer
from forms.io import write_json_atomic
from forms.nn import distributed as D
from forms.nn.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from forms.nn.data import load_dataset, split_holdout
from forms.nn.progress import make_progress
from forms.nn.train import EXECUTION_KEYS, EpochLoader, evaluate, place_model, train_epoch

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.json"
STATE_NAME = "compress_state.pt"
STATE_FORMAT = "forms-compress-state"


def fingerprint(state_dict: dict[str, Any]) -> str:
    """SHA-256 of a state dict's names, shapes and bytes: identifies the float model compressed."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name]
        if isinstance(t, torch.Tensor):
            h.update(name.encode())
            h.update(str(tuple(t.shape)).encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _load_data(src: dict[str, Any], spec: CompressSpec) -> tuple[Any, Any, Any]:
    """(training, validation or None, test) sets of the checkpoint's dataset under ``spec``."""
    data = src.get("data") or {}
    if "dataset" not in data:
        raise CheckpointError(
            "the checkpoint has no 'data' record naming its dataset; retrain it with forms train"
        )
    pad_to, channels = data.get("pad_to"), data.get("channels")
    train_set = load_dataset(data["dataset"], "train", spec.data_dir, pad_to, channels)
    test_set = load_dataset(data["dataset"], "test", spec.data_dir, pad_to, channels)
    if spec.train_subset is not None:
        train_set = torch.utils.data.TensorDataset(*(t[: spec.train_subset] for t in train_set.tensors))
    if spec.test_subset is not None:
        test_set = torch.utils.data.TensorDataset(*(t[: spec.test_subset] for t in test_set.tensors))
    if spec.validation_images == 0:
        return train_set, None, test_set
    train_set, val_set = split_holdout(train_set, spec.validation_images, spec.seed)
    return train_set, val_set, test_set


def _optimizer(spec: CompressSpec, model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    s = spec.schedule
    if s.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=s.momentum, weight_decay=weight_decay)


def _run_config(spec: CompressSpec) -> dict[str, Any]:
    return {k: v for k, v in spec.model_dump(mode="json").items() if k not in EXECUTION_KEYS}


def saved_run_config(config: dict[str, Any]) -> dict[str, Any]:
    """A run config saved by an earlier version, completed with the defaults of fields added since.

    So a run started before a new setting existed still resumes (and compares equal) when the
    setting is left at its default, which reproduces the old behaviour.
    """
    return _run_config(CompressSpec.from_dict(config, source="the saved compression settings"))


def _check_resumable(
    saved: dict[str, Any], spec: CompressSpec, src: dict[str, Any], source_fp: str, path: Path
) -> None:
    if saved.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path} is not a compression state file; remove it or choose another --out")
    if saved["model"] != src["model"] or saved["source_fingerprint"] != source_fp:
        raise CheckpointError(
            f"{path} belongs to a different float model ({saved['model'].get('name')}); "
            "resume with the checkpoint it was started from, or choose another --out"
        )
    then, now = saved_run_config(saved["config"]), _run_config(spec)
    if then != now:
        diffs = [k for k in sorted(set(now) | set(then)) if now.get(k) != then.get(k)]
        raise ConfigError(
            f"cannot resume {path}: its compression settings differ in {', '.join(diffs)}; "
            "use the same options or a new --out directory"
        )


def _projection_state(projections: dict[str, Projection]) -> dict[str, Any]:
    return {
        name: {
            "keep": p.keep,
            "signs": p.signs,
            "scale": p.scale,
            "matrix": p.matrix,
            "weight_int": p.weight_int,
        }
        for name, p in projections.items()
    }


def _projection_from_state(state: dict[str, Any]) -> dict[str, Projection]:
    return {
        name: Projection(
            matrix=s["matrix"], weight_int=s["weight_int"], scale=s["scale"], keep=s["keep"], signs=s["signs"]
        )
        for name, s in state.items()
    }


def _retrain_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Cosine decay from the initial learning rate to 0 over ``total_steps`` batches."""
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))


def build_metrics(
    spec: CompressSpec,
    constraints: list[LayerConstraint],
    layers: list[IntegerLayer],
    run: dict[str, Any],
) -> dict[str, Any]:
    """The ``metrics.json`` content: accuracies, constraint checks, crossbar counts and factors."""
    ints = {layer.name: layer.weight_int for layer in layers}
    polarized = [c for c in constraints if c.fragment_size is not None]
    r = spec.crossbar.fragment_size
    total, mixed = fragment_totals({c.name: ints[c.name] for c in polarized}, {c.name: r for c in polarized})
    report = crossbar_report(ints, spec.quant.weight_bits, spec.crossbar)
    per_layer = report.pop("layers")
    geometry = report.pop("crossbar")
    before, after = run["accuracy_before"], run["accuracy_after"]
    return {
        "model": run["model"],
        "dataset": run["dataset"],
        "source_checkpoint": run["source_checkpoint"],
        "accuracy_before": before,
        "accuracy_admm": run["accuracy_admm"],
        "accuracy_projected": run["accuracy_projected"],
        "accuracy_after": after,
        "accuracy_drop_points": 100.0 * (before - after),
        "fragment_size": r,
        "weight_bits": spec.quant.weight_bits,
        "fragments_total": total,
        "fragments_mixed_sign": mixed,
        "unpolarized_layers": [c.name for c in constraints if c.fragment_size is None],
        "sparsity": sparsity(ints),
        "crossbars": report,
        "crossbar_geometry": geometry,
        "crossbar_layers": per_layer,
        "layers": [
            {
                "name": c.name,
                "weight_shape": list(c.weight_shape),
                "fragment_size": c.integer_fragment_size,
                "prune_ratio": c.prune_ratio,
                "sparsity": float((ints[c.name] == 0).float().mean()),
                "max_abs_int": int(ints[c.name].abs().max()),
            }
            for c in constraints
        ],
        "admm": run["admm"],
        "retrain": run["retrain"],
        "bn_recalibrated": run["bn_recalibrated"],
        "world_size": run["world_size"],
        "torch_threads": torch.get_num_threads(),
        "checkpoint": CHECKPOINT_NAME,
        "config": spec.model_dump(mode="json"),
    }


def compress(
    spec: CompressSpec,
    checkpoint: str | Path,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Compress the float model in ``checkpoint`` under ``spec``; write ``out_dir``; return the metrics.

    Raises :class:`CheckpointError` (missing/corrupt/already compressed checkpoint, a resume state of
    another model), :class:`ConfigError` (bad settings, an existing run without ``resume``),
    :class:`forms.errors.UnsupportedLayerError` (no Conv2d/Linear) or :class:`forms.errors.DataError`
    before writing anything. Under torchrun the W-step and retraining run data-parallel; rank 0
    writes the files.
    """
    device = D.init_from_env(spec.device)
    world, rank = D.world_size(), D.rank()
    if spec.schedule.batch_size % world:
        raise ConfigError(f"batch size {spec.schedule.batch_size} must be divisible by the {world} processes")
    src = load_checkpoint(checkpoint)
    if src["stage"] != "float":
        raise CheckpointError(
            f"{checkpoint} is a '{src['stage']}' checkpoint; compress the float checkpoint it came from"
        )
    model = place_model(model_from_checkpoint(src, source=str(checkpoint)), device, spec.channels_last)
    constraints = layer_constraints(model, spec)
    train_set, val_set, test_set = _load_data(src, spec)
    out = Path(out_dir)
    state_path, ckpt_path, metrics_path = out / STATE_NAME, out / CHECKPOINT_NAME, out / METRICS_NAME
    source_fp = fingerprint(src["state_dict"])
    if ckpt_path.is_file() and metrics_path.is_file() and not state_path.exists():
        if not resume:
            raise ConfigError(
                f"{out} already holds a compressed model; pass --resume to reuse it or choose another --out"
            )
        done = load_checkpoint(ckpt_path)
        same = saved_run_config(done.get("compression") or {}) == _run_config(spec)
        if not same or done.get("source_fingerprint") != source_fp:
            raise CheckpointError(
                f"{ckpt_path} was compressed from another model or with other settings; choose another --out"
            )
        import json

        return dict(json.loads(metrics_path.read_text()))
    if state_path.exists() and not resume:
        raise ConfigError(
            f"{out} holds an unfinished compression; pass --resume to continue it or choose another --out"
        )
    saved = torch.load(state_path, map_location="cpu", weights_only=True) if state_path.is_file() else None
    if saved is not None:
        _check_resumable(saved, spec, src, source_fp, state_path)

    sched = spec.schedule
    eval_kw: Any = {"batch_size": sched.eval_batch_size, "device": device}
    loader = EpochLoader(train_set, sched.batch_size, seed=spec.seed, rank=rank, world_size=world)
    run: dict[str, Any] = {
        "model": src["model"]["name"],
        "dataset": src["data"]["dataset"],
        "source_checkpoint": str(checkpoint),
        "world_size": world,
    }
    run["accuracy_before"] = saved["accuracy_before"] if saved else evaluate(model, test_set, **eval_kw)

    def save_state(phase: str, **extra: Any) -> None:
        if D.is_main():
            state = {
                "format": STATE_FORMAT,
                "phase": phase,
                "model": src["model"],
                "source_fingerprint": source_fp,
                "config": _run_config(spec),
                "accuracy_before": run["accuracy_before"],
                "admm": admm.state(),
                **extra,
            }
            from forms.io import atomic_write

            atomic_write(state_path, lambda fh: torch.save(state, fh))
        D.barrier()

    phase = saved["phase"] if saved else "admm"
    admm = ADMMState.from_state(saved["admm"]) if saved else init_state(model, constraints, spec)
    with make_progress(progress and D.is_main()) as bar:
        if phase == "admm":
            if saved:
                model.load_state_dict(saved["state_dict"])
            run_admm(
                model, constraints, spec, admm, loader, test_set, eval_kw, device, bar, saved, save_state
            )
            _, projections = projected_weights(model, constraints, spec)
            load_projected(model, constraints, projections)
            run["bn_recalibrated"] = recalibrate_batchnorm(
                model, loader, sched.bn_recalibration_batches, device
            )
            run["accuracy_projected"] = evaluate(model, test_set, **eval_kw)
            attach(model, constraints, projections)
            retrain_state: dict[str, Any] = {
                "epoch": 0,
                "history": [],
                "accuracy_projected": run["accuracy_projected"],
                "bn_recalibrated": run["bn_recalibrated"],
                "projections": _projection_state(projections),
            }
            save_state("retrain", state_dict=model.state_dict(), retrain=retrain_state)
        else:
            assert saved is not None
            retrain_state = saved["retrain"]
            attach(model, constraints, _projection_from_state(retrain_state["projections"]))
            model.load_state_dict(saved["state_dict"])
            run["accuracy_projected"] = retrain_state["accuracy_projected"]
            run["bn_recalibrated"] = retrain_state["bn_recalibrated"]
        criterion = None
        if sched.distill_weight > 0:
            teacher = place_model(
                model_from_checkpoint(src, source=str(checkpoint)), device, spec.channels_last
            )
            criterion = distillation_criterion(teacher, sched.distill_weight, sched.distill_temperature)
        run_retrain(
            model,
            spec,
            loader,
            (test_set, val_set),
            eval_kw,
            device,
            bar,
            retrain_state,
            saved,
            save_state,
            criterion,
        )
    best = retrain_state.get("best")
    if best is not None:
        model.load_state_dict(best["state_dict"])

    run["accuracy_admm"] = admm.history[-1]["accuracy"] if admm.history else run["accuracy_before"]
    layers = bake(model, constraints)
    run["accuracy_after"] = evaluate(model, test_set, **eval_kw)
    run["admm"] = {"rounds": admm.round, "final_rho": admm.rho, "history": admm.history}
    run["retrain"] = {
        "epochs": retrain_state["epoch"],
        "history": retrain_state["history"],
        "validation_images": spec.validation_images,
        "selected_epoch": best["epoch"] if best is not None else retrain_state["epoch"],
    }
    metrics = build_metrics(spec, constraints, layers, run)
    if D.is_main():
        save_checkpoint(
            {
                "stage": "compressed",
                "model": src["model"],
                "state_dict": model.state_dict(),
                "optimizer": None,
                "epoch": src.get("epoch"),
                "seed": spec.seed,
                "config": src.get("config", {}),
                "data": src["data"],
                "integer_layers": [layer.state() for layer in layers],
                "compression": _run_config(spec),
                "compression_spec": spec.model_dump(mode="json"),
                "source_fingerprint": source_fp,
                "admm": admm.state(),
            },
            ckpt_path,
        )
        write_json_atomic(metrics, metrics_path)
        state_path.unlink(missing_ok=True)
    D.barrier()
    return metrics


def run_admm(
    model: nn.Module,
    constraints: list[LayerConstraint],
    spec: CompressSpec,
    admm: ADMMState,
    loader: EpochLoader,
    test_set: Any,
    eval_kw: Any,
    device: torch.device,
    bar: Progress,
    saved: dict[str, Any] | None,
    save_state: Any,
) -> None:
    """ADMM rounds ``admm.round .. admm_rounds``; saves the state after each round."""
    sched = spec.schedule
    net = D.wrap_ddp(model, device)
    optimizer = _optimizer(spec, model, sched.lr, sched.weight_decay)
    if saved and saved.get("optimizer") is not None:
        optimizer.load_state_dict(saved["optimizer"])
    task = bar.add_task("ADMM rounds", total=sched.admm_rounds, completed=admm.round, status="")
    batches = bar.add_task("  W-step epoch", total=len(loader), status="")
    for r in range(admm.round, sched.admm_rounds):
        extra = penalty_fn(admm, device)
        stats = []
        for k in range(sched.round_epochs):
            loader.set_epoch(r * sched.round_epochs + k)
            bar.reset(batches, total=len(loader), description=f"  W-step epoch {k + 1}, round {r + 1}")
            stats.append(
                train_epoch(
                    net, loader, optimizer, extra_loss=extra, device=device, progress=bar, task=batches
                )
            )
        residuals = zu_step(model, constraints, spec, admm)
        record = {
            "round": r + 1,
            "rho": admm.rho,
            "loss": stats[-1]["loss"],
            "wstep_epoch_seconds": [s["seconds"] for s in stats],
            "residuals": residuals,
            "residual_max": max(residuals.values()),
            "accuracy": evaluate(model, test_set, **eval_kw),
        }
        grow_rho(admm, spec)
        admm.round = r + 1
        admm.history.append(record)
        save_state("admm", state_dict=model.state_dict(), optimizer=optimizer.state_dict())
        bar.update(
            task,
            advance=1,
            status=f"max ||W-Z||/||W|| {record['residual_max']:.4f} acc {record['accuracy']:.4f}",
        )


def run_retrain(
    model: nn.Module,
    spec: CompressSpec,
    loader: EpochLoader,
    eval_sets: tuple[Any, Any],
    eval_kw: Any,
    device: torch.device,
    bar: Progress,
    retrain_state: dict[str, Any],
    saved: dict[str, Any] | None,
    save_state: Any,
    criterion: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None,
) -> None:
    """Masked retraining epochs ``retrain_state['epoch'] .. retrain_epochs``; saves after each epoch.

    ``eval_sets`` is (test set, validation set or None). With a validation set, every epoch's
    validation accuracy is recorded and ``retrain_state['best']`` keeps the epoch number, accuracy and
    weights of the best one so far (ties: the later epoch). ``criterion`` replaces the cross-entropy
    (knowledge distillation, :mod:`forms.compress.distill`).
    """
    test_set, val_set = eval_sets
    sched = spec.schedule
    net = D.wrap_ddp(model, device)
    decay = sched.weight_decay if sched.retrain_weight_decay is None else sched.retrain_weight_decay
    optimizer = _optimizer(spec, model, sched.retrain_lr, decay)
    scheduler = _retrain_scheduler(optimizer, sched.retrain_epochs * len(loader))
    if saved and saved["phase"] == "retrain" and saved.get("optimizer") is not None:
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
    offset = sched.admm_rounds * sched.round_epochs
    task = bar.add_task(
        "masked retraining", total=sched.retrain_epochs, completed=retrain_state["epoch"], status=""
    )
    batches = bar.add_task("  retraining epoch", total=len(loader), status="")
    for e in range(retrain_state["epoch"], sched.retrain_epochs):
        loader.set_epoch(offset + e)
        bar.reset(batches, total=len(loader), description=f"  retraining epoch {e + 1}")
        start = time.perf_counter()
        stats = train_epoch(
            net,
            loader,
            optimizer,
            scheduler=scheduler,
            device=device,
            progress=bar,
            task=batches,
            criterion=criterion,
        )
        record = {
            "epoch": e + 1,
            "loss": stats["loss"],
            "seconds": time.perf_counter() - start,
            "accuracy": evaluate(model, test_set, **eval_kw),
        }
        if val_set is not None:
            record["validation_accuracy"] = evaluate(model, val_set, **eval_kw)
            best = retrain_state.get("best")
            if best is None or record["validation_accuracy"] >= best["validation_accuracy"]:
                retrain_state["best"] = {
                    "epoch": e + 1,
                    "validation_accuracy": record["validation_accuracy"],
                    "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
                }
        retrain_state["history"].append(record)
        retrain_state["epoch"] = e + 1
        save_state(
            "retrain",
            state_dict=model.state_dict(),
            optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(),
            retrain=retrain_state,
        )
        bar.update(task, advance=1, status=f"loss {record['loss']:.4f} acc {record['accuracy']:.4f}")
