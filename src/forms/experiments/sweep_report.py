"""The sweep's report: every point's figures (traceable to summary.json ``points``) and Pareto plots.

A point's row is the sweep's own flat record (settings and figures, as results.csv holds them), so the
report reads it from the summary's free-form ``points`` table by path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from forms.experiments.sweep_spec import SweepSpec, csv_fields
from forms.report import plots
from forms.report.cost_sections import assumptions_section
from forms.report.model import Figure, Report, Section, Table, join_path, label, ref
from forms.report.records import RunMeta
from forms.report.summary import Summary


def sweep_report(spec: SweepSpec, records: Sequence[dict[str, Any]]) -> Report:
    """The sweep's report: every point's figures (traceable to summary.json ``points``) and Pareto plots."""
    points = {r["row"]["id"]: r["row"] for r in records}
    summary = Summary(
        title=f"FORMS sweep: {spec.name}",
        meta=RunMeta.now(""),
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
    columns = list(csv_fields(spec))
    text_columns = {"arch", "model", "encoding", *spec.grid.arch_fields}
    fmts: dict[str, Any] = {"energy_per_inference_j": "sci", "latency_s": "sci", "accuracy": "pct"}
    table = Table("sweep-results", "Design points", columns)
    tables = summary.extra  # the sweep's own tables: points, point_assumptions
    for pid in points:
        table.add(
            [label(pid)]
            + [
                ref(tables, join_path("points", pid, c), fmts.get(c, "int" if c in _INT_FIELDS else "float"))
                if c not in text_columns
                else ref(tables, join_path("points", pid, c), "text")
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
    report = Report(summary.title, summary.meta.created, [section], summary)
    report.sections.append(assumptions_section(summary))
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


def pareto_figures(summary: Summary) -> list[Figure]:
    """Accuracy vs GOPs/W (when simulated) and GOPs/(s·mm²) vs area, each with its Pareto front."""
    points = summary.extra["points"]
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
