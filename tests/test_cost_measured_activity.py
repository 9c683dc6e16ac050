"""Packaged measured activity: loading by model, nearest-network rule, measured range, CLI option."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forms.cost.arch import load_arch
from forms.cost.layer_shapes import zoo_workload
from forms.cost.measured_activity import (
    list_packaged_activity,
    load_packaged_activity,
    measured_range,
    measured_skip,
    parse_measured_option,
    range_skips,
)
from forms.errors import ConfigError


def _counts(conv_skip: int, read_skip: int, nonzero: int) -> dict[str, int]:
    return {
        "conversions_total": 100,
        "conversions_skipped_leading": conv_skip,
        "conversions_skipped_bitplane": conv_skip + 5,
        "reads_total": 10,
        "reads_skipped_leading": read_skip,
        "reads_skipped_bitplane": read_skip,
        "input_digits_total": 1000,
        "input_digits_nonzero": nonzero,
    }


def _write(folder: Path, stem: str, layers: dict[str, dict[str, int]]) -> None:
    record = {
        "provenance": {"command": "forms simulate (test)", "seed": 0},
        "accuracy": 0.99,
        "zero_skip": layers,
        "zero_skip_totals": {},
    }
    (folder / f"{stem}.json").write_text(json.dumps(record))


@pytest.fixture
def packaged(tmp_path: Path) -> Path:
    lenet = zoo_workload("lenet5").shapes.layers
    resnet = zoo_workload("resnet18").shapes.layers
    _write(tmp_path, "lenet5-mnist-in8", {layer.name: _counts(20, 1, 300) for layer in lenet})
    _write(tmp_path, "resnet18-fashion-mnist-in8", {layer.name: _counts(40, 2, 500) for layer in resnet})
    _write(tmp_path, "resnet18-fashion-mnist-in16-calibrated", {resnet[0].name: _counts(10, 0, 100)})
    (tmp_path / "notes.json").write_text("{}")  # not <model>-<dataset>-<mode>: ignored
    return tmp_path


def test_files_are_listed_by_model_dataset_and_mode(packaged: Path) -> None:
    found = {(p.model, p.dataset, p.mode) for p in list_packaged_activity(packaged)}
    assert found == {
        ("lenet5", "mnist", "in8"),
        ("resnet18", "fashion-mnist", "in8"),
        ("resnet18", "fashion-mnist", "in16-calibrated"),
    }


def test_measured_network_gets_its_per_layer_activity(packaged: Path) -> None:
    act = load_packaged_activity("lenet5", "mnist", "in8", "leading", packaged)
    assert set(act.skip_fraction) == {layer.name for layer in zoo_workload("lenet5").shapes.layers}
    assert set(act.skip_fraction.values()) == {0.2}
    assert set(act.read_skip_fraction.values()) == {0.1}
    assert set(act.driver_activity.values()) == {0.3}
    skip = measured_skip("lenet5", "in8", "bitplane", packaged)
    assert skip.activity is not None and set(skip.activity.skip_fraction.values()) == {0.25}


def test_layers_a_measurement_lacks_get_its_network_wide_figures(packaged: Path) -> None:
    skip = measured_skip("resnet18", "in16-calibrated", "leading", packaged)
    layers = zoo_workload("resnet18").shapes.layers
    zero_skip = load_arch("forms-8").zero_skip
    first, other = skip.for_layer(zero_skip, layers[0].name), skip.for_layer(zero_skip, layers[1].name)
    assert first.fraction == pytest.approx(0.1) and "measured" in first.source
    assert other.fraction == pytest.approx(0.1) and "network-wide" in other.source


def test_imagenet_network_uses_its_nearest_measured_network_and_states_the_range(packaged: Path) -> None:
    skip = measured_skip("resnet50", "in8", "leading", packaged)
    assert skip.activity is None
    assert (skip.default, skip.default_read, skip.default_driver_activity) == pytest.approx((0.4, 0.2, 0.5))
    assert "nearest measured network resnet18" in skip.note and "0.200..0.400" in skip.note
    arch = load_arch("forms-8")
    layer = skip.for_layer(arch.zero_skip, "any.layer")
    assert layer.fraction == pytest.approx(0.4) and layer.read_fraction == pytest.approx(0.2)
    assert "nearest measured network resnet18" in layer.source
    low, high = range_skips("in8", "leading", packaged)
    assert (low.default, high.default) == pytest.approx((0.2, 0.4))
    assert [f.model for f in measured_range("in8", "leading", packaged)] == ["lenet5", "resnet18"]


def test_missing_measurements_and_bad_modes_are_refused(packaged: Path) -> None:
    with pytest.raises(ConfigError, match="no packaged in16-8bit activity for 'vgg16'"):
        measured_skip("vgg16", "in16-8bit", "leading", packaged)
    with pytest.raises(ConfigError, match="activity mode must be one of"):
        parse_measured_option("measured:in12")
    with pytest.raises(ConfigError, match="no packaged activity for lenet5-cifar10-in8"):
        load_packaged_activity("lenet5", "cifar10", "in8", "leading", packaged)
    (packaged / "vgg16-fashion-mnist-in8.json").write_text(json.dumps({"zero_skip": {}}))
    with pytest.raises(ConfigError, match="no 'provenance'"):
        measured_skip("vgg16", "in8", "leading", packaged)


def test_activity_option_forms() -> None:
    assert parse_measured_option("measured") == "in16-calibrated"
    assert parse_measured_option("measured:in8") == "in8"
    assert parse_measured_option("run/metrics.json") is None


def test_cli_estimate_uses_packaged_activity(packaged: Path, tmp_path: Path, monkeypatch) -> None:
    from forms.cli import app
    from forms.cost import measured_activity

    monkeypatch.setattr(measured_activity, "activity_dir", lambda: packaged)
    out = tmp_path / "est"
    args = [
        "estimate",
        "--arch",
        "forms-8",
        "--model",
        "lenet5",
        "--activity",
        "measured:in8",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    layers = json.loads((out / "estimate.json").read_text())["layers"]
    assert {layer["skip_fraction"] for layer in layers} == {0.2}
    assert {layer["read_skip_fraction"] for layer in layers} == {0.1}
    assert all("packaged lenet5-mnist-in8.json" in layer["skip_source"] for layer in layers)
