"""Atomic file writes for report outputs: write to a temporary file in the same folder, then rename."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from forms.nn.checkpoint import atomic_write, write_json_atomic

__all__ = ["read_json", "write_bytes_atomic", "write_json_atomic", "write_text_atomic"]


def write_bytes_atomic(data: bytes, path: str | Path) -> Path:
    """Write ``data`` to ``path`` atomically (a reader sees the old file or the new one, never half)."""
    return atomic_write(path, lambda handle: handle.write(data))


def write_text_atomic(text: str, path: str | Path) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes_atomic(text.encode("utf-8"), path)


def read_json(path: str | Path) -> Any:
    """Read a JSON file; raise FileNotFoundError/ValueError with the path in the message."""
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p} is not valid JSON: {exc}") from None
