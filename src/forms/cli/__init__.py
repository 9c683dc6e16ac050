"""The ``forms`` command. Each submodule registers its commands on :data:`forms.cli.app.app`.

A command checks its paths first and imports the library (torch) only then, inside the command: so
``forms --help``, a usage error or a bad output path answer in a fraction of a second.
"""

# Command modules are imported for their registration side effect, one per subsystem.
from forms.__main__ import main
from forms.cli import compress, data, estimate, jobs, simulate, train  # noqa: F401
from forms.cli.app import app, run_app

__all__ = ["app", "main", "run_app"]
