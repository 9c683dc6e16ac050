"""Report sections of one compressed network built from summary.json paths: overview, accuracy,
crossbars, zero-skip and ADC clipping (cost, breakdown and assumptions: :mod:`forms.report.cost_sections`),
and :func:`stage_report` that puts them in reading order. Each builder reads only the summary, so every
number it shows keeps its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from forms.encoding import Encoding
from forms.report import plots
from forms.report.cost_sections import assumptions_section, breakdown_section, cost_section
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
    number_at,
    number_leaves,
    ref,
    resolve,
    sim_runs,
)

ACCURACY_STAGES: tuple[tuple[str, str, str], ...] = (
    ("float model (trained)", "float", "train.test_accuracy"),
    ("float model (before compression)", "float (re-eval.)", "compress.accuracy_before"),
    ("ADMM (before hard projection)", "ADMM", "compress.accuracy_admm"),
    ("after hard projection", "projected", "compress.accuracy_projected"),
    ("after masked retraining (final)", "retrained", "compress.accuracy_after"),
)
"""Accuracy rows before the hardware: label, short plot label, summary path."""


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
    for name, short, path in ACCURACY_STAGES:
        if resolve(summary, path) is not MISSING:
            table.add([label(name), ref(summary, path, "pct"), Cell(None)])
            labels.append(short)
            values.append(number_at(summary, path))
            errors.append(None)
    for run in sim_runs(summary):
        base = join_path("simulate", run, "metrics")
        several = number_at(summary, join_path("simulate", run, "setup", "runs")) not in (None, 0.0, 1.0)
        std = f"{base}.accuracy_std" if several else None
        acc = f"{base}.accuracy_mean"
        table.add(
            [
                label(f"simulated: {run}"),
                ref(summary, acc, "pct"),
                ref(summary, std, "pct") if std else Cell(None),
            ]
        )
        labels.append(run)
        values.append(number_at(summary, acc))
        errors.append(number_at(summary, std))
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
        row.append(ref(summary, f"{base}.metrics.accuracy_mean", "pct"))
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
    polarized = [r for r in ideal if setup(r, "encoding") == Encoding.POLARIZED]
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
                rule: [
                    number_at(summary, join_path(dz, "layers", layer, f"saved_{rule}")) for layer in layers
                ]
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
                number_at(summary, join_path("simulate", run, "metrics", "adc_clip_rate", "layers", layer))
                for layer in layer_names
            ]
            for run in runs
        }
        png = plots.grouped_bars(layer_names, series, "clip rate", "ADC clip rate per layer")
        section.figures.append(Figure("adc-clip", "ADC clip rate per layer", png, sources=["simulate"]))
    return section


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
