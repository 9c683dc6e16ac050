"""Report model, summary derivation and writers, on hand-made stage outputs (no other subsystem needed)."""

from __future__ import annotations

import csv
import functools
import json
import math
import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forms.compress.counting import PerWeightReduction, PhysicalReduction, Reduction
from forms.compress.result import (
    AdmmRound,
    AdmmSummary,
    CompressResult,
    RetrainEpoch,
    RetrainSummary,
)
from forms.cost.estimate import Estimate
from forms.encoding import Encoding
from forms.nn.train_result import EpochRecord, TrainResult
from forms.report import RunMeta, RunSetup, SimulationRun, Summary, stage_report, write_report
from forms.report.derived import estimate_ratios, zero_skip_savings
from forms.report.model import MISSING, format_value, join_path, resolve, split_path
from forms.sim.mapping import MappingTable
from forms.sim.result import LayerRecord, LayerSetup, LayerZeroSkip, RunsSummary, SimulationResult
from forms.sim.spec import SimSpec

STAGE_SECTION_IDS = [
    "overview",
    "accuracy",
    "crossbars",
    "zero-skip",
    "adc-clip",
    "cost",
    "breakdown",
    "assumptions",
]
"""Sections of a report without a verdict, in order."""
SECTION_IDS = ["verdict", "what-decides", *STAGE_SECTION_IDS]
"""Sections of a report with a verdict: the verdict opens it."""
LAYERS = ["conv1", "conv2", "fc1", "fc2", "fc3"]


def sample_train() -> TrainResult:
    """A hand-made float training result (two epochs of LeNet-5)."""
    epochs = [
        EpochRecord(e, 0.3 / e, 0.95 + 0.01 * e, 0.9802 + 0.005 * e, 15.75, 15.0, 1.0, 0.001) for e in (1, 2)
    ]
    return TrainResult(
        model="lenet5",
        dataset="mnist",
        test_accuracy=epochs[-1].test_accuracy,
        epochs=2,
        seed=0,
        train_seconds=31.5,
        mean_epoch_seconds=15.75,
        mean_epoch_cpu_seconds=15.0,
        parameters=61706,
        world_size=1,
        torch_threads=2,
        checkpoint="checkpoint.pt",
        per_epoch=epochs,
        config={"model": "lenet5", "dataset": "mnist", "epochs": 2},
        test_images=10000,
    )


def sample_compress() -> CompressResult:
    """A hand-made compression result: R = 8, 8-bit weights, pruned, with crossbar counts."""
    residuals = {name: 0.01 * (i + 1) for i, name in enumerate(LAYERS)}
    return CompressResult(
        model="lenet5",
        dataset="mnist",
        source_checkpoint="train/checkpoint.pt",
        accuracy_before=0.9902,
        accuracy_admm=0.9861,
        accuracy_projected=0.9714,
        accuracy_after=0.9887,
        accuracy_drop_points=0.15,
        fragment_size=8,
        weight_bits=8,
        fragments_total=5000,
        fragments_mixed_sign=0,
        unpolarized_layers=[],
        sparsity=0.42,
        crossbars={
            "baseline": "32-bit magnitudes, differential encoding (two crossbar sets)",
            "dense_32bit": 96,
            "pruned_32bit": 48,
            "final": {"polarized": 12, "offset": 15, "differential": 24},
            "final_usable": 12,
            "final_encoding": "polarized",
            "factors": {"pruning": 2.0, "quantization": 4.0, "polarization": 2.0, "total": 16.0},
        },
        crossbar_geometry={"rows": 128, "cols": 128, "cell_bits": 2},
        crossbar_layers=[],
        reduction=Reduction(
            "polarized",
            PhysicalReduction(2.0, 4.0, 2.0, 16.0),
            PerWeightReduction(2.5, 4.0, 2.0, 20.0, 9.5),
        ),
        layers=[],
        admm=AdmmSummary(1, 0.01, [AdmmRound(1, 0.001, 0.2, [3.0], residuals, 0.05, 0.9861)]),
        retrain=RetrainSummary(1, [RetrainEpoch(1, 0.1, 3.0, 0.9887)], 0, 1),
        bn_recalibrated=False,
        world_size=1,
        torch_threads=2,
        checkpoint="checkpoint.pt",
        config={"crossbar": {"fragment_size": 8}},
        test_images=10000,
    )


