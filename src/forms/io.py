"""Files FORMS writes and reads back: atomic writes, strict JSON, CSV.

Every output file (checkpoint, metrics, estimate, report, sweep point) is written to a temporary
file in the target's folder, fsynced, then moved into place with ``os.replace``: a reader (or a run
killed mid-write) sees the old file or the new one, never half of one. JSON is strictly valid (NaN
and infinities become ``null``); CSV has one header row and ``\\n`` line ends, empty cells for
missing values.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(fh)`` on a temp file next to ``path``, fsync it, then ``os.replace`` it onto ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_bytes_atomic(data: bytes, path: str | Path) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda handle: handle.write(data))


def write_text_atomic(text: str, path: str | Path) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes_atomic(text.encode("utf-8"), path)


def json_safe(obj: Any) -> Any:
    """Replace NaN/inf floats (not valid JSON) by None, recursively; tuples become lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def write_json_atomic(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` as indented, strictly valid JSON (NaN/inf become null) atomically."""
    text = json.dumps(json_safe(obj), indent=2, sort_keys=False, allow_nan=False, default=str)
    return write_text_atomic(text + "\n", path)


def read_json(path: str | Path) -> Any:
    """Read a JSON file; raise FileNotFoundError/ValueError with the path in the message."""
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p} is not valid JSON: {exc}") from None


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any] | Mapping[str, Any]]) -> str:
    """CSV text: ``header``, then one line per row (a sequence, or a mapping read by the header keys).

    ``None`` and absent keys become empty cells.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        values = [row.get(k) for k in header] if isinstance(row, Mapping) else row
        writer.writerow(["" if v is None else v for v in values])
    return buffer.getvalue()


def write_csv_atomic(
    header: Sequence[str], rows: Iterable[Sequence[Any] | Mapping[str, Any]], path: str | Path
) -> Path:
    """Write :func:`csv_text` of ``header`` and ``rows`` to ``path`` atomically."""
    return write_text_atomic(csv_text(header, rows), path)
