"""`forms demo` / `forms reproduce`: stage resume and report assembly; the real runs are marked slow/quick."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from forms.errors import ConfigError
from forms.experiments.demo import DemoSpec, run_demo
from forms.experiments.stages import INPUTS_KEY, estimate_inputs_key, load_done, verdict_inputs_key
from forms.io import write_json_atomic
from forms.nn.checkpoint import save_checkpoint
from test_report import make_summary, sample_estimate, sample_simulation, sample_verdict

CPU_CONFIG = Path(__file__).parents[1] / "configs" / "reproduce-cpu.yaml"


def _lenet5_state(seed: int) -> dict[str, Any]:
    """A LeNet-5 checkpoint state whose weights are drawn with ``seed``."""
    import torch

    from forms.nn.models import build_model, model_kwargs

    torch.manual_seed(seed)
    return {
        "stage": "compressed",
        "model": {"name": "lenet5", "kwargs": model_kwargs(1, 10, 28)},
        "state_dict": build_model("lenet5").state_dict(),
        "optimizer": {},
        "epoch": 1,
        "seed": seed,
        "config": {},
        "data": {"dataset": "mnist", "pad_to": None, "channels": None},
    }


def test_stage_keys_name_the_checkpoint_by_content_not_path(tmp_path: Path) -> None:
    """A checkpoint rewritten in place (its compress stage rerun) changes the estimate and verdict keys;
    the same content at another path keeps them."""
    here = save_checkpoint(_lenet5_state(0), tmp_path / "a" / "checkpoint.pt")
    there = save_checkpoint(_lenet5_state(0), tmp_path / "b" / "checkpoint.pt")

    def keys(path: Path) -> tuple[str, str]:
        return (
            estimate_inputs_key("forms-8", "lenet5", checkpoint=path),
            verdict_inputs_key("lenet5", ["forms-8", "isaac-opt"], "isaac-opt", checkpoint=path),
        )

    before = keys(here)
    assert keys(there) == before
    save_checkpoint(_lenet5_state(1), here)
    after = keys(here)
    assert after[0] != before[0] and after[1] != before[1]


def _seed_finished_stages(out: Path, spec: DemoSpec) -> dict[str, Any]:
    """Write hand-made finished outputs for every demo stage, as the stages would have left them."""
    sample = make_summary()
    assert sample.train is not None and sample.compress is not None
    write_json_atomic(sample.train.to_dict(), out / "train" / "metrics.json")
    write_json_atomic(sample.compress.to_dict(), out / "compress" / "metrics.json")
    written: dict[str, Any] = {}
    for setup in spec.sim_setups():
        path = out / "simulate" / setup.name / "metrics.json"
        write_json_atomic(sample_simulation((0.9 + 0.001 * len(written),), 0.0, 0.3).to_dict(), path)
        written[setup.name] = json.loads(path.read_text())
    polarized_ideal = (
        s for s in spec.sim_setups() if s.setup.encoding.signs_per_fragment and s.setup.mode == "ideal"
    )
    activity = written[next(polarized_ideal).name]  # the run the demo takes its activity from
    checkpoint = save_checkpoint(_lenet5_state(0), out / "compress" / "checkpoint.pt")
    for arch in spec.archs:
        est = sample.estimate.get(arch) or sample_estimate(arch, 1.1)
        inputs = {
            "input_shape": None,
            "checkpoint": checkpoint,
            "activity": activity,
            "extra_assumptions": (),
        }
        record = {**est.to_dict(), INPUTS_KEY: estimate_inputs_key(arch, spec.model, **inputs)}
        write_json_atomic(record, out / "estimate" / arch / "estimate.json")
    network = f"{spec.model} ({spec.dataset})"
    key = verdict_inputs_key(network, spec.archs, spec.baseline, checkpoint=checkpoint, activity=activity)
    write_json_atomic({**sample_verdict(), INPUTS_KEY: key}, out / "verdict" / "verdict.json")
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
    # R = 8 fragments flipped: lossless 4 bits (FORMS's ADC), the narrow run one bit fewer
    assert summary["simulate"]["polarized-adc3"]["setup"]["adc_bits"] == 3
    assert summary["simulate"]["polarized-ideal"]["setup"]["flipped"] is True
    assert summary["simulate"]["offset-ideal"]["setup"]["flipped"] is True
    assert summary["train"] == json.loads((tmp_path / "train" / "metrics.json").read_text())
    assert set(summary["estimate"]) == set(spec.archs)
    assert summary["derived"]["estimate_ratios"]["isaac-opt"]["fps"] == pytest.approx(1.0)
    assert summary["verdict"] == {"lenet5 (mnist)": sample_verdict()}
    html = result.report.html.read_text()
    assert "Assumptions and parameters" in html
    assert html.index('id="verdict"') < html.index('id="what-decides"') < html.index('id="overview"')
    assert html.index('id="assumptions"') < html.index('id="stage-times"')
    assert any("variation" in a for a in summary["assumptions"])


def test_demo_defaults_state_their_budget() -> None:
    spec = DemoSpec.from_dict({})
    text = " ".join(spec.assumptions())
    assert f"{spec.train_epochs} epochs" in text and f"{spec.variation_runs} chips" in text
    assert spec.fragment_size == 8 and spec.weight_bits == 8 and spec.prune_granularity == "filter"
    assert spec.archs == ["isaac-opt", "isaac-ce", "prime", "forms-8"]


@pytest.mark.slow
def test_reproduce_quick_runs_end_to_end(tmp_path: Path) -> None:
    """`forms reproduce --quick` from nothing: every experiment's table is filled."""
    from forms.experiments.reproduce import run_reproduce
    from forms.experiments.reproduce_spec import ReproduceSpec

    result = run_reproduce(tmp_path, ReproduceSpec.quick(), progress=False)
    summary = json.loads(result.report.summary.read_text())
    exp = summary["experiments"]
    assert len(exp["a"]["rows"]) == 2 * len(ReproduceSpec.quick().fragment_sizes)
    assert all(row["fragments_mixed_sign"] == 0 for row in exp["a"]["rows"])
    history = exp["a"]["compress"]["lenet5-mnist-R8"]["admm"]["history"]
    assert len(history) == 1 and all(v >= 0 for v in history[0]["residuals"].values())
    assert 'id="figure-a-residuals-lenet5-mnist-R8"' in result.report.html.read_text()
    assert exp["b"]["compress"]["crossbars"]
    assert {r["arch"] for r in exp["c"]["rows"]} == set(ReproduceSpec.quick().archs)
    assert [r["variant"] for r in exp["d"]["rows"]] == [
        "float-equivalent",
        "polarized-only",
        "fully compressed",
    ]
    for row in exp["d"]["rows"]:
        assert 0.0 <= row["variation_mean"] <= 1.0
    spec = ReproduceSpec.quick()
    assert list(summary["verdict"]) == [w.label for w in spec.workloads]
    lenet = summary["verdict"][spec.workloads[0].label]
    assert "measured" in lenet["skip"]["source"] and lenet["break_even"][0]["measured_skip"] is not None
    html = result.report.html.read_text()
    assert html.index('id="verdict"') < html.index('id="what-decides"') < html.index('id="overview"')
    assert html.index('id="assumptions"') < html.index('id="stage-times"')