def sample_simulation(
    accuracies: tuple[float, ...], clip: float, skip: float, encoding: Encoding = Encoding.POLARIZED
) -> SimulationResult:
    """A hand-made simulation of one chip per accuracy, clipping ``clip`` of the conversions."""
    conversions = 10_000
    setup = LayerSetup("exact_fast", "gemm", 5, 1.0, 8, 24, 0.1, False)
    return SimulationResult(
        spec=SimSpec.from_dict({"encoding": encoding}),
        images=1000,
        float_accuracy=0.9902,
        reference_accuracy=0.9871,
        runs=RunsSummary(
            accuracies, tuple(1.0 if clip == 0 else 0.97 for _ in accuracies), tuple(range(len(accuracies)))
        ),
        zero_skip={
            name: LayerZeroSkip(
                conversions_total=1000 * (i + 1),
                conversions_skipped_leading=int(1000 * (i + 1) * skip),
                conversions_skipped_bitplane=int(1000 * (i + 1) * min(1.0, skip * 1.5)),
                rounds_total=1000 * (i + 1),
                columns=1,
                steps=16,
                rows=8,
                fragment_size=8,
            )
            for i, name in enumerate(LAYERS)
        },
        layers={
            name: LayerRecord(setup, conversions, int(conversions * clip * (i + 1) / 5))
            for i, name in enumerate(LAYERS)
        },
        mapping=MappingTable(encoding, 128, 128, 2, ()),
        elapsed_s=1.0,
        device="cpu",
    )


def sample_estimate(arch: str, scale: float) -> Estimate:
    """A hand-made cost-model estimate whose figures scale with ``scale``."""
    return Estimate(
        arch=arch,
        model="lenet5",
        input_shape=[1, 28, 28],
        chip_area_mm2=85.4 * scale,
        chip_power_w=65.8 * scale,
        chips=1,
        fps=1.0e5 / scale,
        latency_s=2.2e-6 * scale,
        energy_per_inference_j=6.5e-4 * scale,
        average_power_w=65.0,
        gops_per_s_mm2=478.95 / scale,
        gops_per_w=627.5 / scale,
        gops_per_s_mm2_executed=239.0 / scale,
        gops_per_w_executed=313.0 / scale,
        peak_gops_per_s_mm2=500.0 / scale,
        peak_gops_per_w=700.0 / scale,
        dense_ops=846_000,
        executed_ops=423_000,
        crossbars_needed=int(40 * scale),
        crossbars_used=int(40 * scale),
        crossbars_per_chip=12_288,
        adc={"bits": 5},
        breakdown={
            "area_mm2": {"adc": 10.0 * scale, "edram": 20.0, "router": 5.0, "crossbar": 0.1 * scale},
            "power_w": {"adc": 8.0 * scale, "edram": 3.0, "router": 7.0, "crossbar": 0.4 * scale},
        },
        layers=[],
        assumptions=[f"clock 1.2 GHz (scale {scale})", "activity: measured zero-skip statistics"],
    )


@functools.cache
def sample_verdict() -> dict[str, Any]:
    """A real verdict (the packaged ranges) on LeNet-5's dense layer shapes, as summary.json holds it."""
    from forms.cost.arch import load_arch
    from forms.cost.layer_shapes import zoo_workload
    from forms.experiments.verdict import Costing, compute_verdict
    from forms.experiments.verdict_ranges import load_verdict_ranges

    baselines = [load_arch(name) for name in ("isaac-opt", "isaac-ce", "prime")]
    verdict = compute_verdict(
        "lenet5 (mnist)",
        Costing(zoo_workload("lenet5")),
        load_arch("forms-8"),
        baselines,
        load_verdict_ranges(),
    )
    return json.loads(json.dumps(verdict.to_dict()))


