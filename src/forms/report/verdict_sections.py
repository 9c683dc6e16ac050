"""The report's opening: the verdict (FORMS against each baseline) and what decides it.

Both sections read the plain verdict records a job stores in summary.json under ``verdict.<network>``
(the ``to_dict()`` of :class:`forms.experiments.verdict.Verdict`, computed by the job; the report
computes no hardware number) and give every number cell its summary.json path.
"""

from __future__ import annotations

from typing import Any

from forms.report import plots
from forms.report.model import Cell, Figure, Fmt, Section, Table, join_path, label, ref
from forms.report.summary import Summary

VERDICT_KEY = "verdict"
"""Top-level summary.json key of the verdicts, one per network."""

METRIC_LABELS: dict[str, str] = {
    "gops_per_s_mm2": "GOPs/(s·mm²)",
    "gops_per_w": "GOPs/W",
    "fps": "FPS",
    "energy_per_inference_j": "energy per image",
}
"""Label of each metric the verdict divides (the keys of a headline's ``ratios``)."""


def verdicts(summary: Summary) -> dict[str, Any]:
    """The summary's verdict records by network ({} when the job computed none)."""
    found: dict[str, Any] = summary.extra.get(VERDICT_KEY, {})
    return found


def _slug(text: str) -> str:
    """``text`` as a figure/table id segment."""
    words = "".join(c if c.isalnum() else " " for c in text.lower()).split()
    return "-".join(words)


def _ratio_cells(summary: Summary, at: str) -> list[Cell]:
    """The ratio of every metric at the ``ratios`` record at summary path ``at``."""
    return [ref(summary.extra, join_path(at, key), "ratio") for key in METRIC_LABELS]


def _ahead(ratios: dict[str, float]) -> str:
    """The metrics on which FORMS is ahead, in words."""
    ahead = [
        METRIC_LABELS[k] for k, v in ratios.items() if (v < 1.0 if k == "energy_per_inference_j" else v > 1.0)
    ]
    return ", ".join(ahead) if ahead else "no metric"


def _sentences(network: str, record: dict[str, Any]) -> list[str]:
    """The verdict on one network in words: against the first baseline at the presets, then at the optima."""
    first = record["headline"][0]
    r, skip = first["ratios"], record["skip"]
    out = [
        f"{network}: at the presets {first['forms']} reaches {r['gops_per_s_mm2']:.3g}x "
        f"{first['baseline']}'s GOPs/(s·mm²), {r['gops_per_w']:.3g}x its GOPs/W, {r['fps']:.3g}x its FPS and "
        f"{r['energy_per_inference_j']:.3g}x its energy per image, ahead on {_ahead(r)}; {skip['rule']} "
        f"zero-skipping removes {100 * skip['fraction']:.1f}% of FORMS' conversions and "
        f"{100 * skip['read_fraction']:.1f}% of its crossbar reads ({skip['source']})."
    ]
    for row in record["headline"]:
        if row["baseline"] == first["baseline"] and row["forms_choice"]:
            ratios, accuracy = row["ratios"], row.get("forms_accuracy")
            measured = (
                ""
                if accuracy is None
                else f" The simulator measured {100 * accuracy['accuracy']:.2f}% at FORMS' choice (floor "
                f"{100 * accuracy['floor']:.2f}%, {accuracy['images']} images)."
            )
            out.append(
                f"{network}, each design at its own {row['setting']} (the choices are tabled below): "
                f"{row['forms']} reaches {ratios['gops_per_s_mm2']:.3g}x {row['baseline']} in GOPs/(s·mm²) "
                f"and {ratios['gops_per_w']:.3g}x in GOPs/W, ahead on {_ahead(ratios)}.{measured}"
            )
    return out


def _accuracy_cell(summary: Summary, row_at: str, key: str, record: dict[str, Any] | None) -> Cell:
    """The measured accuracy of a headline's ``key`` record (a dash without a floor: the null record)."""
    return ref(summary.extra, join_path(row_at, key, *(() if record is None else ("accuracy",))), "float")


def headline_section(summary: Summary) -> Section:
    """FORMS against each baseline on every metric, with the skip fraction it was costed with."""
    metric_cols = [f"{name} ratio" for name in METRIC_LABELS]
    table = Table(
        "headline",
        "FORMS / baseline on each metric",
        ["network", "setting", "FORMS", "baseline", "conversions skipped", "reads skipped", *metric_cols],
        note="Above 1 FORMS is ahead, except energy per image, where below 1 FORMS is ahead.",
    )
    choices = Table(
        "headline-optima",
        "Each design's free parameters at its optimum",
        [
            "network",
            "setting",
            "FORMS",
            "its choice",
            "its accuracy",
            "baseline",
            "its choice",
            "its accuracy",
        ],
        note="Accuracy: the simulator's test accuracy measured at the design's choice (packaged with forms; "
        "the setting names the measured network, borrowed when measured on another model or data set, "
        "'data set unknown' when the costed network's is not known); a dash: searched without an accuracy "
        "floor.",
    )
    paragraphs: list[str] = []
    for network, record in verdicts(summary).items():
        at = join_path(VERDICT_KEY, network)
        skip = [
            ref(summary.extra, join_path(at, "skip", key), "pct") for key in ("fraction", "read_fraction")
        ]
        for i, _ in enumerate(record["headline"]):
            row_at = join_path(at, "headline", i)
            texts = [
                ref(summary.extra, join_path(row_at, key), "text") for key in ("setting", "forms", "baseline")
            ]
            table.add([label(network), *texts, *skip, *_ratio_cells(summary, join_path(row_at, "ratios"))])
            row = record["headline"][i]
            if row["forms_choice"]:
                cells = [
                    ref(summary.extra, join_path(row_at, key), "text")
                    if key.endswith(("_choice", "forms", "baseline", "setting"))
                    else _accuracy_cell(summary, row_at, key, row[key])
                    for key in (
                        "setting", "forms", "forms_choice", "forms_accuracy",
                        "baseline", "baseline_choice", "baseline_accuracy",
                    )
                ]  # fmt: skip
                choices.add([label(network), *cells])
        paragraphs += _sentences(network, record)
    return Section("verdict", "The verdict", paragraphs=paragraphs, tables=[table, choices])


