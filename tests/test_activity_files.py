"""The packaged measured activity files (src/forms/presets/activity, written by scripts/measure_activity.py)
are well-formed: counts consistent, fractions in [0, 1], layers the cost model's, provenance present."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import forms
from forms.cost.layer_shapes import built_model_shapes

ACTIVITY_DIR = Path(forms.__file__).parent / "presets" / "activity"
FILES = sorted(ACTIVITY_DIR.glob("*.json"))
MODES = ("in16-calibrated", "in16-8bit", "in8")
PARTS = (
    ("conversions_skipped_leading", "conversions_total"),
    ("conversions_skipped_bitplane", "conversions_total"),
    ("reads_skipped_leading", "reads_total"),
    ("reads_skipped_bitplane", "reads_total"),
    ("input_digits_nonzero", "input_digits_total"),
)
"""(part, whole) count pairs of each layer: every fraction part / whole lies in [0, 1]."""
PROVENANCE = (
    "model", "dataset", "input_shape", "mode", "commands", "checkpoint_digest", "float_checkpoint_digest",
    "images", "seed", "training_subset", "git_commit", "date",
)  # fmt: skip


def load(path: Path) -> dict[str, Any]:
    """One activity file."""
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_activity_files_are_packaged() -> None:
    """Every network and mode the cost model reads has a file; names follow <model>-<dataset>-<mode>."""
    names = {path.stem for path in FILES}
    for network in (
        "lenet5-mnist",
        "resnet20-fashion-mnist",
        "resnet18-fashion-mnist",
        "vgg16-fashion-mnist",
    ):
        assert {f"{network}-{mode}" for mode in MODES} <= names


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_activity_file_counts_and_provenance(path: Path) -> None:
    """Provenance names the file's network and mode; each layer's skipped and non-zero counts lie within
    its totals, and the totals are the layers' sums."""
    data = load(path)
    provenance = data["provenance"]
    assert set(PROVENANCE) <= set(provenance)
    assert path.stem == f"{provenance['model']}-{provenance['dataset']}-{provenance['mode']}"
    assert provenance["mode"] in MODES
    assert len(provenance["checkpoint_digest"]) == 64 and provenance["images"] >= 1
    assert 0.0 <= data["accuracy"] <= 1.0
    for layer in data["zero_skip"].values():
        for part, whole in PARTS:
            assert layer[whole] > 0
            assert 0 <= layer[part] <= layer[whole]
    for key, total in data["zero_skip_totals"].items():
        assert total == sum(layer[key] for layer in data["zero_skip"].values())


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_activity_layers_are_the_cost_models_layers(path: Path) -> None:
    """The measured layers are exactly the layers the cost model costs for the zoo model and input shape."""
    data = load(path)
    provenance = data["provenance"]
    shapes = built_model_shapes(provenance["model"], tuple(provenance["input_shape"]), 10)
    assert set(data["zero_skip"]) == {layer.name for layer in shapes.layers}
