"""``python -m forms`` and the ``forms`` console script.

Start-up imports the CLI (typer, rich) and then only the module of the command that runs
(:data:`forms.cli.app.COMMANDS`); Ctrl-C during that start-up is handled here like Ctrl-C at any
later moment: "interrupted", exit status 130, no traceback. This module imports nothing at its top,
so the window before that handling starts is as short as it can be.
"""


def main() -> None:
    """Run the ``forms`` command line (see :func:`forms.cli.app.run_app`)."""
    try:
        from forms.cli.app import run_app  # command modules are imported when used
    except KeyboardInterrupt:
        from forms.errors import exit_interrupted

        exit_interrupted()
    run_app()


if __name__ == "__main__":
    main()
