"""Report sections of one compressed network, read from the typed :class:`Summary`: overview,
accuracy, zero-skip, ADC clipping and stage times (the verdict: :mod:`forms.report.verdict_sections`;
crossbars: :mod:`forms.report.crossbar_section`; cost, breakdown and assumptions:
:mod:`forms.report.cost_sections`), and :func:`stage_report` that puts them in reading order. Every
number cell carries the summary.json path of the field it was read from.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from forms.report import plots
from forms.report.cost_sections import assumptions_section, breakdown_section, cost_section
from forms.report.crossbar_section import crossbar_section
from forms.report.model import (
    Cell,
    Figure,
    Report,
    Section,
    Table,
    entry_cell,
    field_cell,
    join_path,
    label,
)
from forms.report.records import StageTimings
from forms.report.summary import Summary
from forms.report.verdict_sections import verdict_sections

ACCURACY_STAGES: tuple[tuple[str, str, str, str], ...] = (
    ("float model (trained)", "float", "train", "test_accuracy"),
    ("float model (before compression)", "float (re-eval.)", "compress", "accuracy_before"),
    ("ADMM (before hard projection)", "ADMM", "compress", "accuracy_admm"),
    ("after hard projection", "projected", "compress", "accuracy_projected"),
    ("after masked retraining (final)", "retrained", "compress", "accuracy_after"),
)
"""Accuracy rows before the hardware: label, short plot label, stage (a Summary field), its field."""

CLIP_RATE = "adc_clip_rate"
"""Key of a run's clip rates in metrics.json: ``overall`` and ``layers.<layer>``."""


def _run_path(name: str, *keys: str) -> str:
    """summary.json path of simulation run ``name`` (extended by ``keys``)."""
    return join_path("simulate", name, *keys)


# ---------------------------------------------------------------------------------------------- sections


def _timing_rows(timings: StageTimings) -> list[list[Cell]]:
    """Overview rows of a job's stage timings: seconds of each stage run now or earlier, reused stages."""
    rows = []
    for name, when in (("stage_seconds", "this run"), ("earlier_stage_seconds", "an earlier run")):
        seconds = getattr(timings, name)
        rows += [
            [label(f"{stage} (s, {when})"), entry_cell(seconds, join_path("meta", name), stage)]
            for stage in seconds
        ]
    if timings.reused_stages:
        reused = ", ".join(timings.reused_stages)
        rows.append([label("stages reused from an earlier run"), Cell(reused, None, "text")])
    return rows


def overview_section(summary: Summary, intro: Sequence[str] = ()) -> Section:
    """Title facts: what was run, when, where (stage times: :func:`stage_times_section`)."""
    table = Table("overview", "Run", ["item", "value"])
    meta = summary.meta
    table.add([label("title"), field_cell(summary, "", "title", "text")])
    for name in ("created", "command", "machine"):
        table.add([label(name), field_cell(meta, "meta", name, "text")])
    return Section("overview", "Overview", paragraphs=list(intro), tables=[table])


def stage_times_section(summary: Summary) -> list[Section]:
    """The job's wall time and each stage's seconds (at the end of a report), or none when not a job."""
    meta = summary.meta
    table = Table("stage-times", "Wall seconds", ["item", "value"])
    if meta.wall_seconds is not None:
        table.add([label("wall time of this run (s)"), field_cell(meta, "meta", "wall_seconds", "float")])
    for row in _timing_rows(meta.timings) if meta.timings is not None else []:
        table.add(row)
    return [Section("stage-times", "Stage times", tables=[table])] if table.rows else []


ACCURACY_COLUMNS = ["stage", "test images", "accuracy", "± std over runs", "float model on the same images"]
"""Columns of the accuracy table: every accuracy names the images it was measured on."""


def _stage_rows(summary: Summary) -> Iterator[tuple[str, list[Cell]]]:
    """(plot label, cells) of the float and compression stages that ``summary`` holds."""
    for name, short, stage, key in ACCURACY_STAGES:
        result = getattr(summary, stage)
        if result is None:
            continue
        same_float = (
            field_cell(result, stage, "accuracy_before", "pct") if stage == "compress" else Cell(None)
        )
        known = result.test_images is not None  # None: metrics written before image counts were kept
        images = field_cell(result, stage, "test_images", "int") if known else Cell(None)
        yield short, [label(name), images, field_cell(result, stage, key, "pct"), Cell(None), same_float]


