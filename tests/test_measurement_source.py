"""Whose packaged measurement a costed network is judged by: own only on the same model and data set."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from _simhelpers import compressed_lenet5_checkpoint
from forms.cost.files import accuracy_cells
from forms.cost.layer_shapes import zoo_workload
from forms.cost.measured_accuracy import accuracy_floor
from forms.cost.measured_activity import MeasurementSource, costed_dataset, find_packaged, measured_skip
from forms.errors import ConfigError
from forms.experiments.stages import verdict_inputs_key, verdict_stage
from forms.nn.checkpoint import save_checkpoint

CONDITIONS = {"rows": 128, "cols": 128, "cell_bits": 2, "dac_bits": 1, "input_bits": 16, "weight_bits": 8}
POINT = {
    "encoding": "polarized",
    "fragment_size": 8,
    "adc_bits": 4,
    "flipped": True,
    "accuracy": 0.99,
    "reference_accuracy": 0.99,
    "clip_rate": 0.0,
}
NAMES = st.sampled_from(["lenet5", "mlp", "resnet18"])
DATASETS = st.sampled_from(["mnist", "fashion-mnist", "cifar10"])


@given(model=NAMES, dataset=st.none() | DATASETS, measured_model=NAMES, measured_dataset=DATASETS)
def test_own_only_on_the_same_model_and_known_same_data(
    model: str, dataset: str | None, measured_model: str, measured_dataset: str
) -> None:
    source = MeasurementSource.of(model, dataset, measured_model, measured_dataset)
    same_model = model == measured_model
    assert source.borrowed == (not same_model or (dataset is not None and dataset != measured_dataset))
    assert (source.label == "") == (same_model and dataset == measured_dataset)
    assert (source.label == "data set unknown") == (same_model and dataset is None)
    note = source.note(model, dataset)
    assert note.startswith("borrowed for " + model) if source.borrowed else note == source.label


def _accuracy(folder: Path, dataset: str, float_accuracy: float = 0.992) -> None:
    record = {
        "model": "lenet5",
        "dataset": dataset,
        "images": 2000,
        "float_accuracy": float_accuracy,
        "conditions": CONDITIONS,
        "points": [POINT],
        "provenance": {"script": "test"},
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"lenet5-{dataset}.json").write_text(json.dumps(record))


@pytest.mark.parametrize(
    ("dataset", "borrowed", "known", "ending"),
    [
        ("fashion-mnist", True, True, ", borrowed for lenet5 on fashion-mnist)"),
        ("mnist", False, True, "2000 images)"),
        (None, False, False, ", data set unknown)"),
    ],
)
def test_the_floor_labels_a_same_model_measurement_by_its_data_set(
    tmp_path: Path, dataset: str | None, borrowed: bool, known: bool, ending: str
) -> None:
    _accuracy(tmp_path, "mnist")
    floor = accuracy_floor("lenet5", 1.0, directory=tmp_path, dataset=dataset)
    assert floor.measured.name == "lenet5-mnist"
    assert (floor.borrowed, floor.source.dataset_known) == (borrowed, known)
    assert floor.describe().endswith(ending)
    record = floor.record(None)
    assert (record["borrowed"], record["dataset_known"], record["dataset"]) == (borrowed, known, dataset)
    cell = accuracy_cells(record)["accuracy_source"]
    assert cell.startswith("lenet5-mnist (2000 images") and cell.endswith(ending)


def test_the_measurement_on_the_network_s_own_data_set_is_preferred(tmp_path: Path) -> None:
    _accuracy(tmp_path, "mnist")
    _accuracy(tmp_path, "fashion-mnist", float_accuracy=0.91)
    floor = accuracy_floor("lenet5", 1.0, directory=tmp_path, dataset="fashion-mnist")
    assert floor.measured.name == "lenet5-fashion-mnist" and floor.source.label == ""
    assert floor.floor == pytest.approx(0.90)
    with pytest.raises(ConfigError, match="several accuracy measurements match 'lenet5'"):
        accuracy_floor("lenet5", 1.0, directory=tmp_path)


def _activity(folder: Path, stem: str) -> None:
    counts = {"conversions_total": 100, "conversions_skipped_leading": 20, "conversions_skipped_bitplane": 25}
    layers: dict[str, Any] = {layer.name: counts for layer in zoo_workload("lenet5").shapes.layers}
    record = {"provenance": {"command": "test"}, "accuracy": 0.99, "zero_skip": layers}
    (folder / f"{stem}.json").write_text(json.dumps(record))


@pytest.mark.parametrize(
    ("dataset", "label"),
    [
        ("fashion-mnist", " (borrowed for lenet5 on fashion-mnist)"),
        ("mnist", ""),
        (None, " (data set unknown)"),
    ],
)
def test_packaged_activity_follows_the_same_rule(tmp_path: Path, dataset: str | None, label: str) -> None:
    _activity(tmp_path, "lenet5-mnist-in8")
    skip = measured_skip("lenet5", "in8", "leading", tmp_path, dataset=dataset)
    assert skip.activity is not None and skip.activity.source.startswith(
        f"packaged lenet5-mnist-in8.json{label}"
    )
    assert skip.note == f"layer not in lenet5-mnist-in8.json{label}: its network-wide fractions"


def test_packaged_activity_on_the_network_s_own_data_set_is_preferred(tmp_path: Path) -> None:
    _activity(tmp_path, "lenet5-mnist-in8")
    _activity(tmp_path, "lenet5-fashion-mnist-in8")
    found = find_packaged("lenet5", "in8", tmp_path, dataset="fashion-mnist")
    assert found is not None and found.dataset == "fashion-mnist"
    with pytest.raises(ConfigError, match="several packaged activity files for lenet5"):
        find_packaged("lenet5", "in8", tmp_path)


def test_a_checkpoint_gives_the_data_set_and_a_disagreeing_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(
        {
            "stage": "float",
            "model": {"name": "lenet5"},
            "state_dict": {},
            "data": {"dataset": "fashion-mnist"},
        },
        path,
    )
    assert costed_dataset(None, path) == "fashion-mnist"
    assert costed_dataset("fashion-mnist", path) == "fashion-mnist"
    assert costed_dataset("mnist", None) == "mnist" and costed_dataset(None, None) is None
    with pytest.raises(ConfigError, match=r"--dataset mnist disagrees with checkpoint .* fashion-mnist"):
        costed_dataset("mnist", path)


@pytest.mark.parametrize(
    ("extra", "ending"),
    [
        (["--dataset", "fashion-mnist"], "images, borrowed for lenet5 on fashion-mnist)"),
        (["--dataset", "mnist"], "images)"),
        ([], "images, data set unknown)"),
    ],
)
def test_cli_optimize_labels_the_packaged_lenet5_measurement(
    tmp_path: Path, extra: list[str], ending: str
) -> None:
    from forms.cli import app

    args = ["optimize", "--archs", "forms-8", "--model", "lenet5", "--constraint", "none"]
    result = CliRunner().invoke(app, [*args, "--max-accuracy-drop", "1", *extra, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "optimize.json").read_text())["optima"][0]["accuracy"]
    assert record["measured_on"] == "lenet5-mnist" and record["text"].endswith(ending)
    with (tmp_path / "optimize.csv").open() as f:
        row = next(csv.DictReader(f))
    assert row["accuracy_source"].startswith("lenet5-mnist (") and row["accuracy_source"].endswith(ending)


ARCHS = ["forms-8", "isaac-opt"]


@pytest.mark.parametrize(
    ("checkpoint_dataset", "borrowed", "unwanted"),
    [("mnist", False, ("data set unknown", "borrowed from")), ("fashion-mnist", True, ("data set unknown",))],
)
def test_the_verdict_stage_takes_the_data_set_from_the_checkpoint(
    tmp_path: Path, checkpoint_dataset: str, borrowed: bool, unwanted: tuple[str, ...]
) -> None:
    """The demo's path: LeNet-5 compressed on MNIST is judged by its own packaged measurement; the same
    model compressed on other data borrows it."""
    ckpt = compressed_lenet5_checkpoint(tmp_path / "c.pt", dataset=checkpoint_dataset)
    verdict = verdict_stage(tmp_path / "verdict", "lenet5 (demo)", ARCHS, "isaac-opt", checkpoint=ckpt)
    held = [h.forms_accuracy for h in verdict.headline if h.forms_accuracy is not None]
    assert held and all(a.measured_on == "lenet5-mnist" and a.dataset_known for a in held)
    assert all(a.borrowed == borrowed and a.label == ("borrowed" if borrowed else "") for a in held)
    floor_note = next(n for n in verdict.notes if n.startswith("optima with an accuracy floor"))
    assert ("; accuracy measured;" in floor_note) != borrowed
    assert not any(text in floor_note for text in unwanted)


def test_the_verdict_stage_labels_a_zoo_model_by_the_data_set_it_is_given(tmp_path: Path) -> None:
    """A zoo model named alone has no data set ('data set unknown'); given MNIST its measurement is its
    own; a data set disagreeing with the checkpoint's is refused; the data set is part of the key."""
    unknown = verdict_stage(tmp_path / "unknown", "lenet5", ARCHS, "isaac-opt", model="lenet5")
    own = verdict_stage(tmp_path / "own", "lenet5", ARCHS, "isaac-opt", model="lenet5", dataset="mnist")
    labels = [{h.forms_accuracy.label for h in v.headline if h.forms_accuracy} for v in (unknown, own)]
    assert labels == [{"data set unknown"}, {""}]
    keys = {verdict_inputs_key("lenet5", ARCHS, "isaac-opt", "lenet5", dataset=d) for d in (None, "mnist")}
    assert len(keys) == 2
    ckpt = compressed_lenet5_checkpoint(tmp_path / "c.pt", dataset="mnist")
    with pytest.raises(ConfigError, match="--dataset fashion-mnist disagrees with checkpoint"):
        verdict_stage(tmp_path / "x", "lenet5", ARCHS, "isaac-opt", checkpoint=ckpt, dataset="fashion-mnist")


