"""The verdict's optima held to the simulator's accuracy floor (presets/accuracy), and where it shows."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from forms.cost.arch import load_arch
from forms.cost.files import ACCURACY_CSV_FIELDS, save_optima
from forms.cost.layer_shapes import zoo_workload
from forms.cost.measured_accuracy import accuracy_floor
from forms.cost.optimize import Constraint, optimize
from forms.experiments.verdict import Costing, optimum_headlines, split_archs
from forms.experiments.verdict_ranges import OptimumSettings
from forms.experiments.verdict_result import Headline

CONDITIONS = {"rows": 128, "cols": 128, "cell_bits": 2, "dac_bits": 1, "input_bits": 16, "weight_bits": 8}
LOSSLESS = {(4, True): 3, (4, False): 4, (8, True): 4, (8, False): 5, (16, True): 5, (16, False): 6}
"""Lossless ADC width at R rows of 2-bit cells and a 1-bit DAC, flipped or not (unflipped: one bit more)."""
LOSSLESS |= {(32, True): 6, (32, False): 7, (128, True): 8, (128, False): 9}
FLOAT = 0.99


def _point(encoding: str, rows: int, flipped: bool, accuracy: float) -> dict[str, Any]:
    bits = LOSSLESS[(rows, flipped)]
    return {
        "encoding": encoding,
        "fragment_size": rows,
        "adc_bits": bits,
        "flipped": flipped,
        "accuracy": accuracy,
        "reference_accuracy": accuracy,
        "clip_rate": 0.0,
    }


def _package(folder: Path, r32_accuracy: float = 0.95) -> Path:
    """A hand-made LeNet-5 measurement: R = 4, 8, 16 and offset/differential at the float accuracy less
    0.2 points, R = 32 at ``r32_accuracy``."""
    points = [
        _point("polarized", r, flip, r32_accuracy if r == 32 else FLOAT - 0.002)
        for r in (4, 8, 16, 32)
        for flip in (False, True)
    ]
    points += [
        _point(e, 128, flip, FLOAT - 0.002) for e in ("offset", "differential") for flip in (False, True)
    ]
    data = {
        "model": "lenet5",
        "dataset": "mnist",
        "images": 1000,
        "float_accuracy": FLOAT,
        "conditions": CONDITIONS,
        "points": points,
        "provenance": {"script": "test"},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "lenet5-mnist.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def packaged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The hand-made measurement as the only packaged accuracy file."""
    monkeypatch.setattr("forms.cost.measured_accuracy.accuracy_dir", lambda: tmp_path / "accuracy")
    return _package(tmp_path / "accuracy")


def _settings(fallback: str | None = None, drop: float = 1.0) -> OptimumSettings:
    return OptimumSettings.from_dict(
        {
            "objectives": ["gops_per_s_mm2"],
            "constraint": "area",
            "limit": "isaac-ce",
            "accuracy_floor": {
                "max_drop_points": drop,
                "fallback": fallback,
                "status": "assumed",
                "justification": "test",
            },
        }
    )


def _headlines(
    model: str, settings: OptimumSettings, dataset: str | None = None
) -> tuple[list[Headline], list[str]]:
    forms, baselines = split_archs(["forms-8", "isaac-opt", "isaac-ce"], "isaac-opt")
    return optimum_headlines(Costing(zoo_workload(model), dataset=dataset), forms, baselines, settings)


def test_a_point_refused_by_the_floor_is_not_the_optimum(packaged: Path) -> None:
    # Without a floor FORMS' best GOPs/(s mm2) on LeNet-5 is at R = 32; R = 32 measured 4 points below
    # float is refused by a 1-point floor, so the floor's optimum is the optimizer's with that floor.
    rows, notes = _headlines("lenet5", _settings(), dataset="mnist")
    free = [h for h in rows if h.setting.endswith("no accuracy floor")]
    held = [h for h in rows if "accuracy within 1 point of float (lenet5-mnist)" in h.setting]
    assert len(free) == len(held) == 2 and len(rows) == 4
    assert all(h.forms_choice["crossbar.fragment_size"] == 32 and h.forms_accuracy is None for h in free)
    constraint = Constraint.against("area", "isaac-ce")
    floor = accuracy_floor("lenet5", 1.0)
    best = optimize(load_arch("forms-8"), zoo_workload("lenet5"), constraint=constraint, accuracy_floor=floor)
    for h in held:
        assert h.forms_choice == best.choice and h.forms_choice["crossbar.fragment_size"] != 32
        assert h.forms_accuracy is not None and h.forms_accuracy.accuracy == pytest.approx(FLOAT - 0.002)
        assert not h.forms_accuracy.borrowed and h.forms_accuracy.floor == pytest.approx(FLOAT - 0.01)
    isaac = next(h for h in held if h.baseline == "isaac-opt")
    assert isaac.baseline_accuracy is not None  # offset at 128 rows was measured
    # isaac-ce's 15-bit weights were not measured: it is searched without the floor, and the notes say so
    assert next(h for h in held if h.baseline == "isaac-ce").baseline_accuracy is None
    assert any("no accuracy floor for isaac-ce" in n for n in notes)
    assert any(n.startswith("optima with an accuracy floor (assumed)") for n in notes)


