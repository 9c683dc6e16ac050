"""`forms optimize`: each design at its own optimum (hand-computed optimum, constraint, anchor, CLI)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from forms.cost.arch import load_arch
from forms.cost.estimate import estimate
from forms.cost.inventory import chip_inventory
from forms.cost.layer_shapes import zoo_workload
from forms.cost.optimize import Constraint, default_grid, held_grid, optimize
from forms.errors import ConfigError

LENET = zoo_workload("lenet5", (1, 28, 28))


def test_isaac_at_a_100ns_read_needs_one_adc_per_crossbar() -> None:
    # One ADC: 129 conversions (128 columns + the unit column) / 1.28 GS/s = 100.8 ns per step, within
    # 1% of the 100 ns read. A second ADC gains at most that 0.8% of throughput but adds
    # 16128 crossbars x 0.0012 mm2 = 19.4 mm2 to an 85 mm2 chip; half an ADC doubles the step and saves
    # only 9.7 mm2. So one ADC per crossbar maximizes GOPs/(s mm2).
    isaac = load_arch("isaac-opt")
    assert pytest.approx(100.8e-9, rel=1e-3) == 129 / 1.28e9
    best = optimize(isaac, LENET, "gops_per_s_mm2", grid={"adc.per_crossbar": [0.5, 1.0, 2.0, 4.0]})
    assert best.choice == {"adc.per_crossbar": 1.0}
    assert best.points == 4 and best.feasible == 4 and best.refused == 0
    assert best.value == pytest.approx(best.preset_value)  # the preset is that optimum


def test_fps_alone_takes_the_first_read_bound_adc_count() -> None:
    # Maximizing FPS alone: 2 ADCs make the step read-bound (100 ns); 4 are no faster (ties keep the first).
    best = optimize(load_arch("isaac-opt"), LENET, "fps", grid={"adc.per_crossbar": [1.0, 2.0, 4.0]})
    assert best.choice == {"adc.per_crossbar": 2.0}
    assert best.estimate.layers[0].step_time_ns == pytest.approx(100.0)


def test_optimum_meets_the_constraint_and_beats_every_feasible_point() -> None:
    forms8 = load_arch("forms-8")
    bound = Constraint.against("area", "isaac-ce")
    isaac_area = sum(i.area_mm2 for i in chip_inventory(load_arch("isaac-ce")))
    assert bound.limit == pytest.approx(isaac_area) and bound.reference == "isaac-ce"
    grid = {"adc.per_crossbar": [1.0, 2.0, 4.0], "crossbar.fragment_size": [8, 16]}
    best = optimize(forms8, LENET, "gops_per_w", bound, grid=grid)
    assert best.estimate.chip_area_mm2 <= isaac_area
    for per_crossbar in grid["adc.per_crossbar"]:
        for r in grid["crossbar.fragment_size"]:
            arch = forms8.replace(
                adc=forms8.adc.replace(per_crossbar=per_crossbar),
                crossbar=forms8.crossbar.replace(fragment_size=r),
            )
            est = estimate(arch, LENET)
            if est.chip_area_mm2 <= isaac_area:
                assert est.gops_per_w <= best.value * (1 + 1e-12)


def test_an_impossible_bound_names_the_smallest_value() -> None:
    with pytest.raises(ConfigError, match="no point of isaac-opt's grid meets chip_area_mm2 <= 1"):
        optimize(load_arch("isaac-opt"), LENET, constraint=Constraint.against("area", 1.0))


def test_unknown_parameter_and_objective_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"'adc\.per_crossbars' names no architecture field"):
        optimize(load_arch("isaac-opt"), LENET, grid={"adc.per_crossbars": [1]})
    with pytest.raises(ConfigError, match="objective must be one of"):
        optimize(load_arch("isaac-opt"), LENET, "speed")
    with pytest.raises(ConfigError, match="constraint must be"):
        Constraint.against("volume")


def test_default_grid_declares_each_designs_free_parameters() -> None:
    polarized = default_grid(load_arch("forms-8"))
    assert set(polarized) == {
        "adc.per_crossbar",
        "adc.flip",
        "adc.bits",
        "crossbar.fragment_size",
        "organization.crossbars_per_ima",
    }
    assert polarized["adc.bits"] == (None,)  # lossless widths only, unless clipping is allowed
    assert default_grid(load_arch("forms-16"), allow_clipping=True)["adc.bits"] == (None, 4)
    assert "crossbar.fragment_size" not in default_grid(load_arch("isaac-opt"))


def test_one_adc_anchor_prices_every_adc_and_the_reference() -> None:
    best = optimize(load_arch("forms-8"), LENET, grid={"adc.per_crossbar": [4.0]}, adc_anchor="isaac-adc-8b")
    assert best.estimate.adc["anchor"] == "isaac-adc-8b"
    assert best.estimate.adc["bits"] == 4
    bound = Constraint.against("power", "forms-8", adc_anchor="isaac-adc-8b")
    assert bound.limit == pytest.approx(best.estimate.chip_power_w)


def test_optimum_to_dict_is_json() -> None:
    best = optimize(load_arch("prime"), LENET, grid={"adc.per_crossbar": [1.0, 2.0]})
    record = json.loads(json.dumps(best.to_dict()))
    assert record["choice"] == best.choice and record["constraint"]["text"] == "no constraint"
    assert record["gain_over_preset"] >= 1 - 1e-12


@settings(max_examples=15, deadline=None)
@given(
    adcs=st.sampled_from([0.5, 1.0, 2.0, 4.0, 8.0]),
    more=st.sampled_from([1.0, 2.0, 4.0]),
    preset=st.sampled_from(["isaac-opt", "prime", "forms-8", "forms-32"]),
)
def test_more_adcs_never_lower_area_nor_lower_fps(adcs: float, more: float, preset: str) -> None:
    arch = load_arch(preset)
    fewer = estimate(arch.replace(adc=arch.adc.replace(per_crossbar=adcs)), LENET)
    extra = estimate(arch.replace(adc=arch.adc.replace(per_crossbar=adcs + more)), LENET)
    assert extra.chip_area_mm2 > fewer.chip_area_mm2
    assert extra.fps >= fewer.fps * (1 - 1e-12) or math.isclose(extra.fps, fewer.fps)


def test_cli_optimize_writes_its_files(tmp_path: Path) -> None:
    from forms.cli import app

    out = tmp_path / "opt"
    result = CliRunner().invoke(
        app,
        [
            "optimize",
            "--archs",
            "isaac-opt,forms-8",
            "--model",
            "lenet5",
            "--out",
            str(out),
            "--constraint",
            "none",
        ],
    )
    assert result.exit_code == 0, result.output
    optima = json.loads((out / "optimize.json").read_text())["optima"]
    assert [o["arch"] for o in optima] == ["isaac-opt", "forms-8"]
    assert (out / "optimize.csv").read_text().startswith("arch,model,objective")


def test_cli_optimize_refuses_a_bad_objective(tmp_path: Path) -> None:
    from forms.cli import app

    args = ["optimize", "--model", "lenet5", "--out", str(tmp_path / "o"), "--objective", "speed"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    message = str(result.exception or result.output)
    assert "objective must be one of gops_per_s_mm2, gops_per_w, fps" in message


def test_a_held_parameter_has_one_value_and_the_optimum_keeps_it() -> None:
    forms8, isaac = load_arch("forms-8"), load_arch("isaac-opt")
    held = {"crossbar.fragment_size": 8, "adc.flip": True}
    grid = held_grid(forms8, held)
    free = default_grid(forms8)
    assert grid["crossbar.fragment_size"] == (8,) and grid["adc.flip"] == (True,)
    assert {k: v for k, v in grid.items() if k not in held} == {
        k: v for k, v in free.items() if k not in held
    }
    assert "crossbar.fragment_size" not in held_grid(isaac, held), "a parameter ISAAC lacks is ignored"
    best = optimize(forms8, zoo_workload("lenet5", None), grid=grid)
    assert best.choice["crossbar.fragment_size"] == 8
    unheld = optimize(forms8, zoo_workload("lenet5", None))
    assert best.value <= unheld.value, "holding a parameter never finds a better optimum"
    with pytest.raises(
        ConfigError, match=r"cannot hold read_time_ns: the free parameters are adc\.per_crossbar"
    ):
        held_grid(forms8, {"read_time_ns": 50})


def test_cli_hold_option_fixes_the_fragment_size(tmp_path: Path) -> None:
    from forms.cli import app

    out = tmp_path / "opt"
    args = ["optimize", "--archs", "forms-8", "--model", "lenet5", "--out", str(out), "--constraint", "none"]
    result = CliRunner().invoke(app, [*args, "--hold", "crossbar.fragment_size=16"])
    assert result.exit_code == 0, result.output
    optimum = json.loads((out / "optimize.json").read_text())["optima"][0]
    assert optimum["choice"]["crossbar.fragment_size"] == 16
    bad = CliRunner().invoke(app, [*args, "--hold", "fragment_size"])
    assert bad.exit_code != 0
    assert "--hold takes PATH=VALUE" in str(bad.exception or bad.output)
