"""The verdict (forms.experiments.verdict): identities with the cost API, tornado, break-even, order."""

from __future__ import annotations

import functools
import itertools
import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from forms.cost.activity import SkipFractions
from forms.cost.arch import ArchSpec, load_arch
from forms.cost.estimate import estimate
from forms.cost.layer_shapes import Workload, zoo_workload
from forms.cost.optimize import Constraint, optimize
from forms.errors import ConfigError
from forms.experiments.verdict import Costing, compute_verdict, crossings, split_archs, tornado_bar
from forms.experiments.verdict_ranges import (
    UncertainParameter,
    VerdictRanges,
    load_verdict_ranges,
    with_fields,
)
from forms.experiments.verdict_result import MAIN_METRICS, METRICS, SkipSummary, Verdict
from forms.report import RunMeta, StageTimings, Summary, stage_report
from forms.report.verdict_sections import VERDICT_KEY

BASELINES = ("isaac-opt", "isaac-ce", "prime")


@functools.cache
def lenet() -> Workload:
    """LeNet-5's dense layer shapes (built once)."""
    return zoo_workload("lenet5")


@functools.cache
def verdict() -> Verdict:
    """The verdict on dense LeNet-5 with the packaged ranges."""
    forms, baselines = split_archs(["forms-8", *BASELINES], "isaac-opt")
    return compute_verdict("lenet5", Costing(lenet()), forms, baselines, load_verdict_ranges())


def _parameter(values: list[dict[str, object]], design: str = "forms") -> UncertainParameter:
    return UncertainParameter.from_dict(
        {
            "name": "p",
            "label": "p",
            "design": design,
            "values": [{"label": str(v), "fields": v} for v in values],
            "status": "assumed",
            "justification": "test",
        }
    )


def test_headline_at_the_presets_is_the_ratio_of_two_independent_estimates() -> None:
    shapes = zoo_workload("lenet5")  # built anew: nothing shared with the verdict's costing
    forms = estimate(load_arch("forms-8"), shapes, SkipFractions())
    presets = [h for h in verdict().headline if h.setting == "presets"]
    for headline in presets:
        base = estimate(load_arch(headline.baseline), shapes, SkipFractions())
        assert headline.forms == "forms-8" and headline.forms_choice == {}
        for key, _ in METRICS:
            assert headline.ratios[key] == pytest.approx(getattr(forms, key) / getattr(base, key), rel=1e-12)
            assert headline.forms_values[key] == pytest.approx(getattr(forms, key), rel=1e-12)
    assert [h.baseline for h in presets] == list(BASELINES)


def test_headline_at_the_optima_divides_two_independent_optima_and_never_loses_to_the_presets() -> None:
    settings = load_verdict_ranges().optimum
    constraint = Constraint.against(settings.constraint, settings.limit)
    optima = [h for h in verdict().headline if h.setting.startswith("optimum")]
    # LeNet-5's accuracy is packaged: every objective is searched without and with the floor
    assert len(optima) == len(settings.objectives) * 2 * len(BASELINES)
    objective = settings.objectives[0]
    forms = optimize(load_arch("forms-8"), zoo_workload("lenet5"), objective, constraint)
    isaac = optimize(load_arch("isaac-opt"), zoo_workload("lenet5"), objective, constraint)
    row = next(
        h
        for h in optima
        if h.baseline == "isaac-opt" and objective in h.setting and h.setting.endswith("no accuracy floor")
    )
    assert row.ratios[objective] == pytest.approx(forms.value / isaac.value, rel=1e-12)
    assert row.forms_choice == forms.choice and row.baseline_choice == isaac.choice
    preset = next(h for h in verdict().headline if h.setting == "presets" and h.baseline == "isaac-opt")
    assert row.forms_values[objective] >= preset.forms_values[objective] * (1 - 1e-12)