def test_a_floor_that_refuses_nothing_leaves_the_optimum_where_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("forms.cost.measured_accuracy.accuracy_dir", lambda: tmp_path)
    _package(tmp_path, r32_accuracy=FLOAT - 0.002)
    rows, _ = _headlines("lenet5", _settings())
    free, held = rows[:2], rows[2:]
    for a, b in zip(free, held, strict=True):
        assert a.forms_choice == b.forms_choice and a.ratios == b.ratios


def test_a_borrowed_measurement_is_labelled_in_the_rows_and_notes(packaged: Path) -> None:
    # mlp has no measurement: its family's (NEAREST_MEASURED: lenet5) is borrowed
    rows, notes = _headlines("mlp", _settings())
    held = [h for h in rows if h.forms_accuracy is not None]
    assert held and all(h.forms_accuracy.borrowed for h in held if h.forms_accuracy)
    assert all("(lenet5-mnist, borrowed)" in h.setting for h in held)
    assert any("borrowed from lenet5-mnist (mlp not measured)" in n for n in notes)


def test_the_same_model_on_other_data_is_borrowed_and_on_unknown_data_is_labelled(packaged: Path) -> None:
    other, notes = _headlines("lenet5", _settings(), dataset="fashion-mnist")
    held = [h.forms_accuracy for h in other if h.forms_accuracy is not None]
    assert held and all(a.borrowed and a.text.endswith(", borrowed)") for a in held)
    assert any("borrowed from lenet5-mnist (lenet5 on fashion-mnist not measured)" in n for n in notes)
    unknown, notes = _headlines("lenet5", _settings())
    held = [h.forms_accuracy for h in unknown if h.forms_accuracy is not None]
    assert held and all(not a.borrowed and not a.dataset_known for a in held)
    assert all(a.text.endswith(", data set unknown)") for a in held)
    assert all("(lenet5-mnist, data set unknown)" in h.setting for h in unknown if h.forms_accuracy)
    assert any("measured on mnist, lenet5's data set unknown" in n for n in notes)
    for h in unknown:
        assert Headline.from_dict(json.loads(json.dumps(asdict(h)))) == h


def test_a_record_written_before_data_sets_were_asked_reads_back_as_unknown(packaged: Path) -> None:
    rows, _ = _headlines("lenet5", _settings(), dataset="mnist")
    record = asdict(next(h for h in rows if h.forms_accuracy is not None))
    assert record["forms_accuracy"].pop("dataset_known") is True
    at = Headline.from_dict(record).forms_accuracy
    assert at is not None and not at.dataset_known and at.label == "data set unknown"


def test_without_a_measurement_or_fallback_there_is_no_floor_and_a_note_says_so(packaged: Path) -> None:
    rows, notes = _headlines("resnet20", _settings(fallback=None))
    assert rows and all(h.setting.endswith("no accuracy floor") for h in rows)
    assert any("no accuracy floor: no measured accuracy for resnet20" in n for n in notes)
    borrowed, notes = _headlines("resnet20", _settings(fallback="lenet5-mnist"))
    assert len(borrowed) == 2 * len(rows)
    assert any("borrowed from lenet5-mnist (resnet20 not measured)" in n for n in notes)


def test_headlines_with_accuracy_read_back_from_json(packaged: Path) -> None:
    rows, _ = _headlines("lenet5", _settings())
    for h in rows:
        assert Headline.from_dict(json.loads(json.dumps(asdict(h)))) == h


def test_optimize_csv_shows_the_accuracy_and_its_source(packaged: Path, tmp_path: Path) -> None:
    lenet = zoo_workload("lenet5")
    floor = accuracy_floor("lenet5-caffe", 1.0, "lenet5-mnist")
    held = optimize(load_arch("forms-8"), lenet, accuracy_floor=floor)
    free = optimize(load_arch("isaac-opt"), lenet)
    save_optima([held, free], tmp_path / "out")
    with (tmp_path / "out" / "optimize.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert set(ACCURACY_CSV_FIELDS) <= set(rows[0])
    assert held.accuracy is not None
    assert float(rows[0]["accuracy"]) == pytest.approx(held.accuracy.accuracy)
    assert float(rows[0]["accuracy_floor"]) == pytest.approx(FLOAT - 0.01)
    assert rows[0]["accuracy_source"] == "lenet5-mnist (1000 images, borrowed for lenet5-caffe)"
    assert all(rows[1][k] == "" for k in ACCURACY_CSV_FIELDS), "an optimum without a floor has no accuracy"


def test_the_verdict_inputs_key_changes_when_an_accuracy_file_changes(packaged: Path) -> None:
    from forms.experiments.stages import verdict_inputs_key

    def key() -> str:
        return verdict_inputs_key("lenet5", ["forms-8", "isaac-opt"], "isaac-opt", model="lenet5")

    before = key()
    assert key() == before
    _package(packaged.parent, r32_accuracy=0.5)
    assert key() != before
