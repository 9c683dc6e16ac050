"""Shared helper: each benchmark script owns one marked section of docs/benchmarks.md."""

from __future__ import annotations

import datetime as _dt
import os
import platform
from pathlib import Path

REPORT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def machine_line() -> str:
    """One line describing the machine a figure was measured on."""
    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
        f"{platform.system()}"
    )


def stamp() -> str:
    """UTC date and time of a measurement."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def update_section(name: str, body: str, path: Path = REPORT) -> Path:
    """Replace (or append) the ``<!-- bench:name -->`` ... ``<!-- /bench:name -->`` section, atomically."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else "# Benchmarks\n\nEach section is written by its script.\n"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path