def test_reproduce_compressions_inherit_the_runs_subset_and_schedule_overrides() -> None:
    """A model's compressions train on its float run's images, with its schedule overrides on top."""
    from forms.compress.spec import CompressSpec
    from forms.experiments.reproduce_spec import ReproduceSpec

    spec = ReproduceSpec.from_dict(
        {
            "deep": {
                "model": "resnet20",
                "dataset": "fashion-mnist",
                "epochs": 2,
                "train_subset": 1234,
                "validation_images": 200,
                "schedule": {"admm_rounds": 2, "optimizer": "sgd", "lr": 0.02},
            }
        }
    )
    deep = CompressSpec.from_dict(spec.compress_spec(spec.deep, 16, prune=False))
    assert deep.train_subset == 1234 and deep.crossbar.fragment_size == 16
    assert deep.validation_images == 200
    assert (deep.schedule.admm_rounds, deep.schedule.optimizer, deep.schedule.lr) == (2, "sgd", 0.02)
    assert deep.schedule.retrain_epochs == spec.retrain_epochs
    mnist = CompressSpec.from_dict(spec.compress_spec(spec.mnist, 8, prune=True))
    assert mnist.train_subset is None and mnist.schedule.admm_rounds == spec.admm_rounds
    assert mnist.validation_images == 0
    assert mnist.prune.ratio == spec.prune_ratio
    plain = CompressSpec.from_dict(spec.compress_spec(spec.deep, 128, prune=False, polarize=False))
    assert plain.schedule.admm_rounds == 0 and plain.schedule.retrain_epochs == 0
    assert any("override" in note and "sgd" in note for note in spec.assumptions())
    assert any("hold out 200" in note for note in spec.assumptions())


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            {"deep": {"model": "resnet20", "dataset": "fashion-mnist", "epochs": 1, "schedule": {"lrr": 1}}},
            "lrr",
        ),
        ({"fragment_sizes": [4, 3]}, "R=3"),
        ({"prune_fragment_size": 6}, "fragment size R=6"),
        (
            {
                "deep": {
                    "model": "resnet20",
                    "dataset": "fashion-mnist",
                    "epochs": 1,
                    "train_subset": 100,
                    "validation_images": 100,
                }
            },
            "validation_images 100 must be smaller than train_subset 100",
        ),
    ],
)
def test_reproduce_spec_refuses_impossible_compressions_before_running(
    change: dict[str, Any], named: str
) -> None:
    from forms.errors import ConfigError
    from forms.experiments.reproduce_spec import ReproduceSpec

    with pytest.raises(ConfigError, match=named):
        ReproduceSpec.from_dict(change)


