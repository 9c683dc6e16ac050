"""The ``forms`` command. Each submodule registers its commands on :data:`forms.cli.app.app`."""

# Command modules are imported for their registration side effect, one per subsystem.
from forms.cli import compress, data, estimate, jobs, simulate, train  # noqa: F401
from forms.cli.app import app, run_app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    run_app()
