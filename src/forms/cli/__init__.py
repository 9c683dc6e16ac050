"""The ``forms`` command. Each submodule registers its commands on :data:`forms.cli.app.app`.

Command modules are imported when one of their commands is used, not here: the table of commands
and the modules that define them is :data:`forms.cli.app.COMMANDS` (add a new command there). A
command checks its paths first and imports the library (torch) only then, inside the command: so
``forms --help``, a usage error or a bad output path answer in a fraction of a second.
"""

from forms.__main__ import main
from forms.cli.app import app, run_app

__all__ = ["app", "main", "run_app"]