def test_reproduce_cli_refuses_quick_with_config(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from forms.cli.app import app

    result = CliRunner().invoke(
        app, ["reproduce", "--quick", "--config", str(CPU_CONFIG), "--out", str(tmp_path)]
    )
    assert result.exit_code != 0
    assert not any(tmp_path.iterdir())


def test_reproduce_cpu_config_is_valid() -> None:
    from forms.experiments.reproduce_spec import ReproduceSpec

    spec = ReproduceSpec.from_yaml(CPU_CONFIG)
    assert spec.deep.model == "resnet20" and spec.deep.pad_to == 32
    assert spec.fragment_sizes == [4, 8, 16, 32, 128]


def test_stage_clock_reports_the_seconds_of_stages_reused_from_an_earlier_run(tmp_path: Path) -> None:
    from forms.experiments.pipeline import StageClock

    calls: list[int] = []

    def stage() -> dict[str, Any]:
        calls.append(1)
        done = load_done(tmp_path / "a" / "x")
        if done is None:
            write_json_atomic({"value": 1}, tmp_path / "a" / "x" / "metrics.json")
        return load_done(tmp_path / "a" / "x") or {}

    first = StageClock(tmp_path)
    first.run(tmp_path / "a" / "x", stage)
    assert set(first.seconds) == {"a/x"} and first.reused == [] and first.earlier_seconds == {}
    second = StageClock(tmp_path)
    assert second.run(tmp_path / "a" / "x", stage) == {"value": 1}
    assert second.seconds == {} and second.reused == ["a/x"]
    assert second.earlier_seconds == {"a/x": first.seconds["a/x"]}
    assert second.timings().earlier_stage_seconds == {"a/x": first.seconds["a/x"]}


def test_an_estimate_json_of_an_older_format_is_recomputed_and_the_clock_times_it(tmp_path: Path) -> None:
    """An estimate.json lacking a field a newer version writes (or its inputs key) is recomputed, not an
    error, and the stage clock reports it as run (it rewrote its output), not reused; so is one of
    another arch spec."""
    from forms.cost.arch import ArchSpec, load_arch
    from forms.cost.estimate import Estimate
    from forms.experiments.pipeline import StageClock
    from forms.experiments.stages import ESTIMATE, estimate_stage

    out = tmp_path / "forms-8"
    fresh = estimate_stage(out, "forms-8", "lenet5")
    old = json.loads((out / ESTIMATE).read_text())
    for layer in old["layers"]:
        del layer["read_skip_fraction"]  # a field this version added
    (out / ESTIMATE).write_text(json.dumps(old))
    with pytest.raises(ConfigError, match="read_skip_fraction"):
        Estimate.from_dict(old)
    clock = StageClock(tmp_path)
    again = clock.run(out, lambda: estimate_stage(out, "forms-8", "lenet5"), done_file=ESTIMATE)
    assert again.to_dict() == fresh.to_dict()
    record = json.loads((out / ESTIMATE).read_text())
    assert record.pop(INPUTS_KEY) == estimate_inputs_key("forms-8", "lenet5")
    assert record == json.loads(json.dumps(fresh.to_dict()))
    assert clock.reused == [] and set(clock.seconds) == {"forms-8"}
    second = StageClock(tmp_path)
    second.run(out, lambda: estimate_stage(out, "forms-8", "lenet5"), done_file=ESTIMATE)
    assert second.reused == ["forms-8"] and second.seconds == {}
    other = load_arch("forms-8").model_dump(mode="json")
    other["adc"]["per_crossbar"] = 2 * other["adc"]["per_crossbar"]
    changed = estimate_stage(out, ArchSpec.model_validate(other), "lenet5")
    assert changed.to_dict() != fresh.to_dict(), "an estimate of the old arch spec was reused"
