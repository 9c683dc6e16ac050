"""`forms optimize --max-accuracy-drop`: packaged measured accuracy and the optimizer's accuracy floor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from forms.cost.arch import load_arch
from forms.cost.estimate import estimate
from forms.cost.layer_shapes import zoo_workload
from forms.cost.measured_accuracy import (
    CONDITION_FIELDS,
    accuracy_floor,
    find_measured_accuracy,
    floor_from_options,
    list_measured_accuracy,
    load_measured_accuracy,
)
from forms.cost.optimize import optimize
from forms.errors import ConfigError

LENET = zoo_workload("lenet5", (1, 28, 28))
FORMS8 = load_arch("forms-8")
CONDITIONS = {"rows": 128, "cols": 128, "cell_bits": 2, "dac_bits": 1, "input_bits": 16, "weight_bits": 8}
FLIPPED_LOSSLESS = {4: 3, 8: 4, 16: 5, 32: 6}
"""Lossless flipped ADC width at R rows of 2-bit cells and a 1-bit DAC: ceil(log2(3R/2 + 1))."""
R_GRID = {"crossbar.fragment_size": [8, 16, 32], "adc.flip": [True], "adc.bits": [None]}


def _point(r: int, accuracy: float, bits: int | None = None, encoding: str = "polarized") -> dict[str, Any]:
    return {
        "encoding": encoding,
        "fragment_size": r,
        "adc_bits": bits if bits is not None else FLIPPED_LOSSLESS[r],
        "flipped": True,
        "accuracy": accuracy,
        "reference_accuracy": accuracy,
        "clip_rate": 0.0,
    }


def _write(folder: Path, measured: list[dict[str, Any]], stem: str = "lenet5-mnist", **over: Any) -> Path:
    model, _, dataset = stem.partition("-")
    data = {
        "model": model,
        "dataset": dataset,
        "images": 2000,
        "float_accuracy": 0.992,
        "conditions": CONDITIONS,
        "points": measured,
        "provenance": {"script": "test"},
        **over,
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.json"
    path.write_text(json.dumps(data))
    return path


def test_the_optimum_moves_from_an_inaccurate_r32_to_the_measured_r8(tmp_path: Path) -> None:
    # Without a floor the best GOPs/(s mm2) over R in {8, 16, 32} is R = 32. Measured: R = 8 at 0.990,
    # R = 32 at 0.950, R = 16 not at all. A 0.5-point drop from the float 0.992 sets the floor at
    # 0.987: R = 32 is below it, R = 16 unmeasured, so the optimum is R = 8 at exactly its estimate.
    free = optimize(FORMS8, LENET, grid=R_GRID)
    assert free.choice["crossbar.fragment_size"] == 32
    _write(tmp_path, [_point(8, 0.990), _point(32, 0.950)])
    floor = accuracy_floor("lenet5", 0.5, directory=tmp_path)
    assert floor.floor == pytest.approx(0.987) and not floor.borrowed
    best = optimize(FORMS8, LENET, grid=R_GRID, accuracy_floor=floor)
    assert best.choice["crossbar.fragment_size"] == 8
    assert best.accuracy is not None and best.accuracy.accuracy == 0.990
    assert (best.below_floor, best.unmeasured, best.feasible) == (1, 1, 1)
    r8 = FORMS8.replace(crossbar=FORMS8.crossbar.replace(fragment_size=8))
    assert best.value == pytest.approx(estimate(r8, LENET).gops_per_s_mm2)
    record = best.to_dict()["accuracy"]
    assert record["accuracy"] == 0.990 and record["source"].endswith("lenet5-mnist.json")
    assert json.loads(json.dumps(best.to_dict()))["below_floor"] == 1


def test_a_larger_allowed_drop_lets_r32_back_in(tmp_path: Path) -> None:
    _write(tmp_path, [_point(8, 0.990), _point(32, 0.950)])
    best = optimize(
        FORMS8, LENET, grid=R_GRID, accuracy_floor=accuracy_floor("lenet5", 5.0, directory=tmp_path)
    )
    assert best.choice["crossbar.fragment_size"] == 32 and best.below_floor == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    measured=st.dictionaries(
        st.sampled_from([8, 16, 32]), st.sampled_from([0.95, 0.98, 0.986, 0.988, 0.99, 0.999]), max_size=3
    )
)
def test_unmeasured_or_inaccurate_points_are_never_chosen(tmp_path: Path, measured: dict[int, float]) -> None:
    folder = tmp_path / str(abs(hash(tuple(sorted(measured.items())))))
    _write(folder, [_point(r, a) for r, a in measured.items()] or [_point(4, 0.99)])
    floor = accuracy_floor("lenet5", 0.5, directory=folder)
    allowed = {r for r, a in measured.items() if a >= floor.floor}
    if not allowed:
        with pytest.raises(ConfigError, match="unmeasured"):
            optimize(FORMS8, LENET, grid=R_GRID, accuracy_floor=floor)
        return
    best = optimize(FORMS8, LENET, grid=R_GRID, accuracy_floor=floor)
    assert best.choice["crossbar.fragment_size"] in allowed
    assert best.unmeasured == 3 - len(measured) and best.feasible == len(allowed)


def test_a_point_under_other_conditions_is_unmeasured(tmp_path: Path) -> None:
    measured = load_measured_accuracy(_write(tmp_path, [_point(8, 0.99)]))
    assert measured.point_for(FORMS8) is not None
    assert measured.point_for(FORMS8.replace(input_bits=8)) is None
    assert measured.point_for(FORMS8.replace(adc=FORMS8.adc.replace(flip=False))) is None  # 5 bits unflipped
    wider = FORMS8.replace(adc=FORMS8.adc.replace(bits=6))  # exact like the measured lossless 4 bits
    assert measured.point_for(wider) == measured.point_for(FORMS8)


def test_an_unmeasured_network_needs_accuracy_from(tmp_path: Path) -> None:
    _write(tmp_path, [_point(8, 0.99)])
    with pytest.raises(
        ConfigError, match=r"no measured accuracy for 'resnet18' \(measured: lenet5-mnist\).*--accuracy-from"
    ):
        accuracy_floor("resnet18", 0.5, directory=tmp_path)
    borrowed = accuracy_floor("resnet18", 0.5, "lenet5-mnist", directory=tmp_path)
    assert borrowed.borrowed and "borrowed for resnet18" in borrowed.describe()
    with pytest.raises(ConfigError, match="no measured accuracy for 'vgg16'"):
        accuracy_floor("resnet18", 0.5, "vgg16", directory=tmp_path)
    with pytest.raises(ConfigError, match=">= 0 points"):
        accuracy_floor("lenet5", -1.0, directory=tmp_path)
    with pytest.raises(ConfigError, match="--accuracy-from needs --max-accuracy-drop"):
        floor_from_options("resnet18", None, "lenet5-mnist")
    assert floor_from_options("resnet18", None, None) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"points": []}, "non-empty list"),
        ({"float_accuracy": "high"}, "'float_accuracy' must be a float"),
        ({"conditions": {"rows": 128}}, "'conditions' must give exactly"),
        ({"points": [{**_point(8, 0.99), "accuracy": 1.5}]}, "'accuracy' must lie in"),
        ({"points": [{**_point(8, 0.99), "flipped": 1}]}, "'flipped' must be a bool"),
        ({"points": [_point(8, 0.99, encoding="ternary")]}, "unknown encoding 'ternary'"),
        ({"provenance": None}, None),
    ],
)
def test_a_bad_accuracy_file_names_what_is_wrong(
    tmp_path: Path, change: dict[str, Any], message: str | None
) -> None:
    path = _write(tmp_path, [_point(8, 0.99)], **change)
    if message is None:  # a null provenance still counts as present
        assert load_measured_accuracy(path).points
        return
    with pytest.raises(ConfigError, match=message) as info:
        load_measured_accuracy(path)
    assert "lenet5-mnist.json" in str(info.value)


def test_a_file_without_provenance_or_not_json_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, [_point(8, 0.99)])
    data = json.loads(path.read_text())
    del data["provenance"]
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="lacks provenance"):
        load_measured_accuracy(path)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"lenet5-mnist\.json"):
        load_measured_accuracy(path)


def test_packaged_measurements_are_exact_at_lossless_widths() -> None:
    # Identity of the bit-accurate simulator: a lossless ADC never clips and gives the integer reference.
    packaged = list_measured_accuracy()
    assert packaged, "src/forms/presets/accuracy holds no measurement"
    for measured in packaged:
        assert set(measured.conditions) == set(CONDITION_FIELDS)
        for p in measured.points:
            lossless = FLIPPED_LOSSLESS.get(p.fragment_size, 8) + (0 if p.flipped else 1)
            if p.encoding == "polarized" and p.fragment_size in FLIPPED_LOSSLESS and p.adc_bits >= lossless:
                assert p.clip_rate == 0.0 and p.accuracy == p.reference_accuracy
    lenet = find_measured_accuracy("lenet5")
    assert lenet is not None and lenet.point_for(FORMS8) is not None  # the forms-8 preset is measured


def test_cli_accuracy_floor_reports_the_measured_accuracy(tmp_path: Path) -> None:
    from forms.cli import app

    out = tmp_path / "opt"
    args = ["optimize", "--archs", "forms-8,isaac-opt", "--model", "lenet5", "--constraint", "none"]
    result = CliRunner().invoke(app, [*args, "--max-accuracy-drop", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    optima = json.loads((out / "optimize.json").read_text())["optima"]
    for o in optima:
        acc = o["accuracy"]
        assert (
            acc["accuracy"] >= acc["floor"] and acc["measured_on"] == "lenet5-mnist" and not acc["borrowed"]
        )
    r18 = ["optimize", "--archs", "forms-8", "--model", "resnet18", "--constraint", "none"]
    floor = ["--max-accuracy-drop", "1", "--accuracy-from", "lenet5-mnist"]
    borrowed = CliRunner().invoke(app, [*r18, *floor, "--out", str(tmp_path / "r18")])
    assert borrowed.exit_code == 0, borrowed.output
    record = json.loads((tmp_path / "r18" / "optimize.json").read_text())["optima"][0]["accuracy"]
    assert record["borrowed"] and "borrowed for resnet18" in record["text"]
