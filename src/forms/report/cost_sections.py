"""Report sections of the cost model: figures per architecture, ratios to the baseline, breakdown by
component, and the parameters and assumptions behind them. Each builder reads only the summary.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from forms.report import plots
from forms.report.model import (
    MISSING,
    Figure,
    Fmt,
    Section,
    Table,
    join_path,
    label,
    number_at,
    ref,
    resolve,
    scalar_leaves,
)
from forms.report.summary import COST_METRICS

CHARTED_BREAKDOWNS: tuple[str, ...] = ("area_mm2", "power_w", "energy_j")
"""Breakdown quantities drawn as stacked bars (others, such as action counts, only as tables)."""


def cost_section(
    summary: Mapping[str, Any],
    estimate_prefix: str = "estimate",
    ratio_prefix: str = "derived.estimate_ratios",
    id_prefix: str = "",
    title: str = "Area, power, energy and throughput",
) -> Section:
    """Cost-model figures of every architecture side by side, and their ratios to the baseline."""
    estimates = resolve(summary, estimate_prefix)
    archs = list(estimates) if isinstance(estimates, Mapping) else []
    baseline = str(summary.get("baseline", archs[0] if archs else ""))
    fmts: dict[str, Fmt] = {"energy_per_inference_j": "sci", "latency_s": "sci"}
    table = Table(
        f"{id_prefix}cost",
        "Cost model per architecture",
        ["architecture", *[lbl for _, lbl in COST_METRICS], "crossbars used", "chips"],
    )
    ratios = Table(
        f"{id_prefix}cost-ratios",
        f"Ratios to {baseline}",
        ["architecture", *[lbl for _, lbl in COST_METRICS]],
        note=f"Each figure divided by the same figure of {baseline} (for area, power, energy and latency "
        "lower is better; for the others higher is better).",
    )
    for arch in archs:
        base = join_path(estimate_prefix, arch)
        table.add(
            [label(arch)]
            + [ref(summary, join_path(base, key), fmts.get(key, "float")) for key, _ in COST_METRICS]
            + [
                ref(summary, join_path(base, "crossbars_used"), "int"),
                ref(summary, join_path(base, "chips"), "int"),
            ]
        )
        rbase = join_path(ratio_prefix, arch)
        ratios.add([label(arch)] + [ref(summary, join_path(rbase, key), "ratio") for key, _ in COST_METRICS])
    section = Section(
        f"{id_prefix}cost",
        title,
        paragraphs=[
            "Cost-model estimates for the same compressed network on each architecture. Throughput "
            "figures use the ops named in each estimate (dense-equivalent vs executed; see the assumptions)."
        ],
        tables=[table, ratios],
    )
    shown = ("fps", "gops_per_s_mm2", "gops_per_w", "energy_per_inference_j")
    if archs:
        names = dict(COST_METRICS)
        series = {
            names[key]: [number_at(summary, join_path(ratio_prefix, arch, key)) for arch in archs]
            for key in shown
        }
        png = plots.grouped_bars(
            archs, series, f"ratio to {baseline} (log)", f"Ratios to {baseline}", log=True, hline=1.0
        )
        section.figures.append(
            Figure(f"{id_prefix}cost-ratios", f"Ratios to {baseline}", png, sources=[ratio_prefix])
        )
    return section


def breakdown_section(
    summary: Mapping[str, Any], estimate_prefix: str = "estimate", id_prefix: str = ""
) -> Section:
    """Area, power and energy of each architecture broken down by component (tables + stacked bars)."""
    estimates = resolve(summary, estimate_prefix)
    archs = list(estimates) if isinstance(estimates, Mapping) else []
    quantities: list[str] = []
    for arch in archs:
        node = resolve(summary, join_path(estimate_prefix, arch, "breakdown"))
        if isinstance(node, Mapping):
            quantities += [q for q, v in node.items() if isinstance(v, Mapping) and q not in quantities]
    section = Section(
        f"{id_prefix}breakdown",
        "Breakdown by component",
        paragraphs=[
            "Area, power and energy per inference of each architecture, by component, from the cost model."
        ],
    )
    for quantity in quantities:
        components: list[str] = []
        for arch in archs:
            node = resolve(summary, join_path(estimate_prefix, arch, "breakdown", quantity))
            if isinstance(node, Mapping):
                components += [c for c, v in node.items() if _isnumber_at(v) and c not in components]
        table = Table(f"{id_prefix}breakdown-{quantity}", f"{quantity} by component", ["component", *archs])
        for comp in components:
            table.add(
                [label(comp)]
                + [
                    ref(summary, join_path(estimate_prefix, arch, "breakdown", quantity, comp), "sci")
                    for arch in archs
                ]
            )
        section.tables.append(table)
        series = {
            comp: [
                number_at(summary, join_path(estimate_prefix, arch, "breakdown", quantity, comp))
                for arch in archs
            ]
            for comp in components
        }
        if components and quantity in CHARTED_BREAKDOWNS:
            png = plots.stacked_bars(archs, series, quantity, f"{quantity} by component")
            section.figures.append(
                Figure(
                    f"{id_prefix}breakdown-{quantity}",
                    f"{quantity} by component",
                    png,
                    sources=[estimate_prefix],
                )
            )
    return section


def _isnumber_at(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def assumptions_section(summary: Mapping[str, Any], estimate_prefix: str = "estimate") -> Section:
    """Every parameter behind the figures, the stated assumptions, and each architecture's own notes."""
    params = Table("parameters", "Parameters", ["parameter", "value"])
    for path, _value in scalar_leaves(summary.get("parameters", {}), "parameters"):
        params.add([label(path.removeprefix("parameters.")), ref(summary, path, "text")])
    stated = Table("assumptions", "Assumptions", ["source", "assumption"])
    for i, _text in enumerate(summary.get("assumptions", [])):
        stated.add([label("this run"), ref(summary, join_path("assumptions", i), "text")])
    estimates = resolve(summary, estimate_prefix)
    for arch in estimates if isinstance(estimates, Mapping) else {}:
        for key in ("assumptions", "notes"):
            node = resolve(summary, join_path(estimate_prefix, arch, key))
            if node is MISSING:
                continue
            for path, _value in scalar_leaves(node, join_path(estimate_prefix, arch, key)):
                stated.add([label(arch), ref(summary, path, "text")])
    return Section(
        "assumptions",
        "Assumptions and parameters",
        paragraphs=["Every setting that produced the figures above, and every assumption they rest on."],
        tables=[params, stated],
    )