def accuracy_section(summary: Summary) -> Section:
    """Accuracy at every stage: float, ADMM, hard projection, masked retraining, each simulation run.

    Each row names its test images, and each simulated run sits beside the float model's accuracy on
    the same images: runs on a subset of the test set compare with that, not with the full-set rows.
    """
    table = Table("accuracy", "Test accuracy at each stage", ACCURACY_COLUMNS)
    labels: list[str] = []
    values: list[float | None] = []
    errors: list[float | None] = []
    for short, cells in _stage_rows(summary):
        table.add(cells)
        images = cells[1].value
        labels.append(f"{short} ({images})" if images is not None else short)
        values.append(cells[2].value)
        errors.append(None)
    for run_name, run in summary.simulate.items():
        metrics, at = run.metrics, _run_path(run_name, "metrics")
        several = run.setup.runs > 1
        table.add(
            [
                label(f"simulated: {run_name}"),
                field_cell(metrics, at, "images", "int"),
                field_cell(metrics, at, "accuracy_mean", "pct"),
                field_cell(metrics, at, "accuracy_std", "pct") if several else Cell(None),
                field_cell(metrics, at, "float_accuracy", "pct"),
            ]
        )
        labels.append(f"{run_name} ({metrics.images})")
        values.append(metrics.accuracy_mean)
        errors.append(metrics.accuracy_std if several else None)
    section = Section(
        "accuracy",
        "Accuracy at each stage",
        paragraphs=[
            "Float training, ADMM compression (polarization, quantization, structured pruning), hard "
            "projection and masked retraining, then the compressed integer model run through the "
            "bit-accurate crossbar simulator under each encoding and hardware setting. Under device "
            "variation the figure is the mean over Monte Carlo chips, with its standard deviation. "
            "Rows measured on different test images are not comparable: each simulated run is set "
            "beside the float model's accuracy on its own images."
        ],
        tables=[table, simulation_table(summary)],
    )
    if values:
        png = plots.grouped_bars(
            labels,
            {"accuracy": values},
            "test accuracy",
            "Accuracy at each stage (test images)",
            errors={"accuracy": errors},
        )
        section.figures.append(Figure("accuracy-stages", "Accuracy at each stage", png, sources=["accuracy"]))
    return section


def simulation_table(summary: Summary) -> Table:
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
    for name, run in summary.simulate.items():
        setup, at = run.setup, _run_path(name, "setup")
        metrics, metrics_at = run.metrics, _run_path(name, "metrics")
        table.add(
            [
                label(name),
                field_cell(setup, at, "encoding", "text"),
                field_cell(setup, at, "mode", "text"),
                field_cell(setup, at, "adc_bits", "int"),
                field_cell(setup, at, "variation_sigma", "float"),
                field_cell(setup, at, "runs", "int"),
                field_cell(setup, at, "limit", "int"),
                field_cell(metrics, metrics_at, "accuracy_mean", "pct"),
                field_cell(metrics, metrics_at, "reference_accuracy", "pct"),
                field_cell(metrics, metrics_at, "prediction_agreement", "pct"),
                Cell(metrics.clip_rate, join_path(metrics_at, CLIP_RATE, "overall"), "pct"),
            ]
        )
    return table


def _zero_skip_runs(summary: Summary) -> list[str]:
    """The runs whose zero-skip counts are shown: the ideal per-fragment (polarized) runs, else the
    ideal runs, else every run that counted skips."""
    counted = list(summary.derived.zero_skip)
    ideal = [name for name in counted if summary.simulate[name].setup.mode == "ideal"]
    per_fragment = [name for name in ideal if summary.simulate[name].setup.encoding.signs_per_fragment]
    return per_fragment or ideal or counted


