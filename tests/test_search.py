"""The per-layer pruning search: goals, nested allocations, bisection, floor, determinism, resume."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import forms.compress.search_scan as search_scan
from cli_helpers import assert_clean_error, run_forms
from compress_helpers import make_float_checkpoint
from forms.compress.constraints import layer_constraints
from forms.compress.search import SEARCH_NAME, Trial, _bisect, search
from forms.compress.search_scan import (
    LayerScan,
    Scan,
    allocation_at,
    candidate_allocations,
    relax,
    run_scan,
)
from forms.compress.search_spec import SearchSpec
from forms.compress.spec import CompressSpec
from forms.errors import ConfigError
from forms.nn.progress import make_progress


def tiny_search(data_dir: Path, **goal: Any) -> SearchSpec:
    """A fast search on the synthetic data: 1 ADMM round, 1 retraining epoch, two scan ratios."""
    compress = {
        "prune": {"granularity": "filter+channel", "propagate": True},
        "schedule": {"admm_rounds": 1, "round_epochs": 1, "retrain_epochs": 1, "batch_size": 64},
        "validation_images": 96,
        "device": "cpu",
        "data_dir": str(data_dir),
    }
    return SearchSpec.from_dict({"compress": compress, "ratios": [0.5, 0.9], "max_trials": 2, **goal})


@pytest.fixture(scope="module")
def float_ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_float_checkpoint(tmp_path_factory.mktemp("search"), epochs=2)


@pytest.fixture(scope="module")
def searched(float_ckpt: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    ckpt, data = float_ckpt
    out = tmp_path_factory.mktemp("searched") / "run"
    return out, search(tiny_search(data, max_drop_points=5.0), ckpt, out, progress=False)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({}, "give a goal"),
        ({"accuracy_floor": 0.9, "max_drop_points": 1.0}, "not both"),
        ({"accuracy_floor": 0.9, "compress": {"validation_images": 0}}, "validation_images"),
        ({"accuracy_floor": 0.9, "compress": {"validation_images": 9, "prune": {"ratio": 0.5}}}, "ratio 0"),
        ({"crossbar_budget": 5, "ratios": [0.5, 1.0]}, r"\(0, 1\)"),
    ],
)
def test_spec_refuses_a_search_it_cannot_run(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SearchSpec.from_dict(changes)


def test_allocation_takes_the_largest_ratio_whose_smaller_ones_all_pass() -> None:
    scan = Scan(
        "k",
        10,
        0.9,
        [
            LayerScan("a", [0.5, 0.7, 0.9], [0.9, 0.8, 0.89]),
            LayerScan("b", [0.5, 0.7, 0.9], [0.85, 0.7, 0.6]),
        ],
    )
    assert allocation_at(scan, 0.0) == {"a": 0.5}
    assert allocation_at(scan, 5.0) == {"a": 0.5, "b": 0.5}
    assert allocation_at(scan, 10.0) == {"a": 0.9, "b": 0.5}  # a's 0.9 passes once 0.7 does
    assert [t for t, _ in candidate_allocations(scan)] == pytest.approx([0.0, 5.0, 10.0, 20.0, 30.0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3), min_size=1, max_size=4))
def test_candidates_are_distinct_and_nested(accuracies: list[list[float]]) -> None:
    layers = [LayerScan(f"l{i}", [0.3, 0.6, 0.9], acc) for i, acc in enumerate(accuracies)]
    candidates = [ratios for _, ratios in candidate_allocations(Scan("k", 1, 0.95, layers))]
    for before, after in itertools.pairwise(candidates):
        assert before != after
        assert all(after.get(name, 0.0) >= r for name, r in before.items())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0.3, 0.6, 0.9]), min_size=1, max_size=4), st.floats(0.0, 2.0))
def test_relax_lowers_ratios_while_the_allocation_still_fits(start: list[float], need: float) -> None:
    ratios = {f"l{i}": r for i, r in enumerate(start)}

    def fits(allocation: dict[str, float]) -> bool:
        return sum(allocation.values()) >= min(need, sum(start))

    relaxed = relax(ratios, [0.3, 0.6, 0.9], fits)
    assert fits(relaxed)
    assert all(0 < r <= ratios[name] for name, r in relaxed.items())
    for name in ratios:  # no single layer can go one grid step lower
        lower = [r for r in (0.0, 0.3, 0.6) if r < relaxed.get(name, 0.0)]
        if lower:
            assert not fits({**relaxed, name: lower[-1]})


def test_relax_example() -> None:
    fits = lambda r: sum(r.values()) >= 1.0  # noqa: E731
    assert relax({"a": 0.9, "b": 0.9}, [0.3, 0.6, 0.9], fits) == {"a": 0.3, "b": 0.9}


def _trial(index: int, feasible: bool) -> Trial:
    return Trial(index, "", 0.0, 0.0, 1, 1.0, 1.0, feasible, True)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40), st.data())
def test_bisection_finds_the_last_feasible_candidate(n: int, data: st.DataObject) -> None:
    last = data.draw(st.integers(-1, n - 1))  # candidates 0..last are feasible
    seen: list[int] = []

    def measure(index: int) -> Trial:
        seen.append(index)
        return _trial(index, index <= last)

    _bisect(n, measure, max_trials=n.bit_length() + 1)
    assert len(set(seen)) == len(seen)
    assert max((i for i in seen if i <= last), default=-1) == last


def test_scan_resumes_without_redoing_finished_layers(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    spec = CompressSpec.from_dict({"prune": {"first_layer": True}})
    layers = search_scan.prunable(layer_constraints(model, spec), spec)
    calls: list[int] = []

    def measure() -> float:
        calls.append(1)
        first, second = model.get_submodule("0").weight, model.get_submodule("2").weight
        assert isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor)
        return float(first.detach().abs().sum() + second.detach().abs().sum())

    record = (tmp_path / "scan.json", "key")
    with make_progress(False) as bar:
        first = run_scan(model, layers[:1], [0.5], (measure, 4), record, bar)
        assert len(calls) == 2  # base accuracy and one ratio
        full = run_scan(model, layers, [0.5], (measure, 4), record, bar)
        assert len(calls) == 3  # only the new layer
        assert full.layers[0] == first.layers[0]
        run_scan(model, layers, [0.5], (measure, 4), (record[0], "other"), bar)
        assert len(calls) == 6  # another key: everything again


def test_search_respects_the_floor_on_its_validation_images(searched: tuple[Path, Any]) -> None:
    out, result = searched
    assert result.floor == pytest.approx(result.float_validation_accuracy - 0.05)
    assert result.trials
    for trial in result.trials:
        assert trial.meets_floor == (trial.validation_accuracy >= result.floor)
    if result.best is not None:
        assert result.best.validation_accuracy >= result.floor
        assert all(t.candidate <= result.best.candidate for t in result.trials if t.feasible)
    written = json.loads((out / SEARCH_NAME).read_text())
    assert written["chosen"] == result.chosen and len(written["trials"]) == len(result.trials)


def test_resume_redoes_no_finished_step(
    searched: tuple[Path, Any], float_ckpt: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, result = searched
    ckpt, data = float_ckpt
    files = [
        *out.glob("scan-*.json"),
        *out.glob("trials/*/metrics.json"),
        *out.glob("trials/*/checkpoint.pt"),
    ]
    stamps = {f: f.stat().st_mtime_ns for f in files}
    monkeypatch.setattr(search_scan, "scan_layer", lambda *a: pytest.fail("the scan ran again"))
    with pytest.raises(ConfigError, match="--resume"):
        search(tiny_search(data, max_drop_points=5.0), ckpt, out, progress=False)
    again = search(tiny_search(data, max_drop_points=5.0), ckpt, out, resume=True, progress=False)
    assert again.trials == result.trials and again.chosen == result.chosen
    assert {f: f.stat().st_mtime_ns for f in files} == stamps


def test_search_is_deterministic_for_a_seed(
    searched: tuple[Path, Any], float_ckpt: tuple[Path, Path], tmp_path: Path
) -> None:
    _, result = searched
    ckpt, data = float_ckpt
    again = search(tiny_search(data, max_drop_points=5.0), ckpt, tmp_path / "again", progress=False)
    assert again.scan.layers == result.scan.layers and again.candidates == result.candidates
    assert [(t.candidate, t.validation_accuracy, t.crossbars) for t in again.trials] == [
        (t.candidate, t.validation_accuracy, t.crossbars) for t in result.trials
    ]


def test_budget_search_from_the_command_line(float_ckpt: tuple[Path, Path], tmp_path: Path) -> None:
    ckpt, data = float_ckpt
    config = tmp_path / "search.yaml"
    config.write_text(tiny_search(data, crossbar_budget=1000).to_yaml())
    out = tmp_path / "budget"
    proc = run_forms(
        "search", "--checkpoint", str(ckpt), "--config", str(config), "--out", str(out), "--quiet"
    )
    assert proc.returncode == 0, proc.stderr
    written = json.loads((out / SEARCH_NAME).read_text())
    (trial,) = written["trials"]  # everything fits: one trial, relaxed to no pruning at all
    assert written["met"] and written["candidates"][trial["candidate"]]["ratios"] == {}
    assert "chosen: no pruning" in proc.stdout
    bad = run_forms(
        "search", "--checkpoint", str(ckpt), "--config", str(config), "--out", str(out), "--floor", "2"
    )
    assert_clean_error(bad, "accuracy_floor")


def test_prediction_counts_layers_that_propagation_empties() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    first, second = model.get_submodule("0"), model.get_submodule("2")
    assert isinstance(first, nn.Linear) and isinstance(second, nn.Linear)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[4.0] * 4, [4.0] * 4, [0.1] * 4, [0.1] * 4]))  # outputs 0, 1 kept
        second.weight.copy_(torch.tensor([[0.1, 0.1, 4.0, 4.0]] * 4))  # ... but inputs 2, 3 kept
    spec = CompressSpec.from_dict(
        {"prune": {"granularity": "filter+channel", "propagate": True, "first_layer": True}}
    )
    constraints = layer_constraints(model, spec)
    disjoint = search_scan.predict(model, constraints, spec, {"0": 0.5, "2": 0.5})
    assert disjoint.empty_layers == 3 and disjoint.crossbars == 0  # the dead channels cascade to the end
    assert search_scan.predict(model, constraints, spec, {"0": 0.5}).empty_layers == 0