@settings(max_examples=6, deadline=None)
@given(st.sampled_from([1.0, 2.0, 3.0, 8.0]), st.sampled_from(["forms", "baseline", "both"]))
def test_a_one_point_range_is_a_bar_of_zero_width(per_crossbar: float, design: str) -> None:
    forms, isaac = load_arch("forms-8"), load_arch("isaac-opt")
    bar = tornado_bar(
        Costing(lenet()), forms, isaac, _parameter([{"adc.per_crossbar": per_crossbar}], design)
    )
    assert all(bar.width(metric) == 0.0 for metric, _ in METRICS)


def test_every_range_holds_the_preset_so_every_bar_spans_the_preset_ratio() -> None:
    v = verdict()
    base = v.headline[0].ratios
    # a measured-mode point uses a packaged measurement, not this costing's (no) skip figures
    measured = {p.name for p in load_verdict_ranges().parameters if any(x.activity_mode for x in p.values)}
    for bar in (b for b in v.tornado if b.name not in measured):
        for metric in MAIN_METRICS:
            low, high = bar.span(metric)
            assert low <= base[metric] * (1 + 1e-12) and base[metric] <= high * (1 + 1e-12), bar.name
    widths = [bar.width(MAIN_METRICS[0]) for bar in v.tornado]
    assert widths == sorted(widths, reverse=True), "widest bar first"


def test_more_adcs_per_crossbar_never_lower_fps_in_the_tornado() -> None:
    bar = next(b for b in verdict().tornado if b.name == "adc_per_crossbar")
    fps = [p.ratios["fps"] for p in bar.points]
    assert fps == sorted(fps)


def test_break_even_crossings_agree_with_direct_evaluation_at_the_neighbouring_grid_points() -> None:
    v = verdict()
    forms, isaac = load_arch("forms-8"), load_arch("isaac-opt")
    base = estimate(isaac, lenet(), SkipFractions())
    found = 0
    for chart in v.break_even:
        for c in chart.crossings:
            n0, n1 = c.between
            assert n0 <= c.per_crossbar <= n1
            ratios = []
            for n in (n0, n1):
                arch = with_fields(
                    forms, {"adc.per_crossbar": n, "zero_skip.default_skip_fraction": c.skip_fraction}
                )
                est = estimate(arch, lenet(), SkipFractions())
                ratios.append(getattr(est, chart.metric) / getattr(base, chart.metric))
            assert min(ratios) <= 1.0 <= max(ratios)
            found += 1
        for i, skip in enumerate(chart.skip_fraction):  # no crossing is missed
            row = chart.ratios[i]
            sign_changes = sum((a - 1) * (b - 1) < 0 for a, b in itertools.pairwise(row))
            assert len([c for c in chart.crossings if c.skip_fraction == skip]) >= sign_changes
    assert found > 0, "the packaged grid should cross break-even somewhere on LeNet-5"


@given(st.lists(st.floats(0.1, 3.0), min_size=2, max_size=6))
def test_crossings_lie_between_grid_points_whose_ratios_straddle_one(row: list[float]) -> None:
    grid = [float(i + 1) for i in range(len(row))]
    for c in crossings(grid, 0.0, row):
        j = grid.index(c.between[0])
        assert (row[j] - 1) * (row[j + 1] - 1) <= 0
        assert c.between[0] <= c.per_crossbar <= c.between[1]


def test_verdict_reads_back_from_its_json() -> None:
    v = verdict()
    assert Verdict.from_dict(json.loads(json.dumps(v.to_dict()))) == v


def test_skip_summary_without_measurement_is_the_presets_default() -> None:
    skip = verdict().skip
    assert skip.fraction == 0.0 and "assumed default" in skip.source
    assert verdict().break_even[0].measured_skip is None


def test_a_range_naming_no_architecture_field_is_refused_with_its_path() -> None:
    with pytest.raises(ConfigError, match=r"adc\.per_xbar"):
        _parameter([{"adc.per_xbar": 2}])
    data = load_verdict_ranges().model_dump()
    data["break_even"]["skip_fraction"] = [0.2, 0.1]
    with pytest.raises(ConfigError, match="increase"):
        VerdictRanges.from_dict(data)


