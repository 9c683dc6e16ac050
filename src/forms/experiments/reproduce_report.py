"""The report of `forms reproduce`: one section (table and figures) per experiment (a)-(d).

Every table cell and figure series is read from the run's summary: the experiments' rows from the
free-form tables ``experiments.<a-d>.rows`` by path, the compressions they show (ADMM histories of (a),
crossbar counts of (b)) as typed :class:`CompressResult` read from ``experiments.<a|b>.compress``. So
the report only shows what the experiments wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from forms.compress.result import CompressResult
from forms.experiments.reproduce_spec import ReproduceSpec
from forms.report import plots
from forms.report.cost_sections import assumptions_section
from forms.report.model import Figure, Report, Section, Table, join_path, ref
from forms.report.sections import crossbar_section, overview_section, stage_times_section
from forms.report.summary import Summary
from forms.report.verdict_sections import verdict_sections

# (row key, column header, cell format) of each experiment's table
ACCURACY_COLUMNS = [
    ("model", "model", "text"),
    ("dataset", "dataset", "text"),
    ("fragment_size", "R", "int"),
    ("float_accuracy", "float", "pct"),
    ("compressed_accuracy", "compressed", "pct"),
    ("drop_points", "drop (points)", "float"),
    ("fragments_mixed_sign", "mixed-sign fragments", "int"),
]
ARCHITECTURE_COLUMNS = [
    ("workload", "network", "text"),
    ("arch", "architecture", "text"),
    ("activity", "zero-skip activity", "text"),
    ("gops_per_s_mm2", "GOPs/(s·mm²)", "float"),
    ("gops_per_w", "GOPs/W", "float"),
    ("fps", "FPS", "float"),
    ("chips", "chips", "int"),
    ("gops_per_s_mm2_ratio", "GOPs/(s·mm²) ratio", "ratio"),
    ("gops_per_w_ratio", "GOPs/W ratio", "ratio"),
    ("fps_ratio", "FPS ratio", "ratio"),
]
VARIATION_COLUMNS = [
    ("variant", "model", "text"),
    ("encoding", "encoding", "text"),
    ("ideal_accuracy", "ideal", "pct"),
    ("variation_mean", "mean under variation", "pct"),
    ("variation_std", "std", "pct"),
    ("degradation_points", "degradation (points)", "float"),
]
# (metric key, name) of the ratio figures of (c)
RATIO_METRICS = (("gops_per_s_mm2", "GOPs/(s·mm²)"), ("gops_per_w", "GOPs/W"), ("fps", "FPS"))


def _experiment(summary: Summary, exp: str) -> dict[str, Any]:
    """Experiment ``exp``'s table (summary.json ``experiments.<exp>``)."""
    table: dict[str, Any] = summary.extra["experiments"][exp]
    return table


def _compression(summary: Summary, *keys: str) -> tuple[CompressResult, str]:
    """The compression an experiment stored at ``experiments.<keys>``, typed, with that path."""
    record: Any = summary.extra["experiments"]
    for key in keys:
        record = record[key]
    return CompressResult.from_dict(record), join_path("experiments", *keys)


def _rows_table(
    summary: Summary, exp: str, table_id: str, title: str, cols: list[tuple[str, str, Any]]
) -> Table:
    """Experiment ``exp``'s rows as a table, one cell per (key, header, format) of ``cols``."""
    table = Table(table_id, title, [c[1] for c in cols])
    rows_at = join_path("experiments", exp, "rows")
    for i, _ in enumerate(_experiment(summary, exp)["rows"]):
        table.add([ref(summary.extra, join_path(rows_at, i, key), fmt) for key, _, fmt in cols])
    return table


def _col(summary: Summary, exp: str, key: str, where: Mapping[str, Any]) -> list[Any]:
    """``key`` of experiment ``exp``'s rows whose fields match ``where``."""
    rows = _experiment(summary, exp)["rows"]
    return [r.get(key) for r in rows if all(r.get(k) == v for k, v in where.items())]


def _residual_figures(summary: Summary, spec: ReproduceSpec) -> list[Figure]:
    """Per-layer ||W - Z|| / ||W|| over the ADMM rounds, one figure per compressed model of (a)."""
    figures = []
    compressed = _experiment(summary, "a")["compress"]
    for run in (spec.mnist, spec.deep):
        for r in spec.fragment_sizes:
            name = f"{run.key}-R{r}"
            if name not in compressed:
                continue
            result, at = _compression(summary, "a", "compress", name)
            history = result.admm.history
            if not history:
                continue
            layers = list(history[0].residuals)
            series = {layer: [h.residuals.get(layer) for h in history] for layer in layers}
            figures.append(
                Figure(
                    f"a-residuals-{name}",
                    f"ADMM convergence, {name}",
                    plots.lines(
                        [h.round for h in history],
                        series,
                        "ADMM round",
                        "||W - Z|| / ||W|| (log)",
                        f"{name}: per-layer ADMM residual",
                        logy=True,
                    ),
                    sources=[join_path(at, "admm", "history")],
                )
            )
    return figures


