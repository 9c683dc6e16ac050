"""Report sections of the cost model: figures per architecture, ratios to the baseline, breakdown by
component, and the parameters and assumptions behind them. Each builder reads the typed
:class:`Summary`; every number cell carries its summary.json path.
"""

from __future__ import annotations

from forms.report import plots
from forms.report.derived import COST_METRICS
from forms.report.model import (
    Cell,
    Figure,
    Fmt,
    Section,
    Table,
    entry_cell,
    field_cell,
    join_path,
    label,
    scalar_leaves,
)
from forms.report.summary import Summary

CHARTED_BREAKDOWNS: tuple[str, ...] = ("area_mm2", "power_w", "energy_j")
"""Breakdown quantities drawn as stacked bars (others, such as action counts, only as tables)."""

RATIO_FIGURE_METRICS: tuple[str, ...] = ("fps", "gops_per_s_mm2", "gops_per_w", "energy_per_inference_j")
"""Cost ratios drawn in the ratio figure."""


def cost_section(summary: Summary) -> Section:
    """Cost-model figures of every architecture side by side, and their ratios to the baseline."""
    archs = list(summary.estimate)
    baseline = summary.baseline
    fmts: dict[str, Fmt] = {"energy_per_inference_j": "sci", "latency_s": "sci"}
    table = Table(
        "cost",
        "Cost model per architecture",
        ["architecture", *[lbl for _, lbl in COST_METRICS], "crossbars used", "chips"],
    )
    ratios = Table(
        "cost-ratios",
        f"Ratios to {baseline}",
        ["architecture", *[lbl for _, lbl in COST_METRICS]],
        note=f"Each figure divided by the same figure of {baseline} (for area, power, energy and latency "
        "lower is better; for the others higher is better).",
    )
    for arch, est in summary.estimate.items():
        at = join_path("estimate", arch)
        table.add(
            [label(arch)]
            + [field_cell(est, at, key, fmts.get(key, "float")) for key, _ in COST_METRICS]
            + [field_cell(est, at, "crossbars_used", "int"), field_cell(est, at, "chips", "int")]
        )
        arch_ratios, ratios_at = (
            summary.derived.estimate_ratios.get(arch),
            join_path("derived.estimate_ratios", arch),
        )
        ratios.add(
            [label(arch)] + [field_cell(arch_ratios, ratios_at, key, "ratio") for key, _ in COST_METRICS]
        )
    section = Section(
        "cost",
        "Area, power, energy and throughput",
        paragraphs=[
            "Cost-model estimates for the same compressed network on each architecture. Throughput "
            "figures use the ops named in each estimate (dense-equivalent vs executed; see the assumptions)."
        ],
        tables=[table, ratios],
    )
    if archs:
        names = dict(COST_METRICS)
        series = {
            names[key]: [getattr(summary.derived.estimate_ratios.get(arch), key, None) for arch in archs]
            for key in RATIO_FIGURE_METRICS
        }
        png = plots.grouped_bars(
            archs, series, f"ratio to {baseline} (log)", f"Ratios to {baseline}", log=True, hline=1.0
        )
        section.figures.append(
            Figure("cost-ratios", f"Ratios to {baseline}", png, sources=["derived.estimate_ratios"])
        )
    return section


def breakdown_section(summary: Summary) -> Section:
    """Area, power and energy of each architecture broken down by component (tables + stacked bars)."""
    estimates = summary.estimate
    archs = list(estimates)
    quantities: list[str] = []
    for est in estimates.values():
        quantities += [q for q in est.breakdown if q not in quantities]
    section = Section(
        "breakdown",
        "Breakdown by component",
        paragraphs=[
            "Area, power and energy per inference of each architecture, by component, from the cost model."
        ],
    )
    for quantity in quantities:
        parts = {arch: est.breakdown.get(quantity, {}) for arch, est in estimates.items()}
        components: list[str] = []
        for by_component in parts.values():
            components += [c for c in by_component if c not in components]
        table = Table(f"breakdown-{quantity}", f"{quantity} by component", ["component", *archs])
        for comp in components:
            table.add(
                [label(comp)]
                + [
                    entry_cell(parts[arch], join_path("estimate", arch, "breakdown", quantity), comp, "sci")
                    for arch in archs
                ]
            )
        section.tables.append(table)
        if components and quantity in CHARTED_BREAKDOWNS:
            series = {comp: [parts[arch].get(comp) for arch in archs] for comp in components}
            png = plots.stacked_bars(archs, series, quantity, f"{quantity} by component")
            section.figures.append(
                Figure(f"breakdown-{quantity}", f"{quantity} by component", png, sources=["estimate"])
            )
    return section


def assumptions_section(summary: Summary) -> Section:
    """Every parameter behind the figures, the stated assumptions, and each architecture's own."""
    params = Table("parameters", "Parameters", ["parameter", "value"])
    for path, value in scalar_leaves(summary.parameters, "parameters"):
        params.add([label(path.removeprefix("parameters.")), Cell(value, path, "text")])
    stated = Table("assumptions", "Assumptions", ["source", "assumption"])
    for i, text in enumerate(summary.assumptions):
        stated.add([label("this run"), Cell(text, join_path("assumptions", i), "text")])
    for arch, est in summary.estimate.items():
        for i, text in enumerate(est.assumptions):
            stated.add([label(arch), Cell(text, join_path("estimate", arch, "assumptions", i), "text")])
    return Section(
        "assumptions",
        "Assumptions and parameters",
        paragraphs=["Every setting that produced the figures above, and every assumption they rest on."],
        tables=[params, stated],
    )
