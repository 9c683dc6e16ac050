"""Run the installed ``forms`` command as a real process, as a user or a script would.

Tests of error handling use these instead of ``CliRunner``: they see the real exit status, what reaches
stderr, and whether files that existed before the command are untouched.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

FORMS = Path(sys.executable).parent / "forms"
"""The console script installed next to the interpreter running the tests."""


def forms_env() -> dict[str, str]:
    """The environment of a ``forms`` process started by a test: one thread, no colours, wide lines."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200"}


def run_forms(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``forms *args`` in a fresh process (:func:`forms_env`) and capture its output."""
    return subprocess.run(
        [str(FORMS), *args],
        cwd=cwd,
        env=forms_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def assert_clean_error(proc: subprocess.CompletedProcess[str], *fragments: str, status: int = 2) -> None:
    """The command failed with ``status``, no traceback, and a message on stderr naming ``fragments``.

    Fragments are matched case-insensitively against stderr with runs of whitespace collapsed (rich
    wraps long lines).
    """
    err = " ".join(proc.stderr.split()).lower()
    assert proc.returncode == status, f"exit {proc.returncode}, expected {status}; stderr:\n{proc.stderr}"
    assert "traceback" not in err, f"traceback on stderr:\n{proc.stderr}"
    for fragment in fragments:
        assert " ".join(fragment.split()).lower() in err, f"{fragment!r} not in stderr:\n{proc.stderr}"


def fingerprints(paths: Iterable[Path]) -> dict[Path, str]:
    """SHA-256 of every file under ``paths`` (files or folders), to check that nothing changed."""
    out: dict[Path, str] = {}
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            out[f] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out