def test_the_verdict_needs_a_skipping_forms_design_and_a_baseline() -> None:
    isaac = load_arch("isaac-opt")
    with pytest.raises(ConfigError, match="zero-skip"):
        compute_verdict("n", Costing(lenet()), isaac, [isaac], load_verdict_ranges())
    with pytest.raises(ConfigError, match="baseline"):
        compute_verdict("n", Costing(lenet()), load_arch("forms-8"), [], load_verdict_ranges())
    with pytest.raises(ConfigError, match="polarized"):
        split_archs(["isaac-opt", "prime"], "isaac-opt")


def test_with_fields_sets_dotted_paths_and_leaves_the_preset_alone() -> None:
    forms = load_arch("forms-8")
    assert with_fields(forms, {}) is forms
    changed = with_fields(forms, {"adc.per_crossbar": 16, "read_time_ns": 50.0})
    assert isinstance(changed, ArchSpec) and changed.adc.per_crossbar == 16 and changed.read_time_ns == 50.0
    assert forms.adc.per_crossbar != 16 and changed.name == "forms-8*"


def test_report_opens_with_the_verdict_and_ends_with_stage_times(tmp_path: Path) -> None:
    timings = StageTimings({"train": 1.0}, {}, [])
    summary = Summary(
        title="t",
        meta=RunMeta.now("pytest", timings, 2.0),
        parameters={},
        assumptions=[],
        extra={VERDICT_KEY: {"lenet5": verdict().to_dict()}},
    )
    report = stage_report(summary)
    ids = [s.id for s in report.sections]
    assert ids[:3] == ["verdict", "what-decides", "overview"]
    assert ids[-2:] == ["assumptions", "stage-times"]
    overview = report.sections[2].tables[0]
    assert not any("s, this run" in str(row[0].value) for row in overview.rows), (
        "stage times moved to the end"
    )
    headline = report.sections[0].tables[0]
    assert len(headline.rows) == len(verdict().headline)
    assert headline.rows[0][1].value == "presets", "the presets first, then the optima"
    assert {f.id for f in report.figures()} >= {"tornado-lenet5", "break-even-lenet5"}


def _package(folder: Path, mode: str, skipped: float) -> None:
    """A packaged LeNet-5 measurement in ``mode``: every layer skips ``skipped`` of its conversions."""
    layers = [layer.name for layer in lenet().shapes.layers]
    stats = {
        name: {
            "conversions_total": 1000,
            "conversions_skipped_leading": int(1000 * skipped),
            "conversions_skipped_bitplane": int(1000 * skipped),
        }
        for name in layers
    }
    record = {"provenance": {"command": "test"}, "zero_skip": stats}
    (folder / f"lenet5-mnist-{mode}.json").write_text(json.dumps(record))


def test_a_measured_mode_point_costs_forms_with_that_packaged_measurement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from forms.cost import measured_activity

    param = next(p for p in load_verdict_ranges().parameters if any(v.activity_mode for v in p.values))
    forms, isaac = load_arch("forms-8"), load_arch("isaac-opt")
    monkeypatch.setattr(measured_activity, "activity_dir", lambda: tmp_path)
    with pytest.raises(ConfigError, match="no packaged"):  # nothing packaged: the bar is left out
        tornado_bar(Costing(lenet()), forms, isaac, param)
    for mode, skipped in (("in16-calibrated", 0.1), ("in16-8bit", 0.5), ("in8", 0.2)):
        _package(tmp_path, mode, skipped)
    bar = tornado_bar(Costing(lenet()), forms, isaac, param)
    for point, value in zip(bar.points, param.values, strict=True):
        assert value.activity_mode is not None
        measured = measured_activity.load_packaged_activity("lenet5", "mnist", value.activity_mode, "leading")
        ours = estimate(with_fields(forms, value.fields), lenet(), SkipFractions(measured))
        theirs = estimate(with_fields(isaac, value.fields), lenet(), SkipFractions())
        assert point.ratios["fps"] == pytest.approx(ours.fps / theirs.fps, rel=1e-12)
    assert bar.width("fps") > 0


