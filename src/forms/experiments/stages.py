"""One adapter per stage of the pipeline, with resume: a stage whose output file exists is not rerun.

The estimate and verdict stages, which read packaged data (architecture presets, verdict ranges,
packaged activity) that may change between two runs of a job, also record an :data:`INPUTS_KEY`
(the content digest of everything that determines their output) and rerun when it differs.

Each function calls the owning subsystem's library entry point and returns its typed result
(:class:`~forms.nn.train_result.TrainResult`, :class:`~forms.compress.result.CompressResult`,
:class:`~forms.sim.result.SimulationResult`, :class:`~forms.cost.estimate.Estimate`,
:class:`~forms.experiments.verdict.Verdict`); a finished stage's result is read back from the
``metrics.json`` / ``estimate.json`` / ``verdict.json`` it wrote.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from forms.errors import ConfigError
from forms.io import json_safe, write_json_atomic

if TYPE_CHECKING:
    from forms.compress.result import CompressResult
    from forms.cost.activity import SkipFractions
    from forms.cost.arch import ArchSpec
    from forms.cost.estimate import Estimate
    from forms.experiments.verdict_result import Verdict
    from forms.nn.train_result import TrainResult
    from forms.sim.result import SimulationResult

METRICS = "metrics.json"
ESTIMATE = "estimate.json"


class StageResult(Protocol):
    """A stage's typed result: :meth:`to_dict` is the file the stage writes."""

    def to_dict(self) -> dict[str, Any]:
        """The stage's output file as a dict."""
        ...


ResultT = TypeVar("ResultT", bound=StageResult)


INPUTS_KEY = "inputs_key"
"""Entry of a keyed stage's output file: the content digest of everything that determined the output."""


def load_done(out_dir: str | Path, name: str = METRICS, key: str | None = None) -> dict[str, Any] | None:
    """The output dict of a finished stage in ``out_dir`` (its ``name`` file), or None when not finished.

    A stage writes this file atomically as its last step, so its presence means the stage completed.
    With ``key``, only an output recorded under that :data:`INPUTS_KEY` counts as finished: one computed
    from other inputs (or written before the stage was keyed) is None, to be recomputed.
    """
    path = Path(out_dir) / name
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or (key is not None and data.get(INPUTS_KEY) != key):
        return None
    return data


def _read_current(done: dict[str, Any], read: Callable[[dict[str, Any]], ResultT]) -> ResultT | None:
    """``read(done)``, or None when ``read`` refuses the record as written by an older version of the
    project (a field missing or renamed), so that the stage recomputes it instead of failing."""
    try:
        return read(done)
    except (ConfigError, KeyError, TypeError, ValueError):
        return None


def run_once(
    out_dir: str | Path,
    run: Callable[[], ResultT],
    read: Callable[[dict[str, Any]], ResultT],
    name: str = METRICS,
    key: str | None = None,
) -> ResultT:
    """The finished output of ``out_dir`` read back by ``read``, else ``run()``'s (written as ``name``,
    with ``key`` as its :data:`INPUTS_KEY` when given: see :func:`load_done`). An output that ``read``
    refuses (written by an older version) is recomputed and replaced."""
    done = load_done(out_dir, name, key)
    reused = None if done is None else _read_current(done, read)
    if reused is not None:
        return reused
    result = run()
    if load_done(out_dir, name, key) is None or done is not None:
        record = result.to_dict() if key is None else {**result.to_dict(), INPUTS_KEY: key}
        write_json_atomic(record, Path(out_dir) / name)
    return result


def train_stage(out_dir: str | Path, progress: bool = True, **spec: Any) -> TrainResult:
    """Train a float model (:func:`forms.nn.train.train`), resuming an interrupted run; skip a done one."""
    from forms.nn.train import TrainSpec, train
    from forms.nn.train_result import TrainResult

    def run() -> TrainResult:
        train_spec = TrainSpec.from_dict(spec, source="train stage")
        return train(train_spec, out_dir, resume=True, progress=progress)

    return run_once(out_dir, run, TrainResult.from_dict)


def compress_stage(
    checkpoint: str | Path, out_dir: str | Path, progress: bool = False, **spec: Any
) -> CompressResult:
    """ADMM-compress a float checkpoint (:func:`forms.compress.pipeline.compress`), resumable."""
    from forms.compress.pipeline import compress
    from forms.compress.result import CompressResult
    from forms.compress.spec import CompressSpec

    def run() -> CompressResult:
        compress_spec = CompressSpec.from_dict(spec, source="compress stage")
        return compress(compress_spec, checkpoint, out_dir, resume=True, progress=progress)

    return run_once(out_dir, run, CompressResult.from_dict)


