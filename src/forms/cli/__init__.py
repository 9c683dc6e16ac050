"""The ``forms`` command. Each submodule registers its commands on :data:`forms.cli.app.app`."""

from forms.cli import app as _app_module
from forms.cli.app import app, run_app

# Command modules (imported for their registration side effect), one line each.

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    run_app()


del _app_module
