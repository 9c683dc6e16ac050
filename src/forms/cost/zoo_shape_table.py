"""The packaged table of zoo layer shapes, so that ``forms estimate`` builds no model and imports no torch.

``presets/zoo_shapes.json`` holds, for every zoo model (:data:`forms.nn.models.ZOO`) on each of
:data:`TABLE_INPUT_SHAPES` it accepts, with :func:`~forms.cost.layer_shapes.default_num_classes`
classes, the shapes :func:`~forms.cost.layer_shapes.built_model_shapes` computes by building the model
and running it on meta tensors; and the SHA-256 of the zoo's source (``forms/nn/models.py``) they were
computed from. :func:`table_shapes` answers only for an exact (model, input shape, classes) entry and
only while that digest is the digest of the zoo in use: after any edit of the zoo it answers nothing
(the caller builds the model) until the table is regenerated with ``python -m forms.cost.zoo_shape_table``.
``tests/test_zoo_shape_table.py`` checks every entry against a freshly built model and that the table
is current.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from forms.cost.layer_shapes import ModelShapes, built_model_shapes, default_num_classes
from forms.errors import ConfigError
from forms.io import read_json, write_text_atomic

TABLE_INPUT_SHAPES: tuple[tuple[int, int, int], ...] = ((1, 28, 28), (1, 32, 32), (3, 32, 32), (3, 224, 224))
"""Input shapes (C, H, W) the table holds for each zoo model that accepts them: MNIST, MNIST padded
to 32 (``--pad-to 32``), CIFAR and ImageNet."""

TABLE_FORMAT = 1
"""Version of the table's layout; a table of another version is ignored."""


def table_path() -> Path:
    """The packaged table, ``forms/presets/zoo_shapes.json``."""
    return Path(str(resources.files("forms") / "presets" / "zoo_shapes.json"))


def zoo_source_digest() -> str:
    """SHA-256 of the zoo's source file, ``forms/nn/models.py`` (read as bytes, not imported)."""
    return hashlib.sha256((resources.files("forms") / "nn" / "models.py").read_bytes()).hexdigest()


def entry_key(model_name: str, input_shape: Sequence[int], num_classes: int) -> str:
    """The table key of one model on one input shape: e.g. ``'resnet50 3x224x224 1000'``."""
    return f"{model_name} {'x'.join(str(int(d)) for d in input_shape)} {int(num_classes)}"


@lru_cache(maxsize=1)
def _current_entries() -> dict[str, Any]:
    """The table's entries when it matches the zoo in use and this format, else none."""
    path = table_path()
    try:
        digest = zoo_source_digest()
    except OSError:  # an install without the zoo's source (bytecode only): no way to check the table
        return {}
    if not path.is_file():
        return {}
    table = read_json(path, "zoo shape table")
    if table.get("format") != TABLE_FORMAT or table.get("zoo_source_sha256") != digest:
        return {}
    return dict(table["entries"])


def table_shapes(model_name: str, input_shape: Sequence[int], num_classes: int) -> ModelShapes | None:
    """The packaged shapes of ``model_name`` on ``input_shape`` with ``num_classes``; None when not held."""
    entry = _current_entries().get(entry_key(model_name, input_shape, num_classes))
    return None if entry is None else ModelShapes.from_dict(entry)


def table_entries() -> dict[str, ModelShapes]:
    """Every (model, input shape) of :data:`TABLE_INPUT_SHAPES` the zoo accepts, built (imports torch)."""
    from forms.nn.models import MODEL_NAMES

    entries: dict[str, ModelShapes] = {}
    for name in MODEL_NAMES:
        for shape in TABLE_INPUT_SHAPES:
            classes = default_num_classes(shape)
            try:
                entries[entry_key(name, shape, classes)] = built_model_shapes(name, shape, classes)
            except ConfigError:  # the model does not accept this input (too small for its pooling)
                continue
    return entries


def table_text(entries: dict[str, ModelShapes], digest: str) -> str:
    """The table file's JSON text: one entry per line, so that a change shows as the entries it touches."""
    lines = [f"  {json.dumps(key)}: {json.dumps(shapes.to_dict())}" for key, shapes in entries.items()]
    head = f'{{\n  "format": {TABLE_FORMAT},\n  "zoo_source_sha256": "{digest}",\n  "entries": {{\n'
    return head + ",\n".join(f"  {line}" for line in lines) + "\n  }\n}\n"


def write_table(path: Path | None = None) -> Path:
    """Rebuild every entry from the zoo in use and write the table atomically (default :func:`table_path`)."""
    out = write_text_atomic(table_text(table_entries(), zoo_source_digest()), path or table_path())
    _current_entries.cache_clear()
    return out


if __name__ == "__main__":
    print(f"wrote {write_table()}")