def make_summary() -> Summary:
    """A complete summary of hand-made typed stage results, and a real verdict."""
    return Summary(
        title="FORMS demo: LeNet-5 on MNIST (test sample)",
        meta=RunMeta.now("pytest"),
        parameters={
            "model": "lenet5",
            "dataset": "mnist",
            "compress": {"fragment_size": 8, "weight_bits": 8},
        },
        assumptions=["inputs are 16-bit unsigned after ReLU", "one ADC per crossbar"],
        train=sample_train(),
        compress=sample_compress(),
        simulate={
            "polarized-ideal": SimulationRun(
                RunSetup(Encoding.POLARIZED, "ideal", 5, limit=1000), sample_simulation((0.9887,), 0.0, 0.3)
            ),
            "offset-adc4": SimulationRun(
                RunSetup(Encoding.OFFSET, "adc", 4, flipped=True, limit=1000),
                sample_simulation((0.9512,), 0.021, 0.3, Encoding.OFFSET),
            ),
            "polarized-sigma0.1": SimulationRun(
                RunSetup(Encoding.POLARIZED, "variation", 5, variation_sigma=0.1, runs=3),
                sample_simulation((0.9801, 0.9780, 0.9822), 0.0, 0.3),
            ),
        },
        estimate={
            arch: sample_estimate(arch, scale)
            for arch, scale in (("isaac-opt", 1.0), ("prime", 1.6), ("forms-8", 0.55))
        },
        extra={"verdict": {"lenet5 (mnist)": sample_verdict()}},
    )


