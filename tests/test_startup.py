"""Start-up of the ``forms`` command: what a fresh process imports, and the lazy command table.

Real processes, checked through ``sys.modules`` (not timed: benchmarks/bench_startup.py times them).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from cli_helpers import forms_env, run_forms
from forms.cli.app import COMMANDS, app

HEAVY = ("torch", "matplotlib", "numpy", "pydantic", "scipy", "forms.nn.models", "forms.sim")
"""Modules (and packages) a start-up should import only when its command needs them."""

PROBE = """
import json, sys
watched = json.loads(sys.argv[2])
sys.argv = ["forms", *json.loads(sys.argv[1])]
from forms.__main__ import main
status = 0
try:
    main()
except SystemExit as exc:
    status = exc.code
loaded = sorted({w for w in watched for m in sys.modules if m == w or m.startswith(w + ".")})
print("\\nPROBE " + json.dumps({"status": status, "loaded": loaded}), file=sys.stderr)
"""
"""Runs ``forms ARGS`` (argv 1, JSON) in its interpreter, then reports its exit status and which of the
modules in argv 2 (JSON) it imported."""


def _loaded_by(*args: str) -> tuple[int, set[str]]:
    """Exit status of ``forms *args`` in a fresh process, and which :data:`HEAVY` modules and command
    modules (:data:`COMMANDS`) it imported."""
    watched = [*HEAVY, *sorted(set(COMMANDS.values()))]
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(args)), json.dumps(watched)],
        env=forms_env(),
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("PROBE ")]
    assert line, proc.stderr
    report = json.loads(line[-1].removeprefix("PROBE "))
    return int(report["status"] or 0), set(report["loaded"])


LIBRARY = {"torch", "matplotlib", "scipy", "forms.nn.models", "forms.sim"}
"""What neither ``forms --help`` nor a zoo-model estimate may import."""


def test_help_imports_no_library() -> None:
    status, loaded = _loaded_by("--help")
    assert status == 0
    assert not loaded & LIBRARY, loaded


def test_a_command_imports_only_its_own_module() -> None:
    status, loaded = _loaded_by("estimate", "--help")
    assert status == 0
    assert loaded & set(COMMANDS.values()) == {"forms.cli.estimate"}, loaded


def test_estimate_of_a_zoo_model_imports_no_torch(tmp_path: Path) -> None:
    args = ("estimate", "--arch", "forms-8", "--model", "resnet50", "--input-shape", "3,224,224")
    status, loaded = _loaded_by(*args, "--out", str(tmp_path / "est"))
    assert status == 0
    assert (tmp_path / "est" / "estimate.json").is_file()
    assert not loaded & LIBRARY, loaded


def test_the_command_table_matches_the_registered_commands() -> None:
    for module in set(COMMANDS.values()):
        __import__(module)
    registered = typer.main.get_group(app).commands
    assert set(registered) == set(COMMANDS), "add each command to forms.cli.app.COMMANDS, and only those"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_help(name: str) -> None:
    group = typer.main.get_group(app)
    command = group.get_command(typer.Context(group), name)
    assert command is not None and command.name == name
    assert command.get_short_help_str(), f"command {name} has no help text"


def test_a_mistyped_command_gets_a_suggestion() -> None:
    proc = run_forms("estimat")
    assert proc.returncode == 2
    assert "Did you mean 'estimate'" in proc.stderr, proc.stderr
