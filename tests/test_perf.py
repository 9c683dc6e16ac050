"""Performance model: ISAAC peak efficiency, hand-computed cases, monotonicity, activity, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from typer.testing import CliRunner

from forms.cost.activity import SkipFractions, activity_from_metrics
from forms.cost.arch import load_arch
from forms.cost.compare import compare
from forms.cost.components import load_library
from forms.cost.estimate import Estimate, estimate, peak_ops_per_s
from forms.cost.files import save_estimate
from forms.cost.layer_cost import PricedArch
from forms.cost.layer_shapes import (
    LayerShape,
    ModelShapes,
    Workload,
    apply_sparsity,
    layer_shapes,
    zoo_workload,
)
from forms.cost.pipeline import balance_replication, stage_time
from forms.errors import ConfigError
from forms.geometry import LayerGeometry
from forms.intweights import IntegerLayer


def _linear_shape(name: str, rows: int, cols: int, positions: int) -> LayerShape:
    geom = LayerGeometry(name, "conv", (cols, rows, 1, 1), 1, rows, cols)
    return LayerShape(geom, positions, rows * positions, cols * positions, rows, cols)


def _shapes(*layers: LayerShape) -> ModelShapes:
    return ModelShapes((1, 1, 1), tuple(layers), 0)


def _workload(*layers: LayerShape) -> Workload:
    return Workload(_shapes(*layers))


def test_isaac_ce_peak_efficiency_matches_the_paper() -> None:
    est = estimate(load_arch("isaac-ce"), _workload(_linear_shape("fc", 128, 16, 1)))
    # ISAAC (ISCA 2016): ISAAC-CE peak 478.95 GOPs/(s*mm2) and 627.5 GOPs/W.
    assert est.peak_gops_per_s_mm2 == pytest.approx(478.95, rel=0.03)
    assert est.peak_gops_per_w == pytest.approx(627.5, rel=0.03)


def test_one_layer_on_one_crossbar_by_hand() -> None:
    arch = load_arch("isaac-ce")
    est = estimate(arch, _workload(_linear_shape("fc", 100, 16, 1)))
    layer = est.layers[0]
    # 16 weights x 8 cells = 128 columns, 100 rows: one crossbar, one row tile.
    assert (layer.crossbars, layer.row_tiles, layer.col_tiles) == (1, 1, 1)
    # 128 data columns + ISAAC's unit column, one 1.28 GS/s ADC: 129 / 1.28e9 s > 100 ns read.
    step = 129 / 1.28e9
    assert layer.bound == "adc"
    assert layer.step_time_ns == pytest.approx(step * 1e9)
    assert layer.replication == 1  # one output position: copies cannot help
    assert est.fps == pytest.approx(1 / (16 * step))
    assert est.latency_s == pytest.approx(16 * step + 6 * 100e-9)
    assert layer.conversions == 129 * 16
    assert est.breakdown["energy_j"]["adc"] == pytest.approx(129 * 16 * 1.5625e-12)
    assert est.breakdown["actions"]["crossbar"] == 16
    assert est.dense_ops == 2 * 100 * 16
    # Data movement in the component table's widths (ISAAC Table I: 256-bit eDRAM, 384-wire bus, 32-bit flit).
    lib = load_library()
    in_bits, out_bits = 100 * 16, 16 * 16
    assert layer.actions["edram"] == (in_bits + out_bits) / lib.component("isaac-edram").width_bits
    assert layer.actions["bus"] == in_bits / lib.component("isaac-edram-bus").width_bits
    assert layer.actions["router"] == out_bits / lib.component("isaac-router").width_bits


def _tiny_chip(crossbars: int):
    arch = load_arch("isaac-opt")
    org = arch.organization.replace(tiles=1, imas_per_tile=1, crossbars_per_ima=crossbars)
    return arch.replace(organization=org.model_dump())


def test_two_unequal_stages_balanced_by_replication() -> None:
    # Two one-crossbar layers: 10 and 40 output positions (25 weights x 5 cells = 125 columns).
    workload = _workload(_linear_shape("a", 64, 25, 10), _linear_shape("b", 64, 25, 40))
    step = 100e-9  # 126 conversions / 1.28 GS/s < 100 ns: read-bound
    unbalanced = estimate(_tiny_chip(2), workload)
    assert [c.replication for c in unbalanced.layers] == [1, 1]
    assert unbalanced.fps == pytest.approx(1 / (40 * 16 * step))
    balanced = estimate(_tiny_chip(5), workload)
    assert [c.replication for c in balanced.layers] == [1, 4]
    assert balanced.fps == pytest.approx(1 / (10 * 16 * step))
    assert balanced.crossbars_used == 5
    # latency: both layers one after another (after replication) + 6 digital cycles each
    assert balanced.latency_s == pytest.approx(2 * 10 * 16 * step + 2 * 6 * step)


def test_network_larger_than_a_chip_needs_more_chips() -> None:
    workload = _workload(_linear_shape("big", 1024, 512, 1))  # 8 row tiles x 20 col tiles = 160 crossbars
    est = estimate(_tiny_chip(64), workload)
    assert est.crossbars_needed == 160
    assert est.chips == 3
    assert any("3 chips" in a for a in est.assumptions)


@settings(max_examples=40, deadline=None)
@given(
    times=st.lists(st.floats(1e-6, 1.0), min_size=1, max_size=6),
    data=st.data(),
)
def test_replication_is_feasible_and_no_worse(times: list[float], data) -> None:
    n = len(times)
    xbars = data.draw(st.lists(st.integers(1, 20), min_size=n, max_size=n))
    pos = data.draw(st.lists(st.integers(1, 50), min_size=n, max_size=n))
    cap = sum(xbars) + data.draw(st.integers(0, 200))
    reps = balance_replication(times, xbars, pos, cap)
    assert all(1 <= r <= p for r, p in zip(reps, pos, strict=True))
    assert sum(r * c for r, c in zip(reps, xbars, strict=True)) <= cap
    stages = [t * math.ceil(p / r) / p for t, r, p in zip(times, reps, pos, strict=True)]
    assert max(stages) <= max(times) * (1 + 1e-9)


def test_replica_stage_time_uses_whole_output_positions() -> None:
    # 10 positions on 4 copies: the busiest copy computes ceil(10 / 4) = 3 positions, not 2.5.
    workload = _workload(_linear_shape("a", 64, 25, 10))
    step = 100e-9  # read-bound (see above)
    est = estimate(_tiny_chip(4), workload)
    assert est.layers[0].replication == 4
    assert est.layers[0].stage_time_s == pytest.approx(3 * 16 * step)
    assert est.fps == pytest.approx(1 / (3 * 16 * step))
    # 8 crossbars: 5 copies already reach ceil(10 / 5) = 2 positions, the fewest copies that do.
    assert balance_replication([10.0], [1], [10], 8) == [5]
    assert stage_time(10.0, 10, 5) == pytest.approx(2.0)
    assert stage_time(10.0, 10, 4) == pytest.approx(3.0)


@settings(max_examples=30, deadline=None)
@given(f1=st.floats(0.0, 0.95), f2=st.floats(0.0, 0.95), r=st.sampled_from([4, 8, 16, 32]))
def test_more_zero_skipping_never_lowers_fps(f1: float, f2: float, r: int) -> None:
    lo, hi = sorted((f1, f2))
    workload = _workload(_linear_shape("a", 300, 64, 49), _linear_shape("b", 576, 128, 16))
    arch = load_arch(f"forms-{r}")
    assert (
        estimate(arch, workload, SkipFractions(default=hi)).fps
        >= estimate(arch, workload, SkipFractions(default=lo)).fps
    )


@settings(max_examples=20, deadline=None)
@given(bits=st.integers(3, 11), preset=st.sampled_from(["isaac-opt", "prime", "forms-8"]))
def test_wider_adc_never_lowers_area(bits: int, preset: str) -> None:
    arch = load_arch(preset)
    workload = _workload(_linear_shape("a", 128, 16, 4))

    def area(b: int) -> float:
        spec = arch.replace(adc={**arch.adc.model_dump(), "bits": b, "allow_clipping": True})
        return estimate(spec, workload).chip_area_mm2

    assert area(bits + 1) >= area(bits)


def test_activity_from_simulator_metrics() -> None:
    metrics = {
        "zero_skip": {
            "a": {
                "conversions_total": 1000,
                "conversions_skipped_leading": 250,
                "conversions_skipped_bitplane": 400,
            },
        }
    }
    act = activity_from_metrics(metrics, "bitplane")
    assert act.skip_fraction == {"a": 0.4}
    workload = _workload(_linear_shape("a", 128, 32, 4), _linear_shape("b", 128, 32, 4))
    est = estimate(load_arch("forms-8"), workload, SkipFractions(act, 0.1))
    assert [c.skip_fraction for c in est.layers] == [0.4, 0.1]
    assert est.layers[0].conversions == pytest.approx(0.6 * 16 * 32 * 4 * 16 * 4)
    # ISAAC has no skip logic: measured activity does not apply.
    isaac = estimate(load_arch("isaac-opt"), workload, SkipFractions(act)).layers
    assert all(c.skip_fraction == 0 for c in isaac)
    with pytest.raises(ConfigError, match="conversions_skipped_leading"):
        activity_from_metrics({"zero_skip": {"a": {"conversions_total": 5}}}, "leading")
    with pytest.raises(ConfigError, match="no 'zero_skip'"):
        activity_from_metrics({}, "leading")


def test_layer_shapes_of_a_small_model_leave_it_untouched() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(200, 10),
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    shapes = layer_shapes(model, (3, 10, 10))
    assert [(s.positions, s.geometry.rows, s.geometry.cols) for s in shapes.layers] == [
        (100, 27, 8),
        (1, 200, 10),
    ]
    assert shapes.pool_comparisons == 8 * 5 * 5 * 4
    for k, v in model.state_dict().items():
        assert v.device.type == "cpu" and torch.equal(v, before[k])
    with pytest.raises(ConfigError, match="input shape"):
        layer_shapes(model, (3, 12, 12))


def test_pruned_rows_and_columns_are_compacted() -> None:
    shapes = _shapes(_linear_shape("a", 256, 64, 1))
    w = torch.ones(1, 256, 64, dtype=torch.int64)
    w[:, 128:, :] = 0  # half the rows pruned
    w[:, :, 32:] = 0  # half the columns pruned
    il = IntegerLayer("a", w, torch.tensor(1.0), (64, 256, 1, 1), 8, 8)
    pruned, notes = apply_sparsity(shapes, [il])
    assert (pruned.layers[0].rows_used, pruned.layers[0].cols_used) == (128, 32)
    arch = load_arch("forms-8")
    dense, small = estimate(arch, Workload(shapes)), estimate(arch, Workload(pruned))
    assert (dense.crossbars_needed, small.crossbars_needed) == (4, 1)
    assert small.dense_ops == dense.dense_ops and small.executed_ops == dense.dense_ops // 4
    assert not notes


def test_compare_ratios_to_the_first() -> None:
    workload = _workload(_linear_shape("a", 300, 64, 49))
    cmp = compare([load_arch(a) for a in ("isaac-opt", "prime", "forms-8")], workload)
    rows = cmp.rows()
    assert all(rows[0][k] == 1.0 for k in rows[0] if k.endswith("_ratio"))
    assert rows[1]["crossbars_needed_ratio"] == pytest.approx(
        cmp.estimates[1].crossbars_needed / cmp.estimates[0].crossbars_needed
    )


@settings(max_examples=20, deadline=None)
@given(
    adcs=st.sampled_from([0.5, 1.0, 2.0, 4.0, 8.0]),
    more=st.sampled_from([0.5, 1.0, 4.0]),
    preset=st.sampled_from(["isaac-opt", "prime", "forms-8", "forms-16"]),
)
def test_more_adcs_never_lower_area(adcs: float, more: float, preset: str) -> None:
    arch = load_arch(preset)
    workload = _workload(_linear_shape("a", 128, 16, 4))

    def area(per_crossbar: float) -> float:
        spec = arch.replace(adc={**arch.adc.model_dump(), "per_crossbar": per_crossbar})
        return estimate(spec, workload).chip_area_mm2

    assert area(adcs + more) >= area(adcs)


def test_peak_packs_weights_as_the_mapping_does() -> None:
    arch = load_arch("isaac-opt")
    assert arch.slices == 5  # 5 cells per weight: 128 / 5 = 25.6 weights per crossbar row, as mapped
    assert arch.encoding.tile_counts(128, 128, arch.weight_bits, arch.crossbar) == (1, 5)  # 640 / 128
    step = max(100e-9, 129 / 1.28e9)  # 128 columns + the unit column on one 1.28 GS/s ADC
    expected = arch.organization.crossbars * 2 * 128 * (128 / 5) / (16 * step)
    assert peak_ops_per_s(PricedArch.of(arch)) == pytest.approx(expected)


def test_peak_counts_weights_per_crossbar() -> None:
    arch = load_arch("forms-8")
    # 128 rows x 32 weights, 16 steps of max(100 ns, 16 x 128 / (4 x 2.1 GS/s)).
    step = max(100e-9, 16 * 128 / (4 * 2.1e9))
    expected = arch.organization.crossbars * 2 * 128 * 32 / (16 * step)
    assert peak_ops_per_s(PricedArch.of(arch)) == pytest.approx(expected)


def test_estimate_reads_back_from_its_json(tmp_path: Path) -> None:
    est = estimate(load_arch("forms-8"), zoo_workload("lenet5", (1, 28, 28)), SkipFractions(default=0.2))
    assert Estimate.from_dict(est.to_dict()).to_dict() == est.to_dict()
    written = json.loads(save_estimate(est, tmp_path)["json"].read_text())
    assert Estimate.from_dict(written).to_dict() == est.to_dict()
    with pytest.raises(ConfigError, match="lacks fps"):
        Estimate.from_dict({k: v for k, v in written.items() if k != "fps"})


def test_default_skip_fraction_out_of_range_is_refused() -> None:
    with pytest.raises(ConfigError, match="default skip fraction"):
        SkipFractions(default=1.0)


def test_cli_estimate_and_compare(tmp_path: Path) -> None:
    from forms.cli import app

    runner = CliRunner()
    res = runner.invoke(
        app, ["estimate", "--arch", "forms-8", "--model", "lenet5", "--out", str(tmp_path / "e")]
    )
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "e" / "estimate.json").read_text())
    for key in (
        "chip_area_mm2", "chip_power_w", "fps", "latency_s", "energy_per_inference_j", "gops_per_s_mm2",
        "gops_per_w", "peak_gops_per_s_mm2", "peak_gops_per_w", "crossbars_used", "chips", "breakdown",
        "layers", "assumptions",
    ):  # fmt: skip
        assert key in data
    assert len(data["layers"]) == 5
    assert (tmp_path / "e" / "estimate.csv").read_text().count("\n") == 6
    res = runner.invoke(
        app, ["compare", "--archs", "isaac-opt,forms-8", "--model", "lenet5", "--out", str(tmp_path / "c")]
    )
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "c" / "compare.json").read_text())["rows"]
    assert [r["arch"] for r in rows] == ["isaac-opt", "forms-8"]
