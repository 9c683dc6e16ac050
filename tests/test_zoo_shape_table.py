"""The packaged zoo shape table equals the shapes of the built models, and is used only when current."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from torch import nn

from forms.cost import zoo_shape_table
from forms.cost.layer_shapes import (
    ModelShapes,
    built_model_shapes,
    default_input_shape,
    default_num_classes,
    layer_shapes,
    model_shapes,
    zoo_workload,
)
from forms.cost.zoo_shape_table import (
    TABLE_INPUT_SHAPES,
    entry_key,
    table_entries,
    table_path,
    table_shapes,
    table_text,
    zoo_source_digest,
)
from forms.io import read_json
from forms.nn.models import MODEL_NAMES

REGENERATE = "regenerate it with `python -m forms.cost.zoo_shape_table`"


@pytest.fixture(scope="module")
def built() -> dict[str, ModelShapes]:
    """Every table entry computed now, by building each model on the meta device."""
    return table_entries()


@pytest.fixture()
def fresh_cache() -> Iterator[None]:
    """Forget the loaded table before and after a test that changes what it would load."""
    zoo_shape_table._current_entries.cache_clear()
    yield
    zoo_shape_table._current_entries.cache_clear()


def test_the_packaged_table_is_for_the_zoo_in_use() -> None:
    table = read_json(table_path())
    assert table["zoo_source_sha256"] == zoo_source_digest(), f"the zoo changed: {REGENERATE}"
    assert table["format"] == zoo_shape_table.TABLE_FORMAT


def test_every_entry_equals_the_shapes_of_the_built_model(built: dict[str, ModelShapes]) -> None:
    assert set(read_json(table_path())["entries"]) == set(built), f"entries differ: {REGENERATE}"
    for key, shapes in built.items():
        name, shape, classes = key.split(" ")
        dims = tuple(int(d) for d in shape.split("x"))
        assert table_shapes(name, dims, int(classes)) == shapes, f"{key}: {REGENERATE}"


def test_every_zoo_model_is_in_the_table_on_its_default_input(built: dict[str, ModelShapes]) -> None:
    for name in MODEL_NAMES:
        shape = default_input_shape(name)
        assert entry_key(name, shape, default_num_classes(shape)) in built
    assert {key.split(" ")[1] for key in built} == {"x".join(map(str, s)) for s in TABLE_INPUT_SHAPES}


def test_the_table_text_reads_back_as_the_same_shapes(built: dict[str, ModelShapes], tmp_path: Path) -> None:
    path = tmp_path / "zoo_shapes.json"
    path.write_text(table_text(built, "digest"))
    entries = read_json(path)["entries"]
    assert {k: ModelShapes.from_dict(v) for k, v in entries.items()} == built


def test_a_stale_table_is_ignored(monkeypatch: pytest.MonkeyPatch, fresh_cache: None) -> None:
    assert table_shapes("lenet5", (1, 28, 28), 10) is not None
    zoo_shape_table._current_entries.cache_clear()
    monkeypatch.setattr(zoo_shape_table, "zoo_source_digest", lambda: "0" * 64)
    assert table_shapes("lenet5", (1, 28, 28), 10) is None
    assert model_shapes("lenet5", (1, 28, 28), 10) == built_model_shapes("lenet5", (1, 28, 28), 10)


@pytest.mark.parametrize(
    ("name", "shape", "classes"),
    [("lenet5", (1, 40, 40), 10), ("resnet20", (3, 32, 32), 100), ("vgg16", (3, 64, 64), 10)],
)
def test_inputs_outside_the_table_build_the_model(name: str, shape: tuple[int, ...], classes: int) -> None:
    assert table_shapes(name, shape, classes) is None
    workload = zoo_workload(name, shape, classes)
    assert workload.shapes == built_model_shapes(name, shape, classes)
    assert workload.shapes.layers[-1].geometry.cols == classes


def test_zoo_workload_reads_the_table_for_a_default_input() -> None:
    workload = zoo_workload("resnet50", (3, 224, 224))
    assert workload.shapes == table_shapes("resnet50", (3, 224, 224), 1000)
    assert len(workload.shapes.layers) == 54  # 1 stem + 16 blocks x 3 + 4 projections + 1 fc


def test_layer_shapes_restore_each_modules_training_flag() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    model[1].eval()  # mixed modes: the container trains, the BatchNorm does not
    before = [m.training for m in model.modules()]
    shapes = layer_shapes(model, (3, 3, 3))  # a 1x1 map: a training BatchNorm would refuse one image
    assert [m.training for m in model.modules()] == before
    assert [layer.positions for layer in shapes.layers] == [1, 1]
