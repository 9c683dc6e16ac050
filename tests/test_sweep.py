"""Sweeps: spec validation before any point runs, resumable atomic points, parallel workers, Pareto."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from _simhelpers import compressed_lenet5_checkpoint
from forms.errors import ConfigError
from forms.experiments import sweep
from forms.experiments.sweep import run_sweep
from forms.experiments.sweep_plan import plan
from forms.experiments.sweep_spec import SweepSpec, load_sweep_spec
from forms.report.plots import pareto_mask

SMALL: dict[str, Any] = {
    "name": "test",
    "grid": {
        "arch": ["forms-8", "isaac-opt"],
        "model": ["lenet5"],
        "fragment_size": [4, 8],
        "cell_bits": [2],
    },
}


def _spec(tmp_path: Path, data: dict[str, Any]) -> SweepSpec:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_sweep_spec(path)


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"grid": {"arch": ["forms-8"], "fragmnet_size": [8]}}, "grid.fragmnet_size"),
        ({"grid": {"arch": ["forms-8"]}, "jobz": 2}, "jobz"),
        ({"grid": {"arch": ["forms-8"]}, "simulate": {"checkpoint": "x.pt", "limt": 5}}, "simulate.limt"),
    ],
)
def test_unknown_key_is_refused_by_name(tmp_path: Path, data: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown key '{key}'"):
        _spec(tmp_path, data)


@pytest.mark.parametrize(
    ("grid", "key"),
    [
        ({"arch": ["forms-8"], "fragment_size": [8, 24]}, "'fragment_size' = 24"),
        ({"arch": ["forms-8"], "fragment_size": [16], "crossbar_size": [128, 8]}, "'crossbar_size' = 8"),
        ({"arch": ["forms-8"], "adc_bits": [3]}, "'adc_bits' = 3"),
        ({"arch": ["forms-8"], "cell_bits": [16]}, "'cell_bits' = 16"),
        ({"arch": ["no-such-arch"]}, "'arch'"),
        ({"arch": ["forms-8"], "model": ["lenet6"]}, "'model'"),
    ],
)
def test_impossible_combination_is_refused_before_any_point_runs(
    tmp_path: Path, grid: dict[str, Any], key: str
) -> None:
    spec = _spec(tmp_path, {"grid": grid})
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=key):
        run_sweep(spec, out, progress=False)
    assert not out.exists(), "nothing may be written for a refused sweep"


def test_clipping_adc_is_accepted_when_allowed(tmp_path: Path) -> None:
    spec = _spec(tmp_path, {"grid": {"arch": ["forms-8"], "adc_bits": [3, None]}, "allow_clipping": True})
    bits = sorted(p.adc_bits for p, _ in plan(spec))
    assert bits == [3, 4]  # 4 = lossless for R = 8, 2-bit cells, 1-bit DAC, flipped (as forms-8 is)


def test_offset_points_ignore_fragment_size(tmp_path: Path) -> None:
    points = [p for p, _ in plan(_spec(tmp_path, SMALL))]
    assert sorted(p.fragment_size for p in points if p.encoding == "polarized") == [4, 8]
    offset = [p for p in points if p.encoding == "offset"]
    assert len(offset) == 1 and offset[0].fragment_size == offset[0].crossbar_size
    assert len({p.id for p in points}) == len(points)


def test_sweep_keeps_finished_points_and_resumes_in_parallel(tmp_path: Path) -> None:
    """Interrupted after one point, the sweep keeps it; the rerun computes only the other two, in two
    spawned worker processes, with the same figures as an in-process run; a third run reuses all."""
    spec = _spec(tmp_path, SMALL)
    out = tmp_path / "out"
    seen: list[str] = []

    def interrupt(record: dict[str, Any]) -> None:
        seen.append(record["row"]["id"])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, out, jobs=1, progress=False, on_point=interrupt)
    assert sorted(p.stem for p in (out / "points").glob("*.json")) == seen, "finished points must stay"

    resumed = run_sweep(spec, out, jobs=2, progress=False)
    assert (resumed.points, resumed.reused, resumed.computed) == (3, 1, 2)
    serial = run_sweep(spec, tmp_path / "serial", jobs=1, progress=False)
    assert resumed.rows == serial.rows
    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == [r["id"] for r in serial.rows]
    for row in rows:
        record = json.loads((out / "points" / f"{row['id']}.json").read_text())
        assert float(row["gops_per_w"]) == pytest.approx(record["estimate"]["gops_per_w"])
        assert float(row["gops_per_w"]) > 0 and float(row["chip_area_mm2"]) > 0
    assert (out / "report.html").is_file() and (out / "figures" / "pareto-density-area.png").is_file()

    again = run_sweep(spec, out, jobs=2, progress=False)
    assert (again.reused, again.computed) == (3, 0)
    assert not list(out.rglob("*.tmp"))

    # Point records are not fsynced: one torn (e.g. emptied by a power loss) is recomputed, not trusted.
    (out / "points" / f"{seen[0]}.json").write_text("")
    torn = run_sweep(spec, out, jobs=1, progress=False)
    assert (torn.reused, torn.computed) == (2, 1) and torn.rows == serial.rows


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=25))
def test_pareto_front_is_exactly_the_non_dominated_points(points: list[tuple[int, int]]) -> None:
    xs = [float(x) for x, _ in points]
    ys = [float(y) for _, y in points]
    mask = pareto_mask(xs, ys)
    assert any(mask)
    for i, on_front in enumerate(mask):
        dominated = any(
            xs[j] >= xs[i] and ys[j] >= ys[i] and (xs[j] > xs[i] or ys[j] > ys[i]) for j in range(len(xs))
        )
        assert on_front == (not dominated)


def test_simulated_sweep_measures_accuracy_and_clipping(tmp_path: Path) -> None:
    """With `simulate`, each point holds the simulator's accuracy and clip rate; a narrower ADC clips
    at least as often; fragment sizes the checkpoint's polarization cannot give are refused up front."""
    ckpt = compressed_lenet5_checkpoint(tmp_path / "c.pt", fragment_size=8)
    data = {
        "grid": {"arch": ["forms-8"], "model": ["lenet5"], "fragment_size": [8], "adc_bits": [3, None]},
        "allow_clipping": True,
        "simulate": {"checkpoint": str(ckpt), "limit": 40, "batch_size": 40},
    }
    result = run_sweep(_spec(tmp_path, data), tmp_path / "out", progress=False)
    rows = {r["adc_bits"]: r for r in result.rows}
    assert set(rows) == {3, 4}  # forms-8 flips its fragment columns: 4 bits lossless for R = 8
    assert rows[4]["adc_clip_rate"] == 0.0  # lossless
    assert rows[3]["adc_clip_rate"] >= rows[4]["adc_clip_rate"]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows.values())
    assert (tmp_path / "out" / "figures" / "pareto-accuracy-gops-w.png").is_file()
    again = run_sweep(_spec(tmp_path, data), tmp_path / "out", progress=False)
    assert (again.reused, again.computed) == (2, 0)

    compressed_lenet5_checkpoint(ckpt, fragment_size=8, seed=1)  # other weights, same path
    other = run_sweep(_spec(tmp_path, data), tmp_path / "out", progress=False)
    assert (other.reused, other.computed) == (0, 2), "points of another checkpoint must not be reused"

    data["grid"]["fragment_size"] = [16]
    with pytest.raises(ConfigError, match="'fragment_size' = 16"):
        plan(_spec(tmp_path, data))
    data["grid"] = {"arch": ["forms-8"], "model": ["mlp"]}
    with pytest.raises(ConfigError, match="grid key 'model'"):
        plan(_spec(tmp_path, data))


