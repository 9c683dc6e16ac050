"""Design-space sweeps: a grid over architecture parameters, costed (and optionally simulated) per point.

``forms sweep --config sweep.yaml`` loads a :class:`SweepSpec`, expands its grid into points, builds
every point's architecture before any point runs (so an unknown key or an impossible combination is
refused up front, naming the key), then evaluates the points in parallel processes, in batches (each
model's layer shapes are built once per process). Each finished point is written atomically to
``out/points/<id>.json``; a rerun skips every point already there, so an interrupted sweep keeps its
finished points and resumes (Ctrl-C cancels the queued batches). At the end: ``results.csv``, Pareto
plots and a report (``report.html``/``report.md``/``summary.json``).

A point is: a cost-model estimate of the network on that hardware configuration (fast), plus, when
``simulate`` is set, the bit-accurate accuracy of a given compressed checkpoint on that configuration
(whose zero-skip statistics then also feed the estimate).
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forms.experiments.sweep_plan import plan
from forms.experiments.sweep_report import sweep_report
from forms.experiments.sweep_spec import CSV_FIELDS, RESULT_FIELDS, Point, SweepSimSpec, SweepSpec, csv_fields
from forms.io import json_safe, write_csv_atomic, write_text_atomic
from forms.report.writers import ReportFiles, write_report

if TYPE_CHECKING:
    from forms.cost.activity import SkipFractions
    from forms.cost.arch import ArchSpec
    from forms.cost.estimate import Estimate
    from forms.cost.layer_shapes import Workload
    from forms.sim.result import SimulationResult


def _point_path(out: Path, point: Point) -> Path:
    return out / "points" / f"{point.id}.json"


def sweep_inputs(spec: SweepSpec) -> dict[str, Any]:
    """Everything besides a point's own values that determines its figures: the workload and simulation
    settings, and the CONTENT of the files they name (the simulated checkpoint, the activity file), so a
    point recorded for other inputs is never reused."""
    from forms.cost.measured_activity import packaged_activity_digest, parse_measured_option
    from forms.errors import ConfigError
    from forms.nn.fingerprint import checkpoint_content_key

    inputs: dict[str, Any] = {
        "input_shape": spec.input_shape,
        "simulate": spec.simulate.model_dump(mode="json") if spec.simulate else None,
        "activity": spec.activity,
    }
    if spec.simulate is not None:
        inputs["checkpoint_content"] = checkpoint_content_key(spec.simulate.checkpoint)
    if spec.activity is not None and parse_measured_option(spec.activity) is not None:
        inputs["activity_content"] = packaged_activity_digest()
    elif spec.activity is not None:
        activity = Path(spec.activity)
        if not activity.is_file():
            raise ConfigError(
                f"sweep key 'activity': {activity} is not a file; give a simulate metrics.json or "
                "measured[:mode] (the packaged measurement of each point's model)"
            )
        inputs["activity_content"] = hashlib.sha256(activity.read_bytes()).hexdigest()
    return inputs


def finished_point(
    out: Path, point: Point, arch_data: dict[str, Any], inputs: dict[str, Any]
) -> dict[str, Any] | None:
    """The stored record of ``point`` when it finished earlier for the same architecture and inputs."""
    path = _point_path(out, point)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    same = isinstance(record, dict) and record.get("point") == point.to_dict()
    return record if same and record.get("arch") == arch_data and record.get("inputs") == inputs else None


@lru_cache(maxsize=16)
def _zoo_workload(model: str, input_shape: tuple[int, ...] | None) -> Workload:
    """A zoo model's layer shapes, built once per process (every point of a model shares them)."""
    from forms.cost.layer_shapes import zoo_workload

    return zoo_workload(model, input_shape)


@lru_cache(maxsize=4)
def _activity_file(path: str) -> dict[str, Any]:
    """A simulate metrics.json, read once per process."""
    return dict(json.loads(Path(path).read_text()))


def _point_estimate(
    arch: ArchSpec, point: Point, spec: SweepSpec, activity: dict[str, Any] | None
) -> Estimate:
    """The estimate of ``point``: a zoo model's cached shapes, or the simulated checkpoint compacted."""
    from forms.cost.estimate import estimate
    from forms.experiments.stages import estimate_workload

    if spec.simulate is not None:
        return estimate_workload(
            arch,
            point.model,
            input_shape=spec.input_shape,
            checkpoint=spec.simulate.checkpoint,
            activity=activity,
        )
    shape = tuple(spec.input_shape) if spec.input_shape else None
    return estimate(arch, _zoo_workload(point.model, shape), _point_skip(arch, point, spec, activity))


