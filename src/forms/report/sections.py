"""Report sections built from summary.json paths: accuracy, crossbars, zero-skip, ADC clipping, cost,
breakdown and assumptions. Each builder reads only the summary, so every number it shows keeps its path.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from forms.report import plots
from forms.report.model import (
    MISSING,
    Cell,
    Figure,
    Fmt,
    Report,
    Section,
    Table,
    join_path,
    label,
    ref,
    resolve,
)
from forms.report.summary import COST_METRICS

ACCURACY_STAGES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("float model (trained)", "float", ("train.test_accuracy",)),
    ("float model (before compression)", "float (re-eval.)", ("compress.accuracy_before",)),
    ("ADMM (before hard projection)", "ADMM", ("compress.accuracy_admm", "compress.admm.accuracy")),
    (
        "after hard projection",
        "projected",
        ("compress.accuracy_projected", "compress.accuracy_after_projection"),
    ),
    ("after masked retraining (final)", "retrained", ("compress.accuracy_after",)),
)
"""Accuracy rows before the hardware: label, short plot label, candidate summary paths (preferred first)."""

CHARTED_BREAKDOWNS: tuple[str, ...] = ("area_mm2", "power_w", "energy_j")
"""Breakdown quantities drawn as stacked bars (others, such as action counts, only as tables)."""

MEAN_KEYS = ("accuracy_mean", "variation.accuracy_mean", "runs.accuracy_mean")
STD_KEYS = ("accuracy_std", "variation.accuracy_std", "runs.accuracy_std")


def first_path(summary: Mapping[str, Any], candidates: Sequence[str]) -> str | None:
    """The first candidate path that exists in ``summary``, or None."""
    for path in candidates:
        if resolve(summary, path) is not MISSING:
            return path
    return None


def number_leaves(obj: Any, prefix: str) -> Iterator[tuple[str, str, Any]]:
    """(summary path, relative label, value) of every numeric leaf under ``obj`` (depth first)."""
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from (
                (path, f"{key}.{rel}" if rel else str(key), v)
                for path, rel, v in number_leaves(value, join_path(prefix, key))
            )
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        yield prefix, "", obj


def scalar_leaves(obj: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """(summary path, value) of every scalar leaf (number, string, bool, None) under ``obj``."""
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from scalar_leaves(value, join_path(prefix, key))
    elif isinstance(obj, list) and not all(isinstance(v, str | int | float) for v in obj):
        for i, value in enumerate(obj):
            yield from scalar_leaves(value, join_path(prefix, i))
    else:
        yield prefix, obj


def _num(summary: Mapping[str, Any], path: str | None) -> float | None:
    value = resolve(summary, path) if path else MISSING
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def sim_runs(summary: Mapping[str, Any]) -> list[str]:
    """Names of the simulation runs in summary order."""
    return list(summary.get("simulate", {}))


# ---------------------------------------------------------------------------------------------- sections


def overview_section(summary: Mapping[str, Any], intro: Sequence[str] = ()) -> Section:
    """Title facts: what was run, when, where, and the headline parameters."""
    table = Table("overview", "Run", ["item", "value"])
    items: tuple[tuple[str, str, Fmt], ...] = (
        ("title", "title", "text"),
        ("meta.created", "created", "text"),
        ("meta.command", "command", "text"),
        ("meta.machine", "machine", "text"),
        ("meta.wall_seconds", "wall time of this run (s)", "float"),
    )
    for path, name, fmt in items:
        if resolve(summary, path) is not MISSING:
            table.add([label(name), ref(summary, path, fmt)])
    for field, when in (("stage_seconds", "this run"), ("earlier_stage_seconds", "an earlier run")):
        for stage in summary.get("meta", {}).get(field) or {}:
            table.add(
                [label(f"{stage} (s, {when})"), ref(summary, join_path(f"meta.{field}", stage), "float")]
            )
    reused = summary.get("meta", {}).get("reused_stages")
    if reused:
        table.add([label("stages reused from an earlier run"), Cell(", ".join(reused), None, "text")])
    return Section("overview", "Overview", paragraphs=list(intro), tables=[table])


def accuracy_section(summary: Mapping[str, Any]) -> Section:
    """Accuracy at every stage: float, ADMM, hard projection, masked retraining, each simulation run."""
    table = Table("accuracy", "Test accuracy at each stage", ["stage", "accuracy", "± std over runs"])
    labels: list[str] = []
    values: list[float | None] = []
    errors: list[float | None] = []
    for name, short, candidates in ACCURACY_STAGES:
        path = first_path(summary, candidates)
        if path is not None:
            table.add([label(name), ref(summary, path, "pct"), Cell(None)])
            labels.append(short)
            values.append(_num(summary, path))
            errors.append(None)
    for run in sim_runs(summary):
        base = join_path("simulate", run, "metrics")
        mean = first_path(summary, [f"{base}.{k}" for k in MEAN_KEYS])
        several = _num(summary, join_path("simulate", run, "setup", "runs")) not in (None, 0.0, 1.0)
        std = first_path(summary, [f"{base}.{k}" for k in STD_KEYS]) if several else None
        acc = mean or f"{base}.accuracy"
        table.add(
            [
                label(f"simulated: {run}"),
                ref(summary, acc, "pct"),
                ref(summary, std, "pct") if std else Cell(None),
            ]
        )
        labels.append(run)
        values.append(_num(summary, acc))
        errors.append(_num(summary, std))
    section = Section(
        "accuracy",
        "Accuracy at each stage",
        paragraphs=[
            "Float training, ADMM compression (polarization, quantization, structured pruning), hard "
            "projection and masked retraining, then the compressed integer model run through the "
            "bit-accurate crossbar simulator under each encoding and hardware setting. Under device "
            "variation the figure is the mean over Monte Carlo chips, with its standard deviation."
        ],
        tables=[table, simulation_table(summary)],
    )
    if values:
        png = plots.grouped_bars(
            labels,
            {"accuracy": values},
            "test accuracy",
            "Accuracy at each stage",
            errors={"accuracy": errors},
        )
        section.figures.append(Figure("accuracy-stages", "Accuracy at each stage", png, sources=["accuracy"]))
    return section


def _accuracy_ylim(values: Sequence[float | None]) -> tuple[float, float]:
    """A y range that shows differences between accuracies near 1 (never below 0)."""
    known = [v for v in values if v is not None]
    low = min(known, default=0.0)
    return max(0.0, low - 0.1 * (1.0 - low) - 0.01), 1.0


def simulation_table(summary: Mapping[str, Any]) -> Table:
    """One row per simulation run: its setup and its accuracy figures."""
    table = Table(
        "simulation",
        "Simulation runs",
        [
            "run",
            "encoding",
            "mode",
            "ADC bits",
            "variation σ",
            "runs",
            "images",
            "accuracy",
            "reference accuracy",
            "prediction agreement",
            "ADC clip rate",
        ],
    )
    for run in sim_runs(summary):
        base = join_path("simulate", run)
        fields: list[tuple[str, Fmt]] = [
            ("setup.encoding", "text"),
            ("setup.mode", "text"),
            ("setup.adc_bits", "int"),
            ("setup.variation_sigma", "float"),
            ("setup.runs", "int"),
            ("setup.limit", "int"),
        ]
        row = [label(run)] + [ref(summary, f"{base}.{p}", f) for p, f in fields]
        mean = first_path(summary, [f"{base}.metrics.{k}" for k in MEAN_KEYS])
        row.append(ref(summary, mean or f"{base}.metrics.accuracy", "pct"))
        row += [
            ref(summary, f"{base}.metrics.reference_accuracy", "pct"),
            ref(summary, f"{base}.metrics.prediction_agreement", "pct"),
            ref(summary, f"{base}.metrics.adc_clip_rate.overall", "pct"),
        ]
        table.add(row)
    return table


def crossbar_section(summary: Mapping[str, Any], prefix: str = "compress.crossbars") -> Section:
    """Crossbar counts (dense, pruned, per encoding) and reduction factors, as compression counted them."""
    counts = Table("crossbars", "Crossbar counts", ["quantity", "crossbars"])
    factors = Table("crossbar-factors", "Reduction factors", ["factor", "value"])
    bar_labels: list[str] = []
    bar_values: list[float | None] = []
    node = resolve(summary, prefix)
    for path, rel, value in number_leaves(node if node is not MISSING else {}, prefix):
        if rel.startswith("crossbar."):  # the crossbar geometry, listed with the parameters
            continue
        if "factor" in rel or "reduction" in rel or "ratio" in rel:
            factors.add([label(rel), ref(summary, path, "ratio")])
        else:
            counts.add([label(rel), ref(summary, path, "int")])
            bar_labels.append(rel)
            bar_values.append(float(value))
    for arch in summary.get("estimate", {}):
        path = join_path("estimate", arch, "crossbars_used")
        if resolve(summary, path) is not MISSING:
            counts.add([label(f"{arch}: crossbars used by the cost model"), ref(summary, path, "int")])
    section = Section(
        "crossbars",
        "Crossbars and reduction factors",
        paragraphs=[
            "Crossbars of 128x128 cells needed by the dense 32-bit model, the pruned model and the final "
            "model under each encoding, and the factors (pruning x quantization x polarization) whose "
            "product is the total reduction, as the compression stage counted them."
        ],
        tables=[counts, factors],
    )
    if bar_values:
        png = plots.grouped_bars(
            bar_labels, {"crossbars": bar_values}, "crossbars (log)", "Crossbar counts", log=True
        )
        section.figures.append(Figure("crossbar-counts", "Crossbar counts", png, sources=[prefix]))
    return section


def zero_skip_section(summary: Mapping[str, Any]) -> Section:
    """Per layer and rule: ADC conversions without skipping, skipped, and the fraction saved."""
    table = Table(
        "zero-skip",
        "Zero-skip savings per layer and rule",
        [
            "run",
            "layer",
            "conversions (no skipping)",
            "skipped (leading)",
            "skipped (bitplane)",
            "saved (leading)",
            "saved (bitplane)",
        ],
    )
    derived = summary.get("derived", {}).get("zero_skip", {})

    def setup(run: str, key: str) -> Any:
        return resolve(summary, join_path("simulate", run, "setup", key))

    ideal = [r for r in derived if setup(r, "mode") == "ideal"]
    polarized = [r for r in ideal if setup(r, "encoding") == "polarized"]
    runs = polarized or ideal or list(derived)
    figures: list[Figure] = []
    for run in runs:
        zs = join_path("simulate", run, "metrics", "zero_skip")
        dz = join_path("derived", "zero_skip", run)
        layers = list(derived[run]["layers"])
        for layer in layers:
            table.add(
                [
                    label(run),
                    label(layer),
                    ref(summary, join_path(zs, layer, "conversions_total"), "int"),
                    ref(summary, join_path(zs, layer, "conversions_skipped_leading"), "int"),
                    ref(summary, join_path(zs, layer, "conversions_skipped_bitplane"), "int"),
                    ref(summary, join_path(dz, "layers", layer, "saved_leading"), "pct"),
                    ref(summary, join_path(dz, "layers", layer, "saved_bitplane"), "pct"),
                ]
            )
        table.add(
            [
                label(run),
                label("all layers"),
                ref(summary, join_path(dz, "overall", "conversions_total"), "int"),
                ref(summary, join_path(dz, "overall", "conversions_skipped_leading"), "int"),
                ref(summary, join_path(dz, "overall", "conversions_skipped_bitplane"), "int"),
                ref(summary, join_path(dz, "overall", "saved_leading"), "pct"),
                ref(summary, join_path(dz, "overall", "saved_bitplane"), "pct"),
            ]
        )
        if not figures:
            series = {
                rule: [_num(summary, join_path(dz, "layers", layer, f"saved_{rule}")) for layer in layers]
                for rule in ("leading", "bitplane")
            }
            png = plots.grouped_bars(layers, series, "conversions skipped", f"Zero-skip savings ({run})")
            figures.append(Figure("zero-skip", f"Zero-skip savings per layer ({run})", png, sources=[dz]))
    return Section(
        "zero-skip",
        "Zero-skipping",
        paragraphs=[
            "ADC conversions counted from the real activations, per sub-array of R rows: 'leading' skips "
            "the input-bit cycles above the longest input of the sub-array, 'bitplane' skips every bit "
            "position at which all R inputs are zero. FORMS skips per fragment sub-array, so the counts "
            "are shown for the ideal polarized run (its fragment size R)."
        ],
        tables=[table],
        figures=figures,
    )


def adc_clip_section(summary: Mapping[str, Any]) -> Section:
    """ADC clip rate of every simulation run, overall and per layer (one row per run)."""
    runs = sim_runs(summary)
    layer_names: list[str] = []
    for run in runs:
        layers = resolve(summary, join_path("simulate", run, "metrics", "adc_clip_rate", "layers"))
        for layer in layers if isinstance(layers, Mapping) else {}:
            if layer not in layer_names:
                layer_names.append(layer)
    table = Table("adc-clip", "ADC clip rates", ["run", "ADC bits", "overall", *layer_names])
    for run in runs:
        base = join_path("simulate", run, "metrics", "adc_clip_rate")
        table.add(
            [
                label(run),
                ref(summary, join_path("simulate", run, "setup", "adc_bits"), "int"),
                ref(summary, join_path(base, "overall"), "pct"),
            ]
            + [ref(summary, join_path(base, "layers", layer), "pct") for layer in layer_names]
        )
    section = Section(
        "adc-clip",
        "ADC clipping",
        paragraphs=[
            "Fraction of ADC conversions whose partial sum exceeded the ADC range and was clipped. It is "
            "zero with the lossless ADC width by construction; a narrower ADC shows where it loses."
        ],
        tables=[table],
    )
    if layer_names and runs:
        series = {
            run: [
                _num(summary, join_path("simulate", run, "metrics", "adc_clip_rate", "layers", layer))
                for layer in layer_names
            ]
            for run in runs
        }
        png = plots.grouped_bars(layer_names, series, "clip rate", "ADC clip rate per layer")
        section.figures.append(Figure("adc-clip", "ADC clip rate per layer", png, sources=["simulate"]))
    return section


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
            names[key]: [_num(summary, join_path(ratio_prefix, arch, key)) for arch in archs] for key in shown
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
                components += [c for c, v in node.items() if _is_num(v) and c not in components]
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
                _num(summary, join_path(estimate_prefix, arch, "breakdown", quantity, comp)) for arch in archs
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


def _is_num(value: Any) -> bool:
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


def stage_report(summary: dict[str, Any], intro: Sequence[str] = ()) -> Report:
    """The standard report of one compressed network: every section above, in reading order."""
    sections = [
        overview_section(summary, intro),
        accuracy_section(summary),
        crossbar_section(summary),
        zero_skip_section(summary),
        adc_clip_section(summary),
        cost_section(summary),
        breakdown_section(summary),
        assumptions_section(summary),
    ]
    subtitle = f"{summary.get('meta', {}).get('created', '')} · {summary.get('meta', {}).get('machine', '')}"
    return Report(str(summary.get("title", "FORMS report")), subtitle, sections, summary)
