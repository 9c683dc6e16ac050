"""Atomic file writes for report outputs: write to a temporary file in the same folder, then rename."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


def write_bytes_atomic(data: bytes, path: str | Path) -> Path:
    """Write ``data`` to ``path`` atomically (a reader sees the old file or the new one, never half)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; reports are meant to be shared
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_text_atomic(text: str, path: str | Path) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes_atomic(text.encode("utf-8"), path)


def _json_safe(obj: Any) -> Any:
    """Replace NaN/inf floats (not valid JSON) by None, recursively; tuples become lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj


def write_json_atomic(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` as indented, strictly valid JSON (NaN/inf become null) atomically."""
    text = json.dumps(_json_safe(obj), indent=2, sort_keys=False, allow_nan=False, default=str)
    return write_text_atomic(text + "\n", path)


def read_json(path: str | Path) -> Any:
    """Read a JSON file; raise FileNotFoundError/ValueError with the path in the message."""
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p} is not valid JSON: {exc}") from None