def _zero_skip_assumption(path: Path) -> str:
    """The assumption of an estimate.json (or compare.json's first estimate) naming the packaged file."""
    record = json.loads(path.read_text())
    estimate = record["estimates"][0] if path.name == "compare.json" else record
    return next(a for a in estimate["assumptions"] if "packaged lenet5-mnist-in16" in a)


@pytest.mark.parametrize(
    ("checkpoint_dataset", "extra", "label"),
    [
        ("mnist", [], ""),
        ("mnist", ["--dataset", "mnist"], ""),
        ("fashion-mnist", [], " (borrowed for lenet5 on fashion-mnist)"),
    ],
)
def test_cli_estimate_and_compare_take_the_data_set_from_the_checkpoint(
    tmp_path: Path, checkpoint_dataset: str, extra: list[str], label: str
) -> None:
    from forms.cli import app

    ckpt = compressed_lenet5_checkpoint(tmp_path / "c.pt", dataset=checkpoint_dataset)
    common = ["--checkpoint", str(ckpt), "--activity", "measured", *extra]
    expected = f"(leading, packaged lenet5-mnist-in16-calibrated.json{label}); saves conversions, reads"
    for command, arch in (("estimate", "--arch"), ("compare", "--archs")):
        out = tmp_path / command
        result = CliRunner().invoke(app, [command, arch, "forms-8", *common, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert _zero_skip_assumption(out / f"{command}.json").endswith(expected)


def test_cli_estimate_refuses_a_data_set_the_checkpoint_disagrees_with(tmp_path: Path) -> None:
    from forms.cli import app

    ckpt = compressed_lenet5_checkpoint(tmp_path / "c.pt", dataset="mnist")
    args = ["estimate", "--arch", "forms-8", "--checkpoint", str(ckpt), "--dataset", "cifar10"]
    result = CliRunner().invoke(app, [*args, "--activity", "measured", "--out", str(tmp_path / "out")])
    assert isinstance(result.exception, ConfigError)
    assert "--dataset cifar10 disagrees with checkpoint" in str(result.exception)


def test_reproduce_workloads_record_the_data_set_they_are_costed_for() -> None:
    """The networks of `forms reproduce` (c) say their data set, so LeNet-5/MNIST's packaged activity
    reads as its own and ResNet-18 (CIFAR), measured on Fashion-MNIST only, as borrowed."""
    from forms.experiments.reproduce_spec import ReproduceSpec
    from forms.experiments.verdict import packaged_skip

    datasets = {w.model: w.dataset for w in ReproduceSpec.from_dict({}).workloads}
    assert datasets["lenet5"] == "mnist" and datasets["resnet18"] == "cifar10"
    _, own = packaged_skip("lenet5", "leading", dataset=datasets["lenet5"])
    assert "borrowed" not in own and "unknown" not in own
    _, borrowed = packaged_skip("resnet18", "leading", dataset=datasets["resnet18"])
    assert "borrowed for resnet18 on cifar10" in borrowed
