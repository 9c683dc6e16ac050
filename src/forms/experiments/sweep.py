"""Design-space sweeps: a grid over architecture parameters, costed (and optionally simulated) per point.

``forms sweep --config sweep.yaml`` loads a :class:`SweepSpec`, expands its grid into points, builds
every point's architecture before any point runs (so an unknown key or an impossible combination is
refused up front, naming the key), then evaluates the points in parallel processes. Each finished
point is written atomically to ``out/points/<id>.json``; a rerun skips every point already there, so an
interrupted sweep keeps its finished points and resumes. At the end: ``results.csv``, Pareto plots and
a report (``report.html``/``report.md``/``summary.json``).

A point is: a cost-model estimate of the network on that hardware configuration (fast), plus, when
``simulate`` is set, the bit-accurate accuracy of a given compressed checkpoint on that configuration
(whose zero-skip statistics then also feed the estimate).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forms.experiments.sweep_plan import plan
from forms.experiments.sweep_report import sweep_report
from forms.experiments.sweep_spec import CSV_FIELDS, RESULT_FIELDS, Point, SweepSpec
from forms.io import write_csv_atomic, write_json_atomic, write_text_atomic
from forms.report.writers import ReportFiles, write_report

if TYPE_CHECKING:
    from forms.sim.result import SimulationResult


def _point_path(out: Path, point: Point) -> Path:
    return out / "points" / f"{point.id}.json"


def sweep_inputs(spec: SweepSpec) -> dict[str, Any]:
    """Everything besides a point's own values that determines its figures: the workload and simulation
    settings, and the CONTENT of the files they name (the simulated checkpoint, the activity file), so a
    point recorded for other inputs is never reused."""
    from forms.errors import ConfigError
    from forms.nn.fingerprint import checkpoint_content_key

    inputs: dict[str, Any] = {
        "input_shape": spec.input_shape,
        "simulate": spec.simulate.model_dump(mode="json") if spec.simulate else None,
        "activity": spec.activity,
    }
    if spec.simulate is not None:
        inputs["checkpoint_content"] = checkpoint_content_key(spec.simulate.checkpoint)
    if spec.activity is not None:
        activity = Path(spec.activity)
        if not activity.is_file():
            raise ConfigError(f"sweep key 'activity': {activity} is not a file; give a simulate metrics.json")
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


def run_point(
    point_data: dict[str, Any],
    arch_data: dict[str, Any],
    spec_data: dict[str, Any],
    inputs: dict[str, Any],
    out: str,
) -> dict[str, Any]:
    """Evaluate one point (estimate, and simulation when asked) and write its JSON atomically.

    Top-level and plain-dict arguments so that it runs in a spawned worker process.
    """
    import torch

    from forms.cost.arch import ArchSpec
    from forms.experiments.stages import estimate_workload, simulate_stage

    torch.set_num_threads(1)
    start = time.perf_counter()
    point = Point(**point_data)
    arch = ArchSpec.from_dict(arch_data, source=f"sweep point {point.id}")
    spec = SweepSpec.from_dict(spec_data, source="sweep spec")
    metrics: SimulationResult | None = None
    activity: dict[str, Any] | None = None
    if spec.simulate is not None:
        sim = spec.simulate
        metrics = simulate_stage(
            sim.checkpoint,
            Path(out) / "points" / f"{point.id}.sim",
            encoding=point.encoding,
            rows=point.crossbar_size,
            cols=point.crossbar_size,
            cell_bits=point.cell_bits,
            fragment_size=point.fragment_size if arch.encoding.signs_per_fragment else None,
            adc_bits=point.adc_bits,
            flipped=arch.encoding.supports_flipping and arch.adc.flip,
            limit=sim.limit,
            batch_size=sim.batch_size,
            devices={"variation": sim.variation},
            runs=sim.runs,
            seed=sim.seed,
        )
        activity = metrics.to_dict()
    elif spec.activity is not None:
        activity = json.loads(Path(spec.activity).read_text())
    est = estimate_workload(
        arch,
        point.model,
        input_shape=spec.input_shape,
        checkpoint=spec.simulate.checkpoint if spec.simulate else None,
        activity=activity,
    )
    row: dict[str, Any] = {"id": point.id, **point.to_dict()}
    row.update({key: getattr(est, key) for key in RESULT_FIELDS})
    row["accuracy"] = metrics.accuracy_mean if metrics else None
    row["adc_clip_rate"] = metrics.clip_rate if metrics else None
    estimate = est.to_dict()
    del estimate["layers"]  # per-layer rows stay out of the sweep record (the estimate is recomputable)
    record = {
        "point": point.to_dict(),
        "arch": arch_data,
        "inputs": inputs,
        "row": row,
        "estimate": estimate,
        "simulate": metrics.to_dict() if metrics else None,
        "seconds": time.perf_counter() - start,
    }
    write_json_atomic(record, _point_path(Path(out), point))
    return record


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
    spec_data = spec.model_dump(mode="json")
    with make_progress(enabled=progress) as bar:
        task = bar.add_task(f"sweep {spec.name}", total=len(planned), completed=reused, status="")

        def finish(record: dict[str, Any]) -> None:
            records[record["row"]["id"]] = record
            bar.update(task, advance=1, status=record["row"]["id"])
            if on_point is not None:
                on_point(record)

        if workers <= 1 or len(todo) <= 1:
            for point, arch in todo:
                finish(run_point(point.to_dict(), arch.model_dump(mode="json"), spec_data, inputs, str(out)))
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=context) as pool:
                pending: set[Future[dict[str, Any]]] = {
                    pool.submit(
                        run_point, p.to_dict(), a.model_dump(mode="json"), spec_data, inputs, str(out)
                    )
                    for p, a in todo
                }
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        finish(future.result())
    rows = [records[point.id]["row"] for point, _ in planned]
    write_results_csv(rows, out / "results.csv")
    report = write_report(sweep_report(spec, [records[p.id] for p, _ in planned]), out)
    return SweepResult(out, len(planned), len(todo), reused, rows, report)


def write_results_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """results.csv: one row per point, its settings then its figures (empty when not measured)."""
    write_csv_atomic(CSV_FIELDS, rows, path)


__all__ = ["SweepResult", "finished_point", "run_point", "run_sweep", "sweep_inputs", "write_results_csv"]
