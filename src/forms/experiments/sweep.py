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

import itertools
import json
import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from forms.config import Spec
from forms.encoding import Encoding, lossless_adc_bits
from forms.errors import ConfigError
from forms.io import write_csv_atomic, write_json_atomic, write_text_atomic
from forms.report import plots
from forms.report.model import Figure, Report, Section, Table, join_path, label, ref
from forms.report.sections import assumptions_section
from forms.report.summary import build_summary
from forms.report.writers import ReportFiles, write_report


class GridSpec(Spec):
    """Values to sweep; every combination is one point. An omitted axis keeps each preset's value."""

    arch: list[str] = Field(
        default_factory=lambda: ["forms-8"],
        min_length=1,
        description="Base architectures (preset names or YAML files); the other axes override them.",
    )
    model: list[str] = Field(default_factory=lambda: ["lenet5"], min_length=1, description="Zoo models.")
    encoding: list[Encoding] | None = Field(None, min_length=1, description="Sign encodings to impose.")
    fragment_size: list[int] | None = Field(
        None, min_length=1, description="R for polarized points (offset/differential use the whole column)."
    )
    adc_bits: list[int | None] | None = Field(
        None, min_length=1, description="ADC resolutions (null = lossless for the point)."
    )
    cell_bits: list[int] | None = Field(None, min_length=1, description="Bits per ReRAM cell.")
    crossbar_size: list[int] | None = Field(
        None, min_length=1, description="Square crossbar side (rows = cols)."
    )
    weight_bits: list[int] | None = Field(None, min_length=1, description="Weight magnitude bits.")


class SweepSimSpec(Spec):
    """Simulate a compressed checkpoint at every point (accuracy, ADC clipping, measured zero-skip)."""

    checkpoint: str = Field(description="Compressed checkpoint (from `forms compress`) of the swept model.")
    limit: int | None = Field(1000, ge=1, description="Test images per point (null = the whole test set).")
    variation: float = Field(0.0, ge=0, le=2, description="Log-normal conductance variation sigma.")
    runs: int = Field(1, ge=1, description="Monte Carlo chips per point (with variation).")
    seed: int = Field(0, description="Seed of every random draw.")
    batch_size: int = Field(256, ge=1, description="Images per simulation batch.")


class SweepSpec(Spec):
    """A whole sweep: the grid, the workload, and what each point evaluates."""

    name: str = Field("sweep", description="Title of the sweep's report.")
    grid: GridSpec = Field(description="The axes and their values.")
    input_shape: list[int] | None = Field(
        None, min_length=3, max_length=3, description="Input (C, H, W); null = each model's usual shape."
    )
    allow_clipping: bool = Field(
        False, description="Accept ADCs narrower than lossless (otherwise such points are refused)."
    )
    activity: str | None = Field(
        None, description="A simulate metrics.json whose zero-skip counts give the skip fractions."
    )
    simulate: SweepSimSpec | None = Field(None, description="Also simulate a checkpoint at every point.")
    jobs: int = Field(1, ge=1, le=256, description="Points evaluated in parallel processes.")


