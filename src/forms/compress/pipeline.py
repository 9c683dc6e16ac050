"""Compression of a checkpoint (``forms compress``): :func:`compress`, float -> compressed checkpoint.

A thin wrapper over the in-memory core (:func:`forms.compress.core.run_phases`, which
:func:`forms.compress` on a user's model also runs): it adds the checkpoint, the datasets, the run
folder and resuming. Stages (:mod:`forms.compress.phases`): evaluate the float model; ADMM rounds;
hard projection; masked retraining (with ``validation_images`` the epoch of best accuracy on held-out
training images is kept); bake (integer weights, plain weights = scale * integer). Writes,
atomically, ``out/checkpoint.pt`` (stage "compressed") and ``out/metrics.json`` (:class:`CompressResult`).

Resumable (:mod:`forms.compress.state`): after every ADMM round and every retraining epoch the whole
state is saved to ``out/compress_state.pt``; ``resume=True`` continues from it, and returns the
finished result at once when the run is complete. Every input is checked (checkpoint, model, data,
spec, the run folder) before anything is written; a float checkpoint with NaN or infinite weights is
refused, and a loss or weight that becomes NaN or infinite stops the run, naming the round or epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from forms.compress.admm import ADMMState, init_state
from forms.compress.constraints import layer_constraints
from forms.compress.core import PhaseResults, run_phases
from forms.compress.distill import distillation_criterion
from forms.compress.phases import Criterion, PhaseContext, accuracy, training_loader
from forms.compress.projections import LayerConstraint
from forms.compress.result import CHECKPOINT_NAME, METRICS_NAME, CompressResult, build_result
from forms.compress.spec import CompressSpec
from forms.compress.state import (
    STATE_NAME,
    RunPaths,
    StateWriter,
    check_finished_run,
    compressed_checkpoint_in,
    load_saved_state,
    read_finished_result,
    run_config,
)
from forms.compress.validation_split import ValidationPlan, resolve_validation
from forms.errors import CheckpointError, ConfigError
from forms.intweights import IntegerLayer
from forms.io import remove_orphan_temp_files, write_json_atomic
from forms.nn import distributed as D
from forms.nn.checkpoint import (
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from forms.nn.data import background_value, load_dataset
from forms.nn.epoch import non_finite_tensor, place_model
from forms.nn.fingerprint import fingerprint
from forms.nn.holdout import recorded_holdout, split_train
from forms.nn.progress import make_progress


@dataclass(frozen=True)
class DataSets:
    """The training, held-out validation (None without a hold-out) and test sets of a run."""

    train: Any
    validation: Any | None
    test: Any
    plan: ValidationPlan
    """The held-out images (the run's spec with them resolved), and whether the float model saw them."""


@dataclass(frozen=True)
class CompressJob:
    """The checked inputs of one compression run: settings, float checkpoint, model, data, files."""

    spec: CompressSpec
    checkpoint: str
    src: dict[str, Any]
    source_fp: str
    model: nn.Module
    constraints: list[LayerConstraint]
    data: DataSets
    device: torch.device
    paths: RunPaths


def load_data(src: dict[str, Any], spec: CompressSpec) -> DataSets:
    """The training, validation and test sets of the checkpoint ``src``'s dataset under ``spec``.

    The validation images follow the float model's recorded hold-out
    (:func:`forms.compress.validation_split.resolve_validation`, which refuses a hold-out the float
    model trained on); ``plan.spec`` is ``spec`` with them resolved.
    """
    data = src.get("data") or {}
    if "dataset" not in data:
        raise CheckpointError(
            "the checkpoint has no 'data' record naming its dataset; retrain it with forms train"
        )
    pad_to, channels = data.get("pad_to"), data.get("channels")
    full_train = load_dataset(data["dataset"], "train", spec.data_dir, pad_to, channels)
    test_set = load_dataset(data["dataset"], "test", spec.data_dir, pad_to, channels)
    if spec.test_subset is not None:
        test_set = torch.utils.data.TensorDataset(*(t[: spec.test_subset] for t in test_set.tensors))
    plan = resolve_validation(spec, recorded_holdout(src), len(full_train))
    train_set, val_set = split_train(full_train, plan.train_length, plan.holdout)
    return DataSets(train_set, val_set, test_set, plan)


def open_job(spec: CompressSpec, checkpoint: str | Path, out_dir: str | Path) -> CompressJob:
    """Load and check every input of a run (nothing is written): process group, checkpoint, model, data."""
    device = D.init_from_env(spec.device)
    world = D.world_size()
    if spec.schedule.batch_size % world:
        raise ConfigError(f"batch size {spec.schedule.batch_size} must be divisible by the {world} processes")
    src = load_checkpoint(checkpoint)
    if src["stage"] != "float":
        raise CheckpointError(
            f"{checkpoint} is a '{src['stage']}' checkpoint; compress the float checkpoint it came from"
        )
    model = place_model(model_from_checkpoint(src, source=str(checkpoint)), device, spec.channels_last)
    bad = non_finite_tensor(src["state_dict"].items())
    if bad is not None:
        raise CheckpointError(
            f"{checkpoint}: its weight {bad} holds NaN or infinite values (its training diverged); "
            "compress a checkpoint of a run that trained with finite losses"
        )
    constraints = layer_constraints(model, spec)
    data = load_data(src, spec)
    paths = RunPaths.under(out_dir)
    source_fp = fingerprint(src["state_dict"])
    return CompressJob(
        data.plan.spec, str(checkpoint), src, source_fp, model, constraints, data, device, paths
    )


def finished_result(job: CompressJob, resume: bool) -> CompressResult | None:
    """The result of a finished run in ``job``'s directory (with ``resume``), or None when there is none.

    Raises :class:`ConfigError` without ``resume`` or when the directory holds something a run would
    replace (:func:`forms.compress.state.compressed_checkpoint_in`), and :class:`CheckpointError`
    when the run was made from another float model or with other settings, or its metrics are damaged.
    """
    paths = job.paths
    done = compressed_checkpoint_in(paths, job.checkpoint)
    if done is None or not paths.metrics.is_file() or paths.state.exists():
        return None
    if not resume:
        raise ConfigError(
            f"{paths.out} already holds a compressed model; pass --resume to reuse it or choose another --out"
        )
    check_finished_run(done, paths, job.spec, job.source_fp)
    return read_finished_result(paths)


def compress(
    spec: CompressSpec,
    checkpoint: str | Path,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
) -> CompressResult:
    """Compress the float model in ``checkpoint`` under ``spec``; write ``out_dir``; return the result.

    Raises :class:`CheckpointError` (missing/corrupt/already compressed checkpoint, a resume state of
    another model), :class:`ConfigError` (bad settings, an existing run without ``resume``),
    :class:`forms.errors.UnsupportedLayerError` (no Conv2d/Linear) or :class:`forms.errors.DataError`
    before writing anything. Under torchrun the W-step and retraining run data-parallel; rank 0
    writes the files.
    """
    job = open_job(spec, checkpoint, out_dir)
    spec = job.spec  # the validation hold-out resolved
    finished = finished_result(job, resume)
    if finished is not None:
        return finished
    saved = load_saved_state(job.paths, spec, job.src["model"], job.source_fp, resume)
    if D.is_main():
        remove_orphan_temp_files(job.paths.out, (CHECKPOINT_NAME, METRICS_NAME, STATE_NAME))
    loader = training_loader(job.data.train, spec, fill=_background(job.src))
    before = saved["accuracy_before"] if saved else accuracy(job.model, job.data.test, spec, job.device)
    admm = ADMMState.from_state(saved["admm"]) if saved else init_state(job.model, job.constraints, spec)
    writer = StateWriter(job.paths.state, spec, job.src["model"], job.source_fp, before, admm)
    with make_progress(progress and D.is_main()) as bar:
        ctx = PhaseContext(
            model=job.model,
            constraints=job.constraints,
            spec=spec,
            loader=loader,
            test_set=job.data.test,
            val_set=job.data.validation,
            device=job.device,
            bar=bar,
            save=writer.save,
            validation_seen_by_float_model=job.data.plan.seen_by_float_model,
        )
        phases = run_phases(ctx, admm, before, saved, _distillation(job))
    return _finish(job, admm, phases, before)


def _background(src: dict[str, Any]) -> tuple[float, ...]:
    """The normalised black pixel of the checkpoint's data: the fill of shifted images."""
    data = src["data"]
    return background_value(data["dataset"], data.get("channels"))


def _distillation(job: CompressJob) -> Criterion | None:
    """The retraining loss distilling the float model, or None (cross-entropy) without distillation."""
    sched = job.spec.schedule
    if sched.distill_weight <= 0:
        return None
    teacher = place_model(
        model_from_checkpoint(job.src, source=job.checkpoint), job.device, job.spec.channels_last
    )
    return distillation_criterion(teacher, sched.distill_weight, sched.distill_temperature)


def _finish(
    job: CompressJob, admm: ADMMState, phases: PhaseResults, accuracy_before: float
) -> CompressResult:
    """Write the baked model's checkpoint and its metrics (rank 0); the run's result."""
    outcome = phases.outcome(
        model=job.src["model"]["name"],
        dataset=job.src["data"]["dataset"],
        source=job.checkpoint,
        world_size=D.world_size(),
        accuracy_before=accuracy_before,
    )
    result = build_result(job.spec, job.constraints, phases.layers, outcome)
    if D.is_main():
        save_checkpoint(_compressed_checkpoint(job, phases.layers, admm), job.paths.checkpoint)
        write_json_atomic(result.to_dict(), job.paths.metrics)
        job.paths.state.unlink(missing_ok=True)
    D.barrier()
    return result


def _compressed_checkpoint(job: CompressJob, layers: list[IntegerLayer], admm: ADMMState) -> dict[str, Any]:
    """The stage-"compressed" checkpoint of the baked model."""
    src, spec = job.src, job.spec
    return {
        "stage": "compressed",
        "model": src["model"],
        "state_dict": job.model.state_dict(),
        "optimizer": None,
        "epoch": src.get("epoch"),
        "seed": spec.seed,
        "config": src.get("config", {}),
        "data": src["data"],
        "integer_layers": [layer.state() for layer in layers],
        "compression": run_config(spec),
        "compression_spec": spec.model_dump(mode="json"),
        "source_fingerprint": job.source_fp,
        "admm": admm.state(),
    }