def _zero_skip_rows(summary: Summary, name: str) -> list[list[Cell]]:
    """The zero-skip rows of simulation run ``name``: one per layer, then all layers."""
    counted_at = _run_path(name, "metrics", "zero_skip")
    savings, savings_at = summary.derived.zero_skip[name], join_path("derived", "zero_skip", name)
    rows = []
    for layer, layer_savings in savings.layers.items():
        counts, counts_at = summary.simulate[name].metrics.zero_skip[layer], join_path(counted_at, layer)
        saved_at = join_path(savings_at, "layers", layer)
        rows.append(
            [
                label(name),
                label(layer),
                field_cell(counts, counts_at, "conversions_total", "int"),
                field_cell(counts, counts_at, "conversions_skipped_leading", "int"),
                field_cell(counts, counts_at, "conversions_skipped_bitplane", "int"),
                field_cell(layer_savings, saved_at, "saved_leading", "pct"),
                field_cell(layer_savings, saved_at, "saved_bitplane", "pct"),
            ]
        )
    overall, overall_at = savings.overall, join_path(savings_at, "overall")
    totals = [
        field_cell(overall, overall_at, key, "int")
        for key in ("conversions_total", "conversions_skipped_leading", "conversions_skipped_bitplane")
    ]
    fractions = [field_cell(overall, overall_at, key, "pct") for key in ("saved_leading", "saved_bitplane")]
    rows.append([label(name), label("all layers"), *totals, *fractions])
    return rows


def zero_skip_section(summary: Summary) -> Section:
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
    figures: list[Figure] = []
    for name in _zero_skip_runs(summary):
        for row in _zero_skip_rows(summary, name):
            table.add(row)
        if not figures:
            layers = summary.derived.zero_skip[name].layers
            series: dict[str, list[float | None]] = {
                "leading": [saved.saved_leading for saved in layers.values()],
                "bitplane": [saved.saved_bitplane for saved in layers.values()],
            }
            png = plots.grouped_bars(
                list(layers), series, "conversions skipped", f"Zero-skip savings ({name})"
            )
            source = join_path("derived", "zero_skip", name)
            figures.append(
                Figure("zero-skip", f"Zero-skip savings per layer ({name})", png, sources=[source])
            )
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


def adc_clip_section(summary: Summary) -> Section:
    """ADC clip rate of every simulation run, overall and per layer (one row per run)."""
    layer_names: list[str] = []
    for run in summary.simulate.values():
        layer_names += [layer for layer in run.metrics.layers if layer not in layer_names]
    table = Table("adc-clip", "ADC clip rates", ["run", "ADC bits", "overall", *layer_names])
    series: dict[str, list[float | None]] = {}
    for name, run in summary.simulate.items():
        at = _run_path(name, "metrics", CLIP_RATE)
        rates = [
            run.metrics.layers[layer].clip_rate if layer in run.metrics.layers else None
            for layer in layer_names
        ]
        table.add(
            [
                label(name),
                field_cell(run.setup, _run_path(name, "setup"), "adc_bits", "int"),
                Cell(run.metrics.clip_rate, join_path(at, "overall"), "pct"),
            ]
            + [
                Cell(rate, join_path(at, "layers", layer), "pct")
                for layer, rate in zip(layer_names, rates, strict=True)
            ]
        )
        series[name] = rates
    section = Section(
        "adc-clip",
        "ADC clipping",
        paragraphs=[
            "Fraction of ADC conversions whose partial sum exceeded the ADC range and was clipped. It is "
            "zero with the lossless ADC width by construction; a narrower ADC shows where it loses."
        ],
        tables=[table],
    )
    if layer_names and series:
        png = plots.grouped_bars(layer_names, series, "clip rate", "ADC clip rate per layer")
        section.figures.append(Figure("adc-clip", "ADC clip rate per layer", png, sources=["simulate"]))
    return section


def stage_report(summary: Summary, intro: Sequence[str] = ()) -> Report:
    """The standard report of one compressed network: the verdict first (when the job computed one),
    every section above in reading order, the parameters, assumptions and stage times last."""
    sections = [
        *verdict_sections(summary),
        overview_section(summary, intro),
        accuracy_section(summary),
        crossbar_section(summary),
        zero_skip_section(summary),
        adc_clip_section(summary),
        cost_section(summary),
        breakdown_section(summary),
        assumptions_section(summary),
        *stage_times_section(summary),
    ]
    subtitle = f"{summary.meta.created} · {summary.meta.machine}"
    return Report(summary.title, subtitle, sections, summary)