@dataclass(frozen=True)
class Point:
    """One resolved design point (every axis has its value)."""

    arch: str
    model: str
    encoding: str
    fragment_size: int
    adc_bits: int
    cell_bits: int
    crossbar_size: int
    weight_bits: int

    @property
    def id(self) -> str:
        """A readable, file-name-safe, unique id."""
        base = Path(self.arch).stem if self.arch.endswith((".yaml", ".yml")) else self.arch
        return (
            f"{base}_{self.model}_{self.encoding}_R{self.fragment_size}_adc{self.adc_bits}"
            f"_c{self.cell_bits}_x{self.crossbar_size}_w{self.weight_bits}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form."""
        return asdict(self)


RESULT_FIELDS: tuple[str, ...] = (
    "chip_area_mm2",
    "chip_power_w",
    "chips",
    "fps",
    "latency_s",
    "energy_per_inference_j",
    "gops_per_s_mm2",
    "gops_per_w",
    "crossbars_needed",
)
"""estimate.json fields copied into each result row."""


def _arch_for(base: Any, values: dict[str, Any], allow_clipping: bool) -> Any:
    """The base ArchSpec with the point's overrides applied (validated)."""
    data = base.model_dump()
    encoding = Encoding(values.get("encoding", data["encoding"]))
    data["encoding"] = encoding
    xb = data["crossbar"]
    if values.get("crossbar_size") is not None:
        xb["rows"] = xb["cols"] = values["crossbar_size"]
    if values.get("cell_bits") is not None:
        xb["cell_bits"] = values["cell_bits"]
    if encoding.signs_per_fragment:
        if values.get("fragment_size") is not None:
            xb["fragment_size"] = values["fragment_size"]
        elif xb["rows"] % xb["fragment_size"]:
            xb["fragment_size"] = xb["rows"]
    else:
        xb["fragment_size"] = xb["rows"]  # a whole column converts at once
        data["adc"]["flip"] = data["adc"]["flip"] and encoding.supports_flipping
    if values.get("weight_bits") is not None:
        data["weight_bits"] = values["weight_bits"]
    if "adc_bits" in values:
        data["adc"]["bits"] = values["adc_bits"]
    if allow_clipping:
        data["adc"]["allow_clipping"] = True
    data["name"] = f"{data['name']}*" if values else data["name"]
    return type(base).from_dict(data, source="sweep point")


def _impossible(key: str, value: Any, point: dict[str, Any], why: str) -> ConfigError:
    shown = ", ".join(f"{k}={v}" for k, v in point.items())
    return ConfigError(f"sweep grid key '{key}' = {value!r} is impossible with ({shown}): {why}")


def _check_point(values: dict[str, Any], base: Any, allow_clipping: bool) -> None:
    """Name the grid key of an impossible combination before the ArchSpec's own (generic) message."""
    rows = values.get("crossbar_size", base.crossbar.rows)
    encoding = Encoding(values.get("encoding", base.encoding))
    cell = values.get("cell_bits", base.crossbar.cell_bits)
    r = values.get("fragment_size")
    if encoding.signs_per_fragment and r is not None and (r < 1 or rows % r):
        why = f"R = {r} must divide the crossbar rows ({rows})"
        if "crossbar_size" in values:
            raise ConfigError(
                f"sweep grid keys 'fragment_size' = {r} and 'crossbar_size' = {rows} are incompatible: {why}"
            )
        raise _impossible("fragment_size", r, values, why)
    weight_bits = values.get("weight_bits", base.weight_bits)
    try:
        encoding.check_widths(weight_bits, cell)
    except ConfigError as exc:
        key = "cell_bits" if "cell_bits" in values else "weight_bits"
        raise _impossible(key, values.get(key, cell), values, str(exc)) from None
    bits = values.get("adc_bits")
    if bits is not None:
        group = encoding.rows_per_conversion(rows, r or base.crossbar.fragment_size)
        flip = base.adc.flip and encoding.supports_flipping
        lossless = lossless_adc_bits(group, cell, base.dac_bits, flip)
        if bits < 1:
            raise _impossible("adc_bits", bits, values, "an ADC needs at least 1 bit")
        if bits < lossless and not allow_clipping:
            raise _impossible(
                "adc_bits",
                bits,
                values,
                f"below the lossless {lossless} bits for groups of {group} rows; set allow_clipping: true "
                "to measure the clipping instead",
            )


AXES: tuple[str, ...] = ("encoding", "fragment_size", "adc_bits", "cell_bits", "crossbar_size", "weight_bits")


def plan(spec: SweepSpec) -> list[tuple[Point, Any]]:
    """Expand the grid into (point, ArchSpec) pairs, validating every one; duplicates are dropped.

    Raises :class:`ConfigError` naming the grid key of the first impossible combination (before any
    point runs). Offset/differential points ignore ``fragment_size`` (a whole column converts at once),
    so they collapse to one point per remaining combination.
    """
    from forms.cost.arch import load_arch
    from forms.nn.models import MODEL_NAMES

    grid = spec.grid
    for model in grid.model:
        if model not in MODEL_NAMES:
            raise ConfigError(
                f"sweep grid key 'model': unknown model '{model}'; choose from {', '.join(MODEL_NAMES)}"
            )
    axes = {axis: getattr(grid, axis) for axis in AXES if getattr(grid, axis) is not None}
    out: dict[str, tuple[Point, Any]] = {}
    for arch_name in grid.arch:
        try:
            base = load_arch(arch_name)
        except ConfigError as exc:
            raise ConfigError(f"sweep grid key 'arch': {exc}") from None
        for combo in itertools.product(*axes.values()):
            values = dict(zip(axes, combo, strict=True))
            _check_point(values, base, spec.allow_clipping)
            try:
                arch = _arch_for(base, values, spec.allow_clipping)
            except ConfigError as exc:
                shown = ", ".join(f"{k}={v}" for k, v in values.items())
                raise ConfigError(f"sweep point ({shown}) on '{arch_name}' is impossible: {exc}") from None
            for model in grid.model:
                point = Point(
                    arch=arch_name,
                    model=model,
                    encoding=arch.encoding,
                    fragment_size=arch.crossbar.fragment_size,
                    adc_bits=arch.adc_bits,
                    cell_bits=arch.crossbar.cell_bits,
                    crossbar_size=arch.crossbar.rows,
                    weight_bits=arch.weight_bits,
                )
                out.setdefault(point.id, (point, arch))
    _check_simulation(spec, [p for p, _ in out.values()])
    return list(out.values())


def _check_simulation(spec: SweepSpec, points: Sequence[Point]) -> None:
    """With ``simulate``: the checkpoint must be this model's and its fragments must fit every point."""
    if spec.simulate is None:
        return
    from forms.intweights import integer_layers_from_checkpoint
    from forms.nn.checkpoint import load_checkpoint

    path = spec.simulate.checkpoint
    ckpt = load_checkpoint(path)
    name = ckpt.get("model", {}).get("name")
    if spec.grid.model != [name]:
        raise ConfigError(
            f"sweep grid key 'model' = {spec.grid.model} must be exactly ['{name}'], the model of "
            f"simulate.checkpoint {path}"
        )
    layers = integer_layers_from_checkpoint(ckpt, path)
    r_ckpt = min(layer.fragment_size for layer in layers)
    for point in points:
        if Encoding(point.encoding).signs_per_fragment and r_ckpt % point.fragment_size:
            raise _impossible(
                "fragment_size",
                point.fragment_size,
                point.to_dict(),
                f"the checkpoint is polarized in fragments of {r_ckpt} rows, so only fragment sizes "
                f"dividing {r_ckpt} are single-signed; compress a checkpoint for R = {point.fragment_size}",
            )


# ----------------------------------------------------------------------------------------- points


def _point_path(out: Path, point: Point) -> Path:
    return out / "points" / f"{point.id}.json"


def finished_point(out: Path, point: Point) -> dict[str, Any] | None:
    """The stored record of ``point`` when it finished in an earlier run with the same settings."""
    path = _point_path(out, point)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and record.get("point") == point.to_dict() else None


def run_point(
    point_data: dict[str, Any], arch_data: dict[str, Any], spec_data: dict[str, Any], out: str
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
    metrics: dict[str, Any] | None = None
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
        activity = metrics
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
    row.update({key: est.get(key) for key in RESULT_FIELDS})
    row["accuracy"] = _accuracy(metrics)
    row["adc_clip_rate"] = (metrics or {}).get("adc_clip_rate", {}).get("overall") if metrics else None
    est.pop("layers", None)  # per-layer rows stay out of the sweep record (the estimate is recomputable)
    record = {
        "point": point.to_dict(),
        "arch": arch.model_dump(mode="json"),
        "row": row,
        "estimate": est,
        "simulate": metrics,
        "seconds": time.perf_counter() - start,
    }
    write_json_atomic(record, _point_path(Path(out), point))
    return record


def _accuracy(metrics: dict[str, Any] | None) -> float | None:
    if not metrics:
        return None
    for key in ("accuracy_mean", "accuracy"):
        if isinstance(metrics.get(key), int | float):
            return float(metrics[key])
    return None


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
    for point, arch in planned:
        done = finished_point(out, point)
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
                finish(run_point(point.to_dict(), arch.model_dump(mode="json"), spec_data, str(out)))
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=context) as pool:
                pending: set[Future[dict[str, Any]]] = {
                    pool.submit(run_point, p.to_dict(), a.model_dump(mode="json"), spec_data, str(out))
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


CSV_FIELDS: tuple[str, ...] = ("id", *Point.__dataclass_fields__, *RESULT_FIELDS, "accuracy", "adc_clip_rate")


def write_results_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """results.csv: one row per point, its settings then its figures (empty when not measured)."""
    write_csv_atomic(CSV_FIELDS, rows, path)


def sweep_report(spec: SweepSpec, records: Sequence[dict[str, Any]]) -> Report:
    """The sweep's report: every point's figures (traceable to summary.json ``points``) and Pareto plots."""
    points = {r["row"]["id"]: r["row"] for r in records}
    summary = build_summary(
        title=f"FORMS sweep: {spec.name}",
        parameters=spec.model_dump(mode="json"),
        assumptions=[
            "each point is a cost-model estimate of the dense-equivalent network on the point's "
            "architecture; with `simulate`, also the simulated accuracy of the given checkpoint",
            "offset/differential points ignore fragment_size (a whole column converts at once)",
        ],
        extra={
            "points": points,
            "point_assumptions": {r["row"]["id"]: r["estimate"].get("assumptions", []) for r in records},
        },
    )
    columns = list(CSV_FIELDS)
    fmts: dict[str, Any] = {"energy_per_inference_j": "sci", "latency_s": "sci", "accuracy": "pct"}
    table = Table("sweep-results", "Design points", columns)
    for pid in points:
        table.add(
            [label(pid)]
            + [
                ref(summary, join_path("points", pid, c), fmts.get(c, "int" if c in _INT_FIELDS else "float"))
                if c not in ("arch", "model", "encoding")
                else ref(summary, join_path("points", pid, c), "text")
                for c in columns[1:]
            ]
        )
    section = Section(
        "results",
        "Design points",
        paragraphs=[f"{len(points)} points; the same figures are in results.csv."],
        tables=[table],
    )
    section.figures += pareto_figures(summary)
    report = Report(summary["title"], summary["meta"]["created"], [section], summary)
    report.sections.append(assumptions_section(summary, estimate_prefix="point_assumptions"))
    return report


_INT_FIELDS = {
    "fragment_size",
    "adc_bits",
    "cell_bits",
    "crossbar_size",
    "weight_bits",
    "chips",
    "crossbars_needed",
}


def pareto_figures(summary: dict[str, Any]) -> list[Figure]:
    """Accuracy vs GOPs/W (when simulated) and GOPs/(s·mm²) vs area, each with its Pareto front."""
    points = summary["points"]
    groups = [f"{row['arch']}/{row['encoding']}" for row in points.values()]
    figures = []
    acc = [row.get("accuracy") for row in points.values()]
    if any(a is not None for a in acc):
        png = plots.pareto_scatter(
            [row.get("gops_per_w") for row in points.values()],
            acc,
            groups,
            "GOPs/W",
            "accuracy",
            "Accuracy vs energy efficiency",
        )
        figures.append(Figure("pareto-accuracy-gops-w", "Accuracy vs GOPs/W", png, sources=["points"]))
    png = plots.pareto_scatter(
        [row.get("chip_area_mm2") for row in points.values()],
        [row.get("gops_per_s_mm2") for row in points.values()],
        groups,
        "chip area (mm²)",
        "GOPs/(s·mm²)",
        "Compute density vs area (front: less area, more density)",
        maximize_x=False,
    )
    figures.append(Figure("pareto-density-area", "GOPs/(s·mm²) vs area", png, sources=["points"]))
    return figures


def load_sweep_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep YAML file (unknown keys are refused with their name)."""
    return SweepSpec.from_yaml(path)


__all__ = [
    "GridSpec",
    "Point",
    "SweepResult",
    "SweepSimSpec",
    "SweepSpec",
    "load_sweep_spec",
    "plan",
    "run_point",
    "run_sweep",
]
