"""The report as data: sections of tables and figures whose every number points into summary.json.

A :class:`Cell` holds a value together with the path of the ``summary.json`` field it came from
(``"estimate.forms-8.fps"``, ``"simulate.polarized-ideal.metrics.adc_clip_rate.layers.conv1"``): a value
read from a typed record gets its path from :func:`field_cell` or :func:`entry_cell`, one read from
free-form data (parameters, a job's extra tables) from :func:`ref`. Writers render
the value with :func:`format_value` and keep the path (HTML ``data-path`` attribute, CSV column), so a
test can re-read ``summary.json`` and check every number in the report against its source.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from forms.report.summary import Summary

Fmt = Literal["text", "int", "float", "pct", "ratio", "sci"]
"""How a cell value is shown: verbatim text, integer, 4 significant digits, percent of a fraction,
``2.31x`` ratio, or scientific notation."""

MISSING = object()
"""Sentinel returned by :func:`resolve` when a path does not exist."""


def split_path(path: str) -> list[str]:
    """Split a summary path on dots; a key holding a dot is written in brackets: ``a.[b.c].d``."""
    parts: list[str] = []
    buf = ""
    depth = 0
    for ch in path:
        if ch == "[" and depth == 0 and not buf:
            depth = 1
        elif ch == "]" and depth == 1:
            depth = 0
        elif ch == "." and depth == 0:
            parts.append(buf)
            buf = ""
        else:
            buf += ch
    parts.append(buf)
    return parts


def join_path(path: str, *keys: str | int) -> str:
    """Extend the summary ``path`` (empty for the root) by ``keys``, bracketing any key holding a dot.

    ``split_path(join_path("", *keys)) == keys`` for keys without brackets.
    """
    out = [path] if path else []
    for key in keys:
        text = str(key)
        out.append(f"[{text}]" if "." in text else text)
    return ".".join(out)


def resolve(summary: Mapping[str, Any], path: str) -> Any:
    """Value at ``path`` in ``summary`` (list items by integer index), or :data:`MISSING`."""
    node: Any = summary
    for key in split_path(path):
        if isinstance(node, Mapping) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.lstrip("-").isdigit() and -len(node) <= int(key) < len(node):
            node = node[int(key)]
        else:
            return MISSING
    return node


def format_value(value: Any, fmt: Fmt = "float") -> str:
    """Text of ``value`` in the report; ``None``/missing/NaN become an em dash."""
    if value is None or value is MISSING:
        return "—"
    if isinstance(value, float) and math.isnan(value):
        return "—"
    if fmt == "text" or isinstance(value, str | bool):
        return str(value)
    number = float(value)
    if math.isinf(number):
        return "∞" if number > 0 else "-∞"
    if fmt == "int":
        return f"{round(number):,d}"
    if fmt == "pct":
        return f"{100 * number:.2f}%"
    if fmt == "ratio":
        return f"{number:.3g}x"
    if fmt == "sci":
        return f"{number:.3e}"
    return f"{number:.4g}"


@dataclass(frozen=True)
class Cell:
    """One table cell: a value, the summary path it was read from (None for labels), its format."""

    value: Any
    path: str | None = None
    fmt: Fmt = "text"

    @property
    def text(self) -> str:
        """The rendered text of the cell."""
        return format_value(self.value, self.fmt)


def field_cell(record: object | None, prefix: str, name: str, fmt: Fmt = "float") -> Cell:
    """A cell of attribute ``name`` of ``record``, which summary.json holds at ``prefix``.

    The cell's path is ``prefix.name``: a typed record's field has the name of its JSON key, so the
    path is derived here, never typed by hand. No record (a figure without a baseline) is an em dash.
    """
    return Cell(None if record is None else getattr(record, name), join_path(prefix, name), fmt)


def entry_cell(mapping: Mapping[str, Any], prefix: str, key: str, fmt: Fmt = "float") -> Cell:
    """A cell of ``mapping[key]`` (an em dash when absent), which summary.json holds at ``prefix``."""
    return Cell(mapping.get(key), join_path(prefix, key), fmt)


def ref(data: Mapping[str, Any], path: str, fmt: Fmt = "float") -> Cell:
    """A cell of the value at ``path`` of free-form summary data (an em dash when the path is absent).

    ``data`` is summary.json or a part of it whose keys are top-level keys of summary.json (a job's
    extra tables), so ``path`` is the value's summary.json path either way.
    """
    value = resolve(data, path)
    return Cell(None if value is MISSING else value, path, fmt)


def label(text: str) -> Cell:
    """A cell of plain text that is not a number from the summary (a row or column label)."""
    return Cell(text, None, "text")


@dataclass
class Table:
    """A titled table; ``id`` names its CSV file and its HTML anchor."""

    id: str
    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    note: str = ""

    def __post_init__(self) -> None:
        for row in self.rows:
            self._check(row)

    def _check(self, row: list[Cell]) -> None:
        if len(row) != len(self.columns):
            raise ValueError(f"table {self.id}: row has {len(row)} cells for {len(self.columns)} columns")

    def add(self, row: Iterable[Cell]) -> None:
        """Append one row (its length must match the columns)."""
        cells = list(row)
        self._check(cells)
        self.rows.append(cells)

    def cells(self) -> Iterable[Cell]:
        """Every cell, row by row."""
        for row in self.rows:
            yield from row


@dataclass
class Figure:
    """A plot rendered to PNG bytes, with the summary paths of the data it draws."""

    id: str
    title: str
    png: bytes
    caption: str = ""
    sources: list[str] = field(default_factory=list)


@dataclass
class Section:
    """A report section: an anchor id, a heading, paragraphs, tables and figures."""

    id: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)


@dataclass
class Report:
    """A whole report: a title, a subtitle line and its sections, with the summary it was built from."""

    title: str
    subtitle: str
    sections: list[Section]
    summary: Summary

    def tables(self) -> list[Table]:
        """All tables of all sections, in order."""
        return [table for section in self.sections for table in section.tables]

    def figures(self) -> list[Figure]:
        """All figures of all sections, in order."""
        return [fig for section in self.sections for fig in section.figures]

    def check_ids(self) -> None:
        """Raise ValueError when two sections, two tables or two figures share an id (anchors, file names)."""
        for kind, ids in (
            ("section", [s.id for s in self.sections]),
            ("table", [t.id for t in self.tables()]),
            ("figure", [f.id for f in self.figures()]),
        ):
            seen: set[str] = set()
            for item_id in ids:
                if item_id in seen:
                    raise ValueError(f"duplicate {kind} id '{item_id}' in the report")
                seen.add(item_id)


def number_leaves(obj: Any, prefix: str) -> Iterator[tuple[str, str, Any]]:
    """(summary path, relative label, value) of every numeric leaf under ``obj`` (depth first)."""
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from (
                (path, f"{key}.{rel}" if rel else str(key), v)
                for path, rel, v in number_leaves(value, join_path(prefix, key))
            )
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        yield prefix, "", obj


def scalar_leaves(obj: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """(summary path, value) of every scalar leaf (number, string, bool, None) under ``obj``."""
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from scalar_leaves(value, join_path(prefix, key))
    elif isinstance(obj, list) and not all(isinstance(v, str | int | float) for v in obj):
        for i, value in enumerate(obj):
            yield from scalar_leaves(value, join_path(prefix, i))
    else:
        yield prefix, obj