def _point_skip(
    arch: ArchSpec, point: Point, spec: SweepSpec, activity: dict[str, Any] | None
) -> SkipFractions:
    """Skip figures of a zoo-model point: the packaged measurement of its model (``activity:
    measured[:mode]``), a simulate metrics.json, or the arch's defaults."""
    from forms.cost.activity import SkipFractions, activity_from_metrics
    from forms.cost.measured_activity import measured_skip, parse_measured_option

    rule = arch.zero_skip.rule
    if rule == "none":
        return SkipFractions()
    mode = parse_measured_option(spec.activity) if spec.activity else None
    if mode is not None:
        return measured_skip(point.model, mode, rule)
    return SkipFractions(
        None if activity is None else activity_from_metrics(activity, rule, "simulation metrics")
    )


def _simulate_point(arch: ArchSpec, point: Point, sim: SweepSimSpec, out: Path) -> SimulationResult:
    """The bit-accurate simulation of ``sim.checkpoint`` on ``point``'s hardware."""
    from forms.experiments.stages import simulate_stage

    return simulate_stage(
        sim.checkpoint,
        out / "points" / f"{point.id}.sim",
        encoding=point.encoding,
        rows=point.crossbar_size,
        cols=point.crossbar_size,
        cell_bits=point.cell_bits,
        fragment_size=point.fragment_size if arch.encoding.signs_per_fragment else None,
        adc_bits=point.adc_bits,
        flipped=arch.adc.flip,
        limit=sim.limit,
        batch_size=sim.batch_size,
        devices={"variation": sim.variation},
        runs=sim.runs,
        seed=sim.seed,
    )


@dataclass(frozen=True)
class SweepJob:
    """What every point of one sweep shares (plain data, so that it reaches spawned workers)."""

    spec_data: dict[str, Any]
    inputs: dict[str, Any]
    """:func:`sweep_inputs` of the sweep."""
    out: str


def _evaluate(point: Point, arch_data: dict[str, Any], spec: SweepSpec, job: SweepJob) -> dict[str, Any]:
    """Evaluate one point (estimate, and simulation when asked) and write its JSON atomically."""
    from forms.cost.arch import ArchSpec
    from forms.cost.measured_activity import parse_measured_option

    start = time.perf_counter()
    arch = ArchSpec.from_dict(arch_data, source=f"sweep point {point.id}")
    metrics = _simulate_point(arch, point, spec.simulate, Path(job.out)) if spec.simulate else None
    from_file = spec.activity is not None and parse_measured_option(spec.activity) is None
    activity = metrics.to_dict() if metrics else (_activity_file(spec.activity) if from_file else None)
    est = _point_estimate(arch, point, spec, activity)
    row: dict[str, Any] = point.row()
    row.update({key: getattr(est, key) for key in RESULT_FIELDS})
    row["accuracy"] = metrics.accuracy_mean if metrics else None
    row["adc_clip_rate"] = metrics.clip_rate if metrics else None
    estimate = est.to_dict(with_layers=False)  # per-layer rows stay out (the estimate is recomputable)
    record = {
        "point": point.to_dict(),
        "arch": arch_data,
        "inputs": job.inputs,
        "row": row,
        "estimate": estimate,
        "simulate": metrics.to_dict() if metrics else None,
        "seconds": time.perf_counter() - start,
    }
    # Compact JSON (C encoder) and no fsync: indenting or syncing thousands of point records would
    # dominate a fast sweep; a record torn by a power loss fails finished_point's check and is recomputed.
    write_text_atomic(_point_json(record), _point_path(Path(job.out), point), durable=False)
    return record


def _point_json(record: dict[str, Any]) -> str:
    """``record`` as one line of JSON; NaN/inf become null (json_safe) only when the record holds any."""
    try:
        text = json.dumps(record, allow_nan=False)
    except (ValueError, TypeError):
        text = json.dumps(json_safe(record), allow_nan=False)
    return text + "\n"


def run_points(batch: Sequence[tuple[dict[str, Any], dict[str, Any]]], job: SweepJob) -> list[dict[str, Any]]:
    """Evaluate a batch of (point, architecture) plain dicts; each point's JSON is written as it finishes.

    Top-level, with plain-data arguments, so that it runs in a spawned worker process; the sweep spec
    is read once per batch and each model's layer shapes once per process.
    """
    spec = SweepSpec.from_dict(job.spec_data, source="sweep spec")
    return [_evaluate(Point.from_dict(point), arch, spec, job) for point, arch in batch]