class _Cells(HTMLParser):
    """Collect every <td> (attributes and text), section ids and img tags of a report."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[tuple[dict[str, str | None], str]] = []
        self.sections: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self._td: dict[str, str | None] | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "td":
            self._td, self._text = a, ""
        elif tag == "section":
            self.sections.append(a.get("id") or "")
        elif tag == "img":
            self.images.append(a)

    def handle_data(self, data: str) -> None:
        if self._td is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._td is not None:
            self.cells.append((self._td, self._text))
            self._td = None


NUMBER = re.compile(r"^-?[\d.,]+(%|x|e[+-]\d+)?$")


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    write_report(stage_report(make_summary()), out)
    return out


def test_every_report_number_is_traceable_to_summary_json(written: Path) -> None:
    """Each table cell with a path shows exactly the summary.json value there; no number lacks a path."""
    summary = json.loads((written / "summary.json").read_text())
    parser = _Cells()
    parser.feed((written / "report.html").read_text())
    traced = 0
    for attrs, text in parser.cells:
        path = attrs.get("data-path")
        if path is None:
            assert not NUMBER.match(text.strip()), f"untraceable number {text!r} in the report"
            continue
        value = resolve(summary, path)
        assert value is not MISSING, f"report cell reads {path}, which summary.json does not hold"
        assert text == format_value(value, attrs["data-fmt"]), path  # type: ignore[arg-type]
        traced += 1
    assert traced > 100


def test_crossbar_section_shows_both_reduction_counts() -> None:
    table = next(t for t in stage_report(make_summary()).tables() if t.id == "crossbar-reduction")
    assert table.columns == ["factor", "physical", "per weight"]
    assert [[cell.text for cell in row] for row in table.rows] == [
        ["pruning", "2x", "2.5x"],
        ["quantization", "4x", "4x"],
        ["polarization", "2x", "2x"],
        ["total", "16x", "20x"],
        ["crossbars of the final polarized design (per weight: area equivalent)", "12", "9.5"],
    ]
    assert table.rows[3][2].path == "compress.reduction.per_weight.total"


def test_reduction_table_counts_the_usable_design_the_reduction_names() -> None:
    summary = make_summary()
    assert summary.compress is not None
    counts = replace(summary.compress.reduction, final_encoding="differential")
    crossbars = {**summary.compress.crossbars, "final_usable": 24, "final_encoding": "differential"}
    summary = replace(summary, compress=replace(summary.compress, reduction=counts, crossbars=crossbars))
    table = next(t for t in stage_report(summary).tables() if t.id == "crossbar-reduction")
    final = table.rows[4]
    assert final[0].text == "crossbars of the final differential design (per weight: area equivalent)"
    assert (final[1].text, final[1].path) == ("24", "compress.crossbars.final_usable")


def test_report_has_every_section_and_embedded_images(written: Path) -> None:
    parser = _Cells()
    text = (written / "report.html").read_text()
    parser.feed(text)
    assert parser.sections == SECTION_IDS
    assert parser.images, "no figure embedded"
    assert all((img.get("src") or "").startswith("data:image/png;base64,") for img in parser.images)
    assert "http://" not in text and "https://" not in text, "the report must not reference the network"


def test_csv_tables_hold_the_raw_summary_values(written: Path) -> None:
    """Every CSV value is the raw value of the HTML cell at the same position (both from summary.json)."""
    parser = _Cells()
    parser.feed((written / "report.html").read_text())
    report = stage_report(Summary.from_dict(json.loads((written / "summary.json").read_text())))
    for table in report.tables():
        with (written / "tables" / f"{table.id}.csv").open() as handle:
            rows = list(csv.reader(handle))
        assert rows[0] == table.columns
        assert len(rows) == len(table.rows) + 1
        for csv_row, cells in zip(rows[1:], table.rows, strict=True):
            for raw, cell in zip(csv_row, cells, strict=True):
                assert raw == ("" if cell.value is None else str(cell.value))
    assert (written / "report.md").read_text().count("| ") > 50
    assert sorted(p.name for p in (written / "figures").iterdir()) == sorted(
        f"{f.id}.png" for f in report.figures()
    )
    assert not [p for p in written.rglob("*.tmp")], "temporary files left behind"


def test_every_accuracy_names_its_images_and_simulations_sit_beside_the_float_model_on_them(
    written: Path,
) -> None:
    summary = Summary.from_dict(json.loads((written / "summary.json").read_text()))
    rows = {r["stage"]: r for r in csv.DictReader((written / "tables" / "accuracy.csv").open())}
    assert rows["float model (trained)"]["test images"] == "10000"
    assert rows["after masked retraining (final)"]["float model on the same images"] == str(
        summary.compress.accuracy_before if summary.compress else None
    )
    for name, run in summary.simulate.items():
        row = rows[f"simulated: {name}"]
        assert row["test images"] == str(run.metrics.images)
        assert row["float model on the same images"] == str(run.metrics.float_accuracy)


def test_each_assumption_is_one_row(written: Path) -> None:
    summary = Summary.from_dict(json.loads((written / "summary.json").read_text()))
    rows = list(csv.reader((written / "tables" / "assumptions.csv").open()))[1:]
    expected = [("this run", a) for a in summary.assumptions] + [
        (arch, a) for arch, est in summary.estimate.items() for a in est.assumptions
    ]
    assert [(r[0], r[1]) for r in rows] == expected


def test_derived_values() -> None:
    summary = make_summary()
    ratios = summary.derived.estimate_ratios
    assert all(v == pytest.approx(1.0) for v in ratios["isaac-opt"].to_dict().values())
    assert ratios["forms-8"].gops_per_w == pytest.approx(1 / 0.55)
    zs = summary.derived.zero_skip["polarized-ideal"]
    assert zs.layers["conv2"].saved_leading == pytest.approx(600 / 2000)
    assert zs.overall.conversions_total == 15000


def test_summary_json_reads_back_into_the_same_summary(written: Path) -> None:
    """from_dict(summary.json).to_dict() is summary.json, key for key and in the same order."""
    text = (written / "summary.json").read_text()
    data = json.loads(text)
    again = Summary.from_dict(data).to_dict()
    assert json.dumps(again, default=str) == json.dumps(data)
    assert list(again) == list(data) and list(again)[-1] == "derived"
    with pytest.raises(ValueError, match="not a FORMS summary"):
        Summary.from_dict({**data, "format": "other"})


def test_extra_tables_follow_the_stage_results_and_may_not_shadow_them() -> None:
    meta = RunMeta.now("pytest")
    summary = Summary(title="t", meta=meta, parameters={}, assumptions=[], extra={"points": {"p": {"x": 1}}})
    assert list(summary.to_dict())[-2:] == ["points", "derived"]
    with pytest.raises(ValueError, match="collides"):
        Summary(title="t", meta=meta, parameters={}, assumptions=[], extra={"derived": {}})


def test_empty_summary_still_renders(tmp_path: Path) -> None:
    """A report of a run that stopped early renders every section, with no numbers it does not have."""
    summary = Summary(title="empty", meta=RunMeta.now("pytest"), parameters={}, assumptions=[])
    files = write_report(stage_report(summary), tmp_path)
    parser = _Cells()
    parser.feed(files.html.read_text())
    assert parser.sections == STAGE_SECTION_IDS
    assert summary.to_dict()["derived"] == {"estimate_ratios": {}, "zero_skip": {}}
    assert summary.to_dict()["train"] == {} and summary.to_dict()["compress"] == {}


keys = st.text(alphabet="abc.[]_-1", min_size=1, max_size=6).filter(lambda k: "[" not in k and "]" not in k)


@given(st.lists(keys, min_size=1, max_size=4))
def test_join_then_split_is_identity(parts: list[str]) -> None:
    assert split_path(join_path("", *parts)) == parts
    assert split_path(join_path(join_path("", parts[0]), *parts[1:])) == parts


@given(st.lists(keys, min_size=1, max_size=4), st.integers())
def test_resolve_finds_what_join_path_names(parts: list[str], value: int) -> None:
    tree: dict[str, Any] = {}
    node = tree
    for key in parts[:-1]:
        node = node.setdefault(key, {})
    node[parts[-1]] = value
    if len(set(parts)) == len(parts):
        assert resolve(tree, join_path("", *parts)) == value
    assert resolve(tree, join_path("", *parts, "missing-key")) is MISSING


finite = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False)


@given(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), finite, min_size=1), st.sampled_from(["a", "b", "c"])
)
def test_ratio_to_baseline_identities(values: dict[str, float], base: str) -> None:
    estimates = {
        arch: replace(sample_estimate(arch, 1.0), fps=v, gops_per_w=2 * v, chip_area_mm2=0.0)
        for arch, v in values.items()
    }
    ratios = estimate_ratios(estimates, base)
    if base not in values:
        assert ratios == {}
        return
    for arch, v in values.items():
        assert ratios[arch].fps == pytest.approx(v / values[base])
        assert ratios[arch].gops_per_w == pytest.approx(ratios[arch].fps)
        assert ratios[arch].chip_area_mm2 is None  # the baseline's is zero
        assert ratios[arch].chip_power_w == pytest.approx(1.0)


@given(st.lists(st.tuples(st.integers(1, 10**6), st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=6))
def test_zero_skip_overall_is_the_sum_of_layers(rows: list[tuple[int, float, float]]) -> None:
    stats = {
        f"l{i}": LayerZeroSkip(t, int(t * a), int(t * b), t, 1, 16, 8, 8) for i, (t, a, b) in enumerate(rows)
    }
    out = zero_skip_savings(stats)
    total = sum(t for t, _, _ in rows)
    assert out.overall.conversions_total == total
    lead = sum(int(t * a) for t, a, _ in rows)
    assert out.overall.saved_leading == pytest.approx(lead / total)
    for name, row in out.layers.items():
        assert row.saved_bitplane is not None and 0.0 <= row.saved_bitplane <= 1.0
        assert row.saved_leading == stats[name].conversions_skipped_leading / stats[name].conversions_total


@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**12), 10**12), st.none()))
def test_format_value_never_fails(value: float | int | None) -> None:
    for fmt in ("text", "int", "float", "pct", "ratio", "sci"):
        text = format_value(value, fmt)  # type: ignore[arg-type]
        assert text
        if value is None or (isinstance(value, float) and math.isnan(value)):
            assert text == "—"