def simulate_stage(
    checkpoint: str | Path, out_dir: str | Path, progress: bool = False, **spec: Any
) -> SimulationResult:
    """Simulate a compressed checkpoint on crossbars (:func:`forms.sim.simulate.simulate`).

    Skipped when ``out_dir/metrics.json`` exists; an interrupted Monte Carlo run resumes its chips.
    """
    from forms.sim.result import SimulationResult
    from forms.sim.simulate import simulate
    from forms.sim.spec import SimSpec

    def run() -> SimulationResult:
        sim_spec = SimSpec.from_dict(spec, source="simulate stage")
        return simulate(sim_spec, checkpoint, out_dir, resume=True, device="cpu", progress=progress)

    return run_once(out_dir, run, SimulationResult.from_dict)


def default_input_shape(model: str) -> tuple[int, int, int]:
    """The input (C, H, W) a zoo model is usually costed at: MNIST for lenet5/mlp, ImageNet for the
    *-imagenet models and resnet50, CIFAR otherwise."""
    if model in ("lenet5", "mlp"):
        return (1, 28, 28)
    if model.endswith("-imagenet") or model == "resnet50":
        return (3, 224, 224)
    return (3, 32, 32)


def estimate_workload(
    arch: Any,
    model: str,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    checkpoint: str | Path | Mapping[str, Any] | None = None,
    activity: Mapping[str, Any] | SkipFractions | None = None,
    extra_assumptions: Sequence[str] = (),
) -> Estimate:
    """The estimate of ``model`` on ``arch`` (preset name, YAML path or ArchSpec) via forms.cost.estimate.

    ``checkpoint`` (a compressed checkpoint path or dict) shrinks each layer to its non-zero rows and
    columns; ``activity`` (see :func:`skip_figures`) supplies measured zero-skip figures. Without them
    the layers are costed dense and the arch's default skip fraction applies, which the estimate's
    assumptions say.
    """
    from forms.cost.arch import ArchSpec, load_arch
    from forms.cost.estimate import estimate
    from forms.cost.layer_shapes import Workload, apply_sparsity, layer_shapes
    from forms.intweights import integer_layers_from_checkpoint
    from forms.nn.models import MODEL_NAMES, build_model

    if model not in MODEL_NAMES:
        raise ConfigError(f"unknown model '{model}'; choose one of {', '.join(MODEL_NAMES)}")
    spec = arch if isinstance(arch, ArchSpec) else load_arch(str(arch))
    ckpt = _load_checkpoint(checkpoint) if checkpoint is not None else None
    if ckpt is not None:
        from forms.nn.checkpoint import model_from_checkpoint

        net = model_from_checkpoint(ckpt, str(checkpoint))
        kwargs = ckpt["model"]["kwargs"]
        shape: tuple[int, ...] = (kwargs["in_channels"], kwargs["image_size"], kwargs["image_size"])
    else:
        shape = tuple(input_shape) if input_shape else default_input_shape(model)
        classes = num_classes or (1000 if shape[-1] >= 224 else 10)
        net = build_model(model, in_channels=shape[0], num_classes=classes, image_size=shape[-1])
    shapes = layer_shapes(net, shape)
    notes = list(extra_assumptions)
    if ckpt is not None:
        shapes, sparsity_notes = apply_sparsity(shapes, integer_layers_from_checkpoint(ckpt, str(checkpoint)))
        notes += [
            "layers costed at the non-zero rows and columns of the compressed checkpoint",
            *sparsity_notes,
        ]
    return estimate(spec, Workload(shapes, model, tuple(notes)), skip_figures(activity, spec))


def skip_figures(activity: Mapping[str, Any] | SkipFractions | None, arch: ArchSpec) -> SkipFractions:
    """The zero-skip figures of ``arch``: a simulate metrics dict read under its rule, figures already
    chosen (e.g. :func:`forms.cost.measured_activity.measured_skip`) as they are, else its defaults."""
    from forms.cost.activity import SkipFractions, activity_from_metrics

    if activity is None or arch.zero_skip.rule == "none":
        return SkipFractions()
    if isinstance(activity, SkipFractions):
        return activity
    return SkipFractions(activity_from_metrics(activity, arch.zero_skip.rule, "simulation metrics"))