def _init_worker() -> None:
    """A worker computes on one thread and leaves Ctrl-C to the parent, which cancels queued points."""
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)


def _batches(
    todo: Sequence[tuple[Point, Any]], workers: int
) -> list[list[tuple[dict[str, Any], dict[str, Any]]]]:
    """``todo`` as plain dicts in batches: about 8 per worker, at most 64 points each."""
    size = max(1, min(64, math.ceil(len(todo) / (8 * workers))))
    plain = [(p.to_dict(), a.model_dump(mode="json")) for p, a in todo]
    return [plain[i : i + size] for i in range(0, len(plain), size)]


def _run_parallel(
    batches: Sequence[list[tuple[dict[str, Any], dict[str, Any]]]],
    job: SweepJob,
    workers: int,
    finish: Callable[[dict[str, Any]], None],
) -> None:
    """Evaluate ``batches`` in ``workers`` spawned processes; Ctrl-C cancels the queued batches.

    The batches already running finish (their points are written, so a rerun resumes after them).
    """
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(batches)), mp_context=context, initializer=_init_worker
    )
    try:
        pending: set[Future[list[dict[str, Any]]]] = {pool.submit(run_points, b, job) for b in batches}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                for record in future.result():
                    finish(record)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class SweepResult:
    """What :func:`run_sweep` produced."""

    out_dir: Path
    points: int
    computed: int
    reused: int
    rows: list[dict[str, Any]]
    report: ReportFiles

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form."""
        return {
            "out_dir": str(self.out_dir),
            "points": self.points,
            "computed": self.computed,
            "reused": self.reused,
            "report": self.report.to_dict(),
        }


def run_sweep(
    spec: SweepSpec,
    out_dir: str | Path,
    jobs: int | None = None,
    progress: bool = True,
    on_point: Callable[[dict[str, Any]], None] | None = None,
) -> SweepResult:
    """Run every point of ``spec`` not finished yet in ``out_dir``; write results.csv, plots and a report.

    ``jobs`` (default ``spec.jobs``) worker processes (spawned) evaluate points in parallel; 1 runs them
    in this process. ``on_point`` is called with each newly finished record (in this process).
    """
    from forms.nn.progress import make_progress

    out = Path(out_dir)
    planned = plan(spec)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(spec.to_yaml(), out / "sweep.yaml")
    records: dict[str, dict[str, Any]] = {}
    todo = []
    inputs = sweep_inputs(spec)
    for point, arch in planned:
        done = finished_point(out, point, arch.model_dump(mode="json"), inputs)
        if done is not None:
            records[point.id] = done
        else:
            todo.append((point, arch))
    reused = len(records)
    workers = jobs or spec.jobs
    with make_progress(enabled=progress) as bar:
        task = bar.add_task(f"sweep {spec.name}", total=len(planned), completed=reused, status="")

        def finish(record: dict[str, Any]) -> None:
            records[record["row"]["id"]] = record
            bar.update(task, advance=1, status=record["row"]["id"])
            if on_point is not None:
                on_point(record)

        job = SweepJob(spec.model_dump(mode="json"), inputs, str(out))
        batches = _batches(todo, workers)
        if workers <= 1 or len(batches) <= 1:
            for point, arch in todo:  # one at a time, so that an interrupt keeps exactly the finished ones
                finish(_evaluate(point, arch.model_dump(mode="json"), spec, job))
        else:
            _run_parallel(batches, job, workers, finish)
    rows = [records[point.id]["row"] for point, _ in planned]
    write_results_csv(rows, out / "results.csv", csv_fields(spec))
    report = write_report(sweep_report(spec, [records[p.id] for p, _ in planned]), out)
    return SweepResult(out, len(planned), len(todo), reused, rows, report)


def write_results_csv(rows: Sequence[dict[str, Any]], path: Path, fields: Sequence[str] = CSV_FIELDS) -> None:
    """results.csv: one row per point, its settings then its figures (empty when not measured)."""
    write_csv_atomic(fields, rows, path)


__all__ = [
    "SweepJob",
    "SweepResult",
    "finished_point",
    "run_points",
    "run_sweep",
    "sweep_inputs",
    "write_results_csv",
]