def _tornado_tables(summary: Summary) -> tuple[Table, Table]:
    """The tornado's ratios point by point, and each parameter's range source and justification."""
    points = Table(
        "tornado",
        "FORMS / baseline over each parameter's range (the rest at the presets)",
        ["network", "parameter", "value", *[f"{name} ratio" for name in METRIC_LABELS]],
    )
    sources = Table("tornado-ranges", "Where each range comes from", ["parameter", "design", "status", "why"])
    seen: set[str] = set()
    for network, record in verdicts(summary).items():
        for i, bar in enumerate(record["tornado"]):
            bar_at = join_path(VERDICT_KEY, network, "tornado", i)
            for j, _ in enumerate(bar["points"]):
                at = join_path(bar_at, "points", j)
                value = ref(summary.extra, join_path(at, "label"), "text")
                cells = [label(network), label(bar["label"]), value]
                points.add(cells + _ratio_cells(summary, join_path(at, "ratios")))
            if bar["name"] not in seen:
                seen.add(bar["name"])
                fmt: Fmt = "text"
                keys = ("design", "status", "justification")
                sources.add(
                    [label(bar["label"]), *[ref(summary.extra, join_path(bar_at, k), fmt) for k in keys]]
                )
    return points, sources


def _crossing_table(summary: Summary) -> Table:
    """Where each break-even map's ratio crosses 1 between neighbouring ADC counts."""
    table = Table(
        "break-even",
        "Break-even: ADCs per FORMS crossbar at which the ratio reaches 1",
        ["network", "metric", "skip fraction", "ADCs per crossbar (interpolated)", "between", "and"],
    )
    for network, record in verdicts(summary).items():
        for i, chart in enumerate(record["break_even"]):
            for j, _ in enumerate(chart["crossings"]):
                at = join_path(VERDICT_KEY, network, "break_even", i, "crossings", j)
                where = [("skip_fraction",), ("per_crossbar",), ("between", 0), ("between", 1)]
                numbers = [ref(summary.extra, join_path(at, *keys), "float") for keys in where]
                table.add([label(network), label(METRIC_LABELS[chart["metric"]]), *numbers])
    return table


def _figures(network: str, record: dict[str, Any]) -> list[Figure]:
    """The tornado and the break-even maps of one network (the charts' main metrics)."""
    at = join_path(VERDICT_KEY, network)
    charts = record["break_even"]
    metrics = [chart["metric"] for chart in charts]
    bars = record["tornado"]
    first = record["headline"][0]
    spans = {
        METRIC_LABELS[m]: [
            (min(p["ratios"][m] for p in b["points"]), max(p["ratios"][m] for p in b["points"])) for b in bars
        ]
        for m in metrics
    }
    base = {METRIC_LABELS[m]: first["ratios"][m] for m in metrics}
    labels = [f"{b['label']} ({b['status']})" for b in bars]
    title = f"{network}: {record['forms']} / {record['baseline']}"
    slug = _slug(network)
    tornado = plots.tornado(labels, spans, base, f"{title} over each parameter's range")
    maps = plots.break_even_maps(
        charts[0]["per_crossbar"],
        charts[0]["skip_fraction"],
        {METRIC_LABELS[c["metric"]]: c["ratios"] for c in charts},
        "ADCs per FORMS crossbar",
        "fraction of conversions skipped",
        f"{title}: break-even (white line: ratio 1)",
        marked_x=charts[0]["preset_per_crossbar"],
        marked_y=charts[0]["measured_skip"],
    )
    return [
        Figure(
            f"tornado-{slug}",
            f"What moves the verdict ({network})",
            tornado,
            sources=[join_path(at, "tornado")],
        ),
        Figure(f"break-even-{slug}", f"Break-even ({network})", maps, sources=[join_path(at, "break_even")]),
    ]


def decides_section(summary: Summary) -> Section:
    """The tornado of each uncertain parameter, the break-even maps, and where each range comes from."""
    points, sources = _tornado_tables(summary)
    figures = [fig for network, record in verdicts(summary).items() for fig in _figures(network, record)]
    return Section(
        "what-decides",
        "What decides the verdict",
        paragraphs=[
            "Each bar spans the FORMS / baseline ratio over one parameter's plausible range, every other "
            "parameter at its preset value; the solid line is the ratio at the presets, the dashed line "
            "break-even. Widest bar first. The break-even maps vary ADCs per FORMS crossbar and the fraction "
            "of conversions skipped together (a swept fraction replaces the measured one on every layer); "
            "the white line is where FORMS and the baseline are equal, the dashed line the measured skip "
            "fraction, the dotted line the preset's ADC count. Every range is sourced, measured or assumed, "
            "as the last table says."
        ],
        tables=[points, _crossing_table(summary), sources],
        figures=figures,
    )


def verdict_sections(summary: Summary) -> list[Section]:
    """The report's opening sections, or none when the summary holds no verdict."""
    return [headline_section(summary), decides_section(summary)] if verdicts(summary) else []
