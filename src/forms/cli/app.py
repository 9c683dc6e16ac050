"""The root ``forms`` Typer application; command modules register themselves on it.

The CLI only parses options and calls library functions. A :class:`forms.errors.FormsError`
(or a pydantic/ValueError raised while validating user input) is printed as one clear message
and exits with status 2; nothing else is caught.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from forms.errors import FormsError

app = typer.Typer(
    name="forms",
    help="FORMS: polarized-weight DNN compression, ReRAM crossbar simulation and cost model "
    "(FORMS vs ISAAC vs PRIME).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

console = Console(stderr=True)


def run_app() -> None:
    """Entry point of the console script: run the app, turning user errors into exit status 2."""
    try:
        app(standalone_mode=False)
    except FormsError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        console.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


@app.callback()
def _root() -> None:
    """FORMS: compress, map, simulate and cost polarized-weight DNNs on ReRAM crossbars."""