ARCH_FIELD_GRID: dict[str, Any] = {
    "arch": ["forms-8"],
    "model": ["lenet5"],
    "adc.per_crossbar": [1, 2, 4, 8],
    "zero_skip.default_skip_fraction": [0, 0.2],
    "read_time_ns": [50, 100],
    "input_bits": [8, 16],
    "adc.flip": [True, False],
}


def test_any_arch_field_is_an_axis_by_its_dotted_path(tmp_path: Path) -> None:
    planned = plan(_spec(tmp_path, {"grid": ARCH_FIELD_GRID}))
    assert len(planned) == 4 * 2 * 2 * 2 * 2
    assert len({p.id for p, _ in planned}) == len(planned)
    for point, arch in planned:
        fields = dict(point.arch_fields)
        assert arch.adc.per_crossbar == fields["adc.per_crossbar"]
        assert arch.zero_skip.default_skip_fraction == fields["zero_skip.default_skip_fraction"]
        assert (arch.read_time_ns, arch.input_bits, arch.adc.flip) == (
            fields["read_time_ns"],
            fields["input_bits"],
            fields["adc.flip"],
        )
        assert point.adc_bits == (4 if arch.adc.flip else 5)  # lossless for R = 8 with / without flip


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("adc.per_crosbar", "'per_crosbar' is not a field of adc"),
        ("organisation.tiles", "'organisation' is not a field of an architecture"),
        ("read_time_ns.value", "'read_time_ns' is a value"),
        ("crossbar.rows.x", "'crossbar.rows' is a value"),
    ],
)
def test_unknown_arch_field_path_is_refused_naming_it(tmp_path: Path, key: str, why: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"grid key '{key}'") + ".*" + re.escape(why)):
        _spec(tmp_path, {"grid": {"arch": ["forms-8"], key: [1]}})


