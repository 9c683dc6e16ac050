"""Files FORMS writes and reads back: atomic writes, strict JSON, CSV, and checks of the paths a user gives.

Every output file (checkpoint, metrics, estimate, report, sweep point) is written to a temporary
file in the target's folder, fsynced, then moved into place with ``os.replace``: a reader (or a run
killed mid-write) sees the old file or the new one, never half of one. JSON is strictly valid (NaN
and infinities become ``null``); CSV has one header row and ``\\n`` line ends, empty cells for
missing values.

Paths a user gives are checked before any work starts (:func:`check_input_file`,
:func:`check_output_folder`, :func:`check_output_file`): a file where a folder is meant, a folder where
a file is meant, or a place that cannot be written is refused with one message, and nothing is created.
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

from forms.errors import ConfigError

TEMP_PREFIX = ".{name}."
"""Name prefix of the temporary file :func:`atomic_write` writes ``name`` through (hidden, next to it)."""
TEMP_SUFFIX = ".tmp"
"""Name suffix of those temporary files."""


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object], durable: bool = True) -> Path:
    """Call ``write(fh)`` on a temp file next to ``path``, fsync it, then ``os.replace`` it onto ``path``.

    ``durable=False`` skips the fsync: the file still appears whole or not at all to other processes,
    but a power loss may leave it empty; only for caches whose reader checks and recomputes a bad file
    (a sweep's point records)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = TEMP_PREFIX.format(name=target.name)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=TEMP_SUFFIX, dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def remove_orphan_temp_files(folder: str | Path, names: Iterable[str]) -> list[Path]:
    """Delete the temporary files that an atomic write of each of ``names`` in ``folder`` left behind
    when its process was killed mid-write; return them.

    :func:`atomic_write` writes ``<name>`` through ``.<name>.<random>.tmp`` next to it.
    Call this only where this process is the one writer of ``folder``'s ``names`` (a run starting
    there, on rank 0), after every check that may refuse the run.
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    removed = []
    for name in names:
        for orphan in sorted(root.glob(f"{TEMP_PREFIX.format(name=name)}*{TEMP_SUFFIX}")):
            if orphan.is_file():
                orphan.unlink(missing_ok=True)
                removed.append(orphan)
    return removed


def write_bytes_atomic(data: bytes, path: str | Path, durable: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (``durable``: see :func:`atomic_write`)."""
    return atomic_write(path, lambda handle: handle.write(data), durable)


def write_text_atomic(text: str, path: str | Path, durable: bool = True) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (``durable``: see :func:`atomic_write`)."""
    return write_bytes_atomic(text.encode("utf-8"), path, durable)


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


def check_input_file(path: str | Path, what: str) -> Path:
    """``path`` as a Path; :class:`ConfigError` unless it is an existing, readable file.

    ``what`` names the file in the message ("config file", "activity file", ...).
    """
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{what} {p} is a folder, not a file; give the path of the file itself")
    if not p.exists():
        raise ConfigError(f"{what} {p} does not exist (check the path)")
    if not p.is_file():
        raise ConfigError(f"{what} {p} is not a regular file; give the path of a file")
    if not os.access(p, os.R_OK):
        raise ConfigError(f"{what} {p} is not readable (check its permissions)")
    return p


def read_text_file(path: str | Path, what: str) -> str:
    """The UTF-8 text of the file at ``path``; :class:`ConfigError` if it is not a readable UTF-8 file."""
    p = check_input_file(path, what)
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{what} {p} is not UTF-8 text (byte {exc.start} cannot be decoded); save it as UTF-8"
        ) from None


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """Read a UTF-8 JSON file; :class:`ConfigError` naming ``what`` and the path if missing or invalid."""
    p = Path(path)
    try:
        return json.loads(read_text_file(p, what))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what} {p} is not valid JSON: {exc}") from None


def _folder_problem(folder: Path) -> str | None:
    """Why files cannot be written in ``folder`` (created first if missing), or None when they can."""
    if folder.exists() and not folder.is_dir():
        return f"{folder} is a file, not a folder"
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p.is_symlink())
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"no permission to write in {existing}"
    return None


def check_output_folder(path: str | Path, what: str = "output folder") -> Path:
    """``path`` as a Path; :class:`ConfigError` unless files can be written in it (created if missing).

    Creates nothing: the folder, or the nearest existing folder above it, must be a writable folder.
    """
    target = Path(path)
    problem = _folder_problem(target)
    if problem:
        raise ConfigError(f"{what} {target} cannot be used: {problem}; give another folder")
    return target


def check_output_file(path: str | Path, what: str = "output file") -> Path:
    """``path`` as a Path; :class:`ConfigError` unless :func:`atomic_write` can write a file there.

    Refuses a folder, and a file whose folder cannot be created or written; creates nothing.
    """
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{what} {target} is a folder, not a file; give a file path")
    if target.exists() and not target.is_file():
        raise ConfigError(f"{what} {target} is not a regular file; give a file path")
    problem = _folder_problem(target.parent)
    if problem:
        raise ConfigError(f"{what} {target} cannot be written: {problem}; give another path")
    return target