def _load_checkpoint(checkpoint: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(checkpoint, Mapping):
        return dict(checkpoint)
    from forms.nn.checkpoint import load_checkpoint

    return load_checkpoint(checkpoint)


def estimate_stage(out_dir: str | Path, arch: Any, model: str, **kwargs: Any) -> Estimate:
    """:func:`estimate_workload` written to ``out_dir/estimate.json``; skipped when that file holds the
    estimate of the same inputs (:func:`estimate_inputs_key`) and reads as one (an estimate.json of an
    older version, lacking a field, is recomputed)."""
    from forms.cost.arch import ArchSpec, load_arch
    from forms.cost.estimate import Estimate

    spec = arch if isinstance(arch, ArchSpec) else load_arch(str(arch))
    key = estimate_inputs_key(spec, model, **kwargs)
    return run_once(
        out_dir, lambda: estimate_workload(spec, model, **kwargs), Estimate.from_dict, ESTIMATE, key
    )


def estimate_inputs_key(arch: Any, model: str, **kwargs: Any) -> str:
    """The :data:`INPUTS_KEY` of :func:`estimate_stage` (same arguments): the content digest of the
    arch's spec, the model and ``kwargs`` of :func:`estimate_workload` (the checkpoint by its content,
    :func:`checkpoint_identity`; the activity by its figures), each as a JSON file records it, so a
    metrics dict read back from its file keys as the one that wrote it."""
    from forms.cost.arch import ArchSpec, load_arch
    from forms.nn.fingerprint import content_digest

    spec = arch if isinstance(arch, ArchSpec) else load_arch(str(arch))
    keyed = {**kwargs, "checkpoint": checkpoint_identity(kwargs.get("checkpoint"))}
    as_json = json.loads(json.dumps(json_safe(keyed), default=str))  # as a JSON file records them
    return content_digest(spec.model_dump(mode="json"), model, as_json)


def checkpoint_identity(checkpoint: str | Path | Mapping[str, Any] | None) -> str | None:
    """What a stage's key records of the checkpoint it reads: its content key
    (:func:`forms.nn.fingerprint.checkpoint_content_key`), not its path, so that a checkpoint rewritten
    in place (a compress stage rerun with other settings) makes the stages that read it rerun too."""
    if checkpoint is None:
        return None
    from forms.nn.fingerprint import checkpoint_content_key

    return checkpoint_content_key(checkpoint)


VERDICT = "verdict.json"


def verdict_stage(
    out_dir: str | Path,
    network: str,
    archs: Sequence[str],
    baseline: str,
    model: str | None = None,
    checkpoint: str | Path | None = None,
    activity: Mapping[str, Any] | SkipFractions | None = None,
    input_shape: Sequence[int] | None = None,
    dataset: str | None = None,
) -> Verdict:
    """The verdict on a network (:func:`forms.experiments.verdict.compute_verdict`), in ``verdict.json``.

    FORMS is the first polarized arch of ``archs``, the baselines ``baseline`` then the others. The
    layer shapes come from ``checkpoint`` (compacted to its non-zero rows and columns) or the zoo
    ``model`` (dense, at ``input_shape``); ``activity`` gives FORMS' skip figures (:func:`skip_figures`).
    The network's data set, which says whether a packaged measurement is its own, is ``dataset``, else
    the one ``checkpoint`` records (:func:`forms.cost.measured_activity.costed_dataset`).
    Skipped when that file holds the verdict of the same inputs (:func:`verdict_inputs_key`).
    """
    from forms.cost.layer_shapes import zoo_workload
    from forms.cost.measured_activity import costed_dataset
    from forms.experiments.verdict import Costing, compute_verdict, split_archs
    from forms.experiments.verdict_ranges import load_verdict_ranges
    from forms.experiments.verdict_result import Verdict

    forms, baselines = split_archs(archs, baseline)
    skip = skip_figures(activity, forms)
    key = verdict_inputs_key(network, archs, baseline, model, checkpoint, activity, input_shape, dataset)

    def run() -> Verdict:
        workload = zoo_workload(
            model, input_shape, checkpoint=None if checkpoint is None else str(checkpoint)
        )
        costing = Costing(workload, skip, dataset=costed_dataset(dataset, checkpoint))
        return compute_verdict(network, costing, forms, baselines, load_verdict_ranges())

    return run_once(out_dir, run, Verdict.from_dict, VERDICT, key)


def verdict_inputs_key(
    network: str,
    archs: Sequence[str],
    baseline: str,
    model: str | None = None,
    checkpoint: str | Path | None = None,
    activity: Mapping[str, Any] | SkipFractions | None = None,
    input_shape: Sequence[int] | None = None,
    dataset: str | None = None,
) -> str:
    """The :data:`INPUTS_KEY` of :func:`verdict_stage` (same arguments): the content digest of the
    network, the architectures' specs, the verdict ranges, FORMS' skip figures, the packaged activity
    files (the tornado's measured modes), the packaged accuracy files (the optima's accuracy floor),
    where the shapes come from (the model, the checkpoint's content, :func:`checkpoint_identity`, and
    the input shape) and the data set given (a checkpoint's own is part of its content)."""
    from forms.cost.measured_accuracy import packaged_accuracy_digest
    from forms.cost.measured_activity import packaged_activity_digest
    from forms.experiments.verdict import split_archs
    from forms.experiments.verdict_ranges import load_verdict_ranges
    from forms.nn.fingerprint import content_digest

    forms, baselines = split_archs(archs, baseline)
    return content_digest(
        network,
        [spec.model_dump(mode="json") for spec in (forms, *baselines)],
        load_verdict_ranges().model_dump(mode="json"),
        repr(skip_figures(activity, forms)),
        packaged_activity_digest(),
        packaged_accuracy_digest(),
        [
            model,
            checkpoint_identity(checkpoint),
            None if input_shape is None else list(input_shape),
            dataset,
        ],
    )