@settings(max_examples=5, deadline=None)
@given(st.sampled_from([0.0, 0.125, 0.5, 0.75]))
def test_every_layer_skipping_the_same_fraction_is_that_fraction_network_wide(fraction: float) -> None:
    from forms.cost.activity import activity_from_metrics

    stats = {
        layer.name: {
            "conversions_total": 800,
            "conversions_skipped_leading": int(800 * fraction),
            "conversions_skipped_bitplane": 0,
        }
        for layer in lenet().shapes.layers
    }
    costing = Costing(lenet(), SkipFractions(activity_from_metrics({"zero_skip": stats}, "leading")))
    forms = load_arch("forms-8")
    unskipped = costing.estimate(forms, {"zero_skip.rule": "none"})
    summary = SkipSummary.of(costing.estimate(forms), unskipped, "leading")
    assert summary.fraction == pytest.approx(fraction, abs=1e-12)
    assert summary.read_fraction == 0.0 and "measured" in summary.source


def test_the_verdict_stage_writes_verdict_json_and_reuses_it_for_the_same_inputs(tmp_path: Path) -> None:
    from forms.experiments.stages import INPUTS_KEY, VERDICT, verdict_inputs_key, verdict_stage

    archs = ["forms-8", "isaac-opt"]
    first = verdict_stage(tmp_path, "lenet5", archs, "isaac-opt", model="lenet5")
    record = json.loads((tmp_path / VERDICT).read_text())
    assert record.pop(INPUTS_KEY) == verdict_inputs_key("lenet5", archs, "isaac-opt", model="lenet5")
    assert record == json.loads(json.dumps(first.to_dict()))
    stamp = (tmp_path / VERDICT).stat().st_mtime_ns
    again = verdict_stage(tmp_path, "lenet5", archs, "isaac-opt", model="lenet5")
    assert again == first and (tmp_path / VERDICT).stat().st_mtime_ns == stamp, "recomputed, not reused"
    assert [h.baseline for h in first.headline if h.setting == "presets"] == ["isaac-opt"]


def test_the_verdict_stage_recomputes_a_verdict_of_other_inputs(tmp_path: Path) -> None:
    """A verdict.json of another arch spec, another activity, or of no recorded key is not reused."""
    from forms.cost.arch import load_arch
    from forms.experiments.stages import INPUTS_KEY, VERDICT, verdict_stage

    arch_file = tmp_path / "forms-x.yaml"
    data = load_arch("forms-8").model_dump(mode="json")
    arch_file.write_text(yaml.safe_dump({**data, "name": "forms-x"}))
    archs = [str(arch_file), "isaac-opt"]
    out = tmp_path / "verdict"
    first = verdict_stage(out, "lenet5", archs, "isaac-opt", model="lenet5")
    data["zero_skip"]["default_skip_fraction"] = 0.9
    arch_file.write_text(yaml.safe_dump({**data, "name": "forms-x"}))
    changed = verdict_stage(out, "lenet5", archs, "isaac-opt", model="lenet5")
    assert changed.skip.fraction != first.skip.fraction, "a verdict of the old arch spec was reused"
    skip = SkipFractions(default=0.1)
    measured = verdict_stage(out, "lenet5", archs, "isaac-opt", model="lenet5", activity=skip)
    assert measured.skip.fraction == pytest.approx(0.1)
    record = json.loads((out / VERDICT).read_text())
    del record[INPUTS_KEY]
    (out / VERDICT).write_text(json.dumps({**record, "network": "stale"}))
    assert verdict_stage(out, "lenet5", archs, "isaac-opt", model="lenet5").network == "lenet5"
