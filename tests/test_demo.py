"""`forms demo` / `forms reproduce`: stage resume and report assembly; the real runs are marked slow/quick."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from forms.experiments.demo import DemoSpec, run_demo
from forms.report.io import write_json_atomic
from test_report import make_summary


def _seed_finished_stages(out: Path, spec: DemoSpec) -> dict[str, Any]:
    """Write hand-made finished outputs for every demo stage, as the stages would have left them."""
    sample = make_summary()
    write_json_atomic(sample["train"], out / "train" / "metrics.json")
    write_json_atomic(sample["compress"], out / "compress" / "metrics.json")
    sim = next(iter(sample["simulate"].values()))["metrics"]
    written = {}
    for setup in spec.sim_setups():
        metrics = {**sim, "accuracy": 0.9 + 0.001 * len(written)}
        write_json_atomic(metrics, out / "simulate" / setup.name / "metrics.json")
        written[setup.name] = metrics
    for arch, est in sample["estimate"].items():
        write_json_atomic(est, out / "estimate" / arch / "estimate.json")
    return written


def test_demo_resumes_every_finished_stage_and_reports_their_outputs(tmp_path: Path) -> None:
    """With every stage's output in place nothing is rerun, and the report holds exactly those outputs."""
    spec = DemoSpec.from_dict({})
    sims = _seed_finished_stages(tmp_path, spec)
    start = time.perf_counter()
    result = run_demo(tmp_path, spec, progress=False)
    assert time.perf_counter() - start < 60
    assert result.clock.seconds == {}, "a finished stage was rerun"
    assert "train" in result.clock.reused and "compress" in result.clock.reused
    summary = json.loads(result.report.summary.read_text())
    assert set(summary["simulate"]) == set(sims)
    assert all(summary["simulate"][name]["metrics"] == m for name, m in sims.items())
    assert summary["simulate"]["polarized-adc4"]["setup"]["adc_bits"] == 4  # lossless 5 for R = 8, minus 1
    assert summary["simulate"]["offset-ideal"]["setup"]["flipped"] is True
    assert summary["train"]["test_accuracy"] == make_summary()["train"]["test_accuracy"]
    assert set(summary["estimate"]) == set(spec.archs)
    assert summary["derived"]["estimate_ratios"]["isaac-opt"]["fps"] == pytest.approx(1.0)
    assert result.report.html.is_file() and "Assumptions and parameters" in result.report.html.read_text()
    assert any("variation" in a for a in summary["assumptions"])


def test_demo_defaults_state_their_budget() -> None:
    spec = DemoSpec.from_dict({})
    text = " ".join(spec.assumptions())
    assert f"{spec.train_epochs} epochs" in text and f"{spec.variation_runs} chips" in text
    assert spec.fragment_size == 8 and spec.weight_bits == 8 and spec.prune_granularity == "filter"
    assert spec.archs == ["isaac-opt", "prime", "forms-8"]


@pytest.mark.slow
def test_reproduce_quick_runs_end_to_end(tmp_path: Path) -> None:
    """`forms reproduce --quick` from nothing: every experiment's table is filled."""
    from forms.experiments.reproduce import ReproduceSpec, run_reproduce

    result = run_reproduce(tmp_path, ReproduceSpec.quick(), progress=False)
    summary = json.loads(result.report.summary.read_text())
    exp = summary["experiments"]
    assert len(exp["a"]["rows"]) == 2 * len(ReproduceSpec.quick().fragment_sizes)
    assert all(row["fragments_mixed_sign"] == 0 for row in exp["a"]["rows"])
    assert exp["b"]["compress"]["crossbars"]
    assert {r["arch"] for r in exp["c"]["rows"]} == set(ReproduceSpec.quick().archs)
    assert [r["variant"] for r in exp["d"]["rows"]] == [
        "float-equivalent",
        "polarized-only",
        "fully compressed",
    ]
    for row in exp["d"]["rows"]:
        assert 0.0 <= row["variation_mean"] <= 1.0