def test_arch_field_axes_reach_results_and_shapes_are_built_once(tmp_path: Path) -> None:
    grid = {"arch": ["forms-8"], "model": ["lenet5"], "adc.per_crossbar": [1, 8], "read_time_ns": [50, 100]}
    spec = _spec(tmp_path, {"grid": grid})
    sweep._zoo_workload.cache_clear()
    result = run_sweep(spec, tmp_path / "out", jobs=1, progress=False)
    info = sweep._zoo_workload.cache_info()
    assert (info.misses, info.hits) == (1, 3), "one model: its layer shapes are built once"
    with (tmp_path / "out" / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    fps = {(float(r["adc.per_crossbar"]), float(r["read_time_ns"])): float(r["fps"]) for r in rows}
    assert fps[(8, 50)] >= fps[(1, 50)] and fps[(8, 50)] >= fps[(8, 100)]
    assert [r["id"] for r in rows] == [r["id"] for r in result.rows]
    again = run_sweep(_spec(tmp_path, {"grid": grid}), tmp_path / "out", jobs=1, progress=False)
    assert (again.reused, again.computed) == (4, 0)


def test_ctrl_c_cancels_queued_points_and_keeps_finished_ones(tmp_path: Path) -> None:
    grid = {"arch": ["forms-8"], "model": ["lenet5"], "adc.per_crossbar": list(range(1, 41))}
    spec = _spec(tmp_path, {"grid": grid})
    out = tmp_path / "out"

    def interrupt(record: dict[str, Any]) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, out, jobs=2, progress=False, on_point=interrupt)
    kept = len(list((out / "points").glob("*.json")))
    assert 1 <= kept < 40, "queued batches are cancelled, running ones finish"
    resumed = run_sweep(spec, out, jobs=1, progress=False)
    assert (resumed.reused, resumed.computed) == (kept, 40 - kept)


def test_measured_activity_gives_each_point_its_models_packaged_skip(tmp_path: Path) -> None:
    from forms.cost.arch import load_arch
    from forms.cost.estimate import estimate
    from forms.cost.layer_shapes import zoo_workload
    from forms.cost.measured_activity import measured_skip

    grid = {"arch": ["forms-8", "isaac-opt"], "model": ["lenet5"]}
    measured = run_sweep(
        _spec(tmp_path, {"grid": grid, "activity": "measured:in8"}), tmp_path / "m", progress=False
    )
    plain = run_sweep(_spec(tmp_path, {"grid": grid}), tmp_path / "p", progress=False)
    fps = {(r["arch"], "m"): r["fps"] for r in measured.rows} | {
        (r["arch"], "p"): r["fps"] for r in plain.rows
    }
    arch = load_arch("forms-8")
    direct = estimate(arch, zoo_workload("lenet5", None), measured_skip("lenet5", "in8", arch.zero_skip.rule))
    assert fps[("forms-8", "m")] == pytest.approx(direct.fps, rel=1e-12)
    assert fps[("forms-8", "m")] > fps[("forms-8", "p")], "measured skipping speeds FORMS up"
    assert fps[("isaac-opt", "m")] == fps[("isaac-opt", "p")], "no skip logic: activity changes nothing"
    again = run_sweep(
        _spec(tmp_path, {"grid": grid, "activity": "measured:in8"}), tmp_path / "m", progress=False
    )
    assert (again.reused, again.computed) == (2, 0)
    other = run_sweep(
        _spec(tmp_path, {"grid": grid, "activity": "measured:in16-8bit"}), tmp_path / "m", progress=False
    )
    assert other.computed == 2, "the mode is part of each point's key"