def _accuracy_figure(summary: Summary, spec: ReproduceSpec) -> Figure:
    """(a)'s compressed accuracy against R, one line per float model."""
    series = {}
    for run in (spec.mnist, spec.deep):
        series[run.key] = _col(
            summary, "a", "compressed_accuracy", {"model": run.model, "dataset": run.dataset}
        )
    return Figure(
        "a-accuracy-vs-r",
        "Accuracy vs R",
        plots.lines(
            spec.fragment_sizes,
            series,
            "fragment size R",
            "test accuracy",
            "Accuracy vs R",
            logx=True,
        ),
        sources=["experiments.a.rows"],
    )


def accuracy_vs_r_section(summary: Summary, spec: ReproduceSpec) -> Section:
    """(a): accuracy vs fragment size R, with each compression's ADMM residuals."""
    table = _rows_table(summary, "a", "a-accuracy-vs-r", "Accuracy vs fragment size R", ACCURACY_COLUMNS)
    return Section(
        "a",
        "(a) Accuracy vs fragment size",
        paragraphs=[
            "Each R compressed from the same float model (no pruning); accuracy after masked retraining. "
            "The residual plots show each layer's ||W - Z|| / ||W|| after every ADMM round: the distance "
            "of the trained weights from the constraint set, which falls as ADMM converges."
        ],
        tables=[table],
        figures=[_accuracy_figure(summary, spec), *_residual_figures(summary, spec)],
    )


def crossbar_reduction_section(summary: Summary) -> Section:
    """(b): the crossbar section of the pruned, quantized, polarized LeNet-5, its ids prefixed ``b-``."""
    section = crossbar_section(summary, *_compression(summary, "b", "compress"))
    section.id, section.title = "b", "(b) Crossbar reduction: pruning x quantization x polarization"
    for t in section.tables:
        t.id = f"b-{t.id}"
    for f in section.figures:
        f.id = f"b-{f.id}"
    return section


def _ratio_figure(summary: Summary, spec: ReproduceSpec, metric: str, name: str) -> Figure:
    """(c)'s ``metric`` of every workload and architecture relative to the baseline (log bars)."""
    return Figure(
        f"c-{metric}",
        f"{name} ratio to {spec.baseline}",
        plots.grouped_bars(
            [w.label for w in spec.workloads],
            {arch: _col(summary, "c", f"{metric}_ratio", {"arch": arch}) for arch in spec.archs},
            f"ratio to {spec.baseline} (log)",
            f"{name} relative to {spec.baseline}",
            log=True,
            hline=1.0,
        ),
        sources=["experiments.c.rows"],
    )


def architecture_comparison_section(summary: Summary, spec: ReproduceSpec) -> Section:
    """(c): throughput and efficiency of every workload on every architecture, with ratio figures."""
    table = _rows_table(
        summary,
        "c",
        "c-architectures",
        f"Throughput and efficiency (ratios to {spec.baseline})",
        ARCHITECTURE_COLUMNS,
    )
    return Section(
        "c",
        "(c) FORMS vs ISAAC vs PRIME",
        paragraphs=[
            "Dense-equivalent GOPs (a MAC is 2 ops) per architecture; ratios divide by the baseline."
        ],
        tables=[table],
        figures=[_ratio_figure(summary, spec, metric, name) for metric, name in RATIO_METRICS],
    )


def device_variation_section(summary: Summary, spec: ReproduceSpec) -> Section:
    """(d): ideal vs varied accuracy of the float-equivalent, polarized-only and fully compressed models."""
    table = _rows_table(
        summary,
        "d",
        "d-variation",
        f"Accuracy under log-normal variation (sigma {spec.variation_sigma}, {spec.variation_runs} chips)",
        VARIATION_COLUMNS,
    )
    figure = Figure(
        "d-variation",
        "Accuracy under variation",
        plots.grouped_bars(
            _col(summary, "d", "variant", {}),
            {
                "ideal": _col(summary, "d", "ideal_accuracy", {}),
                "variation": _col(summary, "d", "variation_mean", {}),
            },
            "test accuracy",
            "Ideal vs varied devices",
            errors={"variation": _col(summary, "d", "variation_std", {})},
        ),
        sources=["experiments.d.rows"],
    )
    return Section("d", "(d) Device variation", tables=[table], figures=[figure])


def _intro(spec: ReproduceSpec) -> list[str]:
    """The overview's opening paragraphs, flagging quick mode."""
    intro = ["Paper-style experiments of FORMS (Yuan et al., ISCA 2021) reproduced with this toolkit."]
    if spec.quick_mode:
        intro.append(
            "QUICK MODE: shrunken settings for CI; the numbers are not results (see the assumptions)."
        )
    return intro


def reproduce_report(summary: Summary, spec: ReproduceSpec) -> Report:
    """The report of experiments (a)-(d): the verdict first, the parameters and stage times last."""
    sections = [
        *verdict_sections(summary),
        overview_section(summary, _intro(spec)),
        accuracy_vs_r_section(summary, spec),
        crossbar_reduction_section(summary),
        architecture_comparison_section(summary, spec),
        device_variation_section(summary, spec),
        assumptions_section(summary),
        *stage_times_section(summary),
    ]
    return Report(summary.title, summary.meta.created, sections, summary)


__all__ = [
    "accuracy_vs_r_section",
    "architecture_comparison_section",
    "crossbar_reduction_section",
    "device_variation_section",
    "reproduce_report",
]
